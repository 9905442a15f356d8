"""Amaranth-simulator bench of the accelerator top: run a compiled program and compare every
command with the golden executor's trace as it completes.

:func:`run_top` loads the layout's memory images (reram, aux with the sentence's token entries,
desc, prog by ``init``; the weight memories through the host streams, as the bus loader will),
starts the top at command 0 (EMBED) and, at each ``cmd_done`` pulse, reads the command's
destination from the act banks and compares it with the trace entry of the same command, as
integers. ENTROPY compares H and the exit flag, DVFS the bin, predicted layer and codes.
"""

from dataclasses import dataclass, field

import torch
from amaranth.sim import Simulator

from hw.isa import Op, decode_program
from hw.memformats import token_word
from hw.top.memories import word_images
from hw.top.top import Top

__all__ = ["TopRun", "run_top", "build_top", "final_act", "tiny_sentence", "token_words",
           "table_rows", "COMPARED_OPS", "sentence_case", "bench_setup"]

# Commands whose destination (act words) is compared with the golden trace.
COMPARED_OPS = (Op.EMBED, Op.MATMUL, Op.MATMUL_ACT, Op.SOFTMAX, Op.LAYERNORM, Op.ADD)


@dataclass
class TopRun:
    """What a run did: per executed command ``(pc, op, cycles, mac, skipped, stall)``, the
    commands compared, the first mismatch (``None`` if none) and the final status."""

    commands: list = field(default_factory=list)
    ports: dict = field(default_factory=dict)   # pc -> the command's access counters
    compared: int = 0
    mismatch: str | None = None
    status: dict = field(default_factory=dict)


