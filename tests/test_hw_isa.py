"""The instruction set (hw/isa.py): command words, descriptors, their errors, the layout table."""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hw.isa import (
    EMBED_DESC,
    LAYOUTS,
    MATRIX_DESC,
    OPCODE_BITS,
    WORD_BITS,
    WORD_BYTES,
    Command,
    IsaError,
    Op,
    command,
    decode,
    decode_program,
    encode,
    encode_program,
    layout_table,
)

ROOT = Path(__file__).resolve().parents[1]


def _used_bits(op):
    return OPCODE_BITS + sum(w for _, w in LAYOUTS[op])


def _expected_word(op, fields):
    """The word as the module docstring defines it: opcode low, then fields LSB first."""
    word, pos = int(op), OPCODE_BITS
    for f, w in LAYOUTS[op]:
        word |= fields[f] << pos
        pos += w
    return word


def _random_fields(rng, layout, mode):
    if mode == "max":
        return {f: (1 << w) - 1 for f, w in layout}
    if mode == "zero":
        return {f: 0 for f, _ in layout}
    return {f: rng.randrange(1 << w) for f, w in layout}


def test_every_opcode_fits_one_word():
    assert WORD_BYTES * 8 == WORD_BITS == 128
    assert set(LAYOUTS) == set(Op)
    for op in Op:
        assert _used_bits(op) <= WORD_BITS, op
        assert len({f for f, _ in LAYOUTS[op]}) == len(LAYOUTS[op]), op


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_encode_decode_round_trip(op):
    rng = random.Random(int(op))
    for trial in range(200):
        mode = ("max", "zero")[trial] if trial < 2 else "random"
        fields = _random_fields(rng, LAYOUTS[op], mode)
        word = encode(Command(op, fields))
        assert word == _expected_word(op, fields)
        assert 0 <= word < 1 << _used_bits(op)
        back = decode(word)
        assert back.op is op
        assert back.fields == fields
        assert list(back.fields) == [f for f, _ in LAYOUTS[op]]
        for f, v in fields.items():
            assert getattr(back, f) == v


def test_max_fields_set_every_used_bit():
    for op in Op:
        fields = _random_fields(None, LAYOUTS[op], "max")
        word = encode(Command(op, fields))
        assert word >> OPCODE_BITS == (1 << (_used_bits(op) - OPCODE_BITS)) - 1, op


def test_command_helper_orders_and_checks_fields():
    fields = {f: 1 for f, _ in reversed(LAYOUTS[Op.ADD])}
    cmd = command(Op.ADD, **fields)
    assert list(cmd.fields) == [f for f, _ in LAYOUTS[Op.ADD]]
    assert cmd == decode(encode(cmd))
    with pytest.raises(IsaError, match=re.escape("ADD field 'rows' is missing")):
        command(Op.ADD, **{k: v for k, v in fields.items() if k != "rows"})
    with pytest.raises(AttributeError, match=re.escape("ADD has no field 'desc'")):
        _ = cmd.desc
    assert str(cmd).startswith("ADD ")


@pytest.mark.parametrize("code", range(len(Op), 1 << OPCODE_BITS))
def test_decode_refuses_illegal_opcodes(code):
    word = code | (0xABC << OPCODE_BITS)
    with pytest.raises(IsaError, match=re.escape(f"illegal opcode {code} in word 0x{word:032x}")):
        decode(word)


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_decode_refuses_reserved_bits(op):
    used = _used_bits(op)
    for bit in (used, WORD_BITS - 1):
        word = int(op) | 1 << bit
        with pytest.raises(IsaError, match=re.escape(
                f"{op.name} word has reserved bits {used}..{WORD_BITS - 1} set "
                f"(word 0x{word:032x})")):
            decode(word)


def test_decode_refuses_non_words():
    for bad in (-1, 1 << WORD_BITS):
        with pytest.raises(IsaError, match=re.escape(
                f"a command word is an integer in 0..2^128-1, not {bad!r}")):
            decode(bad)
    with pytest.raises(IsaError, match=re.escape("a command word is an integer in 0..2^128-1, "
                                                 "not '0'")):
        decode("0")


