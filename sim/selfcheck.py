"""Self-checks of the generated blocks: each block in the Amaranth simulator against the golden
model, on random and edge-case inputs (what ``edgebert verilog`` runs after writing a block).

Test plumbing, not gateware: it imports the golden model, which the gateware (``hw``) never
does. :func:`blocks` is :func:`hw.registry.blocks` with every block's ``selfcheck`` attached;
each check takes the block's parameters, raises ``AssertionError`` on a mismatch and returns a
one-line summary.
"""

import dataclasses
import random

import torch
from amaranth.sim import Simulator

from hw.af_fixed import AFToFixed
from hw.af_mul import AFMulLane
from hw.af_requant import AFRequantCore
from hw.dvfs import DvfsController
from hw.entropy import EntropyExit
from hw.layernorm import LayerNorm
from hw.layouts import AFFormat, FixedFormat
from hw.matmul import MatmulConfig, MatmulError
from hw.matmul.config import requant_shift_range
from hw.registry import blocks as hw_blocks
from hw.residual import ResidualAdd
from hw.sfu_tables import H_BITS
from hw.softmax import Softmax
from sim.drivers import run_comb, run_matmul, run_pipelined, run_stream
from sw.adaptivfloat import round_to_code
from sw.golden.af import lane_product, to_fixed
from sw.golden.dvfs import dvfs_lookup
from sw.golden.entropy import entropy
from sw.golden.layernorm import layernorm as layernorm_golden
from sw.golden.matmul import matmul
from sw.golden.residual import residual_add
from sw.golden.softmax import softmax as softmax_golden
from sw.golden.softmax import span_mask
from sw.matmul_buffers import make_job, y_from_words
from sw.perf.matmul import matmul_cycles

__all__ = ["SELFCHECKS", "blocks"]


def blocks():
    """The registered blocks by name (:func:`hw.registry.blocks`), each with its self-check."""
    return {name: dataclasses.replace(b, selfcheck=SELFCHECKS.get(name))
            for name, b in hw_blocks().items()}


def _compare_beats(unit, where, got, want):
    """Raise on the first output beat of ``got`` that differs from the golden ``want`` (lists
    of codes); return the number of codes compared."""
    for r, (gb, wb) in enumerate(zip(got, want, strict=True)):
        if list(gb) != wb:
            raise AssertionError(f"{unit} beat {r}{where}: RTL {list(gb)} != golden {wb}")
    return sum(len(wb) for wb in want)


def check_af_to_fixed(width, frac_bits, **params):
    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    codes = torch.arange(fmt.code_max + 1).repeat(fmt.bias_max + 1)
    bias = torch.arange(fmt.bias_max + 1).repeat_interleave(fmt.code_max + 1)
    expected = torch.cat([to_fixed(codes[bias == b], b, fixed, fmt)
                          for b in range(fmt.bias_max + 1)])
    n = run_comb(AFToFixed(fmt=fmt, fixed=fixed), {"code": codes, "bias": bias},
                 {"fixed": expected})
    return f"all {n} (code, bias) pairs equal the golden to_fixed"


def check_af_mul(stages, **params):
    fmt = AFFormat(**params)
    g = torch.Generator().manual_seed(1)
    codes = torch.arange(fmt.code_max + 1)
    edge = torch.cartesian_prod(codes, codes)
    if len(edge) > 4096:
        edge = edge[torch.randperm(len(edge), generator=g)[:4096]]
    a, b = edge[:, 0], edge[:, 1]
    expected = lane_product(a, b, fmt)
    n = run_pipelined(AFMulLane(fmt=fmt, stages=stages), {"a": a, "b": b}, {"product": expected})
    return f"{n} products equal the golden lane_product ({stages} stages, random stalls)"


def check_af_requant(**params):
    in_width = params.pop("in_width")
    stages = params.pop("stages")
    fmt = AFFormat(**params)
    lo, hi = requant_shift_range(fmt)
    g = torch.Generator().manual_seed(2)
    count = 3000
    value = torch.randint(-(1 << (in_width - 1)), 1 << (in_width - 1), (count,), generator=g)
    # Spread magnitudes over every binade, not only the top bits.
    value = value >> torch.randint(0, in_width - 1, (count,), generator=g)
    shift = torch.randint(lo, hi + 1, (count,), generator=g)
    expected = round_to_code(value < 0, value.abs(), shift, fmt)
    dut = AFRequantCore(fmt=fmt, in_width=in_width, shift_min=lo, shift_max=hi, stages=stages)
    n = run_pipelined(dut, {"value": value, "shift": shift}, {"code": expected})
    return (f"{n} random values over shifts {lo}..{hi} equal the golden round_to_code "
            f"({stages} stages, random stalls)")


