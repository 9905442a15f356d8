"""AFToFixed in the Amaranth simulator against the golden to_fixed ([F5])."""

import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Fragment

from hw.af_fixed import AFToFixed
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from sim.drivers import run_comb
from sim.selfcheck import blocks
from sw.golden.af import to_fixed


@pytest.mark.parametrize("fmt,fixed", [
    (DEFAULT_AF, FixedFormat(32, 16)),
    (DEFAULT_AF, FixedFormat(20, 14)),  # the narrowest format that holds every value
    (AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2), FixedFormat(16, 6)),
    (AFFormat(n_bits=7, exp_bits=3, offset=4, bias_bits=1), FixedFormat(40, 0)),
], ids=["default-32.16", "default-20.14", "N6E2-16.6", "N7E3o4-40.0"])
def test_every_code_every_bias(fmt, fixed):
    codes = torch.arange(fmt.code_max + 1)
    n_bias = fmt.bias_max + 1
    expected = torch.cat([to_fixed(codes, b, fixed, fmt) for b in range(n_bias)])
    n = run_comb(AFToFixed(fmt=fmt, fixed=fixed),
                 {"code": codes.repeat(n_bias),
                  "bias": torch.arange(n_bias).repeat_interleave(len(codes))},
                 {"fixed": expected})
    assert n == len(codes) * n_bias


def test_ports_and_refusals():
    dut = AFToFixed()
    assert (len(dut.code), len(dut.bias), len(dut.fixed)) == (8, 3, 32)
    assert dut.fixed_format == FixedFormat() and dut.fmt == DEFAULT_AF
    Fragment.get(dut, None)  # elaborates (and so counts as used)
    with pytest.raises(ValueError, match=r"frac_bits must be at least 14 to hold the smallest "
                                         r"step of AFFormat\(.*\) exactly, not 8"):
        AFToFixed(fixed=FixedFormat(32, 8))
    with pytest.raises(ValueError, match=r"width must be at least 22 to hold the largest value "
                                         r"of AFFormat\(.*\) with 16 fractional bits, not 18"):
        AFToFixed(fixed=FixedFormat(18, 16))
    with pytest.raises(TypeError, match=r"fixed must be a FixedFormat, not \(32, 16\)"):
        AFToFixed(fixed=(32, 16))
    with pytest.raises(TypeError, match=r"fmt must be an AFFormat, not None"):
        AFToFixed(fmt=None)


def test_registered_block_builds_and_self_checks():
    block = blocks()["af_to_fixed"]
    top = block.build(**block.params)
    assert isinstance(top, AFToFixed)
    assert "module af_to_fixed(" in verilog.convert(top, name="af_to_fixed", emit_src=False)
    assert "all 2048 (code, bias) pairs" in block.selfcheck(**block.params)
