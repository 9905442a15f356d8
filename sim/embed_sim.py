"""The embedding unit with its store, a reference model from the store's bytes, and an
Amaranth-simulator runner (for the unit tests, the self-check and the cocotb testbench).

:class:`EmbedWithStore` is the unit wired to a :class:`hw.reram.ReramStore` the way the top
wires them; :func:`reference` computes what an EMBED command must write from the bytes of the
store alone (the gather of :func:`sw.golden.embedding.gather_rows` with ``wrap=True`` and the sum
of :func:`sw.golden.embedding.embedding_sum`), or the error the unit must raise.
"""

import random
from dataclasses import dataclass, field

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hw.embed_unit import EmbedError, EmbedUnit
from hw.memformats import TOKEN_ROW_BITS
from hw.memmap import MemoryMap
from hw.reram import ReramStore

__all__ = ["EmbedCase", "EmbedWithStore", "reference", "case_from_layout", "random_case",
           "simulate", "COMMAND_PORTS"]

COMMAND_PORTS = ("rows", "cols", "tokens", "tok_addr", "rowptr_base", "mask_base", "value_base",
                 "pos_base", "seg_base", "bias_word", "bias_pos", "bias_seg", "bias_out",
                 "vocab_rows", "seg_rows", "pos_rows")


@dataclass
class EmbedCase:
    """One EMBED command with everything the unit reads: the store image, the command ports
    (:data:`COMMAND_PORTS`) and the token entries (``row | segment << 24``) from aux word
    ``tok_addr`` on."""

    memmap: MemoryMap
    image: bytes
    ports: dict
    entries: list = field(default_factory=list)


class EmbedWithStore(wiring.Component):
    """:class:`hw.embed_unit.EmbedUnit` reading a :class:`hw.reram.ReramStore`; the unit's ports
    (but ``reram``) and the store's write port and counter (``w_en``, ``w_addr``, ``w_data``,
    ``reads``, ``clear``) are this component's."""

    def __init__(self, *, memmap: MemoryMap, image=None, max_cols=16, **unit_params):
        self.unit = EmbedUnit(n=memmap.n, memmap=memmap, max_cols=max_cols, **unit_params)
        self.store = ReramStore(memmap=memmap, init=image)
        members = {k: v for k, v in self.unit.signature.members.items() if k != "reram"}
        members.update({k: self.store.signature.members[k]
                        for k in ("w_en", "w_addr", "w_data", "reads", "clear")})
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit, m.submodules.store = self.unit, self.store
        wiring.connect(m, self.unit.reram, self.store.rd)
        wiring.connect(m, self.unit.o, wiring.flipped(self.o))
        for name, member in self.signature.members.items():
            if name == "o":
                continue
            inner = getattr(self.unit if name in self.unit.signature.members else self.store,
                            name)
            if member.flow is wiring.In:
                m.d.comb += inner.eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(inner)
        return m


def _u(image, addr, count):
    return int.from_bytes(image[addr:addr + count], "little")


