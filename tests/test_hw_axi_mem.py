"""The AXI4 load slave in the Amaranth simulator: self-check, argument errors, FIXED bursts,
refused WRAP and over-wide bursts, clearing load_error."""

import re

import pytest
from amaranth.sim import Simulator

from hw.axi import Burst, Resp
from hw.axi_mem import AxiMem
from hw.memmap import MemoryMap
from hw.regmap import windows
from sim.axi_sim import MemoryModel, axi_read, axi_write
from sim.selfcheck import blocks

SMALL = MemoryMap(n=4, reram_bytes=96, reram_word_bytes=6, desc_words=8, wmask_words=16,
                  wval_words=40, wbias_words=8, act_words=24, aux_words=16, prog_words=12)


def test_selfcheck_passes_on_the_registered_defaults():
    block = blocks()["axi_mem"]
    assert "refused burst behave" in block.selfcheck(**block.params)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"memmap": None}, TypeError, "memmap must be a hw.memmap.MemoryMap, not None"),
    ({"id_width": 0}, ValueError, "id_width must be an integer in 1..16, not 0"),
    ({"id_width": True}, ValueError, "id_width must be an integer in 1..16, not True"),
    ({"memmap": MemoryMap(reram_bytes=1 << 33)}, ValueError,
     "the memory windows need 34 address bits, more than 32: make the memories smaller"),
    ({"writable": ("act", "dram")}, ValueError,
     "writable must be a tuple of memories of ('reram', 'desc', 'wmask', 'wval', 'wbias', "
     "'act', 'aux', 'prog'), not ('act', 'dram')"),
])
def test_bad_arguments_are_refused(kwargs, exc, msg):
    with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
        AxiMem(**kwargs)


def _run(dut, body):
    model = MemoryModel(dut)
    out = []

    async def bench(ctx):
        await body(ctx, model, out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return model, out


def test_fixed_burst_rewrites_one_lane():
    dut = AxiMem(memmap=SMALL)
    act = next(w for w in windows(SMALL) if w.memory == "act")

    async def body(ctx, model, out):
        out.append(await axi_write(ctx, dut, model, act.base + 4, [1, 2, 3], burst=Burst.FIXED))
        out.append(await axi_read(ctx, dut, model, act.base, 4))

    model, out = _run(dut, body)
    assert out == [Resp.OKAY, ([0, 3, 0, 0], [Resp.OKAY] * 4)]
    assert model.words["act"][0] == 3 << 32


@pytest.mark.parametrize("size,burst", [(3, Burst.INCR), (2, Burst.WRAP), (2, 3)])
def test_wrap_reserved_and_over_wide_bursts_are_refused(size, burst):
    dut = AxiMem(memmap=SMALL)
    desc = next(w for w in windows(SMALL) if w.memory == "desc")

    async def body(ctx, model, out):
        out.append(await axi_write(ctx, dut, model, desc.base, [7] * 4, size=size, burst=burst))
        out.append((ctx.get(dut.load_error), ctx.get(dut.load_error_addr)))
        ctx.set(dut.clear_load_error, 1)
        await ctx.tick()
        ctx.set(dut.clear_load_error, 0)
        out.append(ctx.get(dut.load_error))
        out.append(await axi_read(ctx, dut, model, desc.base, 4, size=size, burst=burst))

    model, out = _run(dut, body)
    assert out == [Resp.SLVERR, (1, desc.base), 0, ([0] * 4, [Resp.SLVERR] * 4)]
    assert model.words["desc"] == [0] * desc.depth


def test_first_refused_address_is_kept():
    dut = AxiMem(memmap=SMALL)
    ws = {w.memory: w for w in windows(SMALL)}

    async def body(ctx, model, out):
        await axi_write(ctx, dut, model, ws["wval"].data_end, [1])
        await axi_write(ctx, dut, model, ws["act"].data_end, [1])
        out.append(ctx.get(dut.load_error_addr))

    _, out = _run(dut, body)
    assert out == [ws["wval"].data_end]


def test_windows_left_out_and_refused_beats():
    # The accelerator's use: no ReRAM writes, reads from act only, beats refused while busy.
    dut = AxiMem(memmap=SMALL, writable=("act", "aux"), readable=("act",))
    ws = {w.memory: w for w in windows(SMALL)}

    async def body(ctx, model, out):
        out.append(await axi_write(ctx, dut, model, ws["reram"].base, [1]))
        out.append(ctx.get(dut.load_error_addr))
        out.append(await axi_write(ctx, dut, model, ws["aux"].base, [5]))
        out.append(await axi_read(ctx, dut, model, ws["aux"].base, 1))
        ctx.set(dut.refuse_writes, 1)
        out.append(await axi_write(ctx, dut, model, ws["act"].base, [9]))
        ctx.set(dut.refuse_writes, 0)
        ctx.set(dut.refuse_reads, 1)
        out.append(await axi_read(ctx, dut, model, ws["act"].base, 1))
        ctx.set(dut.refuse_reads, 0)
        out.append(await axi_write(ctx, dut, model, ws["act"].base, [9]))
        out.append(await axi_read(ctx, dut, model, ws["act"].base, 1))

    model, out = _run(dut, body)
    assert out == [Resp.SLVERR, ws["reram"].base, Resp.OKAY, ([0], [Resp.SLVERR]),
                   Resp.SLVERR, ([0], [Resp.SLVERR]), Resp.OKAY, ([9], [Resp.OKAY])]
    assert model.words["reram"][0] == 0 and model.words["aux"][0] == 5
