import random

import pytest
import torch

from hw.embed_unit import EmbedError, EmbedUnit
from hw.isa import Op
from hw.layouts import AFFormat
from hw.memmap import MemoryMap
from hw.timing import FETCH_CYCLES, embed_cycles, embed_reram_reads
from sim.embed_sim import case_from_layout, random_case, reference, simulate
from sim.selfcheck import blocks
from sw.program.compiler import compile_program
from sw.program.cycles import command_cost
from sw.program.executor import GoldenExecutor
from sw.program.layout import lay_out


@pytest.fixture(scope="module")
def tiny():
    from sw.tiny_image import build_tiny_image

    return build_tiny_image()[0]


def _golden_case(img, memmap, tokens, seed):
    """An EMBED case of the tiny image and what the golden executor writes for it."""
    lay = lay_out(img, memmap)
    c = lay.config
    prog = compile_program(lay, tokens)
    cmd = prog.commands[0]
    assert cmd.op is Op.EMBED
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, c["vocab_size"], (1, tokens), generator=g)
    segs = torch.randint(0, c["type_vocab"], (1, tokens), generator=g)
    ex = GoldenExecutor(lay)
    res = ex.run(prog.program_bytes(), rows, segs, trace=True)
    want = res.trace[0].data["codes"][0].tolist()
    case = case_from_layout(lay, cmd, rows[0].tolist(), segs[0].tolist())
    return case, want, command_cost(cmd, ex).cycles - FETCH_CYCLES


def _check_model(case, got):
    p, mm = case.ports, case.memmap
    assert got["reads"] == embed_reram_reads(p["cols"], p["tokens"], mm.n, mm.reram_word_bytes)
    assert got["cycles"] == embed_cycles(p["rows"], p["cols"], p["tokens"], mm.n,
                                         mm.reram_word_bytes, mm.reram_latency)


@pytest.mark.parametrize(("tokens", "word_bytes", "latency", "seed"),
                         [(16, 8, 2, 0), (7, 8, 2, 1), (1, 8, 0, 2), (13, 4, 3, 3), (10, 2, 1, 4),
                          (9, 16, 2, 5)])
def test_tiny_image_equals_golden_executor(tiny, tokens, word_bytes, latency, seed):
    mm = MemoryMap(n=4, reram_bytes=1024, reram_word_bytes=word_bytes, reram_latency=latency)
    case, want, model = _golden_case(tiny, mm, tokens, seed)
    got = simulate(case, max_cols=4)
    assert not got["error"]
    assert got["codes"] == want
    _check_model(case, got)
    assert got["cycles"] == model   # the program's cycle model prices EMBED as the unit runs
    n, cols = mm.n, case.ports["cols"]
    assert got["order"] == [(r, j) for r in range(len(want)) for j in range(cols)]
    assert len(want) == case.ports["rows"] * n


def test_random_output_stalls_lose_and_reorder_nothing(tiny):
    mm = MemoryMap(n=4, reram_bytes=1024)
    case, want, _ = _golden_case(tiny, mm, 11, 7)
    got = simulate(case, max_cols=4, p_ready=0.4, seed=3)
    assert got["codes"] == want
    assert got["order"] == [(r, j) for r in range(len(want)) for j in range(case.ports["cols"])]
    assert got["reads"] == embed_reram_reads(case.ports["cols"], 11, 4, 8)


@pytest.mark.parametrize(("n", "word_bytes", "latency", "cols"),
                         [(16, 8, 2, 3), (8, 1, 0, 2), (2, 16, 4, 5), (32, 4, 1, 1)])
def test_random_tables_equal_reference(n, word_bytes, latency, cols):
    mm = MemoryMap(n=n, reram_bytes=8192, reram_word_bytes=word_bytes, reram_latency=latency)
    tokens = 9
    case = random_case(mm, random.Random(n + cols), cols=cols, rows=-(-(tokens + 1) // n),
                       tokens=tokens, density=0.6)
    want, err = reference(case)
    assert err is EmbedError.NONE
    got = simulate(case, p_ready=0.7, seed=1)
    assert got["codes"] == want
    assert got["reads"] == embed_reram_reads(cols, tokens, n, word_bytes)


def test_value_reads_wrap_around_the_store(tiny):
    mm = MemoryMap(n=4, reram_bytes=1024)
    case, _, _ = _golden_case(tiny, mm, 5, 9)
    image = bytearray(case.image) + bytes(1024 - len(case.image))
    # Row 3's values start 5 bytes before the end of the store: they run on from byte 0.
    row = case.entries[0] & 0xFFFFFF
    ptr = 1024 - 5 - case.ports["value_base"]
    image[case.ports["rowptr_base"] + 4 * row:][:4] = ptr.to_bytes(4, "little")
    image[1019:1024] = bytes([0x31, 0x42, 0x53, 0x64, 0x75])
    case.image = bytes(image)
    want, err = reference(case)
    assert err is EmbedError.NONE
    got = simulate(case, max_cols=4)
    assert got["codes"] == want
    _check_model(case, got)


@pytest.mark.parametrize(("change", "code"), [
    ({"entry": 38}, EmbedError.TOKEN_ROW),
    ({"entry": 1 | 2 << 24}, EmbedError.SEGMENT),
    ({"mask_base": 4}, EmbedError.ADDRESS),
    ({"value_base": 1024}, EmbedError.ADDRESS),
    ({"pos_base": 1016}, EmbedError.ADDRESS),
    ({"cols": 5}, EmbedError.COMMAND),
    ({"tokens": 9}, EmbedError.COMMAND),
    ({"rows": 0}, EmbedError.COMMAND),
])
def test_errors_finish_with_their_code(tiny, change, code):
    mm = MemoryMap(n=4, reram_bytes=1024)
    case, _, _ = _golden_case(tiny, mm, 6, 11)
    change = dict(change)
    if "entry" in change:
        case.entries[4] = change.pop("entry")   # a late token: earlier rows are in flight
    case.ports.update(change)
    assert reference(case, max_cols=4) == (None, code)
    got = simulate(case, max_cols=4, max_cycles=2000)
    assert got["error"] == 1
    assert got["err_code"] is code


def test_selfcheck_matches_reference():
    block = blocks()["embed_unit"]
    out = block.selfcheck(**dict(block.params, n=4, reram_word_bytes=4, reram_latency=1))
    assert "equal the reference" in out


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="memmap.n \\(16\\) must equal n \\(4\\)"):
        EmbedUnit(n=4, memmap=MemoryMap(n=16))
    with pytest.raises(ValueError, match="reram_bytes must be a power of two"):
        EmbedUnit(n=4, memmap=MemoryMap(n=4, reram_bytes=24 * 1024))
    with pytest.raises(ValueError, match="reram_bytes must be at most 2\\^24"):
        EmbedUnit(n=4, memmap=MemoryMap(n=4, reram_bytes=1 << 25))
    with pytest.raises(ValueError, match="max_cols must be an integer in 1..255, not 0"):
        EmbedUnit(n=4, memmap=MemoryMap(n=4), max_cols=0)
    with pytest.raises(ValueError, match="fmt.n_bits must be 8, not 6"):
        EmbedUnit(n=4, fmt=AFFormat(n_bits=6, exp_bits=2), memmap=MemoryMap(n=4))
    with pytest.raises(TypeError, match="memmap must be a MemoryMap, not 'x'"):
        EmbedUnit(n=4, memmap="x")
