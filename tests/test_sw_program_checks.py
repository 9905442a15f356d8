"""The command program's guards and exact pieces: static checks, memory fit, the executor's
float64 matmul path, the embedding gather, and the host front end's handling of bad input."""

import re

import numpy as np
import pytest
import torch

from hw.isa import LAYOUTS, MATRIX_DESC, WORD_BYTES, Op, command, encode_program
from hw.layouts import DEFAULT_AF
from hw.memmap import MemoryMap
from sw.adaptivfloat import decode_parts
from sw.golden.embedding import gather_rows
from sw.golden.matmul import matmul as golden_matmul
from sw.image import ImageError, image_bytes, parse_image
from sw.program.checks import ProgramError, check_command
from sw.program.compiler import compile_program
from sw.program.executor import GoldenExecutor, exact_bound
from sw.program.frontend import encode_texts
from sw.program.layout import MATRIX_ORDER, FitError, MemoryLayout, lay_out
from sw.sparse import pack_bitmask, unpack_bitmask
from sw.tiny_image import TINY_N, build_tiny_image
from sw.tokenizer import WordPiece

N = TINY_N
FMT = DEFAULT_AF
MEMMAP = MemoryMap(n=N)


@pytest.fixture(scope="module")
def tiny():
    img, info = build_tiny_image()
    return img, lay_out(img)


def _fields(op, **over):
    """Every field of ``op`` at a harmless value (one tile, bias 0), then ``over``."""
    base = {"rows": 1, "cols": 1, "k": 1, "classes": 2, "bins": 1, "layer": 1}
    f = {name: base.get(name, 1 if name.endswith("_stride") else 0) for name, _ in LAYOUTS[op]}
    return command(op, **{**f, **over})


# -- static checks ------------------------------------------------------------------------------
BAD = {
    "overlap": (
        # a: words 0,1 / 2,3 (2 x 2 tiles, stride 2); dst: words 2,3 / 4,5.
        _fields(Op.ADD, a_base=0, a_stride=2, b_base=100, b_stride=2, dst_base=2, dst_stride=2,
                rows=2, cols=2),
        "the destination overlaps source a (act words 2..3)"),
    "beyond act": (
        # x: tiles at words 1020 and 1020 + 4 = 1024 (the act memory has 1024 words).
        _fields(Op.MATMUL_ACT, x_base=1020, x_stride=4, w_base=0, dst_base=200, rows=2, k=1),
        "operand x reaches act word 1024, beyond the act memory (1024 words)"),
    "bias": (
        _fields(Op.ADD, a_base=0, b_base=1, dst_base=2, bias_out=8),
        "bias_out = 8 is outside the bias register range 0..7"),
    "zero dimension": (
        _fields(Op.LAYERNORM, x_base=0, dst_base=4, cols=0),
        "cols must be at least one tile, not 0"),
    "descriptor": (
        _fields(Op.MATMUL, x_base=0, dst_base=100, desc=64),
        "descriptor 64 is beyond the descriptor memory (64 entries)"),
    "softmax keys": (
        _fields(Op.SOFTMAX, x_base=0, dst_base=10, rows=1, cols=2, keys=9),
        "keys = 9 is more than the row's 8 elements"),
    "aux address": (
        _fields(Op.LAYERNORM, x_base=0, dst_base=4, param_addr=1024),
        "param_addr = 1024 is beyond the aux memory (1024 words)"),
}


@pytest.mark.parametrize("case", BAD)
def test_check_command_refuses(case):
    cmd, message = BAD[case]
    with pytest.raises(ProgramError, match=re.escape(f"command 5 ({cmd.op.name}): {message}")):
        check_command(5, cmd, MEMMAP, FMT, desc=None)


@pytest.mark.parametrize("case", BAD)
def test_executor_refuses_program_with_bad_command(tiny, case):
    _, lay = tiny
    cmd, message = BAD[case]
    ok = _fields(Op.ADD, a_base=0, b_base=1, dst_base=2)
    program = encode_program([ok, cmd, command(Op.END)])
    with pytest.raises(ProgramError, match=re.escape(f"command 1 ({cmd.op.name}): {message}")):
        GoldenExecutor(lay).run(program, torch.zeros(1, 3, dtype=torch.int64))


