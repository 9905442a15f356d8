"""Byte layouts of the structured blocks in the aux and ReRAM memories ([C3]).

One definition, read by the compiler that writes the blocks, the golden executor that reads
them and the gateware that will: offsets are in bytes from the start of a block, and every part
of a block starts on an aux word (``word_bytes``). Scalars are little-endian unsigned integers
of :data:`hw.isa.SCALAR_BYTES` bytes; span masks are little-endian 16-bit fixed point
(``SPAN_MASK_FRAC`` fractional bits, 0 .. 1.0 inclusive).
No Amaranth or PyTorch import.
"""

from dataclasses import dataclass

from hw.isa import SCALAR_BYTES

__all__ = ["LnBlock", "MaskBlock", "DvfsBlock", "TOKEN_ROW_BITS", "token_word", "MASK_BYTES"]

# A token entry (one aux word): the token-table row in the low TOKEN_ROW_BITS bits, the segment
# above them.
TOKEN_ROW_BITS = 24
MASK_BYTES = 2


def _words(nbytes, word_bytes):
    return -(-nbytes // word_bytes)


def token_word(row, segment):
    """The scalar the host writes for one token: row index and segment id."""
    if not 0 <= row < 1 << TOKEN_ROW_BITS:
        raise ValueError(f"token row must be in 0..{(1 << TOKEN_ROW_BITS) - 1}, not {row}")
    if not 0 <= segment < 1 << (8 * SCALAR_BYTES - TOKEN_ROW_BITS):
        raise ValueError(f"segment must be in 0..255, not {segment}")
    return row | segment << TOKEN_ROW_BITS


@dataclass(frozen=True)
class LnBlock:
    """A LayerNorm parameter block: gamma codes, beta codes, then one epsilon register per value
    of the input bias (epsilon is in units of the squared input step, so it depends on it)."""

    cols: int
    bias_levels: int
    word_bytes: int

    @property
    def gamma(self):
        return 0

    @property
    def beta(self):
        return _words(self.cols, self.word_bytes) * self.word_bytes

    @property
    def eps(self):
        return 2 * self.beta

    def eps_at(self, bias_in):
        return self.eps + bias_in * self.word_bytes

    @property
    def words(self):
        return self.eps // self.word_bytes + self.bias_levels


@dataclass(frozen=True)
class MaskBlock:
    """The span mask of one head: one 16-bit entry per key position 0 .. max_len - 1."""

    max_len: int
    word_bytes: int

    @property
    def words(self):
        return _words(self.max_len * MASK_BYTES, self.word_bytes)


@dataclass(frozen=True)
class DvfsBlock:
    """The DVFS table: ``bins - 1`` entropy edges (scalars, one per word), then per bin the
    predicted exit layer, the voltage code and the frequency code (bytes, a part each)."""

    bins: int
    word_bytes: int

    @property
    def edges(self):
        return 0

    @property
    def layers(self):
        return (self.bins - 1) * self.word_bytes

    @property
    def vcodes(self):
        return self.layers + _words(self.bins, self.word_bytes) * self.word_bytes

    @property
    def fcodes(self):
        return self.vcodes + _words(self.bins, self.word_bytes) * self.word_bytes

    @property
    def words(self):
        return self.fcodes // self.word_bytes + _words(self.bins, self.word_bytes)
