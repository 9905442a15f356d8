import pytest

from hw.entropy import EntropyExit
from sim.selfcheck import blocks


def test_selfcheck_matches_golden():
    block = blocks()["entropy_exit"]
    assert "equal the golden entropy" in block.selfcheck(**dict(block.params, max_classes=10))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="max_classes must be in 1..4096, not 0"):
        EntropyExit(max_classes=0)
    with pytest.raises(TypeError, match="max_classes must be an integer, not '8'"):
        EntropyExit(max_classes="8")


def test_illegal_class_count_sets_error_and_stalls():
    from sim.drivers import refuses_illegal_length

    assert refuses_illegal_length(EntropyExit(n=4, max_classes=10), "classes", 0)
    assert refuses_illegal_length(EntropyExit(n=4, max_classes=10), "classes", 11)
