"""Amaranth-simulator stream runner for the self-checks of the streaming units (no Verilog).

The cocotb testbenches in sim/ are the thorough check; this drives a component with one input
stream ``i`` and one output stream ``o`` in seconds, with deterministic stalls on both sides.
"""

import random

from amaranth.sim import Simulator

__all__ = ["run_stream", "refuses_illegal_length"]


def run_stream(dut, beats, count, *, config=None, stall_seed=1, max_cycles=200_000):
    """Send ``beats`` (values for ``dut.i.payload``) and collect ``count`` output payloads.

    ``config`` maps port names to constant values set before the first beat. Valid and ready
    are dropped on a pseudo-random quarter of the cycles. Returns the list of output payloads
    (Amaranth constants of the payload layout, convertible with ``list()`` or indexing).
    """
    rng = random.Random(stall_seed)
    out = []

    async def bench(ctx):
        for name, value in (config or {}).items():
            ctx.set(getattr(dut, name), value)
        sent, cycles = 0, 0
        while len(out) < count:
            cycles += 1
            if cycles > max_cycles:
                raise AssertionError(f"{type(dut).__name__}: {len(out)} of {count} outputs "
                                     f"after {max_cycles} cycles")
            offer = sent < len(beats) and rng.random() < 0.75
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.o.ready, rng.random() < 0.75)
            took_in = offer and ctx.get(dut.i.ready)
            got = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            if got:
                out.append(ctx.get(dut.o.payload))
            await ctx.tick()
            if took_in:
                sent += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def refuses_illegal_length(dut, port, value):
    """True if ``dut`` raises ``error`` and drops ``i.ready`` with ``port`` set to ``value``."""
    seen = []

    async def bench(ctx):
        ctx.set(getattr(dut, port), value)
        ctx.set(dut.i.valid, 1)
        for _ in range(3):
            await ctx.tick()
            seen.append((ctx.get(dut.error), ctx.get(dut.i.ready), ctx.get(dut.busy)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return all(s == (1, 0, 0) for s in seen)
