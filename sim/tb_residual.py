"""cocotb testbench: residual add against :func:`sw.golden.residual.residual_add`."""

import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from hw.layouts import AFFormat, FixedFormat
from sim.scoreboard import Scoreboard, params
from sim.stream import StreamSink, StreamSource, pack, unpack
from sw.golden.residual import residual_add
from sw.perf.sfu import residual_cycles


class ResidualBench:
    def __init__(self, dut, seed, p_valid, p_ready):
        p = params()
        self.dut = dut
        self.n = p["n"]
        self.fmt = AFFormat(**p["fmt"])
        self.fixed = FixedFormat(**p["fixed"])
        self.rng = random.Random(seed)
        self.src = StreamSource(dut, "i", self.rng, p_valid)
        self.sink = StreamSink(dut, "o", self.rng, p_ready)
        self.board = Scoreboard("residual_add")

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0

    async def run(self, a, b, biases):
        """Send code tensors ``a``, ``b`` (beats, n) with ``biases`` and check every output."""
        dut, w, n = self.dut, self.fmt.n_bits, self.n
        dut.bias_a.value, dut.bias_b.value, dut.bias_out.value = biases
        want = residual_add(a, b, *biases, self.fmt, self.fixed).tolist()
        beats = [pack(list(x) + list(y), w) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
        sender = cocotb.start_soon(self.src.send(beats))
        got = await self.sink.recv(len(beats))
        await sender
        for r, (word, exp) in enumerate(zip(got, want, strict=True)):
            self.board.check_many(unpack(word, w, n), exp, f"beat {r}, biases {biases}")


@cocotb.test()
async def random_with_stalls(dut):
    tb = ResidualBench(dut, seed=1, p_valid=0.6, p_ready=0.6)
    await tb.start()
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        biases = tuple(tb.rng.randint(0, tb.fmt.bias_max) for _ in range(3))
        a = torch.randint(0, tb.fmt.code_max + 1, (40, tb.n), generator=g)
        b = torch.randint(0, tb.fmt.code_max + 1, (40, tb.n), generator=g)
        await tb.run(a, b, biases)
    tb.board.finish(6 * 40 * tb.n)


@cocotb.test()
async def every_code_pair(dut):
    """All 2^(2N) code pairs at full rate: saturation, cancellation, zero, ties."""
    tb = ResidualBench(dut, seed=2, p_valid=1.0, p_ready=1.0)
    await tb.start()
    codes = torch.arange(tb.fmt.code_max + 1)
    a = codes.repeat_interleave(len(codes))
    b = codes.repeat(len(codes))
    pad = (-len(a)) % tb.n
    a = torch.cat([a, torch.zeros(pad, dtype=a.dtype)]).reshape(-1, tb.n)
    b = torch.cat([b, torch.zeros(pad, dtype=b.dtype)]).reshape(-1, tb.n)
    await tb.run(a, b, (tb.fmt.bias_max, 2, 4))
    tb.board.finish(a.numel())


@cocotb.test()
async def throughput_matches_cycle_model(dut):
    tb = ResidualBench(dut, seed=3, p_valid=1.0, p_ready=1.0)
    await tb.start()
    g = torch.Generator().manual_seed(3)
    beats = 50
    a = torch.randint(0, tb.fmt.code_max + 1, (beats, tb.n), generator=g)
    b = torch.randint(0, tb.fmt.code_max + 1, (beats, tb.n), generator=g)
    await tb.run(a, b, (3, 4, 4))
    span = round((tb.sink.times[-1] - tb.src.times[0]) / 10) + 1
    assert span == residual_cycles(beats), span
    tb.board.finish(beats * tb.n)
