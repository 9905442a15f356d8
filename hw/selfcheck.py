"""Quick Amaranth-simulator comparisons of blocks with golden values (for self-checks and tests).

The cocotb testbenches in sim/ are the thorough, Verilog-level check; these run in seconds with
no external simulator.
"""

from amaranth.sim import Simulator

__all__ = ["run_comb", "run_pipelined"]


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
    import random

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
