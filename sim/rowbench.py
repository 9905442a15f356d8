"""Shared cocotb harness for the row units (softmax, LayerNorm, entropy): clock, reset, streams
with random stalls, row timing."""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from sim.scoreboard import Scoreboard, params
from sim.stream import StreamSink, StreamSource

__all__ = ["RowBench", "PERIOD_NS"]

PERIOD_NS = 10


class RowBench:
    """Driver (``i``), monitor (``o``) and scoreboard around a row unit ``dut``."""

    def __init__(self, dut, what, seed, p_valid=1.0, p_ready=1.0):
        self.dut = dut
        self.p = params()
        self.rng = random.Random(seed)
        self.src = StreamSource(dut, "i", self.rng, p_valid)
        self.sink = StreamSink(dut, "o", self.rng, p_ready)
        self.board = Scoreboard(what)

    def stalls(self, p_valid, p_ready):
        self.src.p_valid, self.sink.p_ready = p_valid, p_ready

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, PERIOD_NS, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 1)

    async def transfer(self, beats, out_count):
        """Send ``beats``, collect ``out_count`` output beats; returns them."""
        self.src.times.clear()
        self.sink.times.clear()
        sender = cocotb.start_soon(self.src.send(beats))
        got = await self.sink.recv(out_count)
        await sender
        return got

    def row_period(self, in_per_row):
        """Cycles between the first input beats of consecutive rows in the last transfer."""
        starts = self.src.times[::in_per_row]
        gaps = {round((b - a) / PERIOD_NS) for a, b in zip(starts, starts[1:], strict=False)}
        assert len(gaps) == 1, f"row periods differ: {sorted(gaps)}"
        return gaps.pop()

    def span(self):
        """Cycles from the first input beat to the last output beat (inclusive) of the last
        transfer."""
        return round((self.sink.times[-1] - self.src.times[0]) / PERIOD_NS) + 1
