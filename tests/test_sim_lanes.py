"""The lane wrapper used by the cocotb tests: bus packing and wiring, in the Amaranth simulator."""

import pytest
import torch
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw.af_mul import AFMulLane
from sim.lanes import LaneGroup, Lanes, pack, unpack
from sw.golden.af import lane_product


def test_pack_unpack_round_trip():
    vals = [-5, 0, 7, -8, 3]
    bus = pack(vals, 4)
    assert bus == 0xB | 0x0 << 4 | 0x7 << 8 | 0x8 << 12 | 0x3 << 16
    assert unpack(bus, 4, True, 5) == vals
    assert unpack(bus, 4, False, 5) == [v & 0xF for v in vals]


def test_every_lane_is_wired_to_its_own_slice():
    top = LaneGroup(parts={"mul": Lanes(make=AFMulLane, lanes=4)})
    assert top.widths == {"mul_a": (8, False), "mul_b": (8, False), "mul_en": (1, False),
                          "mul_product": (25, True)}
    assert top.timing == {"mul_product": (0, None)}
    a, b = torch.tensor([0x11, 0x93, 0x7F, 0x00]), torch.tensor([0x25, 0x7F, 0xFF, 0x44])
    got = []

    async def bench(ctx):
        ctx.set(top.mul_a, pack(a.tolist(), 8))
        ctx.set(top.mul_b, pack(b.tolist(), 8))
        got.extend(unpack(ctx.get(top.mul_product), 25, True, 4))

    sim = Simulator(top)
    sim.add_testbench(bench)
    sim.run()
    assert got == lane_product(a, b).tolist()


def test_pipelined_lanes_report_latency_and_enable():
    top = LaneGroup(parts={"mul": Lanes(make=lambda: AFMulLane(stages=1), lanes=2),
                           "comb": Lanes(make=AFMulLane, lanes=2)})
    assert top.timing == {"mul_product": (1, "mul_en"), "comb_product": (0, None)}
    assert top.widths["mul_en"] == (1, False)
    Fragment.get(top, None)  # elaborates (and so counts as used)


def test_refusals():
    with pytest.raises(ValueError, match=r"lanes must be a positive integer, not 0"):
        Lanes(make=AFMulLane, lanes=0)
    with pytest.raises(TypeError, match=r"make must be callable, not 3"):
        Lanes(make=3, lanes=2)
    with pytest.raises(TypeError, match=r"parts must be a non-empty dict of Lanes, not \{\}"):
        LaneGroup(parts={})