def reference(case: EmbedCase, *, max_cols=16, fmt=None, fixed=None):
    """``(codes, error)``: the ``rows*n x cols*n`` codes (list of lists) the command writes, or
    ``(None, EmbedError)`` for a command the unit refuses."""
    import torch

    from hw.layouts import DEFAULT_AF, FixedFormat
    from sw.golden.embedding import embedding_sum

    fmt = fmt or DEFAULT_AF
    fixed = fixed or FixedFormat()
    p, mm = case.ports, case.memmap
    n, size, wb = mm.n, mm.reram_bytes, mm.reram_word_bytes
    img = bytes(case.image) + bytes(size - len(case.image))
    rows, cols, tokens = p["rows"] * n, p["cols"], p["tokens"]
    e = cols * n
    mb = max(1, -(-n // 8))
    if not p["rows"] or not cols or cols > max_cols or tokens > rows \
            or tokens > p["pos_rows"]:
        return None, EmbedError.COMMAND
    bases = [p[f"{k}_base"] for k in ("rowptr", "mask", "pos", "seg")]
    if any(b % wb or b >= size for b in bases) or p["value_base"] >= size \
            or p["pos_base"] + tokens * e > size:
        return None, EmbedError.ADDRESS
    word, pos, seg = [], [], []
    for t in range(tokens):
        entry = case.entries[t]
        r, s = entry & ((1 << TOKEN_ROW_BITS) - 1), entry >> TOKEN_ROW_BITS
        if r >= p["vocab_rows"]:
            return None, EmbedError.TOKEN_ROW
        if s >= p["seg_rows"]:
            return None, EmbedError.SEGMENT
        if (p["rowptr_base"] + 4 * r + 4 > size or p["mask_base"] + (r + 1) * cols * mb > size
                or p["seg_base"] + (s + 1) * e > size):
            return None, EmbedError.ADDRESS
        ptr = _u(img, p["rowptr_base"] + 4 * r, 4)
        codes = []
        for j in range(cols):
            mask = _u(img, p["mask_base"] + (r * cols + j) * mb, mb)
            for i in range(n):
                if mask >> i & 1:
                    codes.append(img[(p["value_base"] + ptr) % size])
                    ptr += 1
                else:
                    codes.append(0)
        word.append(codes)
        pos.append(list(img[p["pos_base"] + t * e:p["pos_base"] + (t + 1) * e]))
        seg.append(list(img[p["seg_base"] + s * e:p["seg_base"] + (s + 1) * e]))
    out = [[0] * e for _ in range(rows)]
    if tokens:
        t = torch.tensor
        got = embedding_sum(t(word), t(pos), t(seg), p["bias_word"], p["bias_pos"],
                            p["bias_seg"], p["bias_out"], fmt, fixed)
        out[:tokens] = got.tolist()
    return out, EmbedError.NONE


def case_from_layout(lay, cmd, token_rows, segments):
    """The :class:`EmbedCase` of EMBED command ``cmd`` of a program compiled for layout ``lay``
    (:func:`sw.program.layout.lay_out`), for one sentence."""
    from hw.isa import EMBED_DESC, WORD_BYTES
    from hw.memformats import token_word

    d = lay.images["desc"][cmd.desc * WORD_BYTES:(cmd.desc + 1) * WORD_BYTES].tobytes()
    c = lay.config
    ports = {k: cmd.fields[k] for k in COMMAND_PORTS if k in cmd.fields}
    ports.update(EMBED_DESC.unpack(int.from_bytes(d, "little")))
    ports.update(vocab_rows=c["vocab_size"], seg_rows=c["type_vocab"], pos_rows=c["max_len"])
    return EmbedCase(lay.memmap, lay.images["reram"].tobytes(), ports,
                     [token_word(int(r), int(s)) for r, s in zip(token_rows, segments,
                                                                 strict=True)])


def random_case(memmap: MemoryMap, rng: random.Random, *, vocab=12, cols=2, rows=2, tokens=5,
                max_len=None, type_vocab=2, density=0.5):
    """A random table laid out as :func:`sw.program.layout.lay_out` lays it out (each part on a
    word) and a random EMBED command over it; biases are random."""
    n, wb = memmap.n, memmap.reram_word_bytes
    mb = max(1, -(-n // 8))
    e = cols * n
    max_len = tokens + 2 if max_len is None else max_len
    image = bytearray()

    def put(data):
        addr = len(image)
        image.extend(data)
        image.extend(bytes(-len(image) % wb))
        return addr

    masks, values, rowptr = [], [], []
    for _ in range(vocab):
        rowptr.append(len(values))
        for _ in range(cols):
            m = sum(1 << i for i in range(n) if rng.random() < density)
            masks.append(m)
            values.extend(rng.randrange(1, 256) for _ in range(bin(m).count("1")))
    ports = {
        "rowptr_base": put(b"".join(v.to_bytes(4, "little") for v in rowptr)),
        "mask_base": put(b"".join(m.to_bytes(mb, "little") for m in masks)),
        "value_base": put(bytes(values)),
        "pos_base": put(bytes(rng.randrange(256) for _ in range(max_len * e))),
        "seg_base": put(bytes(rng.randrange(256) for _ in range(type_vocab * e))),
        "rows": rows, "cols": cols, "tokens": tokens, "tok_addr": rng.randrange(100),
        "vocab_rows": vocab, "seg_rows": type_vocab, "pos_rows": max_len,
        **{f"bias_{k}": rng.randrange(8) for k in ("word", "pos", "seg", "out")}}
    if len(image) > memmap.reram_bytes:
        raise ValueError(f"the random table needs {len(image)} bytes; the store has "
                         f"{memmap.reram_bytes}")
    entries = [rng.randrange(vocab) | rng.randrange(type_vocab) << TOKEN_ROW_BITS
               for _ in range(tokens)]
    return EmbedCase(memmap, bytes(image), ports, entries)


def simulate(case: EmbedCase, *, max_cols=16, p_ready=1.0, seed=0, max_cycles=200_000,
             dut=None):
    """Run one command on :class:`EmbedWithStore` in the Amaranth simulator.

    The aux memory is modelled (entry ``t`` at word ``tok_addr + t``, one cycle of latency);
    ``o.ready`` is high on a random ``p_ready`` of the cycles. Returns a dict: ``codes`` (as
    :func:`reference`, rows never written are ``None``), ``order`` (the ``(row, col)`` of each
    beat), ``cycles`` (``start`` to ``done``), ``reads``, ``error``, ``err_code``.
    """
    mm = case.memmap
    n = mm.n
    dut = dut or EmbedWithStore(memmap=mm, image=case.image, max_cols=max_cols)
    rng = random.Random(seed)
    p = case.ports
    rows, e = p["rows"] * n, p["cols"] * n
    res = {"codes": [[None] * e for _ in range(rows)], "order": []}
    entries = {p["tok_addr"] + t: v for t, v in enumerate(case.entries)}

    async def bench(ctx):
        for name in COMMAND_PORTS:
            ctx.set(getattr(dut, name), p[name])
        ctx.set(dut.clear, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.clear, 0)
        cycles, pending = 1, 0
        while True:
            ctx.set(dut.aux_data, pending)
            ready = rng.random() < p_ready
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                beat = ctx.get(dut.o.payload)
                r, j = beat.tag.row, beat.tag.col
                res["order"].append((r, j))
                if r < rows and j * n < e:
                    res["codes"][r][j * n:(j + 1) * n] = list(beat.codes)
            if ctx.get(dut.done):
                break
            pending = entries.get(ctx.get(dut.aux_addr), 0) if ctx.get(dut.aux_en) else 0
            await ctx.tick()
            cycles += 1
            if cycles > max_cycles:
                raise AssertionError(f"the embedding unit did not finish in {max_cycles} cycles")
        res.update(cycles=cycles, reads=ctx.get(dut.reads), error=ctx.get(dut.error),
                   err_code=EmbedError(ctx.get(dut.err_code)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return res
