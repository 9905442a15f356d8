"""Amaranth-simulator drivers: run a block on given inputs and return or compare its outputs.

The self-checks (:mod:`sim.selfcheck`) and the ``test_hw_*`` tests use them; they run in seconds
with no external simulator. The cocotb testbenches in sim/ are the thorough, Verilog-level
check.

* :func:`run_comb`, :func:`run_pipelined`: a combinational or pipelined lane unit, compared
  with golden values row by row;
* :func:`run_stream`, :func:`refuses_illegal_length`: a unit with one input stream ``i`` and one
  output stream ``o`` (the special function units), with random stalls on both;
* :func:`run_matmul`: one :class:`sw.matmul_buffers.MatmulJob` on the matrix engine.
"""

import random

from amaranth.sim import Simulator

from hw.matmul import MatmulError, MatrixEngine
from sw.matmul_buffers import y_requests

__all__ = ["run_comb", "run_pipelined", "run_stream", "refuses_illegal_length", "run_matmul"]


def run_comb(dut, inputs, expected):
    """Drive a combinational ``dut`` with each row of ``inputs`` and compare ``expected`` outputs.

    ``inputs`` and ``expected`` map port names to equally long integer tensors or lists.
    Compares as integers and raises ``AssertionError`` on the first mismatch, naming the inputs.
    Returns the number of comparisons.
    """
    ins = {k: [int(x) for x in v] for k, v in inputs.items()}
    outs = {k: [int(x) for x in v] for k, v in expected.items()}
    count = len(next(iter(ins.values())))
    done = []

    async def bench(ctx):
        for i in range(count):
            for name, vals in ins.items():
                ctx.set(getattr(dut, name), vals[i])
            for name, vals in outs.items():
                got = ctx.get(getattr(dut, name))
                if got != vals[i]:
                    where = ", ".join(f"{k}={v[i]:#x}" for k, v in ins.items())
                    raise AssertionError(
                        f"{type(dut).__name__}.{name} = {got:#x}, golden {vals[i]:#x} ({where})")
                done.append(1)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert len(done) == count * len(outs), "self-check compared fewer values than it drove"
    return len(done)


def run_pipelined(dut, inputs, expected, *, en_probability=0.7, seed=0):
    """Like :func:`run_comb` for a pipelined ``dut`` with ``latency`` and a clock enable ``en``.

    Every cycle drives a row of ``inputs`` (a new one after each clock edge with ``en`` high,
    the same one again after a stall) and a random ``en`` (high with ``en_probability``), and
    checks after every edge that the outputs equal the golden values of the row the pipeline
    took ``latency`` enabled edges ago, also while it stalls. After the last row, ``en`` stays
    high until every row has come out. ``latency`` 0 falls back to :func:`run_comb`.
    Returns the number of comparisons (one per row and output, stalls not counted).
    """
    latency = dut.latency
    if latency == 0:
        return run_comb(dut, inputs, expected)
    ins = {k: [int(x) for x in v] for k, v in inputs.items()}
    outs = {k: [int(x) for x in v] for k, v in expected.items()}
    count = len(next(iter(ins.values())))
    rng = random.Random(seed)
    done = []

    async def bench(ctx):
        taken = []  # row index loaded at each enabled edge
        row = 0
        while len(taken) < count + latency - 1:
            en = row >= count or rng.random() < en_probability
            for name, vals in ins.items():
                ctx.set(getattr(dut, name), vals[min(row, count - 1)])
            ctx.set(dut.en, en)
            await ctx.tick()
            if en:
                taken.append(row)
                row += 1
            if len(taken) < latency:
                continue
            k = taken[-latency]
            if k >= count:
                continue
            for name, vals in outs.items():
                got = ctx.get(getattr(dut, name))
                if got != vals[k]:
                    where = ", ".join(f"{n}={v[k]:#x}" for n, v in ins.items())
                    raise AssertionError(
                        f"{type(dut).__name__}.{name} = {got:#x}, golden {vals[k]:#x} ({where}, "
                        f"{latency} enabled cycles earlier)")
                if en:
                    done.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(done) == count * len(outs), "self-check compared fewer values than it drove"
    return len(done)


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


def run_matmul(job, *, stall_seed=None, max_cycles=1_000_000):
    """Run one :class:`sw.matmul_buffers.MatmulJob` on the engine in the Amaranth simulator.

    Loads the buffers, starts the engine, waits for ``done`` and reads Y back through the
    streams. With ``stall_seed`` the testbench drops ``valid``/``ready`` at random on every
    stream. Returns ``(y_words, status)`` with the counters and the error status.
    """
    dut = MatrixEngine(config=job.config)
    rng = random.Random(stall_seed)
    out = {}

    def stalled():
        return stall_seed is not None and rng.random() < 0.3

    async def put(ctx, port, items):
        for item in items:
            while stalled():
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, item)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def bench(ctx):
        await put(ctx, dut.x_w, [{"bank": b, "addr": a, "data": d} for b, a, d in job.x_words])
        await put(ctx, dut.m_w, [{"addr": a, "data": d} for a, d in job.m_words])
        await put(ctx, dut.v_w, [{"addr": a, "data": d} for a, d in job.v_words])
        await put(ctx, dut.b_w, [{"addr": a, "data": d} for a, d in job.b_words])
        for name, value in job.regs.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(max_cycles):
            await ctx.tick()
            if ctx.get(dut.done):
                break
        else:
            raise AssertionError(f"engine did not finish within {max_cycles} cycles")
        out["status"] = {name: ctx.get(getattr(dut, name)) for name in
                         ("cyc_total", "cyc_mac", "vec_skipped", "cyc_stall")}
        out["status"]["err"] = ctx.get(dut.err)
        if out["status"]["err"] != MatmulError.NONE:
            out["y"] = None
            return
        reqs = y_requests(job.config, job.rows, job.cols)
        words = []
        pending = list(reqs)
        while len(words) < len(reqs):
            if pending and not stalled():
                bank, addr = pending[0]
                ctx.set(dut.y_req.valid, 1)
                ctx.set(dut.y_req.payload, {"bank": bank, "addr": addr})
            else:
                ctx.set(dut.y_req.valid, 0)
            ready = not stalled()
            ctx.set(dut.y_rsp.ready, ready)
            _, _, req_ready, rsp_valid, rsp_data = await ctx.tick().sample(
                dut.y_req.ready, dut.y_rsp.valid, dut.y_rsp.payload.data)
            if ctx.get(dut.y_req.valid) and req_ready:
                pending.pop(0)
            if ready and rsp_valid:
                words.append(rsp_data)
        ctx.set(dut.y_req.valid, 0)
        out["y"] = words

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["y"], out["status"]
