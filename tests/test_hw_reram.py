import random

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw.memmap import MemoryMap
from hw.reram import ReramStore, external_verilog, hex_image
from sim.selfcheck import blocks


@pytest.mark.parametrize("latency", [0, 1, 3])
def test_random_reads_with_stalls_equal_the_image(latency):
    block = blocks()["reram"]
    out = block.selfcheck(**dict(block.params, reram_bytes=2048, reram_latency=latency))
    assert "equal the image" in out


def test_host_writes_then_streamed_reads_and_counter():
    mm = MemoryMap(n=4, reram_bytes=256, reram_word_bytes=4, reram_latency=2)
    dut = ReramStore(memmap=mm)
    rng = random.Random(0)
    words = [rng.randrange(1 << 32) for _ in range(mm.depth("reram"))]
    got, times = [], []

    async def bench(ctx):
        for a, w in enumerate(words):
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, a)
            ctx.set(dut.w_data, w)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.rd.resp.ready, 1)
        for cycle, a in enumerate(list(range(len(words))) + [None] * 3):
            ctx.set(dut.rd.req.valid, a is not None)
            ctx.set(dut.rd.req.payload, a or 0)
            if ctx.get(dut.rd.resp.valid):
                got.append(ctx.get(dut.rd.resp.payload))
                times.append(cycle)
            await ctx.tick()
        assert ctx.get(dut.reads) == len(words)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert ctx.get(dut.reads) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words
    # One word per cycle, each `latency` cycles after its request.
    assert times == [a + 2 for a in range(len(words))]


def test_init_image_and_properties():
    mm = MemoryMap(n=4, reram_bytes=64, reram_word_bytes=8, reram_latency=1)
    dut = ReramStore(memmap=mm, init=bytes(range(10)))
    assert (dut.depth, dut.word_bytes, dut.latency) == (8, 8, 1)
    assert dut._init == [0x0706050403020100, 0x0908]
    Fragment.get(dut, None)  # elaborates (and so counts as used)


def test_bad_arguments_are_refused():
    mm = MemoryMap(n=4, reram_bytes=64)
    with pytest.raises(TypeError, match="memmap must be a MemoryMap, not 3"):
        ReramStore(memmap=3)
    with pytest.raises(ValueError, match=r"init must be at most reram_bytes \(64\) bytes, not 65"):
        ReramStore(memmap=mm, init=bytes(65))


def test_external_storage():
    mm = MemoryMap(n=4, reram_bytes=64, reram_word_bytes=8, reram_latency=2)
    Fragment.get(ReramStore(memmap=mm, external=True, init_file="reram.hex"), None)
    assert "module edgebert_reram_storage" in external_verilog()
    assert hex_image(bytes(range(10)), 8) == "0706050403020100\n0000000000000908\n"
    with pytest.raises(ValueError, match="takes its contents from init_file, not init"):
        ReramStore(memmap=mm, init=bytes(8), external=True)
    with pytest.raises(ValueError, match="needs reram_latency >= 1, not 0"):
        ReramStore(memmap=MemoryMap(n=4, reram_bytes=64, reram_latency=0), external=True)
    with pytest.raises(ValueError, match="init_file must be a file name without quotes"):
        ReramStore(memmap=mm, external=True, init_file='a"b')
