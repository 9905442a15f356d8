"""The register map and memory windows (hw/regmap.py): consistency, docs, exact errors."""

import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from hw.entropy import H_BITS
from hw.layouts import DEFAULT_AF, AFFormat
from hw.memmap import MEMORIES, MemoryMap
from hw.regmap import (
    COUNTERS,
    CSR_ADDR_BITS,
    EMBED_ROWS_MAX,
    ENTROPY_BITS,
    ENTROPY_FRAC,
    MAGIC,
    Access,
    ErrorCode,
    Field,
    Register,
    RegisterMap,
    locate,
    pack_words,
    validate_registers,
    window_address_bits,
    windows,
)
from hw.sfu_math import LN_FRAC

ROOT = Path(__file__).resolve().parent.parent
SMALL = MemoryMap(n=4, reram_bytes=96, reram_word_bytes=6, desc_words=8, wmask_words=16,
                  wval_words=40, wbias_words=8, act_words=24, aux_words=16, prog_words=12)


def test_default_map_is_consistent():
    rm = RegisterMap()
    validate_registers(rm.registers)
    offsets = [r.offset for r in rm]
    assert len(set(offsets)) == len(offsets) and all(o % 4 == 0 for o in offsets)
    assert max(offsets) < 1 << CSR_ADDR_BITS
    for r in rm:
        used = 0
        for f in r.fields:
            assert 0 <= f.lsb <= f.msb < 32, (r.name, f.name)
            assert not used & f.mask, (r.name, f.name)
            used |= f.mask
            assert f.reset < 1 << f.width
    assert rm["MAGIC"].reset == MAGIC


def test_required_registers_and_counters_exist():
    rm = RegisterMap()
    for name in ("MAGIC", "VERSION", "CFG_FORMAT", "CFG_RERAM", "CTRL", "STEP", "STATUS",
                 "IRQ_STATUS", "ERROR", "ERROR_PC", "PC", "EXIT_LAYER", "DVFS", "DVFS_BIN",
                 "ENTROPY", "PROG_BASE", "WATCHDOG", "CSR_ERRORS", "LOAD_ERROR_ADDR"):
        rm[name]
    for m in MEMORIES:
        assert rm[f"CFG_DEPTH_{m.upper()}"].reset == MemoryMap().depth(m)
    for stem, _ in COUNTERS:
        lo, hi = rm[f"{stem}_LO"], rm[f"{stem}_HI"]
        assert (lo.port, lo.port_lsb, hi.port, hi.port_lsb) == (stem.lower(), 0, stem.lower(), 32)
        assert hi.offset == lo.offset + 4
    for m in MEMORIES[1:]:
        rm[f"{m.upper()}_READS_LO"], rm[f"{m.upper()}_WRITES_HI"]
    assert {f.name for f in rm["CTRL"].fields} == {"start", "soft_reset", "irq_en", "step_en"}
    assert rm["IRQ_STATUS"].access == "W1C" and rm["CTRL"].access == "RW/W1S"
    assert [e.name for e in ErrorCode][:8] == [
        "NONE", "ILLEGAL_OPCODE", "RESERVED_BITS", "BAD_FIELD", "OUT_OF_RANGE", "OVERLAP",
        "BAD_DESCRIPTOR", "PROGRAM_OVERRUN"]


def test_config_registers_follow_the_generator_parameters():
    fmt = AFFormat(n_bits=8, exp_bits=4, offset=-12, bias_bits=3)
    rm = RegisterMap(memmap=SMALL, fmt=fmt)
    cfg = rm["CFG_FORMAT"].reset
    assert (cfg & 0xFF, cfg >> 8 & 0xFF, cfg >> 16 & 0xF, cfg >> 20 & 0xF) == (4, 8, 4, 3)
    assert (cfg >> 24) - 256 == -12
    assert rm["CFG_RERAM"].reset == 6 | 2 << 8
    assert rm["CFG_DEPTH_WVAL"].reset == 40
    assert rm["PROG_BASE"].field("pc").maximum == 11
    assert RegisterMap().registers != rm.registers