def _dst_words(cmd, codes, n):
    """``{act word: n x n tile}`` that the command's destination holds when ``codes``
    (``rows x cols`` codes, already transposed by the golden model) is written."""
    r, c = codes.shape
    out = {}
    for rt in range(r // n):
        for ct in range(c // n):
            out[cmd.dst_base + rt * cmd.dst_stride + ct] = codes[rt * n:(rt + 1) * n,
                                                                 ct * n:(ct + 1) * n]
    return out


def _words(lay, memory):
    wb = lay.memmap.word_bytes(memory)
    raw = bytes(lay.images[memory])
    return [int.from_bytes(raw[i:i + wb], "little") for i in range(0, len(raw), wb)]


def token_words(lay, rows, segments):
    """``{aux word: scalar}``: the token entries (:func:`hw.memformats.token_word`) the host
    writes for one sentence (token-table ``rows``, ``segments``)."""
    base = lay.symbols["aux"]["tokens"]
    return {base + t: token_word(int(r), int(s))
            for t, (r, s) in enumerate(zip(rows, segments, strict=True))}


def table_rows(lay):
    """The top's ``vocab_rows``, ``seg_rows``, ``pos_rows`` for the layout's tables."""
    c = lay.config
    return {"vocab_rows": c["vocab_size"], "seg_rows": c["type_vocab"],
            "pos_rows": c["max_len"]}


def build_top(lay, program_bytes, golden, tokens, *, top_kwargs=None, reram=True):
    """The :class:`~hw.top.top.Top` of ``lay`` with reram (unless ``reram`` is false: the host
    loads it), aux (with the ``tokens`` entries of :func:`token_words`), desc and prog
    (``program_bytes``) as initial contents. Returns ``(top, commands, trace by command index,
    weight words by memory)``."""
    mm = lay.memmap
    cmds = decode_program(bytes(program_bytes))
    trace = {t.index: t for t in golden.trace}
    images = dict(lay.images)
    images["prog"] = bytes(program_bytes)
    if not reram:
        images.pop("reram")
    aux = bytearray(bytes(lay.images["aux"]))
    wb = mm.word_bytes("aux")
    for word, value in tokens.items():
        aux[word * wb:word * wb + 4] = value.to_bytes(4, "little")
    images["aux"] = bytes(aux)
    init = word_images(mm, images)
    dut = Top(memmap=mm, fmt=lay.fmt, init=init, **(top_kwargs or {}))
    weights = {m: _words(lay, m) for m in ("wmask", "wval", "wbias")}
    return dut, cmds, trace, weights


def final_act(lay, cmds, golden):
    """``{act word: n x n tile}`` of every word the golden run wrote, as it ends."""
    out = {}
    for t in golden.trace:
        if "codes" in t.data:
            out.update(_dst_words(cmds[t.index], t.data["codes"][0], lay.n))
    return out


def run_top(lay, program_bytes, golden, tokens, *, max_cycles=400_000, top_kwargs=None,
            rows=None):
    """Run ``program_bytes`` on :class:`hw.top.top.Top` for one sentence (token entries
    ``tokens``, :func:`token_words`) whose golden run (``GoldenExecutor.run(..., trace=True)``,
    batch of one) is ``golden``. ``rows`` overrides :func:`table_rows`. Returns a
    :class:`TopRun`; stops comparing at the first mismatch."""
    n = lay.n
    dut, cmds, trace, weights = build_top(lay, program_bytes, golden, tokens,
                                          top_kwargs=top_kwargs)
    banks = dut.memories["act"]
    nb = lay.fmt.n_bits
    run = TopRun()

    def tile(ctx, word):
        t = torch.zeros(n, n, dtype=torch.uint8)
        for i in range(n):
            v = ctx.get(banks[i].data[word])
            for j in range(n):
                t[i, j] = (v >> (nb * j)) & ((1 << nb) - 1)
        return t

    def compare(ctx, pc):
        cmd, ref = cmds[pc], trace.get(pc)
        if ref is None:
            return f"command {pc} ({cmd.op.name}) ran on the top but not on the golden model"
        if cmd.op in COMPARED_OPS:
            for word, want in _dst_words(cmd, ref.data["codes"][0], n).items():
                got = tile(ctx, word)
                if not torch.equal(got, want):
                    i, j = (got != want).nonzero()[0].tolist()
                    return (f"command {pc} ({cmd.op.name}): act word {word} row {i} code {j} "
                            f"is {int(got[i, j]):#04x}, golden {int(want[i, j]):#04x}")
        elif cmd.op is Op.ENTROPY:
            got = (ctx.get(dut.entropy), ctx.get(dut.entropy_exit))
            want = (int(ref.data["entropy"][0]), int(ref.data["exit"][0]))
            if got != want:
                return f"command {pc} (ENTROPY): H, exit = {got}, golden {want}"
        elif cmd.op is Op.DVFS:
            got = [ctx.get(dut.dvfs_bin), ctx.get(dut.dvfs_layer), ctx.get(dut.vcode),
                   ctx.get(dut.fcode)]
            want = ref.data["dvfs"][0].tolist()
            if got != want:
                return f"command {pc} (DVFS): bin, layer, vcode, fcode = {got}, golden {want}"
        run.compared += 1
        return None

    async def put(ctx, port, items):
        for item in items:
            ctx.set(port.valid, 1)
            ctx.set(port.payload, item)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def bench(ctx):
        for mem, port in (("wmask", dut.host_wmask), ("wval", dut.host_wval),
                          ("wbias", dut.host_wbias)):
            await put(ctx, port, [{"addr": a, "data": d} for a, d in enumerate(weights[mem])])
        syms = lay.symbols
        ctx.set(dut.act_mask_base, syms["wmask"]["act.ones"])
        ctx.set(dut.act_value_base, syms["wval"]["act.values"])
        ctx.set(dut.act_bias_base, syms["wbias"]["act.zero"])
        for name, v in (rows or table_rows(lay)).items():
            ctx.set(getattr(dut, name), v)
        ctx.set(dut.start_pc, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(max_cycles):
            await ctx.tick()
            if ctx.get(dut.cmd_done):
                pc = ctx.get(dut.cmd_pc)
                run.commands.append((pc, cmds[pc].op, *(ctx.get(getattr(dut, f"cmd_{c}"))
                                                        for c in ("cycles", "mac", "skipped",
                                                                  "stall"))))
                run.ports[pc] = {c: ctx.get(getattr(dut, f"cmd_{c}")) for c in (
                    "act_reads", "act_writes", "aux_reads", "reram_reads")}
                if run.mismatch is None:
                    run.mismatch = compare(ctx, pc)
            if ctx.get(dut.done):
                break
        else:
            raise AssertionError(f"the top did not finish within {max_cycles} cycles")
        run.status = {p: ctx.get(getattr(dut, p)) for p in (
            "error", "error_pc", "exit", "exit_layer", "total_cycles", "total_mac",
            "total_commands", "dvfs_valid", "total_act_reads", "total_act_writes",
            "total_aux_reads", "total_reram_reads", "total_prog_reads", "total_desc_reads")}

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return run


def tiny_sentence(params, sentence):
    """The tiny image (:mod:`sw.tiny_image`) laid out for the top's flat ``params``
    (:data:`hw.top.top._TINY`), the program of ``TINY_SENTENCES[sentence]`` (every layer run),
    its golden run with the trace, the cycle model and the token entries: ``(layout, program
    bytes, golden, costs, top keyword arguments, tokens)``."""
    from hw.memmap import MemoryMap
    from hw.top.top import _MEMMAP_KEYS
    from sw.program.compiler import compile_program
    from sw.program.cycles import program_costs
    from sw.program.executor import GoldenExecutor
    from sw.program.frontend import encode_texts
    from sw.program.layout import lay_out
    from sw.tiny_image import TINY_SENTENCES, build_tiny_image

    img, _ = build_tiny_image()
    lay = lay_out(img, MemoryMap(**{k: params[k] for k in _MEMMAP_KEYS}))
    ex = GoldenExecutor(lay)
    (e,), _ = encode_texts(lay, [TINY_SENTENCES[sentence]])
    words = compile_program(lay, e.length, early_exit=False).program_bytes()
    golden = ex.run(words, e.rows[None], e.segments[None], trace=True)
    kwargs = {k: v for k, v in params.items() if k not in _MEMMAP_KEYS}
    return (lay, words, golden, program_costs(words, ex, e.rows), kwargs,
            token_words(lay, e.rows, e.segments))


def _bank_words(tile, nb):
    return [sum(int(c) << (nb * j) for j, c in enumerate(row)) for row in tile.tolist()]


def sentence_case(lay, program_bytes, golden, costs, tokens):
    """One sentence for the cocotb bench (:mod:`sim.tb_top`), JSON-serialisable: the program
    words, the token entries, and per executed command its model counters and what the golden
    trace says it leaves (destination act words as bank words, H and the exit flag, the DVFS
    decision)."""
    n, nb = lay.n, lay.fmt.n_bits
    cmds = decode_program(bytes(program_bytes))
    raw = bytes(program_bytes)
    words = [int.from_bytes(raw[i:i + 16], "little") for i in range(0, len(raw), 16)]
    out = []
    for t in golden.trace:
        cmd, c = cmds[t.index], costs[t.index]
        e = {"pc": t.index, "op": cmd.op.name, "cycles": c.cycles, "mac": c.mac_cycles,
             "skipped": c.skipped, "stall": c.stall, "ports": c.ports}
        if cmd.op in COMPARED_OPS:
            e["words"] = {str(w): _bank_words(tile, nb)
                          for w, tile in _dst_words(cmd, t.data["codes"][0], n).items()}
        elif cmd.op is Op.ENTROPY:
            e["entropy"] = [int(t.data["entropy"][0]), int(t.data["exit"][0])]
        elif cmd.op is Op.DVFS:
            e["dvfs"] = t.data["dvfs"][0].tolist()
        out.append(e)
    return {"prog": words, "tokens": {str(k): v for k, v in tokens.items()},
            "executed": list(golden.executed[0]), "exit_layer": int(golden.exit_layer[0]),
            "commands": out}


def bench_setup(lay, engine, *, reram=False, preload=()):
    """What :mod:`sim.tb_top` loads before the sentences: the weight memories' words, the
    ports' configuration and the payload address widths (``engine``: the top's
    :attr:`~hw.top.top.Top.engine_config`, or :func:`hw.top.top.engine_config` for a top not
    built here); the ReRAM words if ``reram`` (a top
    built without ReRAM contents); under ``"preload"`` the words of the memories named in
    ``preload`` (e.g. aux and desc, for a top built without initial contents:
    :mod:`sim.tape_bench` loads them through the host ports)."""
    syms = lay.symbols
    mm = lay.memmap
    out = {"n": lay.n, "nb": lay.fmt.n_bits,
           "weights": {m: _words(lay, m) for m in ("wmask", "wval", "wbias")},
           "addr_bits": {"wmask": (mm.wmask_words - 1).bit_length(),
                         "wval": (mm.wval_words - 1).bit_length(),
                         "wbias": (engine.b_depth - 1).bit_length(),
                         "aux": (mm.aux_words - 1).bit_length(),
                         "act": (mm.act_words - 1).bit_length(),
                         "prog": (mm.prog_words - 1).bit_length(),
                         "desc": (mm.depth("desc") - 1).bit_length(),
                         "reram": (mm.depth("reram") - 1).bit_length()},
           "config": {"act_mask_base": syms["wmask"]["act.ones"],
                      "act_value_base": syms["wval"]["act.values"],
                      "act_bias_base": syms["wbias"]["act.zero"], **table_rows(lay)}}
    # Host ports with byte enables (act, aux, desc, prog): data width and enable bits; the
    # bench enables every byte of a word it writes.
    from amaranth.hdl import Shape

    from hw.top.memories import host_layouts

    out["en"] = {m: (Shape.cast(lay_.members["data"]).width,
                     Shape.cast(lay_.members["en"]).width)
                 for m, lay_ in host_layouts(mm, lay.fmt.n_bits).items() if "en" in lay_.members}
    if reram:
        out["reram"] = _words(lay, "reram")
    if preload:
        out["preload"] = {m: _words(lay, m) for m in preload}
    return out