def check_dvfs(bins, vcode_bits, fcode_bits):
    rng = random.Random(6)
    dut = DvfsController(bins=bins, vcode_bits=vcode_bits, fcode_bits=fcode_bits)
    edges = sorted(rng.randrange(1 << H_BITS) for _ in range(bins))
    vcodes = [rng.randrange(1 << vcode_bits) for _ in range(bins)]
    fcodes = [rng.randrange(1 << fcode_bits) for _ in range(bins)]
    hs = [rng.randrange(1 << H_BITS) for _ in range(200)] + edges + [e - 1 for e in edges if e]
    checked = []

    async def bench(ctx):
        for i in range(bins):
            ctx.set(dut.table_we, 1)
            ctx.set(dut.table_addr, i)
            ctx.set(dut.table_edge, edges[i])
            ctx.set(dut.table_vcode, vcodes[i])
            ctx.set(dut.table_fcode, fcodes[i])
            await ctx.tick()
        ctx.set(dut.table_we, 0)
        for count, h in enumerate(hs, 1):
            ctx.set(dut.h.valid, 1)
            ctx.set(dut.h.payload, h)
            await ctx.tick()
            want = dvfs_lookup(h, edges[:-1], vcodes, fcodes)
            got = (ctx.get(dut.status.bin), ctx.get(dut.vcode), ctx.get(dut.fcode))
            if got != want or ctx.get(dut.status.updates) != count:
                raise AssertionError(f"dvfs h={h}: RTL {got} != golden {want}")
            checked.append(h)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return f"{len(checked)} entropies mapped to the golden (bin, vcode, fcode)"


