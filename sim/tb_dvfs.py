"""cocotb testbench: DVFS controller against :func:`sw.golden.dvfs.dvfs_lookup`."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hw.sfu_tables import H_BITS
from sim.scoreboard import Scoreboard, params
from sw.dvfs import build_table
from sw.golden.dvfs import dvfs_lookup


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.h__valid.value = 0
    dut.table_we.value = 0
    dut.active.value = params()["bins"]  # every bin in use
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def _program(dut, writes):
    for addr, edge, vcode, fcode in writes:
        await FallingEdge(dut.clk)
        dut.table_we.value = 1
        dut.table_addr.value, dut.table_edge.value = addr, edge
        dut.table_vcode.value, dut.table_fcode.value = vcode, fcode
    await FallingEdge(dut.clk)
    dut.table_we.value = 0


def _status(dut, bins, vbits, fbits):
    word = int(dut.status.value)
    bbits = (bins - 1).bit_length()
    fields = []
    for width in (1, bbits, vbits, fbits, 16):
        fields.append(word & ((1 << width) - 1))
        word >>= width
    return fields


async def _run(dut, board, rng, edges, vcodes, fcodes, hs, p):
    bins, vbits, fbits = p["bins"], p["vcode_bits"], p["fcode_bits"]
    updates = _status(dut, bins, vbits, fbits)[4]
    for h in hs:
        await FallingEdge(dut.clk)
        while rng.random() < 0.4:  # random gaps on the entropy stream
            dut.h__valid.value = 0
            await FallingEdge(dut.clk)
        dut.h__valid.value, dut.h__payload.value = 1, h
        await RisingEdge(dut.clk)
        assert dut.h__ready.value == 1
        await FallingEdge(dut.clk)
        dut.h__valid.value = 0
        b, v, f = dvfs_lookup(h, edges, vcodes, fcodes)
        updates += 1
        valid, got_bin, sv, sf, count = _status(dut, bins, vbits, fbits)
        board.check(got_bin, b, f"bin of h={h}")
        board.check(int(dut.vcode.value), v, f"vcode of h={h}")
        board.check(int(dut.fcode.value), f, f"fcode of h={h}")
        for got, want, what in ((valid, 1, "valid"), (sv, v, "vcode"), (sf, f, "fcode"),
                                (count, updates & 0xFFFF, "updates")):
            board.check(got, want, f"status {what} after h={h}")


@cocotb.test()
async def random_tables_and_entropies(dut):
    p = params()
    rng = random.Random(41)
    board = Scoreboard("dvfs")
    await _start(dut)
    bins = p["bins"]
    for _ in range(4):
        edges = sorted(rng.sample(range(1, 1 << H_BITS), bins - 1))
        vcodes = [rng.randrange(1 << p["vcode_bits"]) for _ in range(bins)]
        fcodes = [rng.randrange(1 << p["fcode_bits"]) for _ in range(bins)]
        await _program(dut, [(i, (edges + [0])[i], vcodes[i], fcodes[i]) for i in range(bins)])
        hs = [rng.randrange(1 << H_BITS) for _ in range(60)] + edges + [e - 1 for e in edges]
        await _run(dut, board, rng, edges, vcodes, fcodes, hs, p)
    board.finish(7 * 4 * (60 + 2 * (bins - 1)))


@cocotb.test()
async def table_from_the_builder(dut):
    """The table that sw.dvfs builds drives the expected operating point per entropy."""
    p = params()
    rng = random.Random(42)
    board = Scoreboard("dvfs")
    await _start(dut)
    bins = p["bins"]
    layers = [1 + (b * 11) // (bins - 1) for b in range(bins)]
    edges_nats = [0.08 * (b + 1) for b in range(bins - 1)]
    points = [(0.5 + 0.05 * i, 100e6 * (i + 1)) for i in range(8)]
    table = build_table(layers, edges_nats, 20_000, points, 0.8e-3)
    await _program(dut, table.registers(p["vcode_bits"], p["fcode_bits"]))
    hs = [rng.randrange(0, int(table.edges[-1] * 1.2)) for _ in range(80)]
    await _run(dut, board, rng, list(table.edges), list(table.vcodes), list(table.fcodes), hs, p)
    board.finish(7 * 80)
