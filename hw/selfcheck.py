"""Quick Amaranth-simulator comparisons of blocks with golden values (for self-checks and tests).

The cocotb testbenches in sim/ are the thorough, Verilog-level check; these run in seconds with
no external simulator.
"""

from amaranth.sim import Simulator

__all__ = ["run_comb"]


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
