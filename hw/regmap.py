"""The accelerator's host interface ([H9]): the CSR register map and the AXI4 memory windows.

This module is the one definition of both. The AXI4-Lite CSR slave (:class:`hw.csr.Csr`)
implements :class:`RegisterMap` generically, the AXI4 load slave (:class:`hw.axi_mem.AxiMem`)
decodes :func:`windows`, host software reads both, and ``docs/accelerator.md`` shows the tables
rendered by :meth:`RegisterMap.to_markdown` (a test checks them). No Amaranth or PyTorch import.

Every register is 32 bits at a word-aligned offset of the :data:`CSR_ADDR_BITS`-bit CSR space.
Each field has an access kind (:class:`Access`) and, when read-only, a source: ``port`` (an input
port of the CSR slave, driven by the accelerator), ``const`` (its reset value: the ID and the
generator parameters, so host software can refuse an image built for other hardware) or
``internal`` (the CSR slave's own bookkeeping of refused accesses). Writes that set a reserved
bit or a value above a field's ``maximum`` are refused (SLVERR) and change nothing.

64-bit counters are LO/HI register pairs: reading LO takes a snapshot of the upper half, which
HI then returns, so LO-then-HI is one consistent value.
"""

import enum
from dataclasses import dataclass, fields
from types import SimpleNamespace

from hw.isa import LAYOUTS, SCALAR_BYTES, Op
from hw.memformats import TOKEN_ROW_BITS
from hw.memmap import DEFAULT_MEMMAP, MEMORIES, MemoryMap

__all__ = [
    "MAGIC", "VERSION", "CSR_ADDR_BITS", "BUS_BYTES", "ENTROPY_BITS", "ENTROPY_FRAC", "Access",
    "Field", "Register", "ErrorCode", "ERROR_MEANING", "RegisterMap", "validate_registers",
    "Window", "windows", "window_address_bits", "locate", "pack_words", "COUNTERS",
    "memmap_fields", "ERROR_BITS", "EMBED_ROWS_MAX",
]

MAGIC = 0x45425254  # "EBRT"
VERSION = (1, 1)  # (major, minor): a new major means host software must refuse the hardware
CSR_ADDR_BITS = 12
BUS_BYTES = 4  # data width of both buses
# The entropy unit's result (hw.entropy.H_BITS, LN_FRAC fractional bits; a test checks them).
ENTROPY_BITS = 20
ENTROPY_FRAC = 16

# The largest row counts of the embedding tables (VOCAB_ROWS, SEG_ROWS, POS_ROWS; the top's
# vocab_rows, seg_rows, pos_rows): one row per index that a token entry
# (hw.memformats.token_word: row and segment) or EMBED's ``tokens`` field (hw.isa) can name.
EMBED_ROWS_MAX = {
    "vocab_rows": 1 << TOKEN_ROW_BITS,
    "seg_rows": 1 << (8 * SCALAR_BYTES - TOKEN_ROW_BITS),
    "pos_rows": 1 << dict(LAYOUTS[Op.EMBED])["tokens"],
}

# The generator's AdaptivFloat defaults (hw.layouts.DEFAULT_AF; a test checks them): the format
# is taken as plain numbers here because hw.layouts imports Amaranth.
_DEFAULT_FMT = SimpleNamespace(n_bits=8, exp_bits=3, offset=-10, bias_bits=3)


class Access(enum.Enum):
    RO = "RO"    # read-only; writes to the register are refused
    RW = "RW"    # stored; drives an output port of the CSR slave
    W1C = "W1C"  # sticky bit set by the hardware, cleared by writing 1
    W1S = "W1S"  # writing 1 raises a one-cycle pulse on an output port; reads 0


