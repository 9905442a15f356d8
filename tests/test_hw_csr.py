"""The CSR slave in the Amaranth simulator: self-check, argument errors, ports from the map."""

import re

import pytest
from amaranth.hdl import Fragment, Value
from amaranth.sim import Simulator

from hw.axi import Resp
from hw.csr import Csr
from hw.regmap import Access, Field, Register, RegisterMap
from sim.axi_sim import axil_read, axil_write
from sim.selfcheck import blocks


def test_selfcheck_passes_on_the_registered_defaults():
    block = blocks()["csr"]
    assert "register checks" in block.selfcheck(**block.params)


def test_small_parameters_build_and_check():
    block = blocks()["csr"]
    assert "passed" in block.selfcheck(**dict(block.params, n=4, prog_words=40))


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match=r"^regmap must be a hw.regmap.RegisterMap, not 3$"):
        Csr(regmap=3)


def test_unknown_internal_field_is_refused():
    rm = RegisterMap()
    rm._registers += (Register("EXTRA", 0x7FC, (
        Field("x", 0, 1, Access.RO, "", source="internal"),), "doc"),)
    with pytest.raises(ValueError, match=re.escape(
            "register EXTRA field x: the CSR slave drives no internal field of that name")):
        Csr(regmap=rm)


def test_ports_follow_the_register_map():
    dut = Csr()
    for name, (direction, shape) in dut.regmap.ports().items():
        port = getattr(dut, name)
        width = shape if isinstance(shape, int) else sum(w for _, w in shape)
        assert len(Value.cast(port)) == width, name
        assert dut.signature.members[name].flow.name == direction, name
    Fragment.get(dut, None)  # elaborates (and so is not reported as unused)


def test_partial_strobes_and_max_check():
    dut = Csr()
    rm, bus = dut.regmap, dut.s_axil
    seen = []

    async def bench(ctx):
        wd, pb = rm["WATCHDOG"].offset, rm["PROG_BASE"].offset
        seen.append(await axil_write(ctx, bus, wd, 0x11223344))
        seen.append(await axil_write(ctx, bus, wd, 0xAABBCCDD, strb=0b1000))
        seen.append(await axil_read(ctx, bus, wd))
        seen.append(await axil_write(ctx, bus, pb, rm.memmap.prog_words))
        seen.append(await axil_write(ctx, bus, pb, rm.memmap.prog_words - 1))
        seen.append(await axil_read(ctx, bus, pb))
        # A reserved bit in an unstrobed byte is not written, hence not refused.
        seen.append(await axil_write(ctx, bus, pb, 0xFFFF0000 | 3, strb=0b0001))
        seen.append(await axil_read(ctx, bus, pb))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    last = rm.memmap.prog_words - 1
    assert seen == [Resp.OKAY, Resp.OKAY, (0xAA223344, Resp.OKAY), Resp.SLVERR, Resp.OKAY,
                    (last, Resp.OKAY), Resp.OKAY, ((last & 0xFF00) | 3, Resp.OKAY)]
