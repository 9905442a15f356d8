"""The accelerator's command program ([C1]): opcodes, fixed-width command words, descriptors.

This module is the one definition of the instruction set. The compiler (:mod:`sw.program`)
writes it, the golden executor and the RTL sequencer decode it, and the cycle and energy models
price it. It imports neither Amaranth nor PyTorch.

Every command is one :data:`WORD_BITS`-bit word: the opcode in bits ``[OPCODE_BITS-1:0]``,
then the opcode's fields LSB first in the order of :data:`LAYOUTS`; bits above the last field
are reserved and must be zero. ``docs/program.md`` shows the layouts as a table generated from
:func:`layout_table`.

Operands in the activation memory are *matrices*: ``rows x cols`` AdaptivFloat codes (both
multiples of n) stored as n x n tiles, one tile per activation word (n banks of n codes,
bank ``i`` holding row ``i`` of the tile). Tile ``(rt, ct)`` of a matrix with base ``B`` and
stride ``S`` lives at word ``B + rt * S + ct``, so a column slice (one attention head) is the
same matrix with its base moved by ``c0 / n`` words, and a row slice by ``r0 / n * S``. Field
names end in ``_base`` and ``_stride`` for these; ``rows``, ``k`` and ``cols`` count tiles.

Weight matrices and the embedding tables are named by *descriptors*: 128-bit entries of the
descriptor memory (:data:`MATRIX_DESC`, :data:`EMBED_DESC`), which give their addresses in the
weight memories and in the ReRAM embedding store.
"""

import enum
from dataclasses import dataclass

__all__ = [
    "WORD_BITS", "WORD_BYTES", "OPCODE_BITS", "Op", "LAYOUTS", "Command", "IsaError", "encode",
    "decode", "encode_program", "decode_program", "Record", "MATRIX_DESC", "EMBED_DESC",
    "layout_table", "SCALAR_BYTES",
]

WORD_BITS = 128
WORD_BYTES = WORD_BITS // 8
OPCODE_BITS = 4
# Scalars in the aux memory (thresholds, eps, table entries, token rows) are little-endian
# unsigned integers of this many bytes at the start of an aux word.
SCALAR_BYTES = 4

# Field widths shared by several opcodes.
_ADDR = 16      # activation-memory word address (one n x n tile per word)
_STRIDE = 8     # words between vertically adjacent tiles
_TILES = 8      # a dimension in tiles of n
_BIAS = 6       # an AdaptivFloat bias register (the format's bias_bits must fit)
_AUX = 16       # aux-memory word address
_DESC = 8       # descriptor index
_COUNT = 12     # a count of elements (valid tokens or keys)


class IsaError(ValueError):
    """An illegal command word or field: names the opcode and field at fault."""


class Op(enum.IntEnum):
    """Opcodes. Each command names its source and destination buffers and its biases."""

    END = 0         # stop; the exit layer is the last ENTROPY's layer
    EMBED = 1       # token rows from the ReRAM store + position + segment rows -> dst
    MATMUL = 2      # dst = requant(act(x . W + bias)), W a packed weight matrix (descriptor)
    MATMUL_ACT = 3  # dst = requant(x . w), w a matrix of the activation memory (Q.K^T, P.V)
    SOFTMAX = 4     # row softmax x span mask (aux), keys >= `keys` masked, optional renorm
    LAYERNORM = 5   # row LayerNorm; gamma, beta and eps from an aux parameter block
    ADD = 6         # dst = requant(a + b)
    ENTROPY = 7     # H of row 0's first `classes` logits; exit (and stop) if H < threshold
    DVFS = 8        # layer `layer`'s H -> bin -> predicted exit layer, voltage, frequency codes


def _mat(name):
    return ((f"{name}_base", _ADDR), (f"{name}_stride", _STRIDE))


# Field order is bit order (LSB first, after the opcode).
LAYOUTS = {
    Op.END: (),
    Op.EMBED: (*_mat("dst"), ("rows", _TILES), ("cols", _TILES), ("tokens", _COUNT),
               ("tok_addr", _AUX), ("desc", _DESC), ("bias_word", _BIAS), ("bias_pos", _BIAS),
               ("bias_seg", _BIAS), ("bias_out", _BIAS)),
    Op.MATMUL: (*_mat("x"), *_mat("dst"), ("rows", _TILES), ("desc", _DESC), ("bias_x", _BIAS),
                ("bias_w", _BIAS), ("bias_b", _BIAS), ("bias_out", _BIAS), ("relu", 1),
                ("transpose", 1)),
    Op.MATMUL_ACT: (*_mat("x"), *_mat("w"), *_mat("dst"), ("rows", _TILES), ("k", _TILES),
                    ("cols", _TILES), ("bias_x", _BIAS), ("bias_w", _BIAS), ("bias_out", _BIAS),
                    ("transpose", 1)),
    Op.SOFTMAX: (*_mat("x"), *_mat("dst"), ("rows", _TILES), ("cols", _TILES), ("keys", _COUNT),
                 ("mask_addr", _AUX), ("bias_in", _BIAS), ("bias_out", _BIAS), ("renorm", 1)),
    Op.LAYERNORM: (*_mat("x"), *_mat("dst"), ("rows", _TILES), ("cols", _TILES),
                   ("param_addr", _AUX), ("bias_in", _BIAS), ("bias_gamma", _BIAS),
                   ("bias_beta", _BIAS), ("bias_out", _BIAS)),
    Op.ADD: (*_mat("a"), *_mat("b"), *_mat("dst"), ("rows", _TILES), ("cols", _TILES),
             ("bias_a", _BIAS), ("bias_b", _BIAS), ("bias_out", _BIAS)),
    Op.ENTROPY: (("x_base", _ADDR), ("classes", _TILES), ("bias_in", _BIAS),
                 ("thr_addr", _AUX), ("layer", _TILES), ("stop", 1)),
    Op.DVFS: (("layer", _TILES), ("table_addr", _AUX), ("bins", _TILES)),
}


