"""The gateware kernels (exp, 1/x, 1/sqrt, ln), combinational and pipelined, against their golden
models, as integers."""

import torch
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw import sfu_math as k
from hw.sfu_pipe import register_cut
from sim.drivers import run_comb
from sw.golden import sfu_math as g


class _Kernels(wiring.Component):
    d: In(signed(24))
    v: In(48)
    e: Out(k.EXP_FRAC + 1)
    r1: Out(k.RECIP_FRAC + 1)
    rk: Out(6)
    ln: Out(k.LN_FRAC + 1)
    q1: Out(k.RSQRT_FRAC + 2)
    qj: Out(5)

    def elaborate(self, platform):
        m = Module()
        (e,) = k.exp_neg(m, "exp", [self.d], 16)
        r1, rk, s = k.reciprocal(m, "recip", self.v)
        q1, qj = k.rsqrt(m, "rsqrt", self.v)
        m.d.comb += [self.e.eq(e), self.r1.eq(r1), self.rk.eq(rk), self.q1.eq(q1),
                     self.qj.eq(qj), self.ln.eq(k.ln_normalized(m, "ln", s))]
        return m


def test_kernels_match_golden():
    gen = torch.Generator().manual_seed(8)
    count = 1500
    d = -torch.randint(0, 1 << 23, (count,), generator=gen)
    d = d >> torch.randint(0, 22, (count,), generator=gen)
    d[:3] = torch.tensor([0, -1, -(1 << 23)])
    v = torch.randint(1, 1 << 47, (count,), generator=gen)
    v = (v >> torch.randint(0, 46, (count,), generator=gen)).clamp(min=1)
    v[:3] = torch.tensor([1, 2, (1 << 48) - 1])
    r1, rk, s = g.reciprocal(v)
    q1, qj = g.rsqrt(v)
    n = run_comb(_Kernels(), {"d": d, "v": v},
                 {"e": g.exp_neg(d, 16), "r1": r1, "rk": rk, "ln": g.ln_normalized(s),
                  "q1": q1, "qj": qj})
    assert n == 6 * count


def test_kernel_accuracy():
    d = -torch.arange(0, 20 << 16, 997)
    e = g.exp_neg(d, 16).double() / 2 ** k.EXP_FRAC
    assert float((e - torch.exp(d.double() / 2 ** 16)).abs().max()) < 2 ** -16
    v = torch.arange(1, 1 << 20, 331)
    r1, rk, _ = g.reciprocal(v)
    rel = r1.double() * torch.pow(2.0, -(k.RECIP_FRAC + rk).double()) * v.double() - 1
    assert float(rel.abs().max()) < 2 ** -17
    q1, qj = g.rsqrt(v)
    rel = q1.double() * torch.pow(2.0, -(k.RSQRT_FRAC + qj).double()) * v.double().sqrt() - 1
    assert float(rel.abs().max()) < 2 ** -16


class _PipedKernels(wiring.Component):
    """The same kernels cut into stages by :func:`hw.sfu_pipe.register_cut`."""

    d: In(signed(24))
    v: In(48)
    e: Out(k.EXP_FRAC + 1)
    r1: Out(k.RECIP_FRAC + 1)
    rk: Out(6)
    q1: Out(k.RSQRT_FRAC + 2)
    qj: Out(5)

    def elaborate(self, platform):
        m = Module()
        cut = register_cut(m)
        (e,) = k.exp_neg_table(m, "exp", k.exp_neg_u(m, "exp", [self.d], 16), cut)
        r1, rk, _ = k.reciprocal(m, "recip", self.v, cut=cut)
        q1, qj = k.rsqrt(m, "rsqrt", self.v, cut=cut)
        m.d.comb += [self.e.eq(e), self.r1.eq(r1), self.rk.eq(rk), self.q1.eq(q1),
                     self.qj.eq(qj)]
        return m


def test_pipelined_kernels_match_golden_at_their_latency():
    gen = torch.Generator().manual_seed(9)
    count = 300
    d = -torch.randint(0, 1 << 23, (count,), generator=gen)
    d = d >> torch.randint(0, 22, (count,), generator=gen)
    v = torch.randint(1, 1 << 47, (count,), generator=gen)
    v = (v >> torch.randint(0, 46, (count,), generator=gen)).clamp(min=1)
    r1, rk, _ = g.reciprocal(v)
    q1, qj = g.rsqrt(v)
    want = {"e": (g.exp_neg(d, 16), k.EXP_TABLE_CUTS), "r1": (r1, k.RECIP_CUTS),
            "rk": (rk, k.RECIP_CUTS), "q1": (q1, k.RSQRT_CUTS), "qj": (qj, k.RSQRT_CUTS)}
    dut = _PipedKernels()
    seen = {name: [] for name in want}

    async def bench(ctx):
        # A new input every cycle: each output is the golden value of the input `latency`
        # cycles earlier, so a stage that is missing, extra or mixing inputs shows.
        for i in range(count + k.RSQRT_CUTS):
            ctx.set(dut.d, int(d[min(i, count - 1)]))
            ctx.set(dut.v, int(v[min(i, count - 1)]))
            for name in want:
                seen[name].append(ctx.get(getattr(dut, name)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for name, (values, latency) in want.items():
        assert seen[name][latency:latency + count] == values.tolist(), name