def check_entropy_exit(n, max_classes, width, frac_bits, **params):
    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    g = torch.Generator().manual_seed(5)
    checked = 0
    for classes in (2, max_classes, max(1, max_classes - 1)):
        rows = 3
        x = torch.randint(0, fmt.code_max + 1, (rows, classes), generator=g)
        want = entropy(x, 5, fmt, fixed)
        nb = -(-classes // n)
        padded = torch.zeros(rows, nb * n, dtype=torch.int64)
        padded[:, :classes] = x
        beats = [list(b) for b in padded.reshape(-1, n).tolist()]
        dut = EntropyExit(fmt=fmt, n=n, max_classes=max_classes, fixed=fixed)
        threshold = int(want[0])
        got = run_stream(dut, beats, rows, config={"classes": classes, "bias_in": 5,
                                                   "threshold": threshold})
        for r, res in enumerate(got):
            if (res.entropy, res.exit) != (int(want[r]), int(want[r]) < threshold):
                raise AssertionError(f"entropy row {r} ({classes} classes): RTL "
                                     f"({res.entropy}, {res.exit}) != golden {int(want[r])}")
            checked += 1
    return f"{checked} rows (2 .. {max_classes} classes) equal the golden entropy and exit flag"


def check_layernorm(n, max_len, **params):
    fmt = AFFormat(**params)
    g = torch.Generator().manual_seed(4)
    rows, total = 3, 0
    for eps in (0, 5):
        x = torch.randint(0, fmt.code_max + 1, (rows, max_len), generator=g)
        x[1] = 0x35  # a constant row: variance 0
        gamma = torch.randint(0, fmt.code_max + 1, (max_len,), generator=g)
        beta = torch.randint(0, fmt.code_max + 1, (max_len,), generator=g)
        want = layernorm_golden(x, gamma, beta, 5, 4, 2, 6, eps, fmt).reshape(-1, n)
        gb, bb = gamma.reshape(-1, n).tolist(), beta.reshape(-1, n).tolist()
        beats = [{"x": list(xb), "gamma": gb[r % len(gb)], "beta": bb[r % len(bb)]}
                 for r, xb in enumerate(x.reshape(-1, n).tolist())]
        dut = LayerNorm(fmt=fmt, n=n, max_len=max_len)
        got = run_stream(dut, beats, len(beats), config={
            "length": max_len // n, "bias_in": 5, "bias_gamma": 4, "bias_beta": 2,
            "bias_out": 6, "eps": eps})
        total += _compare_beats("layernorm", f" (eps={eps})", got, want.tolist())
    return f"{total} outputs in 6 rows (one constant per set) equal the golden layernorm"


def check_residual_add(n, width, frac_bits, **params):
    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    g = torch.Generator().manual_seed(7)
    beats, total = 24, 0
    for bias_a, bias_b, bias_out in ((3, 5, 4), (0, fmt.bias_max, fmt.bias_max), (6, 6, 0)):
        a = torch.randint(0, fmt.code_max + 1, (beats, n), generator=g)
        b = torch.randint(0, fmt.code_max + 1, (beats, n), generator=g)
        want = residual_add(a, b, bias_a, bias_b, bias_out, fmt, fixed)
        dut = ResidualAdd(fmt=fmt, n=n, fixed=fixed)
        got = run_stream(dut, [{"a": list(x), "b": list(y)} for x, y in zip(a, b, strict=True)],
                         beats, config={"bias_a": bias_a, "bias_b": bias_b,
                                        "bias_out": bias_out})
        total += _compare_beats("residual", "", got, want.tolist())
    return f"{total} sums over 3 bias sets equal the golden residual_add"


def check_softmax(n, max_len, width, frac_bits, **params):
    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    g = torch.Generator().manual_seed(3)
    beats_per_row, total = max_len // n, 0
    for renorm, z in ((0, float(max_len)), (1, max_len / 3)):
        rows = 3
        x = torch.randint(0, fmt.code_max + 1, (rows, max_len), generator=g)
        mask = span_mask(z, 8, max_len)
        want = softmax_golden(x, mask, 6, 3, bool(renorm), fmt, fixed).reshape(-1, n)
        beats = [{"x": list(xb), "mask": list(mb)}
                 for xb, mb in zip(x.reshape(-1, n).tolist(),
                                   mask.repeat(rows).reshape(-1, n).tolist(), strict=True)]
        dut = Softmax(fmt=fmt, n=n, max_len=max_len, fixed=fixed)
        got = run_stream(dut, beats, len(beats), config={
            "length": beats_per_row, "bias_in": 6, "bias_out": 3, "renorm": renorm})
        total += _compare_beats("softmax", f" (renorm={renorm})", got, want.tolist())
    return f"{total} probabilities in 6 rows (plain and renormalised) equal the golden softmax"


def check_matmul(**params):
    cfg = MatmulConfig.from_params(**params)
    n, fmt = cfg.n, cfg.fmt
    g = torch.Generator().manual_seed(3)
    rows, k, cols = n, 2 * n, 2 * n

    def codes(*shape):
        c = torch.randint(0, fmt.code_max + 1, shape, generator=g)
        return torch.where(c == 1 << (fmt.n_bits - 1), 0, c)

    x, w, bias = codes(rows, k), codes(k, cols), codes(cols)
    w[torch.rand(k, cols // n, generator=g).repeat_interleave(n, dim=1) < 0.5] = 0
    regs = dict(bias_x=min(3, fmt.bias_max), bias_w=min(4, fmt.bias_max), bias_b=0,
                bias_out=min(5, fmt.bias_max), relu=True)
    job = make_job(cfg, x, w, bias, **regs)
    words, status = run_matmul(job)
    assert status["err"] == MatmulError.NONE, f"engine reported {status['err']}"
    got = y_from_words(cfg, rows, cols, words)
    want = matmul(x, w, bias, **regs, fmt=fmt).to(torch.int64)
    bad = (got != want).nonzero()
    assert not len(bad), (f"Y{tuple(bad[0].tolist())} = {int(got[tuple(bad[0])])}, golden "
                          f"{int(want[tuple(bad[0])])}")
    model = matmul_cycles(job.packed, rows)
    for name, value in (("cyc_total", model.total), ("cyc_mac", model.mac),
                        ("vec_skipped", model.skipped), ("cyc_stall", model.stall)):
        assert status[name] == value, f"{name} = {status[name]}, cycle model {value}"
    return (f"{rows}×{k}×{cols} at 50% 1×n block sparsity: {got.numel()} outputs equal the "
            f"golden model, {status['cyc_total']} cycles as the cycle model predicts")


def check_top(**params):
    """One tiny-image sentence (:mod:`sw.tiny_image`) on the top from command 0 (EMBED): every
    command's destination equals the golden trace, its cycle and ReRAM-read counters the cycle
    model."""
    from hw.isa import Op
    from sim.top_bench import run_top, tiny_sentence

    if params["n"] != 4:
        raise ValueError(f"the top's self-check runs the tiny image (n = 4), not n = {params['n']}")
    lay, words, golden, costs, kwargs, tokens = tiny_sentence(params, 2)
    run = run_top(lay, words, golden, tokens, top_kwargs=kwargs)
    if run.mismatch:
        raise AssertionError(run.mismatch)
    for pc, op, cycles, *_ in run.commands:
        if cycles != costs[pc].cycles:
            raise AssertionError(f"command {pc} ({op.name}) took {cycles} cycles, the model "
                                 f"says {costs[pc].cycles}")
        if run.ports[pc]["reram_reads"] != costs[pc].ports["reram_reads"]:
            raise AssertionError(f"command {pc} ({op.name}) read the ReRAM "
                                 f"{run.ports[pc]['reram_reads']} times, the model says "
                                 f"{costs[pc].ports['reram_reads']}")
    if run.status["error"] or run.compared != len(golden.executed[0]) \
            or run.commands[0][1] is not Op.EMBED:
        raise AssertionError(f"the top stopped early: {run.status}")
    return (f"{run.compared} commands of a tiny-image sentence equal the golden trace; "
            f"{run.status['total_cycles']} cycles, as modelled")


# csr: from hw.csr
def check_csr(**params):
    from hw.csr import Csr, _build, _split
    from sim.axi_sim import csr_selfcheck

    return csr_selfcheck(Csr(regmap=_build(*_split(params))))


def check_accelerator(**params):
    """The register map through the accelerator's own wiring (reset values, RW registers,
    refusals); whole sentences through its buses are ``tests/test_rtl_system.py``'s."""
    from hw.top.system import build_accelerator
    from sim.axi_sim import csr_selfcheck

    return csr_selfcheck(build_accelerator(**params))


# reram: from hw.reram
def check_reram(**params):
    import random

    from amaranth.sim import Simulator

    from hw.memmap import MemoryMap
    from hw.reram import ReramStore

    mm = MemoryMap(**params)
    rng = random.Random(5)
    wb = mm.reram_word_bytes
    image = bytes(rng.randrange(256) for _ in range(min(mm.reram_bytes, 64 * wb)))
    dut = ReramStore(memmap=mm, init=image)
    words = len(image) // wb
    want = [int.from_bytes(image[a * wb:(a + 1) * wb], "little") for a in range(words)]
    addrs = [rng.randrange(words) for _ in range(200)]
    got = []

    async def bench(ctx):
        sent = 0
        while len(got) < len(addrs):
            offer = sent < len(addrs) and rng.random() < 0.75
            ctx.set(dut.rd.req.valid, offer)
            if offer:
                ctx.set(dut.rd.req.payload, addrs[sent])
            ctx.set(dut.rd.resp.ready, rng.random() < 0.75)
            took = offer and ctx.get(dut.rd.req.ready)
            if ctx.get(dut.rd.resp.valid) and ctx.get(dut.rd.resp.ready):
                got.append(ctx.get(dut.rd.resp.payload))
            await ctx.tick()
            sent += took
        assert ctx.get(dut.reads) == len(addrs), ctx.get(dut.reads)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for i, (a, g) in enumerate(zip(addrs, got, strict=True)):
        if g != want[a]:
            raise AssertionError(f"read {i} of word {a}: {g:#x} != {want[a]:#x}")
    return (f"{len(addrs)} random reads (latency {mm.reram_latency}, random stalls) equal the "
            f"image; the counter says {len(addrs)}")


# embed_unit: from hw.embed_unit
def check_embed_unit(n, reram_bytes, reram_word_bytes, reram_latency, max_cols, **params):
    import random

    from hw.memmap import MemoryMap
    from hw.timing import embed_cycles, embed_reram_reads
    from sim.embed_sim import random_case, reference, simulate

    # The check's store is small (the Amaranth simulator initialises every word).
    mm = MemoryMap(n=n, reram_bytes=min(reram_bytes, 4096), reram_word_bytes=reram_word_bytes,
                   reram_latency=reram_latency)
    rng = random.Random(3)
    checked = 0
    for k in range(3):
        case = random_case(mm, rng, cols=min(max_cols, 2 + k), tokens=2 * n - k, rows=2)
        want, _ = reference(case, max_cols=max_cols)
        got = simulate(case, max_cols=max_cols, p_ready=0.7 if k else 1.0, seed=k)
        if got["codes"] != want:
            raise AssertionError(f"case {k}: RTL codes differ from the reference")
        p = case.ports
        if got["reads"] != embed_reram_reads(p["cols"], p["tokens"], n, reram_word_bytes):
            raise AssertionError(f"case {k}: {got['reads']} ReRAM reads, the model says other")
        if k == 0 and got["cycles"] != embed_cycles(p["rows"], p["cols"], p["tokens"], n,
                                                    reram_word_bytes, reram_latency):
            raise AssertionError(f"case 0: {got['cycles']} cycles, the model says other")
        checked += len(want) * len(want[0])
    return (f"{checked} codes of 3 random commands equal the reference (stalls on 2); reads "
            f"and cycles equal the model")


# axi_mem: from hw.axi_mem
def check_axi_mem(**params):
    from hw.axi_mem import _build
    from sim.axi_sim import axi_mem_selfcheck

    return axi_mem_selfcheck(_build(**params))


SELFCHECKS = {
    "af_to_fixed": check_af_to_fixed, "af_mul": check_af_mul, "af_requant": check_af_requant,
    "dvfs": check_dvfs, "entropy_exit": check_entropy_exit, "layernorm": check_layernorm,
    "matmul": check_matmul, "residual_add": check_residual_add, "softmax": check_softmax,
    "top": check_top, "csr": check_csr, "axi_mem": check_axi_mem, "reram": check_reram,
    "embed_unit": check_embed_unit, "accelerator": check_accelerator,
}
