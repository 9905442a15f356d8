"""AFRequantCore in the Amaranth simulator against the one rounding rule ([F2])."""

import pytest
import torch
from af_reference import matmul_shift, requant_cases, requantize_each
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module, Signal
from amaranth.sim import Simulator

from hw.af_requant import MAX_STAGES, AFRequantCore, leading_one, trailing_zeros
from hw.layouts import DEFAULT_AF, AFFormat
from sim.drivers import run_comb, run_pipelined
from sim.selfcheck import blocks
from sw.adaptivfloat import round_to_code


@pytest.mark.slow
def test_default_format_edge_cases_sample():
    # A sample of the edge cases for every bias (the cocotb tests run all of them and 100,000
    # random values on the Verilog); golden = requantize with the operand and output biases.
    fmt = DEFAULT_AF
    acc, ba, bb, bo = requant_cases(fmt, 40, n_random=0)
    keep = torch.randperm(len(acc), generator=torch.Generator().manual_seed(1))[:3000]
    acc, ba, bb, bo = acc[keep], ba[keep], bb[keep], bo[keep]
    expected = requantize_each(acc, ba, bb, bo, fmt)
    shift = matmul_shift(fmt, ba, bb, bo)
    dut = AFRequantCore(fmt=fmt, in_width=40, shift_min=-21, shift_max=0)
    assert run_comb(dut, {"value": acc, "shift": shift}, {"code": expected}) == 3000


def _random(in_width, lo, hi, count, seed):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(-(1 << (in_width - 1)), 1 << (in_width - 1), (count,), generator=g)
    v = v >> torch.randint(0, in_width, (count,), generator=g)
    extremes = torch.tensor([0, 1, -1, (1 << (in_width - 1)) - 1, -(1 << (in_width - 1))])
    v = torch.cat([extremes.repeat(hi - lo + 1), v])
    s = torch.cat([torch.arange(lo, hi + 1).repeat_interleave(5),
                   torch.randint(lo, hi + 1, (count,), generator=g)])
    return v, s


@pytest.mark.parametrize("fmt,in_width,lo,hi", [
    (DEFAULT_AF, 16, -30, 9),         # shifts of both signs, saturation from small inputs
    (DEFAULT_AF, 24, 3, 3),           # one positive shift only
    (AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2), 12, -14, 2),
    (AFFormat(n_bits=10, exp_bits=2, offset=0, bias_bits=3), 20, -20, -5),
], ids=["default-16b", "default-fixed-shift", "N6E2", "N10E2"])
def test_other_formats_and_shift_ranges(fmt, in_width, lo, hi):
    v, s = _random(in_width, lo, hi, 1500, seed=in_width)
    dut = AFRequantCore(fmt=fmt, in_width=in_width, shift_min=lo, shift_max=hi)
    expected = round_to_code(v < 0, v.abs(), s, fmt)
    assert run_comb(dut, {"value": v, "shift": s}, {"code": expected}) == len(v)


@pytest.mark.parametrize("stages", range(1, MAX_STAGES + 1))
def test_pipelined_with_random_stalls(stages):
    # Every pipeline depth, with en low in about 30 % of the cycles: the code must equal the
    # golden one of the input taken `latency` enabled cycles earlier, and hold while stalled.
    fmt = DEFAULT_AF
    v, s = _random(40, -21, 0, 600, seed=stages)
    dut = AFRequantCore(fmt=fmt, in_width=40, shift_min=-21, shift_max=0, stages=stages)
    assert dut.latency == dut.stages == stages
    expected = round_to_code(v < 0, v.abs(), s, fmt)
    assert run_pipelined(dut, {"value": v, "shift": s}, {"code": expected},
                         seed=stages) == len(v)


def test_pipelined_other_format():
    fmt = AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2)
    v, s = _random(12, -14, 2, 400, seed=5)
    dut = AFRequantCore(fmt=fmt, in_width=12, shift_min=-14, shift_max=2, stages=2)
    expected = round_to_code(v < 0, v.abs(), s, fmt)
    assert run_pipelined(dut, {"value": v, "shift": s}, {"code": expected}) == len(v)


def test_ports():
    dut = AFRequantCore(in_width=40, shift_min=-21, shift_max=0)
    assert dut.latency == 0 and len(dut.en) == 1
    assert (len(dut.value), len(dut.code)) == (40, 8)
    assert dut.value.shape().signed and dut.shift.shape().signed
    assert dut.shift_range == (-21, 0) and dut.in_width == 40
    # The shift port holds the whole range.
    assert len(dut.shift) == 6
    Fragment.get(dut, None)  # elaborates (and so counts as used)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"in_width": 1}, ValueError, r"in_width must be in 2\.\.128, not 1"),
    ({"in_width": 129}, ValueError, r"in_width must be in 2\.\.128, not 129"),
    ({"in_width": 40.0}, TypeError, r"in_width must be an integer, not 40\.0"),
    ({"shift_min": 1, "shift_max": 0}, ValueError,
     r"shift_min \(1\) must not be greater than shift_max \(0\)"),
    ({"shift_min": -100, "shift_max": 29}, ValueError,
     r"shift range -100\.\.29 is wider than 128; the pre-shifter would be impractically wide"),
    ({"shift_min": None}, TypeError, r"shift_min must be an integer, not None"),
    ({"fmt": "af8"}, TypeError, r"fmt must be an AFFormat, not 'af8'"),
    ({"stages": 5}, ValueError, r"stages must be in 0\.\.4, not 5"),
    ({"stages": -1}, ValueError, r"stages must be in 0\.\.4, not -1"),
    ({"stages": True}, TypeError, r"stages must be an integer, not True"),
])
def test_impossible_parameters_are_refused(kwargs, exc, msg):
    args = {"in_width": 40, "shift_min": -21, "shift_max": 0, **kwargs}
    with pytest.raises(exc, match=msg):
        AFRequantCore(**args)


@pytest.mark.slow
def test_registered_block_builds_and_self_checks():
    block = blocks()["af_requant"]
    top = block.build(**block.params)
    assert isinstance(top, AFRequantCore) and top.latency == block.params["stages"] > 0
    assert "module af_requant(" in verilog.convert(top, name="af_requant", emit_src=False)
    assert "3000 random values over shifts -21..0" in block.selfcheck(**block.params)


def test_leading_one_every_value_of_small_widths():
    # Widths that are and are not powers of two; 0 maps to index 0.
    for width in range(1, 11):
        m = Module()
        value = Signal(width)
        idx = leading_one(m, value, "lead")
        assert len(idx) == max(1, (width - 1).bit_length())

        async def bench(ctx, value=value, idx=idx, width=width):
            for v in range(1 << width):
                ctx.set(value, v)
                assert ctx.get(idx) == max(v.bit_length() - 1, 0), (width, v)

        sim = Simulator(m)
        sim.add_testbench(bench)
        sim.run()


def test_trailing_zeros_every_value_of_small_widths():
    # Index of the lowest set bit; 0 maps to the padded width minus one (documented).
    for width in range(1, 11):
        m = Module()
        value = Signal(width)
        idx = trailing_zeros(m, value, "tz")
        assert len(idx) == max(1, (width - 1).bit_length())
        padded = 1 << len(idx)

        async def bench(ctx, value=value, idx=idx, width=width, padded=padded):
            for v in range(1 << width):
                ctx.set(value, v)
                want = (v & -v).bit_length() - 1 if v else padded - 1
                assert ctx.get(idx) == want, (width, v)

        sim = Simulator(m)
        sim.add_testbench(bench)
        sim.run()