class ErrorCode(enum.IntEnum):
    """The ERROR register: why the accelerator stopped (it never hangs instead). The command
    sequencer (:mod:`hw.top.checks`, :class:`hw.top.top.Top`) reports these numbers."""

    NONE = 0
    ILLEGAL_OPCODE = 1
    RESERVED_BITS = 2
    BAD_FIELD = 3
    OUT_OF_RANGE = 4
    OVERLAP = 5
    BAD_DESCRIPTOR = 6
    PROGRAM_OVERRUN = 7
    LOAD_OUT_OF_RANGE = 8
    BAD_CONFIG = 9
    WATCHDOG = 10
    UNIT_ERROR = 11


# Width of the sequencer's error code (the ERROR register's field is wider).
ERROR_BITS = max(ErrorCode).bit_length()

ERROR_MEANING = {
    ErrorCode.NONE: "no error",
    ErrorCode.ILLEGAL_OPCODE: "a command word's opcode is not one of hw.isa.Op",
    ErrorCode.RESERVED_BITS: "a command word has reserved bits set",
    ErrorCode.BAD_FIELD: "a bias above the format's register range, a zero dimension, an aux "
                         "address or descriptor beyond its memory, keys or tokens beyond the "
                         "rows, ENTROPY classes, row lengths, DVFS bins or layer beyond the "
                         "units",
    ErrorCode.OUT_OF_RANGE: "an operand reaches beyond the act memory",
    ErrorCode.OVERLAP: "a destination's word range meets a source's",
    ErrorCode.BAD_DESCRIPTOR: "a MATMUL's descriptor holds no matrix",
    ErrorCode.PROGRAM_OVERRUN: "no END before the end of program memory",
    ErrorCode.LOAD_OUT_OF_RANGE: "start while a host load was refused (LOAD_ERROR_ADDR)",
    ErrorCode.BAD_CONFIG: "a configuration the hardware cannot run (e.g. more classes or "
                          "DVFS bins than it was generated for)",
    ErrorCode.WATCHDOG: "the program ran longer than WATCHDOG cycles",
    ErrorCode.UNIT_ERROR: "the matrix engine, a special-function unit or the embedding unit "
                          "reported an error (e.g. a token row or segment beyond its table)",
}

# 64-bit performance counters: (register stem, meaning). SRAM reads and writes follow, per memory.
_COUNTERS = (
    ("CYCLES", "cycles from start to done"),
    ("MAC_CYCLES", "cycles the matrix engine issued MACs"),
    ("SKIPPED", "all-zero weight vectors skipped"),
    ("STALLS", "cycles a unit waited for an operand or a result"),
    ("RERAM_READS", "ReRAM word reads"),
)
_SRAMS = tuple(m for m in MEMORIES if m != "reram")
COUNTERS = (
    *_COUNTERS,
    *((f"{m.upper()}_{what.upper()}S", f"{m} memory word {what}s")
      for m in _SRAMS for what in ("read", "write")),
    ("CMD_CYCLES", "cycles of the last completed command"),
)


@dataclass(frozen=True)
class Field:
    """A field of a register: bits ``[lsb + width - 1 : lsb]``.

    ``maximum`` (RW only) is the largest value a write may set; ``source`` (RO and W1C) says
    what drives it: ``port``, ``const`` (RO: the reset value) or ``internal``.
    """

    name: str
    lsb: int
    width: int
    access: Access
    doc: str
    reset: int = 0
    maximum: int | None = None
    source: str = "port"

    @property
    def msb(self):
        return self.lsb + self.width - 1

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """A 32-bit register. ``port``/``port_lsb``: the register is bits ``[port_lsb + 31 :
    port_lsb]`` of a wider input port (the halves of a 64-bit counter)."""

    name: str
    offset: int
    fields: tuple
    doc: str
    port: str | None = None
    port_lsb: int = 0

    width = 32

    @property
    def access(self):
        """The register's access kind(s), e.g. ``RW`` or ``W1S/RW``."""
        return "/".join(sorted({f.access.value for f in self.fields}))

    @property
    def reset(self):
        return sum(f.reset << f.lsb for f in self.fields)

    @property
    def used_mask(self):
        return sum(f.mask for f in self.fields)

    @property
    def writable(self):
        return any(f.access is not Access.RO for f in self.fields)

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")