def test_check_command_accepts_the_good_twins():
    check_command(0, _fields(Op.ADD, a_base=0, a_stride=2, b_base=100, b_stride=2, dst_base=4,
                             dst_stride=2, rows=2, cols=2), MEMMAP, FMT)
    check_command(0, _fields(Op.SOFTMAX, x_base=0, dst_base=10, cols=2, keys=8), MEMMAP, FMT)
    check_command(0, _fields(Op.ADD, a_base=0, b_base=1, dst_base=1023, bias_out=7), MEMMAP, FMT)


def test_executor_refuses_empty_descriptor_and_wrong_length(tiny):
    _, lay = tiny
    used = lay.images["desc"].size // WORD_BYTES
    prog = encode_program([_fields(Op.MATMUL, x_base=0, dst_base=100, desc=used),
                           command(Op.END)])
    with pytest.raises(ProgramError, match=re.escape(
            f"command 0 (MATMUL): descriptor {used} holds no matrix")):
        GoldenExecutor(lay).run(prog, torch.zeros(1, 3, dtype=torch.int64))
    p8 = compile_program(lay, 8)
    with pytest.raises(ProgramError, match=re.escape(
            "the program embeds 8 tokens; the sentences have 5")):
        GoldenExecutor(lay).run(p8.program_bytes(), torch.zeros(1, 5, dtype=torch.int64))