def test_shared_constants_match_the_gateware():
    assert (ENTROPY_BITS, ENTROPY_FRAC) == (H_BITS, LN_FRAC)
    assert vars(RegisterMap()._fmt) == vars(DEFAULT_AF)


def test_embedding_table_registers_bound_every_index_and_fit_the_top():
    from amaranth.hdl import Fragment, Shape

    from hw.top.top import Top

    rm = RegisterMap()
    # A token entry: a 24-bit row and an 8-bit segment; EMBED's tokens field: 12 bits.
    assert EMBED_ROWS_MAX == {"vocab_rows": 1 << 24, "seg_rows": 256, "pos_rows": 4096}
    top = Top(memmap=MemoryMap(n=4, reram_bytes=1024, act_words=64, aux_words=64,
                               wmask_words=64, wval_words=64, wbias_words=16, desc_words=8,
                               prog_words=16))
    Fragment.get(top, None)  # elaborated, so that none of its parts is left unused
    for name, port in (("VOCAB_ROWS", "vocab_rows"), ("SEG_ROWS", "seg_rows"),
                       ("POS_ROWS", "pos_rows")):
        (f,) = rm[name].fields
        assert (rm[name].access, f.reset, f.maximum) == ("RW", 0, EMBED_ROWS_MAX[port])
        assert f.width == Shape.cast(top.signature.members[port].shape).width, name
    assert [rm[n].offset for n in ("VOCAB_ROWS", "SEG_ROWS", "POS_ROWS")] == [0x8C, 0x90, 0x94]


def test_docs_show_the_generated_tables():
    text = (ROOT / "docs" / "accelerator.md").read_text()
    tables = RegisterMap().markdown_tables()
    assert len(tables) == 3
    for table in tables:
        assert table in text


def test_windows_cover_every_memory_aligned_and_disjoint():
    for mm in (MemoryMap(), SMALL, MemoryMap(n=64, act_words=64)):
        ws = windows(mm)
        assert [w.memory for w in ws] == list(MEMORIES)
        end = 0
        for w in ws:
            assert w.size & (w.size - 1) == 0 and w.base % w.size == 0 and w.base >= end
            assert w.stride >= max(4, w.word_bytes) and w.stride & (w.stride - 1) == 0
            assert w.data_end <= w.base + w.size
            end = w.base + w.size
        assert window_address_bits(mm) == (end - 1).bit_length()
    assert window_address_bits() == 22


def test_locate_and_pack_words():
    ws = {w.memory: w for w in windows(SMALL)}
    assert locate(ws["reram"].base + 8 + 5, SMALL) == ("reram", 1, 5)
    assert locate(ws["wval"].data_end, SMALL) is None
    assert pack_words("reram", [0x0605_0403_0201], SMALL) == bytes([1, 2, 3, 4, 5, 6, 0, 0])
    with pytest.raises(ValueError, match=r"^17 words do not fit the reram memory \(16 words\)$"):
        pack_words("reram", [0] * 17, SMALL)
    with pytest.raises(ValueError, match=r"^wmask word 0 must be an integer of 2 bytes, not "
                                         r"65536$"):
        pack_words("wmask", [1 << 16], SMALL)
    with pytest.raises(ValueError, match=r"^memory must be one of"):
        pack_words("dram", [], SMALL)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"memmap": {"n": 4}}, TypeError, "memmap must be a hw.memmap.MemoryMap, not {'n': 4}"),
    ({"fmt": SimpleNamespace(n_bits=8)}, TypeError,
     "fmt must have integer attributes n_bits, exp_bits, offset and bias_bits, not "
     "namespace(n_bits=8)"),
    ({"fmt": SimpleNamespace(n_bits=8, exp_bits=3, offset=-200, bias_bits=3)}, ValueError,
     "fmt.offset must be in -128..127 to fit CFG_FORMAT, not -200"),
    ({"memmap": MemoryMap(prog_words=70000)}, ValueError,
     "prog_words must be at most 65536 (16-bit PC registers), not 70000"),
    ({"memmap": MemoryMap(reram_bytes=300 * 256, reram_word_bytes=300)}, ValueError,
     "reram_word_bytes must be at most 255 to fit CFG_RERAM, not 300"),
    ({"memmap": MemoryMap(reram_bytes=1 << 33)}, ValueError,
     "the memory windows need 34 address bits, more than 32: make the memories smaller"),
])
def test_bad_parameters_give_exact_errors(kwargs, exc, msg):
    with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
        RegisterMap(**kwargs)


