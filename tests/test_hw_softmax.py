import pytest

from hw.layouts import FixedFormat
from hw.softmax import Softmax
from sim.selfcheck import blocks


def test_selfcheck_matches_golden():
    block = blocks()["softmax"]
    assert "equal the golden softmax" in block.selfcheck(**dict(block.params, n=4, max_len=32))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="max_len must be a multiple of n \\(16\\), not 40"):
        Softmax(n=16, max_len=40)
    with pytest.raises(ValueError, match="max_len must be in 4..4096, not 2"):
        Softmax(n=4, max_len=2)
    with pytest.raises(ValueError, match="n must be in 1..64, not 65"):
        Softmax(n=65)
    with pytest.raises(ValueError, match="frac_bits must be at least 14"):
        Softmax(fixed=FixedFormat(width=32, frac_bits=10))


def test_illegal_length_sets_error_and_stalls():
    from sim.drivers import refuses_illegal_length

    assert refuses_illegal_length(Softmax(n=4, max_len=16), "length", 0)
    assert refuses_illegal_length(Softmax(n=4, max_len=16), "length", 5)
