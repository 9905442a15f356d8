"""AFMulLane in the Amaranth simulator against the golden lane_product ([F4])."""

import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Fragment

from hw.af_mul import AFMulLane
from hw.layouts import DEFAULT_AF, AFFormat
from hw.registry import blocks
from hw.selfcheck import run_comb
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


def test_ports_and_refusals():
    lane = AFMulLane()
    assert (len(lane.a), len(lane.b), len(lane.product)) == (8, 8, 25)
    assert lane.product.shape().signed and lane.fmt == DEFAULT_AF
    Fragment.get(lane, None)  # elaborates (and so counts as used)
    with pytest.raises(TypeError, match=r"fmt must be an AFFormat, not 8"):
        AFMulLane(fmt=8)


def test_registered_block_builds_and_self_checks():
    block = blocks()["af_mul"]
    top = block.build(**block.params)
    assert isinstance(top, AFMulLane)
    assert "module af_mul(" in verilog.convert(top, name="af_mul", emit_src=False)
    assert "4096 products equal the golden lane_product" in block.selfcheck(**block.params)
