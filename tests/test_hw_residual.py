import pytest
from amaranth.hdl import Fragment

from hw.layouts import FixedFormat
from hw.residual import ResidualAdd
from sim.selfcheck import blocks


def test_selfcheck_matches_golden():
    block = blocks()["residual_add"]
    assert "equal the golden" in block.selfcheck(**dict(block.params, n=4))


def test_bad_lanes_are_refused():
    with pytest.raises(ValueError, match="n must be in 1..64, not 0"):
        ResidualAdd(n=0)
    with pytest.raises(TypeError, match="n must be an integer, not '4'"):
        ResidualAdd(n="4")


def test_too_narrow_fixed_is_refused():
    with pytest.raises(ValueError, match="frac_bits must be at least 14"):
        ResidualAdd(fixed=FixedFormat(width=32, frac_bits=8))


def test_latency_is_the_cycle_models():
    from sw.perf.sfu import RESIDUAL_LATENCY

    dut = ResidualAdd(n=2)
    assert dut.latency == RESIDUAL_LATENCY == 5
    Fragment.get(dut, None)  # elaborates (and so counts as used)
