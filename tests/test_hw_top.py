"""The accelerator top in the Amaranth simulator ([C4]): whole programs of the tiny image, every
command's destination (EMBED's included: the programs start at command 0) equal to the golden
executor's trace as integers, every command's cycle and access counters equal to the cycle model;
early exit; the error codes (the top never hangs), a bad token row or segment among them."""

import pytest
from amaranth.sim import Simulator

from hw.isa import MATRIX_DESC, Op, command, encode
from hw.memformats import TOKEN_ROW_BITS
from hw.memmap import MemoryMap
from hw.regmap import ErrorCode
from hw.top.top import Top
from sim.top_bench import run_top, token_words
from sw.program.checks import ProgramError, check_command
from sw.program.compiler import compile_program
from sw.program.cycles import program_costs
from sw.program.executor import GoldenExecutor
from sw.program.frontend import encode_texts
from sw.program.layout import lay_out
from sw.tiny_image import TINY_SENTENCES, build_tiny_image

# The default memory map at n = 4 with a ReRAM store the tiny image fits (680 bytes).
_TINY_MM = MemoryMap(n=4, reram_bytes=1024)


@pytest.fixture(scope="module")
def tiny():
    img, _ = build_tiny_image()
    return lay_out(img, _TINY_MM)


@pytest.fixture(scope="module")
def tiny3():
    # Seed 9 with three layers has sentences that exit at layer 1, at layer 2 and never.
    img, _ = build_tiny_image(9, layers=3)
    return lay_out(img, _TINY_MM)


def _run(lay, text, *, early_exit):
    ex = GoldenExecutor(lay)
    (e,), _ = encode_texts(lay, [text])
    prog = compile_program(lay, e.length, early_exit=early_exit)
    words = prog.program_bytes()
    golden = ex.run(words, e.rows[None], e.segments[None], trace=True)
    run = run_top(lay, words, golden, token_words(lay, e.rows, e.segments))
    costs = program_costs(words, ex, e.rows)
    return run, golden, costs


def _check(run, golden, costs):
    assert run.mismatch is None, run.mismatch
    assert run.status["error"] == ErrorCode.NONE
    # Every command the golden model executed ran and was compared, EMBED first.
    executed = golden.executed[0]
    assert executed[0] == 0 and run.commands[0][1] is Op.EMBED
    assert [c[0] for c in run.commands] == executed
    assert run.compared == len(executed)
    assert run.status["exit_layer"] == int(golden.exit_layer[0])
    for pc, op, cycles, mac, skipped, stall in run.commands:
        c = costs[pc]
        assert (cycles, mac, skipped, stall) == (c.cycles, c.mac_cycles, c.skipped, c.stall), \
            f"command {pc} ({op.name}): top {cycles, mac, skipped, stall}, model " \
            f"{c.cycles, c.mac_cycles, c.skipped, c.stall}"
        assert run.ports[pc] == c.ports, f"command {pc} ({op.name}): accesses {run.ports[pc]}, " \
            f"model {c.ports}"
    assert run.status["total_cycles"] == sum(c[2] for c in run.commands)
    for name in ("act_reads", "act_writes", "aux_reads", "reram_reads"):
        assert run.status[f"total_{name}"] == sum(p[name] for p in run.ports.values())
    assert run.status["total_reram_reads"] == costs[0].ports["reram_reads"] > 0
    # One program word per command, one descriptor read per command decoded.
    assert run.status["total_prog_reads"] == run.status["total_desc_reads"] == len(executed)


# 8, 12 and 12 tokens, and a pair truncated to max_len = 16 (four row tiles).
TEXTS = [TINY_SENTENCES[0], TINY_SENTENCES[1], TINY_SENTENCES[3],
         f"{TINY_SENTENCES[0]} {TINY_SENTENCES[3]}"]


@pytest.mark.parametrize("text", TEXTS)
def test_whole_program_bit_exact_with_model_cycles(tiny, text):
    run, golden, costs = _run(tiny, text, early_exit=False)
    _check(run, golden, costs)
    ops = {c[1] for c in run.commands}
    assert ops == set(Op)
    assert run.status["dvfs_valid"] == 1 and run.status["exit"] == 0