def validate_registers(registers):
    """Raise ``ValueError`` naming the register and field unless ``registers`` is a legal map:
    unique names, aligned unique offsets inside the CSR space, fields inside 32 bits without
    overlaps, resets and maxima that fit, and no register mixing read-only with writable
    fields or W1C with other kinds."""
    names, offsets = set(), {}
    for r in registers:
        if r.name in names:
            raise ValueError(f"register {r.name} is defined twice")
        names.add(r.name)
        if r.offset % BUS_BYTES or not 0 <= r.offset < 1 << CSR_ADDR_BITS:
            raise ValueError(f"register {r.name} offset {r.offset:#x} must be a multiple of "
                             f"{BUS_BYTES} below {1 << CSR_ADDR_BITS:#x}")
        if r.offset in offsets:
            raise ValueError(f"registers {offsets[r.offset]} and {r.name} overlap at offset "
                             f"{r.offset:#x}")
        offsets[r.offset] = r.name
        if not r.fields:
            raise ValueError(f"register {r.name} has no fields")
        used = 0
        for f in r.fields:
            where = f"register {r.name} field {f.name}"
            if f.width < 1 or f.lsb < 0 or f.msb >= r.width:
                raise ValueError(f"{where} (bits {f.msb}:{f.lsb}) does not fit {r.width} bits")
            if used & f.mask:
                raise ValueError(f"{where} (bits {f.msb}:{f.lsb}) overlaps another field")
            used |= f.mask
            if not 0 <= f.reset < 1 << f.width:
                raise ValueError(f"{where} reset {f.reset} does not fit {f.width} bits")
            if f.maximum is not None and (f.access is not Access.RW
                                          or not 0 <= f.maximum < 1 << f.width):
                raise ValueError(f"{where} maximum {f.maximum} must be an RW field's value")
            allowed = {Access.RO: ("port", "const", "internal"),
                       Access.W1C: ("port", "internal")}.get(f.access, ("port",))
            if f.source not in allowed:
                raise ValueError(f"{where}: a {f.access.value} field cannot have source "
                                 f"{f.source!r}")
            if f.access is Access.W1S and f.reset:
                raise ValueError(f"{where}: a W1S field reads 0 and resets to 0")
        if len({f.name for f in r.fields}) != len(r.fields):
            raise ValueError(f"register {r.name} has two fields with one name")
        kinds = {f.access for f in r.fields}
        if len(kinds) > 1 and (Access.RO in kinds or Access.W1C in kinds):
            raise ValueError(f"register {r.name} mixes {'/'.join(sorted(k.value for k in kinds))}"
                             f" fields; RO and W1C registers hold only their own kind")
        if r.port is not None and (kinds != {Access.RO} or len(r.fields) != 1):
            raise ValueError(f"register {r.name} is a slice of port {r.port}: it must be one RO "
                             f"field")


def _ro(name, lsb, width, doc, **kw):
    return Field(name, lsb, width, Access.RO, doc, **kw)


def _const(name, lsb, width, value, doc):
    return Field(name, lsb, width, Access.RO, doc, reset=value, source="const")


def _check_format(fmt):
    names = ("n_bits", "exp_bits", "offset", "bias_bits")
    values = [getattr(fmt, a, None) for a in names]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
        raise TypeError(f"fmt must have integer attributes n_bits, exp_bits, offset and "
                        f"bias_bits, not {fmt!r}")
    n_bits, exp_bits, offset, bias_bits = values
    for name, v, lo, hi in (("n_bits", n_bits, 1, 255), ("exp_bits", exp_bits, 1, 15),
                            ("offset", offset, -128, 127), ("bias_bits", bias_bits, 1, 15)):
        if not lo <= v <= hi:
            raise ValueError(f"fmt.{name} must be in {lo}..{hi} to fit CFG_FORMAT, not {v}")


