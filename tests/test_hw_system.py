"""The accelerator's host paths in the Amaranth simulator (seconds, no Verilog): ReRAM words
assembled from AXI beats in any order over any bursts into the store's write port, the load
errors of an incomplete ReRAM word, and the embedding-table registers on the top's ports.
Whole sentences through the buses are tests/test_rtl_system.py's."""

import random

from amaranth.sim import Simulator

from hw.axi import Burst, Resp
from hw.regmap import ErrorCode, windows
from hw.top.system import Accelerator
from hw.top.top import _MEMMAP_KEYS, _TINY
from sim.axi_sim import axi_write, axil_read, axil_write
from sim.system_bench import small_memmap


class _Store:
    """Records the words the ReRAM store's write port takes (``{word: data}``) each cycle."""

    def __init__(self, store):
        self.store, self.words, self.writes = store, {}, 0

    def step_before(self, ctx):
        if ctx.get(self.store.w_en):
            self.words[ctx.get(self.store.w_addr)] = ctx.get(self.store.w_data)
            self.writes += 1

    def step_after(self, ctx):
        pass


def _run(bench):
    dut = Accelerator(memmap=small_memmap(),
                      **{k: v for k, v in _TINY.items() if k not in _MEMMAP_KEYS})
    store = _Store(dut.top._reram)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def tb(ctx):
        await bench(ctx, dut, store)

    sim.add_testbench(tb)
    sim.run()


def test_reram_words_are_assembled_from_beats_in_any_order():
    rng = random.Random(3)
    win = next(w for w in windows(small_memmap()) if w.memory == "reram")
    assert (win.word_bytes, win.stride, win.lanes) == (8, 8, 2)
    want = {i: rng.getrandbits(64) for i in (0, 1, 2, 5, win.depth - 1)}
    lo, hi = ({i: v & 0xFFFF_FFFF for i, v in want.items()},
              {i: v >> 32 for i, v in want.items()})

    async def bench(ctx, dut, store):
        regs = dut.regmap
        for _ in range(3):
            await ctx.tick()

        async def write(addr, beats, burst=Burst.INCR):
            resp = await axi_write(ctx, dut, store, addr, beats, burst=burst)
            assert resp == Resp.OKAY, (addr, beats)

        # Words 0..2 in one INCR burst; word 5 upper lane first, in two bursts; the last word
        # with a FIXED burst that rewrites its lower lane, then its upper lane.
        await write(win.base, [lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]])
        await write(win.base + 5 * win.stride + 4, [hi[5]])
        assert 5 not in store.words  # held until all its bytes have arrived
        await write(win.base + 5 * win.stride, [lo[5]])
        last = win.base + (win.depth - 1) * win.stride
        await write(last, [0x1234, lo[win.depth - 1]], burst=Burst.FIXED)
        await write(last + 4, [hi[win.depth - 1]])
        assert store.words == want and store.writes == len(want)
        status = regs["STATUS"].offset
        assert await axil_read(ctx, dut.s_axil, status) == (0, Resp.OKAY)

        # An incomplete word, then a start: nothing runs, LOAD_OUT_OF_RANGE, nothing written.
        await write(win.base + 3 * win.stride, [7])
        assert await axil_write(ctx, dut.s_axil, regs["CTRL"].offset, 1) == Resp.OKAY
        for _ in range(4):
            await ctx.tick()
        assert ctx.get(dut.top.busy) == 0
        err = await axil_read(ctx, dut.s_axil, regs["ERROR"].offset)
        assert err == (ErrorCode.LOAD_OUT_OF_RANGE, Resp.OKAY)
        # A beat into another word drops it: a load error at the dropped word.
        await write(win.base + 4 * win.stride, [8])
        stat = (await axil_read(ctx, dut.s_axil, status))[0]
        assert stat & 1 << regs["STATUS"].field("load_error").lsb
        addr = await axil_read(ctx, dut.s_axil, regs["LOAD_ERROR_ADDR"].offset)
        assert addr == (win.base + 3 * win.stride, Resp.OKAY)
        assert store.words == want and store.writes == len(want)
        # A burst past the store: refused whole.
        resp = await axi_write(ctx, dut, store, win.data_end - 4, [1, 2])
        assert resp == Resp.SLVERR and store.writes == len(want)

    _run(bench)


def test_embedding_table_registers_drive_the_top():
    async def bench(ctx, dut, store):
        regs, bus = dut.regmap, dut.s_axil
        for _ in range(3):
            await ctx.tick()
        assert [ctx.get(getattr(dut.top, p)) for p in ("vocab_rows", "seg_rows",
                                                       "pos_rows")] == [0, 0, 0]
        for name, port, value in (("VOCAB_ROWS", "vocab_rows", 1 << 24),
                                  ("SEG_ROWS", "seg_rows", 256), ("POS_ROWS", "pos_rows", 4096)):
            assert await axil_write(ctx, bus, regs[name].offset, value) == Resp.OKAY
            assert ctx.get(getattr(dut.top, port)) == value
            # Above the maximum (every value is the maximum here): refused, unchanged.
            assert await axil_write(ctx, bus, regs[name].offset, value + 1) == Resp.SLVERR
            assert ctx.get(getattr(dut.top, port)) == value
            assert await axil_read(ctx, bus, regs[name].offset) == (value, Resp.OKAY)

    _run(bench)