def test_bad_memory_map_parameters_give_exact_errors():
    with pytest.raises(ValueError, match=r"^memory map act_words must be a positive integer, "
                                         r"not 0$"):
        MemoryMap(act_words=0)
    with pytest.raises(TypeError, match=r"^memmap must be a hw.memmap.MemoryMap, not None$"):
        windows(None)


def _reg(name="R", offset=0x10, *fields, **kw):
    return Register(name, offset, fields or (Field("a", 0, 8, Access.RW, "a"),), "doc", **kw)


@pytest.mark.parametrize("regs,msg", [
    ([_reg(), _reg()], "register R is defined twice"),
    ([_reg(offset=0x11)], "register R offset 0x11 must be a multiple of 4 below 0x1000"),
    ([_reg(offset=0x1000)], "register R offset 0x1000 must be a multiple of 4 below 0x1000"),
    ([_reg("A"), _reg("B")], "registers A and B overlap at offset 0x10"),
    ([Register("R", 0, (), "doc")], "register R has no fields"),
    ([_reg("R", 0, Field("a", 30, 4, Access.RW, ""))],
     "register R field a (bits 33:30) does not fit 32 bits"),
    ([_reg("R", 0, Field("a", 0, 4, Access.RW, ""), Field("b", 3, 2, Access.RW, ""))],
     "register R field b (bits 4:3) overlaps another field"),
    ([_reg("R", 0, Field("a", 0, 2, Access.RW, "", reset=4))],
     "register R field a reset 4 does not fit 2 bits"),
    ([_reg("R", 0, Field("a", 0, 2, Access.RO, "", maximum=1))],
     "register R field a maximum 1 must be an RW field's value"),
    ([_reg("R", 0, Field("a", 0, 2, Access.RW, "", source="const"))],
     "register R field a: a RW field cannot have source 'const'"),
    ([_reg("R", 0, Field("a", 0, 1, Access.W1S, "", reset=1))],
     "register R field a: a W1S field reads 0 and resets to 0"),
    ([_reg("R", 0, Field("a", 0, 1, Access.RW, ""), Field("a", 1, 1, Access.RW, ""))],
     "register R has two fields with one name"),
    ([_reg("R", 0, Field("a", 0, 1, Access.RW, ""), Field("b", 1, 1, Access.RO, ""))],
     "register R mixes RO/RW fields; RO and W1C registers hold only their own kind"),
    ([_reg("R", 0, Field("a", 0, 32, Access.RW, ""), port="x")],
     "register R is a slice of port x: it must be one RO field"),
])
def test_bad_registers_give_exact_errors(regs, msg):
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        validate_registers(regs)


def test_register_lookup_errors():
    rm = RegisterMap()
    with pytest.raises(KeyError, match="no register 'NOPE'"):
        rm["NOPE"]
    with pytest.raises(KeyError, match="register CTRL has no field 'go'"):
        rm["CTRL"].field("go")
    assert rm.by_offset(0xFFC) is None and rm.by_offset(0).name == "MAGIC"
    assert replace(rm["CTRL"], offset=0).offset == 0