class RegisterMap:
    """The CSR register map of an accelerator generated with ``memmap`` and ``fmt``.

    Parameters
    ----------
    memmap : MemoryMap
        The memories; their depths are readable in ``CFG_DEPTH_*``, the program memory bounds
        ``PROG_BASE``.
    fmt : AdaptivFloat format
        Any object with integer ``n_bits``, ``exp_bits``, ``offset`` and ``bias_bits`` (e.g.
        :class:`hw.layouts.AFFormat`); readable in ``CFG_FORMAT``.
    """

    def __init__(self, *, memmap=DEFAULT_MEMMAP, fmt=_DEFAULT_FMT):
        if not isinstance(memmap, MemoryMap):
            raise TypeError(f"memmap must be a hw.memmap.MemoryMap, not {memmap!r}")
        _check_format(fmt)
        for m in MEMORIES:
            if memmap.depth(m) >= 1 << 32:
                raise ValueError(f"the {m} memory's depth {memmap.depth(m)} does not fit the "
                                 f"32-bit CFG_DEPTH_{m.upper()} register")
        if memmap.prog_words > 1 << 16:
            raise ValueError(f"prog_words must be at most 65536 (16-bit PC registers), not "
                             f"{memmap.prog_words}")
        if memmap.reram_word_bytes > 255:
            raise ValueError(f"reram_word_bytes must be at most 255 to fit CFG_RERAM, not "
                             f"{memmap.reram_word_bytes}")
        window_address_bits(memmap)
        self._memmap, self._fmt = memmap, fmt
        self._registers = self._build(memmap, fmt)
        validate_registers(self._registers)
        self._by_name = {r.name: r for r in self._registers}

    @property
    def memmap(self):
        return self._memmap

    @property
    def registers(self):
        return self._registers

    def __getitem__(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register {name!r}") from None

    def __iter__(self):
        return iter(self._registers)

    def by_offset(self, offset):
        """The register at byte ``offset``, or ``None``."""
        return next((r for r in self._registers if r.offset == offset), None)

    # The interrupt: IRQ_STATUS's bits, gated by CTRL.irq_en.
    irq_status = "IRQ_STATUS"
    irq_enable = ("CTRL", "irq_en")

    @staticmethod
    def _build(mm, fmt):
        regs = [
            Register("MAGIC", 0x000, (_const("magic", 0, 32, MAGIC, '"EBRT": an EdgeBERT '
                                             'accelerator'),), "identification"),
            Register("VERSION", 0x004, (_const("minor", 0, 8, VERSION[1], "compatible changes"),
                                        _const("major", 8, 8, VERSION[0],
                                               "register map version: refuse another major")),
                     "register map version"),
            Register("CFG_FORMAT", 0x008, (
                _const("n", 0, 8, mm.n, "vector width n (lanes, VMACs, tile side)"),
                _const("n_bits", 8, 8, fmt.n_bits, "AdaptivFloat code width N"),
                _const("exp_bits", 16, 4, fmt.exp_bits, "exponent width E"),
                _const("bias_bits", 20, 4, fmt.bias_bits, "bias register width"),
                _const("offset", 24, 8, fmt.offset & 0xFF, "exponent offset (two's complement)"),
            ), "generator parameters: refuse an image built for others"),
            Register("CFG_RERAM", 0x00C, (
                _const("word_bytes", 0, 8, mm.reram_word_bytes, "bytes per ReRAM word"),
                _const("latency", 8, 8, mm.reram_latency, "ReRAM read latency (cycles)"),
            ), "ReRAM parameters"),
            *(Register(f"CFG_DEPTH_{m.upper()}", 0x010 + 4 * i,
                       (_const("words", 0, 32, mm.depth(m), f"{m} memory depth in words"),),
                       f"{m} memory depth")
              for i, m in enumerate(MEMORIES)),
            Register("CTRL", 0x040, (
                Field("start", 0, 1, Access.W1S, "run the program from PROG_BASE"),
                Field("soft_reset", 1, 1, Access.W1S,
                      "abort and reset the sequencer and datapath (not the CSRs)"),
                Field("irq_en", 2, 1, Access.RW, "drive irq while any IRQ_STATUS bit is set"),
                Field("step_en", 3, 1, Access.RW, "single-step: pause after every command"),
            ), "control"),
            Register("STEP", 0x044, (
                Field("step", 0, 1, Access.W1S, "paused: execute the next command"),
                Field("resume", 1, 1, Access.W1S, "paused: run on (until step_en pauses again)"),
            ), "single-step control"),
            Register("PROG_BASE", 0x048, (
                Field("pc", 0, 16, Access.RW, "program memory word of the first command",
                      maximum=mm.prog_words - 1),), "program start"),
            Register("WATCHDOG", 0x04C, (
                Field("cycles", 0, 32, Access.RW, "stop with WATCHDOG after this many cycles "
                      "(0: off)"),), "watchdog"),
            Register("STATUS", 0x050, (
                _ro("busy", 0, 1, "a program is running"),
                _ro("done", 1, 1, "the last program ended (END, exit or error)"),
                _ro("error", 2, 1, "the last program stopped on an error (ERROR)"),
                _ro("exit", 3, 1, "the last program took an early exit (EXIT_LAYER)"),
                _ro("paused", 4, 1, "single-step: paused after a command"),
                _ro("load_error", 5, 1, "a host load was refused (LOAD_ERROR_ADDR)"),
                _ro("csr_error", 6, 1, "a CSR access was refused (= IRQ_STATUS.csr_error)",
                    source="internal"),
            ), "status"),
            Register("IRQ_STATUS", 0x054, (
                Field("done", 0, 1, Access.W1C, "a program ended"),
                Field("error", 1, 1, Access.W1C, "a program stopped on an error"),
                Field("exit", 2, 1, Access.W1C, "a program took an early exit"),
                Field("step", 3, 1, Access.W1C, "single-step: paused after a command"),
                Field("load_error", 4, 1, Access.W1C, "a host load was refused"),
                Field("csr_error", 5, 1, Access.W1C, "a CSR access was refused",
                      source="internal"),
            ), "interrupt causes"),
            Register("ERROR", 0x058, (_ro("code", 0, 8, "an ErrorCode"),), "error code"),
            Register("ERROR_PC", 0x05C, (_ro("pc", 0, 16, "command that set ERROR"),),
                     "error location"),
            Register("PC", 0x060, (_ro("pc", 0, 16, "command executing or next"),),
                     "program counter"),
            Register("EXIT_LAYER", 0x064, (_ro("layer", 0, 8, "layer of the last ENTROPY"),),
                     "exit layer"),
            Register("DVFS", 0x068, (_ro("vcode", 0, 16, "voltage code"),
                                     _ro("fcode", 16, 16, "frequency code")), "DVFS codes"),
            Register("DVFS_BIN", 0x06C, (_ro("bin", 0, 8, "entropy bin"),
                                         _ro("layer", 8, 8, "predicted exit layer"),
                                         _ro("valid", 16, 1, "a DVFS decision was made")),
                     "DVFS decision"),
            Register("ENTROPY", 0x070, (
                _ro("h", 0, ENTROPY_BITS, f"H of the last ENTROPY ({ENTROPY_FRAC} fractional "
                    f"bits)"),
                _ro("flag", 31, 1, "the last ENTROPY's exit flag (H below the threshold)"),),
                "entropy"),
            Register("CSR_ERRORS", 0x074, (
                _ro("count", 0, 16, "refused CSR accesses (saturates)", source="internal"),
                _ro("offset", 16, CSR_ADDR_BITS, "offset of the first refused access",
                    source="internal"),
            ), "refused CSR accesses"),
            Register("LOAD_ERROR_ADDR", 0x078, (
                _ro("addr", 0, 32, "AXI address of the first refused load beat"),),
                "refused load"),
            *(Register(f"ACT_{m.upper()}_BASE", 0x080 + 4 * i, (
                Field("word", 0, 16, Access.RW, doc, maximum=min(mm.depth(mem), 1 << 16) - 1),),
                f"MATMUL_ACT region of the {mem} memory")
              for i, (m, mem, doc) in enumerate((
                  ("mask", "wmask", "first word of the all-ones masks (layout symbol "
                                    "wmask/act.ones)"),
                  ("value", "wval", "first word of the scratch values (layout symbol "
                                    "wval/act.values)"),
                  ("bias", "wbias", "the zero bias vector (layout symbol wbias/act.zero)")))),
            *(Register(name, 0x08C + 4 * i, (
                Field("rows", 0, EMBED_ROWS_MAX[port].bit_length(), Access.RW,
                      f"rows of the {table} table (layout config {key}): EMBED stops with "
                      f"UNIT_ERROR on {what} (reset 0: on every token until the host sets it)",
                      maximum=EMBED_ROWS_MAX[port]),),
                f"EMBED's bound on the {table} table")
              for i, (name, port, table, key, what) in enumerate((
                  ("VOCAB_ROWS", "vocab_rows", "token", "vocab_size", "a token row at or "
                                                                      "above it"),
                  ("SEG_ROWS", "seg_rows", "segment", "type_vocab", "a segment at or above it"),
                  ("POS_ROWS", "pos_rows", "position", "max_len", "more tokens than it")))),
        ]
        for i, (stem, doc) in enumerate(COUNTERS):
            for half, lsb in (("LO", 0), ("HI", 32)):
                regs.append(Register(
                    f"{stem}_{half}", 0x100 + 8 * i + lsb // 8,
                    (_ro("value", 0, 32, f"bits {lsb + 31}:{lsb}"),), doc,
                    port=stem.lower(), port_lsb=lsb))
        return tuple(regs)

    def ports(self):
        """The CSR slave's ports: ``{name: (direction, [(field, width)] or width)}``.

        ``In``: one per RO register with port fields (its fields, LSB first), one per wide
        port (counters: 64 bits), one ``<name>_set`` per W1C register (its port fields).
        ``Out``: one per writable register (its RW and W1S fields) and per W1C register.
        """
        out = {}
        for r in self._registers:
            kinds = {f.access for f in r.fields}
            if r.port is not None:
                _, width = out.get(r.port, ("In", 0))
                out[r.port] = ("In", max(width, r.port_lsb + r.width))
            elif kinds == {Access.RO}:
                port_fields = [(f.name, f.width) for f in r.fields if f.source == "port"]
                if port_fields:
                    out[r.name.lower()] = ("In", port_fields)
            elif kinds == {Access.W1C}:
                out[r.name.lower()] = ("Out", [(f.name, f.width) for f in r.fields])
                out[f"{r.name.lower()}_set"] = (
                    "In", [(f.name, f.width) for f in r.fields if f.source == "port"])
            else:
                out[r.name.lower()] = ("Out", [(f.name, f.width) for f in r.fields])
        return out

    def to_markdown(self):
        """Markdown of :meth:`markdown_tables`, separated by blank lines."""
        return "\n\n".join(self.markdown_tables())

    def markdown_tables(self):
        """Markdown tables ``(registers and fields, error codes, memory windows)``."""
        rows = ["| offset | register | access | reset | bits | field | meaning |",
                "|---|---|---|---|---|---|---|"]
        for r in self._registers:
            head = f"| `{r.offset:#05x}` | {r.name} | {r.access} | `{r.reset:#010x}` |"
            for f in r.fields:
                bits = f"{f.msb}:{f.lsb}" if f.width > 1 else f"{f.lsb}"
                extra = f" (at most {f.maximum})" if f.maximum is not None else ""
                src = "" if f.source == "port" else f" [{f.source}]"
                rows.append(f"{head} {bits} | `{f.name}`{src} | {f.doc}{extra} |")
                head = "| | | | |"
        errors = ["| code | name | meaning |", "|---|---|---|"]
        errors += [f"| {int(e)} | `{e.name}` | {ERROR_MEANING[e]} |" for e in ErrorCode]
        wins = ["| memory | base | size | word bytes | stride | depth | data end |",
                "|---|---|---|---|---|---|---|"]
        wins += [f"| {w.memory} | `{w.base:#010x}` | `{w.size:#x}` | {w.word_bytes} | "
                 f"{w.stride} | {w.depth} | `{w.data_end:#010x}` |" for w in windows(self._memmap)]
        return tuple("\n".join(t) for t in (rows, errors, wins))


# --- AXI4 memory windows --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The AXI4 address window of one memory.

    Word ``i`` lies at bytes ``base + i * stride ...``, little-endian: bus lane ``k`` (32 bits
    at ``base + i * stride + 4 * k``) holds bytes ``4k .. 4k + 3`` of the word. Bytes past
    ``word_bytes`` within a stride are padding (read as zero, writable only with zero); the
    addresses from ``data_end`` to the window's end are a gap.
    """

    memory: str
    base: int
    size: int
    word_bytes: int
    stride: int
    depth: int

    @property
    def data_end(self):
        return self.base + self.depth * self.stride

    @property
    def lanes(self):
        return self.stride // BUS_BYTES


def _pow2(x):
    return 1 << (x - 1).bit_length()


def windows(memmap=DEFAULT_MEMMAP):
    """One :class:`Window` per memory, in :data:`hw.memmap.MEMORIES` order, each aligned to its
    size (a power of two): ``stride`` is the word size rounded up to a power of two of at least
    one bus word."""
    if not isinstance(memmap, MemoryMap):
        raise TypeError(f"memmap must be a hw.memmap.MemoryMap, not {memmap!r}")
    out, base = [], 0
    for m in MEMORIES:
        wb = memmap.word_bytes(m)
        stride = max(BUS_BYTES, _pow2(wb))
        size = _pow2(memmap.depth(m) * stride)
        base = -(-base // size) * size
        out.append(Window(m, base, size, wb, stride, memmap.depth(m)))
        base += size
    return tuple(out)


def window_address_bits(memmap=DEFAULT_MEMMAP):
    """AXI4 address bits that cover every window (at most 32)."""
    end = windows(memmap)[-1]
    bits = (end.base + end.size - 1).bit_length()
    if bits > 32:
        raise ValueError(f"the memory windows need {bits} address bits, more than 32: make "
                         f"the memories smaller")
    return bits


def locate(address, memmap=DEFAULT_MEMMAP):
    """``(memory, word, byte within the word)`` of a byte ``address``; ``None`` in a gap.
    Padding bytes give a byte index of ``word_bytes`` or more."""
    for w in windows(memmap):
        if w.base <= address < w.data_end:
            return w.memory, (address - w.base) // w.stride, (address - w.base) % w.stride
    return None


def pack_words(memory, words, memmap=DEFAULT_MEMMAP):
    """The bytes that load integer ``words`` from the start of ``memory``'s window: each word
    little-endian, zero-padded to the stride; refuses a word or a count that does not fit."""
    w = next((w for w in windows(memmap) if w.memory == memory), None)
    if w is None:
        raise ValueError(f"memory must be one of {MEMORIES}, not {memory!r}")
    words = list(words)
    if len(words) > w.depth:
        raise ValueError(f"{len(words)} words do not fit the {memory} memory ({w.depth} words)")
    out = bytearray()
    for i, v in enumerate(words):
        if not isinstance(v, int) or not 0 <= v < 1 << (8 * w.word_bytes):
            raise ValueError(f"{memory} word {i} must be an integer of {w.word_bytes} bytes, "
                             f"not {v!r}")
        out += v.to_bytes(w.stride, "little")
    return bytes(out)


def memmap_fields():
    """Names of :class:`MemoryMap`'s parameters (generator parameters of both bus blocks)."""
    return [f.name for f in fields(MemoryMap)]
