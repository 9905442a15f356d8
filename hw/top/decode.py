"""Command decoding generated from :data:`hw.isa.LAYOUTS` ([C1]): no bit position is written
twice. :func:`fields` slices a command word into an opcode's fields, :func:`reserved` says
whether the bits above the opcode's last field are set; :func:`desc_fields` does the same for a
matrix descriptor (:data:`hw.isa.MATRIX_DESC`) and :func:`embed_desc_fields` for an embedding
descriptor (:data:`hw.isa.EMBED_DESC`).
"""

from amaranth.hdl import Const

from hw.isa import EMBED_DESC, LAYOUTS, MATRIX_DESC, OPCODE_BITS, WORD_BITS

__all__ = ["fields", "used_bits", "reserved", "desc_fields", "embed_desc_fields"]


def _slices(word, layout, start):
    out, pos = {}, start
    for name, width in layout:
        out[name] = word[pos:pos + width]
        pos += width
    return out, pos


def fields(word, op):
    """``{field: Value}`` of opcode ``op``'s fields in ``word``."""
    return _slices(word, LAYOUTS[op], OPCODE_BITS)[0]


def used_bits(op):
    """Bits the opcode and ``op``'s fields occupy (the rest is reserved)."""
    return _slices(Const(0, WORD_BITS), LAYOUTS[op], OPCODE_BITS)[1]


def reserved(word, op):
    """1 if a reserved bit of ``op``'s layout is set in ``word``."""
    used = used_bits(op)
    return word[used:] != 0 if used < WORD_BITS else Const(0)


def desc_fields(word):
    """``{field: Value}`` of a matrix descriptor word."""
    return _slices(word, MATRIX_DESC.fields, 0)[0]


def embed_desc_fields(word):
    """``{field: Value}`` of an embedding descriptor word (ReRAM byte addresses)."""
    return _slices(word, EMBED_DESC.fields, 0)[0]