def test_early_exit_in_the_middle_and_at_the_first_layer(tiny3):
    ex = GoldenExecutor(tiny3)
    texts = list(TINY_SENTENCES)
    enc, _ = encode_texts(tiny3, texts)
    exits = {}
    for text, e in zip(texts, enc, strict=True):
        prog = compile_program(tiny3, e.length)
        r = ex.run(prog.program_bytes(), e.rows[None], e.segments[None])
        exits.setdefault(int(r.exit_layer[0]), text)
    assert {1, 2} <= set(exits), exits
    for layer in (2, 1):
        run, golden, costs = _run(tiny3, exits[layer], early_exit=True)
        _check(run, golden, costs)
        assert run.status["exit"] == 1 and run.status["exit_layer"] == layer


# -- errors -----------------------------------------------------------------------------------
_MM = MemoryMap(n=4, reram_bytes=256, desc_words=4, wmask_words=16, wval_words=16,
                wbias_words=4, act_words=32, aux_words=16, prog_words=4)


def _mat(**kw):
    base = dict(x_base=0, x_stride=1, dst_base=8, dst_stride=1, rows=1, cols=1)
    base.update(kw)
    return base


def _embed(**kw):
    # Descriptor 3 is never written: every table at ReRAM byte 0 (aligned, in the store).
    base = dict(dst_base=0, dst_stride=1, rows=1, cols=1, tokens=2, tok_addr=8, desc=3,
                bias_word=0, bias_pos=0, bias_seg=0, bias_out=0)
    base.update(kw)
    return command(Op.EMBED, **base)


_SFU = dict(keys=4, mask_addr=0, bias_in=0, bias_out=0, renorm=0)
_ADD = dict(a_base=0, a_stride=1, b_base=2, b_stride=1, dst_base=4, dst_stride=1, rows=1,
            cols=1, bias_a=0, bias_b=0, bias_out=0)
_ERRORS = [
    ("illegal opcode", 15, None, ErrorCode.ILLEGAL_OPCODE, 0),
    ("reserved bit", 1 << 127, None, ErrorCode.RESERVED_BITS, 0),
    ("reserved bit of ADD", encode(command(Op.ADD, **_ADD)) | 1 << 120, None,
     ErrorCode.RESERVED_BITS, 0),
    ("bias beyond the register", None, command(Op.ADD, **{**_ADD, "bias_out": 9}),
     ErrorCode.BAD_FIELD, 0),
    ("zero rows", None, command(Op.SOFTMAX, **_mat(rows=0), **_SFU), ErrorCode.BAD_FIELD, 0),
    ("keys beyond the row", None, command(Op.SOFTMAX, **_mat(), **{**_SFU, "keys": 5}),
     ErrorCode.BAD_FIELD, 0),
    ("aux address beyond aux", None, command(Op.SOFTMAX, **_mat(), **{**_SFU, "mask_addr": 16}),
     ErrorCode.BAD_FIELD, 0),
    ("source beyond act", None, command(Op.SOFTMAX, **_mat(x_base=31, cols=2), **_SFU),
     ErrorCode.OUT_OF_RANGE, 0),
    ("destination overlaps a source", None, command(Op.ADD, **{**_ADD, "dst_base": 2}),
     ErrorCode.OVERLAP, 0),
    ("empty descriptor", None, command(Op.MATMUL, x_base=0, x_stride=1, dst_base=8,
                                       dst_stride=1, rows=1, desc=1, bias_x=0, bias_w=0,
                                       bias_b=0, bias_out=0, relu=0, transpose=0),
     ErrorCode.BAD_DESCRIPTOR, 0),
    ("EMBED destination beyond act", None, _embed(dst_base=31, cols=2),
     ErrorCode.OUT_OF_RANGE, 0),
    ("EMBED tokens beyond the rows", None, _embed(tokens=5), ErrorCode.BAD_FIELD, 0),
]


