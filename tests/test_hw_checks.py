"""The one argument-check helper: exact messages and exception types."""

import pytest

from hw.checks import check_count, check_int, is_int


def test_is_int_refuses_bool_and_float():
    assert is_int(3) and is_int(-1)
    assert not is_int(True) and not is_int(3.0) and not is_int("3")


def test_check_int_returns_value():
    assert check_int("n", 5, lo=1, hi=8) == 5
    assert check_int("n", 1, lo=1, hi=8, span=True) == 1


@pytest.mark.parametrize("value", ["4", 4.0, True, None])
def test_check_int_type(value):
    with pytest.raises(TypeError) as e:
        check_int("n", value)
    assert str(e.value) == f"n must be an integer, not {value!r}"


def test_check_int_bounds():
    with pytest.raises(ValueError) as e:
        check_int("width", 1, lo=2, hi=64)
    assert str(e.value) == "width must be at least 2, not 1"
    with pytest.raises(ValueError) as e:
        check_int("width", 65, lo=2, hi=64)
    assert str(e.value) == "width must be at most 64, not 65"


def test_check_int_span():
    with pytest.raises(ValueError) as e:
        check_int("n", 65, lo=1, hi=64, span=True)
    assert str(e.value) == "n must be in 1..64, not 65"
    with pytest.raises(ValueError) as e:
        check_int("n", 0, lo=1, hi=64, span=True)
    assert str(e.value) == "n must be in 1..64, not 0"


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "1", None])
def test_check_count_positive(value):
    with pytest.raises(ValueError) as e:
        check_count("beats", value)
    assert str(e.value) == f"beats must be a positive integer, not {value!r}"


@pytest.mark.parametrize("value", [-1, 1.0, False])
def test_check_count_non_negative(value):
    with pytest.raises(ValueError) as e:
        check_count("copies", value, lo=0)
    assert str(e.value) == f"copies must be a non-negative integer, not {value!r}"


def test_check_count_returns_value():
    assert check_count("beats", 7) == 7
    assert check_count("copies", 0, lo=0) == 0
    with pytest.raises(ValueError, match="lo must be 0 or 1, not 2"):
        check_count("x", 5, lo=2)