# -- fit ------------------------------------------------------------------------------------------
def _words(nbytes, word_bytes):
    return -(-nbytes // word_bytes)


def test_act_memory_fit(tiny):
    img, lay = tiny
    prog = compile_program(lay, 16)
    words = [b.words(N) for b in prog.buffers.values()]
    need = sum(len(w) for w in words)
    assert len(set().union(*words)) == need          # the buffers do not overlap
    assert max(set().union(*words)) == need - 1       # and are packed from word 0
    compile_program(lay_out(img, MemoryMap(n=N, act_words=need)), 16)
    small = lay_out(img, MemoryMap(n=N, act_words=need - 3))
    with pytest.raises(FitError, match=re.escape(
            f"a 16-token sentence does not fit the act memory: it needs {need} words of 16 "
            f"bytes, the memory has {need - 3} (short by 3 words)")):
        compile_program(small, 16)
    compile_program(small, 8)  # a shorter sentence still fits


def test_prog_memory_fit(tiny):
    img, lay = tiny
    count = len(compile_program(lay, 10).commands)
    assert count == len(compile_program(lay_out(img, MemoryMap(n=N, prog_words=count)), 10)
                        .commands)
    with pytest.raises(FitError, match=re.escape(
            f"the program does not fit the prog memory: {count} commands, the memory has "
            f"{count - 2} (short by 2)")):
        compile_program(img, 10, memmap=MemoryMap(n=N, prog_words=count - 2))


def test_wval_memory_fit(tiny):
    img, _ = tiny
    c = img.meta["student_config"]
    # Each matrix's packed codes start on a value word of n codes; then the MATMUL_ACT region
    # (w copied as dense vectors: d x max_len codes, d the head size).
    need = sum(_words(img[f"{m}.values"].array.size, N) for m in MATRIX_ORDER(c["layers"]))
    need += c["hidden"] // c["heads"] * c["max_len"] // N
    lay_out(img, MemoryMap(n=N, wval_words=need))
    with pytest.raises(FitError, match=re.escape(
            f"the model does not fit the wval memory: it needs {need} words of 4 bytes, the "
            f"memory has {need - 5} (short by 5 words, 20 bytes)")):
        lay_out(img, MemoryMap(n=N, wval_words=need - 5))


def test_reram_memory_fit(tiny):
    img, _ = tiny
    c = img.meta["student_config"]
    v, e = c["vocab_size"], c["emb_dim"]
    wb = 8
    parts = [4 * v,                                    # row pointers (u32)
             v * e // N,                               # one byte-wide mask per n values
             img["word.values"].array.size,            # packed token codes
             c["max_len"] * e, c["type_vocab"] * e]    # position and segment tables
    need = sum(_words(p, wb) for p in parts)
    lay_out(img, MemoryMap(n=N, reram_bytes=need * wb))
    with pytest.raises(FitError, match=re.escape(
            f"the model does not fit the reram memory: it needs {need} words of 8 bytes, the "
            f"memory has {need - 1} (short by 1 words, 8 bytes)")):
        lay_out(img, MemoryMap(n=N, reram_bytes=(need - 1) * wb))


@pytest.mark.parametrize("tokens", [0, 17, -1, 2.0, True])
def test_sentence_length_refused(tiny, tokens):
    _, lay = tiny
    with pytest.raises(ValueError, match=re.escape(
            f"a sentence has 1..16 tokens (max_len), not {tokens!r}")):
        compile_program(lay, tokens)


def test_image_for_other_hardware_refused(tiny):
    img, _ = tiny
    with pytest.raises(ImageError, match=re.escape(
            "the image was built for vector width n = 4; this accelerator has n = 8")):
        lay_out(img, MemoryMap(n=8))


def test_image_with_unknown_version_refused(tiny):
    img, _ = tiny
    data = bytearray(image_bytes(img))
    assert parse_image(bytes(data)).model == img.model
    data[8:10] = (7).to_bytes(2, "little")  # the version field; nothing else fixed up
    with pytest.raises(ImageError, match=re.escape(
            "image has format version 7; this reader reads versions 1, 2 only")):
        parse_image(bytes(data))


# -- exactness of the executor's matmul path ----------------------------------------------------
def _random_codes(gen, shape, zero_frac=0.2, max_frac=0.2):
    """Codes of every magnitude, with many zeros and many of the two largest codes."""
    codes = torch.randint(1, 256, shape, generator=gen)
    codes[codes == 0x80] = 0x81                                 # no negative zero
    r = torch.rand(shape, generator=gen)
    codes[r < zero_frac] = 0
    big = (r >= zero_frac) & (r < zero_frac + max_frac)
    codes[big] = torch.where(torch.rand(shape, generator=gen) < 0.5, 0x7F, 0xFF)[big]
    return codes.to(torch.uint8)


def _mask_words(masks, n):
    """Weight-mask memory words as :mod:`sw.program.layout` documents them: word
    ``cb * (K / n) + j`` holds the masks of rows ``k = j * n + t`` at bits ``t * n``."""
    blocks, k = masks.shape
    out = bytearray()
    for cb in range(blocks):
        for j in range(k // n):
            word = sum(int(masks[cb, j * n + t]) << (t * n) for t in range(n))
            out += word.to_bytes(n * n // 8, "little")
    return np.frombuffer(bytes(out), dtype=np.uint8).copy()


def _hand_layout(w, bias, n):
    """A layout holding one matrix (descriptor 0), placed by hand from the documented formats."""
    p = pack_bitmask(w, n)
    k, cols = w.shape
    desc = MATRIX_DESC.pack({"mask_base": 0, "value_base": 0, "bias_base": 0, "k": k // n,
                             "cols": cols // n, "nnz": p.nnz})
    mm = MemoryMap(n=n, act_words=4096)
    images = {"desc": np.frombuffer(desc.to_bytes(WORD_BYTES, "little"), np.uint8).copy(),
              "wmask": _mask_words(p.masks, n), "wval": p.values.numpy().copy(),
              "wbias": bias.numpy().copy(), "aux": np.zeros(64, np.uint8),
              "reram": np.zeros(8, np.uint8)}
    return MemoryLayout(memmap=mm, config={}, fmt=FMT, images=images, symbols={},
                        desc_index={"m": 0})


@pytest.mark.parametrize("k,cols,rows,relu", [
    (16, 16, 16, False), (64, 32, 48, True), (1024, 32, 16, False), (1024, 16, 32, True)])
def test_executor_matmul_equals_golden_matmul(k, cols, rows, relu):
    n = 16
    gen = torch.Generator().manual_seed(k + cols + rows + relu)
    w = _random_codes(gen, (k, cols))
    bias = _random_codes(gen, (cols,))
    x = _random_codes(gen, (2, rows, k))
    ex = GoldenExecutor(_hand_layout(w, bias, n))
    desc = ex.matrix(0)
    assert torch.equal(desc["w"], w)
    assert torch.equal(desc["bias"], bias)
    for bias_x, bias_w, bias_b, bias_out in ((0, 0, 7, 7), (7, 7, 0, 0), (3, 5, 2, 6)):
        cmd = command(Op.MATMUL, x_base=0, x_stride=k // n, dst_base=2000, dst_stride=cols // n,
                      rows=rows // n, desc=0, bias_x=bias_x, bias_w=bias_w, bias_b=bias_b,
                      bias_out=bias_out, relu=int(relu), transpose=0)
        act = torch.zeros(2, 4096, n, n, dtype=torch.uint8)
        ex.write(act, 0, k // n, x)
        got = ex._op_matmul(cmd, act, desc=desc)["codes"]
        for s in range(2):
            want = golden_matmul(x[s], w, bias, bias_x=bias_x, bias_w=bias_w, bias_b=bias_b,
                                 bias_out=bias_out, relu=relu, fmt=FMT)
            assert torch.equal(got[s], want), (s, bias_x, bias_w, bias_b, bias_out)
        assert torch.equal(ex.read(act, 2000, cols // n, rows // n, cols // n), got)


def test_exact_bound():
    _, exp, sig = decode_parts(torch.tensor([0x7F]), FMT)
    top = int(sig[0]) << int(exp[0])                  # the largest code's integer value
    limit = (1 << 53) // (top * top)                  # most terms whose sum stays below 2^53
    if limit * top * top == 1 << 53:
        limit -= 1
    assert exact_bound(FMT, limit) == limit * top * top < 1 << 53
    assert exact_bound(FMT, 1024) == 1024 * top * top
    k = limit + 1
    with pytest.raises(OverflowError, match=re.escape(
            f"a {k}-term product sum of {FMT} codes may reach {k * top * top} > 2^53: not "
            f"exact in float64")):
        exact_bound(FMT, k)


# -- the embedding gather -----------------------------------------------------------------------
@pytest.mark.parametrize("n,v,e", [(4, 40, 8), (16, 33, 64), (8, 5, 8)])
def test_gather_rows_equals_unpack_bitmask(n, v, e):
    gen = torch.Generator().manual_seed(n * v)
    table = _random_codes(gen, (v, e), zero_frac=0.5)
    table[3 % v] = 0                                         # an all-zero row
    p = pack_bitmask(table.reshape(v * e // n, n), n)
    counts = (table != 0).sum(1)
    rowptr = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)[:-1]])
    masks = p.masks.reshape(-1)
    got = gather_rows(rowptr, masks, p.values, n)
    assert torch.equal(got, unpack_bitmask(p).reshape(v, e))
    assert torch.equal(got, table)
    # Rows gathered in another order from the same packed data.
    perm = torch.randperm(v, generator=gen)
    got = gather_rows(rowptr[perm], masks.reshape(v, -1)[perm].reshape(-1), p.values, n)
    assert torch.equal(got, table[perm])


def test_gather_rows_refuses_values_past_the_end():
    n, v, e = 4, 6, 8
    table = torch.full((v, e), 0x33, dtype=torch.uint8)
    p = pack_bitmask(table.reshape(-1, n), n)
    rowptr = torch.arange(v) * e
    with pytest.raises(ValueError, match=re.escape(
            "a row's packed values run past the end of the value array")):
        gather_rows(rowptr, p.masks.reshape(-1), p.values[:-1], n)
    with pytest.raises(ValueError, match=re.escape(
            "a row's packed values run past the end of the value array")):
        gather_rows(rowptr + 1, p.masks.reshape(-1), p.values, n)
    with pytest.raises(ValueError, match=re.escape("11 masks do not split into 6 rows")):
        gather_rows(rowptr, p.masks.reshape(-1)[:11], p.values, n)


# -- the host front end ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   "])
def test_empty_sentence_refused(tiny, text):
    _, lay = tiny
    with pytest.raises(ValueError, match=re.escape(
            f"texts_a[1] must be a non-empty string, not {text!r}")):
        encode_texts(lay, ["a good film .", text])


def test_overlong_sentence_truncated_and_flagged(tiny):
    img, lay = tiny
    long = " ".join(["the plot is dull"] * 8)               # 32 words, max_len is 16
    enc, n_trunc = encode_texts(lay, ["a gorgeous , witty film .", long])
    assert n_trunc == 1
    assert [e.truncated for e in enc] == [False, True]
    tok = WordPiece(max_len=64)
    cls, sep = tok.cls_id, tok.sep_id
    e = enc[1]
    assert e.length == 16
    assert e.ids[0] == cls and e.ids[-1] == sep
    assert e.ids[1:-1] == tok.encode([long]).input_ids[0, 1:15].tolist()
    ids = torch.from_numpy(img["vocab.ids"].array.astype(np.int64))
    assert torch.equal(ids[e.rows], torch.tensor(e.ids))    # every kept word has its own row
    # A word outside the kept vocabulary reads the [UNK] row.
    (odd,), _ = encode_texts(lay, ["zebra"])
    assert int(ids[odd.rows[1]]) == tok.unk_id != odd.ids[1]
    prog = compile_program(lay, e.length)
    r = GoldenExecutor(lay).run(prog.program_bytes(), e.rows[None], e.segments[None])
    assert int(r.exit_layer[0]) in (1, 2)