def test_errors_stop_with_a_code_and_the_pc():
    dut = Top(memmap=_MM, max_k=16, max_len=16, max_classes=4, dvfs_bins=4, max_layers=4)
    results = []
    # EMBED's token entries (aux words 8, 9), the tables' rows: the first token is valid, the
    # second one is not (the unit has read the first one's rows when it finds out).
    bad_tokens = [[0, 1], [0, 2], [0, 1 | 5 << TOKEN_ROW_BITS]]
    dvfs = encode(command(Op.DVFS, layer=1, table_addr=0, bins=1))

    async def load_and_run(ctx, words):
        for addr in range(_MM.prog_words):
            ctx.set(dut.host_prog.valid, 1)
            ctx.set(dut.host_prog.payload, {"addr": addr,
                                            "data": words[addr] if addr < len(words) else 0,
                                            "en": 0xFFFF})
            await ctx.tick()
        ctx.set(dut.host_prog.valid, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(100):
            await ctx.tick()
            if ctx.get(dut.done):
                return ctx.get(dut.error), ctx.get(dut.error_pc)
        raise AssertionError(f"the top hung: {results}")

    async def put_aux(ctx, word, value):
        ctx.set(dut.host_aux.valid, 1)
        ctx.set(dut.host_aux.payload, {"addr": word, "data": value,
                                       "en": (1 << _MM.word_bytes("aux")) - 1})
        await ctx.tick()
        ctx.set(dut.host_aux.valid, 0)

    async def bench(ctx):
        ctx.set(dut.vocab_rows, 2)
        ctx.set(dut.seg_rows, 2)
        ctx.set(dut.pos_rows, 4)
        # The host writes a tile word and reads it back while the top is idle.
        tile = int.from_bytes(bytes(range(1, 17)), "little")
        ctx.set(dut.host_act.valid, 1)
        ctx.set(dut.host_act.payload, {"addr": 5, "data": tile, "en": 0xFFFF})
        await ctx.tick()
        ctx.set(dut.host_act.valid, 0)
        ctx.set(dut.host_rd_en, 1)
        ctx.set(dut.host_rd_addr, 5)
        await ctx.tick()
        ctx.set(dut.host_rd_en, 0)
        results.append(ctx.get(dut.host_rd_data) == tile)
        # Descriptor 2: a 4 x 4 matrix whose masks (all zero) disagree with its nnz.
        ctx.set(dut.host_desc.valid, 1)
        ctx.set(dut.host_desc.payload, {"addr": 2, "data": MATRIX_DESC.pack(
            {"mask_base": 0, "value_base": 0, "bias_base": 0, "k": 1, "cols": 1, "nnz": 5}),
            "en": 0xFFFF})
        await ctx.tick()
        ctx.set(dut.host_desc.valid, 0)
        for _, word, cmd, _, _ in _ERRORS:
            results.append(await load_and_run(ctx, [encode(cmd) if word is None else word]))
        # The engine refuses the matrix: its error stops the program.
        results.append(await load_and_run(ctx, [encode(command(
            Op.MATMUL, x_base=0, x_stride=1, dst_base=8, dst_stride=1, rows=1, desc=2,
            bias_x=0, bias_w=0, bias_b=0, bias_out=0, relu=0, transpose=0))]))
        # A valid pair (the program then ends), a token row beyond the token table, a segment
        # beyond the segment table: EMBED runs, or the embedding unit stops the top.
        for entries in bad_tokens:
            for t, v in enumerate(entries):
                await put_aux(ctx, 8 + t, v)
            results.append(await load_and_run(ctx, [encode(_embed())]))
        # The second command fails: the first one ran.
        results.append(await load_and_run(ctx, [dvfs, 15]))
        # No END: the program runs off the end of the program memory.
        results.append(await load_and_run(ctx, [dvfs] * _MM.prog_words))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert results.pop(0), "the host read back another tile than it wrote"
    want = [(int(code), pc) for _, _, _, code, pc in _ERRORS]
    want += [(ErrorCode.UNIT_ERROR, 0), (ErrorCode.NONE, 0), (ErrorCode.UNIT_ERROR, 0),
             (ErrorCode.UNIT_ERROR, 0), (ErrorCode.ILLEGAL_OPCODE, 1),
             (ErrorCode.PROGRAM_OVERRUN, _MM.prog_words)]
    assert results == want, [(e[0], r, w) for e, r, w in zip(_ERRORS, results, want,
                                                               strict=False)]
    # The golden checks refuse the same commands (the top is stricter on overlaps only in
    # interleaved layouts the compiler never makes: it compares word ranges).
    fmt = lay_out(build_tiny_image()[0]).fmt
    for what, _, cmd, code, _ in _ERRORS:
        if cmd is None or code is ErrorCode.BAD_DESCRIPTOR:
            continue
        with pytest.raises(ProgramError):
            check_command(0, cmd, _MM, fmt)
            raise AssertionError(f"{what}: the golden checks accept it")
