"""cocotb testbench: the embedding unit with its ReRAM store against the golden EMBED.

The cases (command ports, token entries, the golden codes, the modelled cycles and reads, or
the expected error) come from a JSON file the pytest side wrote (``params()["cases"]``).
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from sim.embed_sim import COMMAND_PORTS
from sim.scoreboard import Scoreboard, params
from sim.stream import unpack


class EmbedBench:
    def __init__(self, dut, seed):
        p = params()
        self.dut = dut
        self.n = p["n"]
        self.row_bits = (255 * self.n).bit_length()
        with open(p["cases"]) as f:
            self.cases = json.load(f)
        self.rng = random.Random(seed)
        self.board = Scoreboard("embed_unit")

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        self.dut.start.value = 0
        self.dut.w_en.value = 0
        self.dut.clear.value = 0
        self.dut.o__ready.value = 0
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0

    async def run(self, case, p_ready):
        """One command; returns (beats as {(row, col): codes}, order, cycles)."""
        dut, n = self.dut, self.n
        entries = {case["ports"]["tok_addr"] + t: v for t, v in enumerate(case["entries"])}
        await FallingEdge(dut.clk)
        for name in COMMAND_PORTS:
            getattr(dut, name).value = case["ports"][name]
        dut.start.value = 1
        dut.clear.value = 1
        beats, order, cycles, pending = {}, [], 0, 0
        while True:
            ready = self.rng.random() < p_ready
            dut.o__ready.value = int(ready)
            dut.aux_data.value = pending
            await RisingEdge(dut.clk)
            if cycles and dut.done.value:
                break
            if ready and dut.o__valid.value:
                word = int(dut.o__payload.value)
                codes = unpack(word, 8, n)
                row = (word >> (8 * n)) & ((1 << self.row_bits) - 1)
                col = (word >> (8 * n + self.row_bits)) & 0xFF
                beats[(row, col)] = codes
                order.append((row, col))
            pending = entries.get(int(dut.aux_addr.value), 0) if dut.aux_en.value else 0
            await FallingEdge(dut.clk)
            dut.start.value = 0
            dut.clear.value = 0
            cycles += 1
            assert cycles < 1_000_000, "the embedding unit did not finish"
        return beats, order, cycles

    async def check(self, case, p_ready):
        beats, order, cycles = await self.run(case, p_ready)
        dut, n = self.dut, self.n
        if case["error"]:
            assert int(dut.error.value) == 1, "no error raised"
            assert int(dut.err_code.value) == case["error"], int(dut.err_code.value)
            self.board.check(int(dut.err_code.value), case["error"], "error code")
            return
        assert int(dut.error.value) == 0, f"error {int(dut.err_code.value)}"
        want = case["want"]
        cols = case["ports"]["cols"]
        assert order == [(r, j) for r in range(len(want)) for j in range(cols)], "beat order"
        for r, row in enumerate(want):
            for j in range(cols):
                self.board.check_many(beats[(r, j)], row[j * n:(j + 1) * n], f"row {r} col {j}")
        self.board.check(int(dut.reads.value), case["reads"], "ReRAM reads")
        if p_ready == 1.0:
            self.board.check(cycles, case["cycles"], "cycles")


@cocotb.test()
async def golden_sentences(dut):
    tb = EmbedBench(dut, seed=1)
    await tb.start()
    for case in tb.cases:
        await tb.check(case, 1.0)
    tb.board.finish(sum(len(c["want"]) * len(c["want"][0]) for c in tb.cases if not c["error"]))


@cocotb.test()
async def golden_sentences_with_stalls(dut):
    tb = EmbedBench(dut, seed=2)
    await tb.start()
    for case in tb.cases:
        await tb.check(case, 0.5)
    tb.board.finish(1)