class Record:
    """A named, fixed layout of unsigned fields packed LSB first into a ``bits``-bit word."""

    def __init__(self, name, fields, bits=WORD_BITS, *, start=0):
        self.name = name
        self.fields = tuple(fields)
        self.bits = bits
        self.start = start
        used = start + sum(w for _, w in self.fields)
        if used > bits:
            raise AssertionError(f"{name} needs {used} bits, more than {bits}")
        self.used = used

    def pack(self, values):
        """``values`` (a mapping of every field) → integer word; refuses unknown, missing and
        out-of-range fields with the field's name."""
        unknown = set(values) - {f for f, _ in self.fields}
        if unknown:
            raise IsaError(f"{self.name} has no field {sorted(unknown)[0]!r}")
        word, pos = 0, self.start
        for f, w in self.fields:
            if f not in values:
                raise IsaError(f"{self.name} field {f!r} is missing")
            v = values[f]
            if not isinstance(v, int) or isinstance(v, bool) and w != 1:
                raise IsaError(f"{self.name} field {f!r} must be an integer, not {v!r}")
            if not 0 <= v < 1 << w:
                raise IsaError(f"{self.name} field {f!r} must be in 0..{(1 << w) - 1} "
                               f"({w} bits), not {v}")
            word |= int(v) << pos
            pos += w
        return word

    def unpack(self, word):
        """Integer word → ``{field: value}``; refuses non-zero reserved bits."""
        if word >> self.used:
            raise IsaError(f"{self.name} word has reserved bits {self.used}..{self.bits - 1} "
                           f"set (word 0x{word:0{self.bits // 4}x})")
        out, pos = {}, self.start
        for f, w in self.fields:
            out[f] = (word >> pos) & ((1 << w) - 1)
            pos += w
        return out


_RECORDS = {op: Record(op.name, LAYOUTS[op], start=OPCODE_BITS) for op in Op}

# Descriptor memory entries (WORD_BITS each). Addresses are in each memory's own words: mask
# words (n masks of n bits), value words (n codes), bias words (n codes); ReRAM in bytes.
MATRIX_DESC = Record("matrix descriptor", (
    ("mask_base", 20), ("value_base", 20), ("bias_base", 16), ("k", _TILES), ("cols", _TILES),
    ("nnz", 28)))
EMBED_DESC = Record("embedding descriptor", (
    ("rowptr_base", 24), ("mask_base", 24), ("value_base", 24), ("pos_base", 24),
    ("seg_base", 24)))


@dataclass(frozen=True)
class Command:
    """One decoded command: its opcode and its fields (a dict in layout order)."""

    op: Op
    fields: dict

    def __getattr__(self, name):
        try:
            return self.__dict__["fields"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__['op'].name} has no field {name!r}") from None

    def __str__(self):
        return f"{self.op.name:<10} " + " ".join(f"{k}={v}" for k, v in self.fields.items())


def command(op, **fields):
    """A checked :class:`Command` (the fields are validated by encoding them)."""
    op = Op(op)
    encode(Command(op, fields))
    return Command(op, {f: fields[f] for f, _ in LAYOUTS[op]})


__all__.append("command")


def encode(cmd: Command) -> int:
    """The command word of ``cmd``; illegal fields raise :class:`IsaError` naming them."""
    if not isinstance(cmd.op, Op):
        raise IsaError(f"illegal opcode {cmd.op!r}")
    return int(cmd.op) | _RECORDS[cmd.op].pack(cmd.fields)


def decode(word: int) -> Command:
    """The command of a word; an illegal opcode or reserved bits raise :class:`IsaError`."""
    if not isinstance(word, int) or not 0 <= word < 1 << WORD_BITS:
        raise IsaError(f"a command word is an integer in 0..2^{WORD_BITS}-1, not {word!r}")
    code = word & ((1 << OPCODE_BITS) - 1)
    try:
        op = Op(code)
    except ValueError:
        raise IsaError(f"illegal opcode {code} in word 0x{word:032x}") from None
    return Command(op, _RECORDS[op].unpack(word))


def encode_program(cmds) -> bytes:
    """Little-endian bytes of a command list (program memory image)."""
    return b"".join(encode(c).to_bytes(WORD_BYTES, "little") for c in cmds)


def decode_program(data: bytes):
    """Commands of a program memory image (stops at nothing: every word is decoded)."""
    if len(data) % WORD_BYTES:
        raise IsaError(f"a program is a whole number of {WORD_BYTES}-byte words, not "
                       f"{len(data)} bytes")
    return [decode(int.from_bytes(data[i:i + WORD_BYTES], "little"))
            for i in range(0, len(data), WORD_BYTES)]


def layout_table():
    """Markdown table of every layout: opcode, bits, field (the one definition, for docs)."""
    rows = ["| record | bits | field |", "|---|---|---|"]
    for rec, code in [*((_RECORDS[op], int(op)) for op in Op), (MATRIX_DESC, None),
                      (EMBED_DESC, None)]:
        head = f"{rec.name} (opcode {code})" if code is not None else rec.name
        if code is not None:
            rows.append(f"| {head} | {OPCODE_BITS - 1}:0 | opcode = {code} |")
            head = ""
        pos = rec.start
        for f, w in rec.fields:
            rows.append(f"| {head} | {pos + w - 1}:{pos} | `{f}` |")
            head = ""
            pos += w
        if pos < rec.bits:
            rows.append(f"| {head} | {rec.bits - 1}:{pos} | reserved (zero) |")
    return "\n".join(rows)
