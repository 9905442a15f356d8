"""cocotb: drive a :class:`sim.lanes.Lanes` wrapper with precomputed vectors, compare as integers.

The vectors come from :func:`sim.lanes.run_lanes` as a JSON file (its path in the ``vectors``
parameter): inputs and golden outputs per port, computed in the pytest process so the
simulator's embedded Python never imports PyTorch. Each step drives ``lanes`` vectors at once.

Combinational designs: each step waits 1 ns for the logic and compares every lane of every
output. Designs with pipelined parts (``timing`` in the vectors: an output's latency and its
clock enable) run clocked: every cycle drives a step and a random enable (low in about a quarter
of the cycles, the same value on every enable port), a step advances only on a clock edge with
the enable high, and after every edge each pipelined output must equal the golden values of the
step taken ``latency`` enabled edges earlier, also while stalled (counted once per step).
Combinational outputs of the same design are compared in each cycle before the edge.
"""

import json
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from sim.lanes import pack, unpack
from sim.scoreboard import Scoreboard, params


class _Vectors:
    def __init__(self, v):
        self.lanes, self.widths = v["lanes"], v["widths"]
        self.inputs, self.expected = v["inputs"], v["expected"]
        self.timing = v.get("timing", {})
        self.count = len(next(iter(self.inputs.values())))
        self.boards = {name: Scoreboard(f"{v['name']}.{name}") for name in self.expected}

    def drive(self, dut, step):
        i = step * self.lanes
        for name, vals in self.inputs.items():
            getattr(dut, name).value = pack(vals[i:i + self.lanes], self.widths[name][0])

    def compare(self, dut, name, step, count=True):
        i = step * self.lanes
        width, signed = self.widths[name]
        got = unpack(getattr(dut, name).value.to_unsigned(), width, signed, self.lanes)
        for j, (g, e) in enumerate(zip(got, self.expected[name][i:i + self.lanes],
                                       strict=False)):
            sb = self.boards[name]
            if g != e:
                where = ", ".join(f"{n}={vals[i + j]:#x}" for n, vals in self.inputs.items())
                sb.check(g, e, where)
            if count:
                sb.count += 1

    def finish(self):
        for sb in self.boards.values():
            assert sb.finish(minimum=self.count) == self.count


@cocotb.test()
async def lanes_match_golden(dut):
    with open(params()["vectors"]) as f:
        v = _Vectors(json.load(f))
    steps = -(-v.count // v.lanes)
    latency = {name: v.timing.get(name, (0, None))[0] for name in v.expected}
    if not any(latency.values()):
        for step in range(steps):
            v.drive(dut, step)
            await Timer(1, unit="ns")
            for name in v.expected:
                v.compare(dut, name, step)
        v.finish()
        return

    enables = sorted({en for _, en in v.timing.values() if en})
    rng = random.Random(params().get("seed", 1))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    taken = []  # step loaded at each enabled clock edge
    step, en, depth = 0, 0, max(latency.values())
    while True:
        await FallingEdge(dut.clk)
        for name, lat in latency.items():
            if lat and len(taken) >= lat and taken[-lat] < steps:
                v.compare(dut, name, taken[-lat], count=en)
        if len(taken) >= steps + depth - 1:
            break
        en = step >= steps or rng.random() < 0.75
        v.drive(dut, min(step, steps - 1))
        for name in enables:
            getattr(dut, name).value = (1 << v.lanes) - 1 if en else 0
        await Timer(1, unit="ns")
        for name, lat in latency.items():
            if not lat and step < steps:
                v.compare(dut, name, step, count=en)
        await RisingEdge(dut.clk)
        if en:
            taken.append(step)
            step += 1
    v.finish()
