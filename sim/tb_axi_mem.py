"""cocotb testbench: the AXI4 load slave (:class:`hw.axi_mem.AxiMem`) over real memories.

Driven by cocotbext-axi's AxiMaster (bursts split at 4 KB and 256 beats, any alignment);
contents are checked against images built with :func:`hw.regmap.pack_words`, refusals against
:func:`hw.regmap.windows`.
"""

import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotbext.axi import AxiBurstType, AxiBus, AxiMaster, AxiResp

from hw.memmap import MemoryMap
from hw.regmap import pack_words, windows
from sim.scoreboard import Scoreboard, params


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class AxiMemBench:
    def __init__(self, dut, seed):
        self.dut = dut
        self.memmap = MemoryMap(**params()["memmap"])
        self.windows = windows(self.memmap)
        self.rng = random.Random(seed)
        self.board = Scoreboard("axi_mem")
        bus = AxiBus.from_prefix(dut, "s_axi", bus_separator="__")
        self.master = AxiMaster(bus, dut.clk, dut.rst)
        for log in (self.master.write_if.log, self.master.read_if.log):
            log.setLevel(logging.WARNING)
        self.images = {}

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.clear_load_error.value = 0
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        # Transactions issued right at reset release can be lost (cocotbext-axi#19).
        await ClockCycles(self.dut.clk, 3)

    def backpressure(self, p=0.4):
        m, rng = self.master, self.rng
        for ch in (m.write_if.aw_channel, m.write_if.w_channel, m.write_if.b_channel,
                   m.read_if.ar_channel, m.read_if.r_channel):
            ch.set_pause_generator(_pauses(random.Random(rng.getrandbits(32)), p))

    def random_image(self, w):
        words = [self.rng.getrandbits(8 * w.word_bytes) for _ in range(w.depth)]
        return bytearray(pack_words(w.memory, words, self.memmap))

    async def load(self, w, image):
        """Write ``image`` into window ``w`` in random chunks, in random order."""
        cuts = sorted({0, len(image), *(self.rng.randrange(len(image)) for _ in range(6))})
        chunks = list(zip(cuts, cuts[1:], strict=False))
        self.rng.shuffle(chunks)
        for a, b in chunks:
            resp = (await self.master.write(w.base + a, bytes(image[a:b]))).resp
            self.board.check(resp, AxiResp.OKAY, f"{w.memory} load bytes {a}..{b}")

    async def check_contents(self, w, image):
        a = 0
        while a < len(image):
            b = min(len(image), a + self.rng.randint(1, 300))
            r = await self.master.read(w.base + a, b - a)
            self.board.check(r.resp, AxiResp.OKAY, f"{w.memory} read bytes {a}..{b}")
            self.board.check_many(r.data, image[a:b], f"{w.memory} bytes {a}..{b}")
            a = b

    async def clear_error(self):
        await FallingEdge(self.dut.clk)
        self.dut.clear_load_error.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.clear_load_error.value = 0

    def load_error(self):
        return int(self.dut.load_error.value), int(self.dut.load_error_addr.value)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def load_and_read_back_every_memory(dut):
    tb = AxiMemBench(dut, 1)
    await tb.start()
    for w in tb.windows:
        image = tb.random_image(w)
        await tb.load(w, image)
        tb.images[w.memory] = image
    for w in tb.windows:
        await tb.check_contents(w, tb.images[w.memory])
    tb.board.check_many(tb.load_error(), (0, 0), "no load error")
    tb.board.finish(sum(len(i) for i in tb.images.values()))


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def refused_bursts_write_nothing(dut):
    tb = AxiMemBench(dut, 2)
    await tb.start()
    for w in tb.windows:
        tb.images[w.memory] = tb.random_image(w)
        await tb.load(w, tb.images[w.memory])
    end = tb.windows[-1].base + tb.windows[-1].size
    cases = []
    for w in tb.windows:
        # A burst that runs past the memory's data (one burst: it stays inside a 4 KB page).
        start = w.data_end - 8
        if start // 4096 == (w.data_end + 7) // 4096:
            cases.append((start, 16, w.data_end))
        if w.data_end < w.base + w.size:
            cases.append((w.data_end, 8, w.data_end))  # in the gap after the data
    if end < 1 << len(dut.s_axi__awaddr):
        cases.append((end, 4, end))  # past the last window
    for start, length, first_bad in cases:
        where = f"{length} bytes at {start:#x}"
        resp = await tb.master.write(start, bytes(tb.rng.getrandbits(8) for _ in range(length)))
        tb.board.check(resp.resp, AxiResp.SLVERR, f"write {where}")
        tb.board.check_many(tb.load_error(), (1, first_bad), f"load_error after write {where}")
        await tb.clear_error()
        r = await tb.master.read(start, length)
        tb.board.check(r.resp, AxiResp.SLVERR, f"read {where}")
        tb.board.check_many(r.data, bytes(length), f"read {where} returns zeros")
        tb.board.check_many(tb.load_error(), (1, first_bad), f"load_error after read {where}")
        await tb.clear_error()
        tb.board.check_many(tb.load_error(), (0, first_bad), "cleared")
    # A WRAP burst is refused too.
    w = tb.windows[1]
    r = await tb.master.read(w.base, 16, burst=AxiBurstType.WRAP)
    tb.board.check(r.resp, AxiResp.SLVERR, "WRAP read")
    await tb.clear_error()
    # Non-zero data in a word's padding bytes: that beat is refused, the burst answers SLVERR.
    for w in tb.windows:
        if w.word_bytes % 4 == 0:
            continue
        image = tb.images[w.memory]
        bad = bytearray(image[:2 * w.stride])
        bad[w.word_bytes] = 0xA5  # first padding byte of word 0
        bad[w.stride:] = bytes(b ^ 0xFF for b in bad[w.stride:w.stride + w.word_bytes]) + bytes(
            w.stride - w.word_bytes)
        resp = await tb.master.write(w.base, bytes(bad))
        tb.board.check(resp.resp, AxiResp.SLVERR, f"{w.memory} padding write")
        first_bad = w.base + w.word_bytes // 4 * 4
        tb.board.check_many(tb.load_error(), (1, first_bad), f"{w.memory} padding load_error")
        await tb.clear_error()
        # Word 1 was written, word 0's padded lane was not.
        image[w.stride:2 * w.stride] = bad[w.stride:]
    for w in tb.windows:
        await tb.check_contents(w, tb.images[w.memory])
    tb.board.finish(len(cases) * 8)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_backpressure_and_concurrent_traffic(dut):
    tb = AxiMemBench(dut, 3)
    await tb.start()
    tb.backpressure(0.5)
    for w in tb.windows:
        tb.images[w.memory] = tb.random_image(w)
    half = len(tb.windows) // 2
    first, second = tb.windows[:half], tb.windows[half:]

    async def load_all(ws):
        for w in ws:
            await tb.load(w, tb.images[w.memory])

    await load_all(first)
    # Reads of the loaded half run while the other half is being written.
    loader = cocotb.start_soon(load_all(second))
    for w in first:
        await tb.check_contents(w, tb.images[w.memory])
    await loader
    for w in second:
        await tb.check_contents(w, tb.images[w.memory])
    tb.board.check_many(tb.load_error(), (0, 0), "no load error")
    tb.board.finish(sum(len(i) for i in tb.images.values()))
