import pytest

from hw.layernorm import LayerNorm
from sim.selfcheck import blocks


def test_selfcheck_matches_golden():
    block = blocks()["layernorm"]
    assert "equal the golden layernorm" in block.selfcheck(**dict(block.params, n=4, max_len=32))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="max_len must be a multiple of n \\(8\\), not 100"):
        LayerNorm(n=8, max_len=100)
    with pytest.raises(TypeError, match="fmt must be an AFFormat, not 8"):
        LayerNorm(fmt=8)
    with pytest.raises(TypeError, match="max_len must be an integer, not 64.0"):
        LayerNorm(n=8, max_len=64.0)


def test_illegal_length_sets_error_and_stalls():
    from sim.drivers import refuses_illegal_length

    assert refuses_illegal_length(LayerNorm(n=4, max_len=16), "length", 0)
    assert refuses_illegal_length(LayerNorm(n=4, max_len=16), "length", 7)
