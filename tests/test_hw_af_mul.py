"""AFMulLane in the Amaranth simulator against the golden lane_product ([F4])."""

import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Fragment

from hw.af_mul import AFMulLane
from hw.layouts import DEFAULT_AF, AFFormat
from sim.drivers import run_comb, run_pipelined
from sim.selfcheck import blocks
from sw.golden.af import lane_product


@pytest.mark.parametrize("fmt", [AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2),
                                 AFFormat(n_bits=5, exp_bits=1, offset=0, bias_bits=1)],
                         ids=["N6E2", "N5E1"])
def test_every_code_pair_small_formats(fmt):
    codes = torch.arange(fmt.code_max + 1)
    a, b = torch.cartesian_prod(codes, codes).unbind(1)
    n = run_comb(AFMulLane(fmt=fmt), {"a": a, "b": b}, {"product": lane_product(a, b, fmt)})
    assert n == (fmt.code_max + 1) ** 2


def test_default_format_edges_and_sample():
    # Zero, negative zero, smallest and largest magnitudes of both signs against every code;
    # all 65,536 pairs run in the cocotb tests of the Verilog.
    fmt = DEFAULT_AF
    edges = torch.tensor([0x00, 0x80, 0x01, 0x81, 0x0F, 0x10, 0x7F, 0xFF, 0x70, 0xF0])
    codes = torch.arange(256)
    a = torch.cat([edges.repeat_interleave(256), torch.randint(0, 256, (1000,))])
    b = torch.cat([codes.repeat(len(edges)), torch.randint(0, 256, (1000,))])
    expected = lane_product(a, b, fmt)
    assert int(expected.max()) == 31 * 31 << 14 and int(expected.min()) == -(31 * 31 << 14)
    assert run_comb(AFMulLane(fmt=fmt), {"a": a, "b": b}, {"product": expected}) == len(a)


def test_pipelined_with_random_stalls():
    # One register stage, en low in about 30 % of the cycles; all pairs of a small format and
    # a sample of the default one.
    for fmt, count in ((AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2), None),
                       (DEFAULT_AF, 2000)):
        codes = torch.arange(fmt.code_max + 1)
        a, b = torch.cartesian_prod(codes, codes).unbind(1)
        if count:
            keep = torch.randperm(len(a), generator=torch.Generator().manual_seed(4))[:count]
            a, b = a[keep], b[keep]
        lane = AFMulLane(fmt=fmt, stages=1)
        assert lane.latency == lane.stages == 1
        assert run_pipelined(lane, {"a": a, "b": b},
                             {"product": lane_product(a, b, fmt)}) == len(a)


def test_ports_and_refusals():
    lane = AFMulLane()
    assert (len(lane.a), len(lane.b), len(lane.product), len(lane.en)) == (8, 8, 25, 1)
    assert lane.product.shape().signed and lane.fmt == DEFAULT_AF and lane.latency == 0
    Fragment.get(lane, None)  # elaborates (and so counts as used)
    with pytest.raises(TypeError, match=r"fmt must be an AFFormat, not 8"):
        AFMulLane(fmt=8)
    with pytest.raises(ValueError, match=r"stages must be 0 or 1, not 2"):
        AFMulLane(stages=2)
    with pytest.raises(TypeError, match=r"stages must be an integer, not '1'"):
        AFMulLane(stages="1")


def test_registered_block_builds_and_self_checks():
    block = blocks()["af_mul"]
    top = block.build(**block.params)
    assert isinstance(top, AFMulLane) and top.latency == block.params["stages"] == 1
    assert "module af_mul(" in verilog.convert(top, name="af_mul", emit_src=False)
    assert "4096 products equal the golden lane_product" in block.selfcheck(**block.params)