@pytest.mark.parametrize("op", [op for op in Op if LAYOUTS[op]], ids=lambda op: op.name)
def test_encode_refuses_bad_fields(op):
    layout = LAYOUTS[op]
    good = {f: 0 for f, _ in layout}
    for f, w in layout:
        for bad in (1 << w, -1):
            with pytest.raises(IsaError, match=re.escape(
                    f"{op.name} field {f!r} must be in 0..{(1 << w) - 1} ({w} bits), not {bad}")):
                encode(Command(op, {**good, f: bad}))
        with pytest.raises(IsaError, match=re.escape(f"{op.name} field {f!r} is missing")):
            encode(Command(op, {k: v for k, v in good.items() if k != f}))
        with pytest.raises(IsaError, match=re.escape(
                f"{op.name} field {f!r} must be an integer, not 1.0")):
            encode(Command(op, {**good, f: 1.0}))
        if w > 1:
            with pytest.raises(IsaError, match=re.escape(
                    f"{op.name} field {f!r} must be an integer, not True")):
                encode(Command(op, {**good, f: True}))
    with pytest.raises(IsaError, match=re.escape(f"{op.name} has no field 'bogus'")):
        encode(Command(op, {**good, "bogus": 0}))


def test_encode_refuses_fields_on_end_and_non_opcodes():
    with pytest.raises(IsaError, match=re.escape("END has no field 'rows'")):
        encode(Command(Op.END, {"rows": 1}))
    with pytest.raises(IsaError, match=re.escape("illegal opcode 2")):
        encode(Command(2, {}))


def test_program_round_trip():
    rng = random.Random(7)
    cmds = []
    for _ in range(300):
        op = rng.choice(list(Op))
        cmds.append(Command(op, _random_fields(rng, LAYOUTS[op], "random")))
    data = encode_program(cmds)
    assert len(data) == WORD_BYTES * len(cmds)
    assert int.from_bytes(data[:WORD_BYTES], "little") == encode(cmds[0])
    assert decode_program(data) == cmds
    assert decode_program(b"") == []


@pytest.mark.parametrize("length", [1, 15, 17, 33])
def test_program_of_partial_words_refused(length):
    with pytest.raises(IsaError, match=re.escape(
            f"a program is a whole number of 16-byte words, not {length} bytes")):
        decode_program(bytes(length))


@pytest.mark.parametrize("rec", [MATRIX_DESC, EMBED_DESC], ids=lambda r: r.name)
def test_descriptor_round_trip(rec):
    rng = random.Random(rec.name)
    used = sum(w for _, w in rec.fields)
    assert rec.used == used <= WORD_BITS
    for trial in range(200):
        mode = ("max", "zero")[trial] if trial < 2 else "random"
        values = _random_fields(rng, rec.fields, mode)
        word = rec.pack(values)
        expect, pos = 0, 0
        for f, w in rec.fields:
            expect |= values[f] << pos
            pos += w
        assert word == expect
        assert rec.unpack(word) == values
    if used < WORD_BITS:
        word = 1 << used
        with pytest.raises(IsaError, match=re.escape(
                f"{rec.name} word has reserved bits {used}..127 set (word 0x{word:032x})")):
            rec.unpack(word)
    f, w = rec.fields[-1]
    with pytest.raises(IsaError, match=re.escape(
            f"{rec.name} field {f!r} must be in 0..{(1 << w) - 1} ({w} bits), not {1 << w}")):
        rec.pack({**_random_fields(rng, rec.fields, "zero"), f: 1 << w})


def test_layout_table_lists_every_field():
    table = layout_table()
    lines = table.splitlines()
    assert lines[:2] == ["| record | bits | field |", "|---|---|---|"]
    records = [(op.name, int(op), OPCODE_BITS, LAYOUTS[op]) for op in Op]
    records += [(MATRIX_DESC.name, None, 0, MATRIX_DESC.fields),
                (EMBED_DESC.name, None, 0, EMBED_DESC.fields)]
    expected = []
    for name, code, start, fields in records:
        head = name if code is None else f"{name} (opcode {code})"
        if code is not None:
            expected.append(f"| {head} | 3:0 | opcode = {code} |")
            head = ""
        pos = start
        for f, w in fields:
            expected.append(f"| {head} | {pos + w - 1}:{pos} | `{f}` |")
            head = ""
            pos += w
        if pos < WORD_BITS:
            expected.append(f"| {head} | 127:{pos} | reserved (zero) |")
    assert lines[2:] == expected


def test_isa_modules_import_neither_amaranth_nor_torch():
    code = ("import hw.isa, hw.memmap, hw.memformats, sys; "
            "assert 'amaranth' not in sys.modules and 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('amaranth', 'torch'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
