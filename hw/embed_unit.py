"""The embedding unit ([H8]): the EMBED command, token rows from the ReRAM store plus position and
segment rows, requantized once (:meth:`sw.program.executor.GoldenExecutor._op_embed`).

The token table, position and segment tables lie in the store as :func:`sw.program.layout.lay_out`
writes them (:data:`hw.isa.EMBED_DESC` gives their byte addresses): ``rowptr`` (u32 LE per row),
one n-bit mask per n values (``max(1, n / 8)`` bytes LE each, a row's ``E / n`` masks in order),
the packed non-zero codes, then ``max_len x E`` and ``type_vocab x E`` codes. Value ``i`` of a
row is read at byte ``(value_base + rowptr[row] + i) mod reram_bytes``: a faulty pointer or mask
reads other bytes of the store, never out of it (as :func:`sw.golden.embedding.gather_rows` with
``wrap=True``).
"""

import enum
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.af_fixed import AFToFixed
from hw.af_requant import DEFAULT_STAGES as REQUANT_STAGES
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.isa import SCALAR_BYTES
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.memformats import TOKEN_ROW_BITS
from hw.memmap import MemoryMap
from hw.registry import register_block
from hw.reram import read_signature
from hw.sfu_common import LaneUnit, check_format
from hw.timing import EMBED_SUM_LATENCY, embed_words

__all__ = ["EmbedUnit", "EmbedSum", "EmbedError", "SUM_LATENCY"]

# Sum register, the requantizer's pipeline stages, output register (the cycle model's figure).
SUM_LATENCY = 1 + REQUANT_STAGES + 1
assert SUM_LATENCY == EMBED_SUM_LATENCY, (SUM_LATENCY, EMBED_SUM_LATENCY)
_ADDR_BITS = 24     # EMBED_DESC byte addresses


class EmbedError(enum.IntEnum):
    """``err_code`` values."""

    NONE = 0
    COMMAND = 1     # rows or cols zero, cols > max_cols, tokens > rows * n or > pos_rows
    TOKEN_ROW = 2   # a token's row is not below vocab_rows
    SEGMENT = 3     # a token's segment is not below seg_rows
    ADDRESS = 4     # a descriptor address beyond the store, misaligned, or a table past its end


def _pow2(name, v):
    if not isinstance(v, int) or v < 1 or v & (v - 1):
        raise ValueError(f"{name} must be a power of two for the embedding unit, not {v!r}")
    return v.bit_length() - 1


class _Phase(enum.IntEnum):
    IDLE = 0
    HDR = 1     # the row pointer and mask words of a row
    VEC = 2     # position, segment and value words of a vector
    PAD = 3     # code-0 beats of the rows past the tokens


class EmbedSum(wiring.Component):
    """``requantize(word + pos + seg)`` lane by lane, with a tag carried alongside; pipelined
    (:data:`SUM_LATENCY`), stalls as a whole on ``o`` back-pressure; ``flush`` empties it."""

    def __init__(self, *, fmt, n, fixed, tag_layout):
        self._fmt, self._n, self._fixed = fmt, n, fixed
        lanes = data.ArrayLayout(fmt.n_bits, n)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(
                {"word": lanes, "pos": lanes, "seg": lanes, "tag": tag_layout}))),
            "o": Out(stream.Signature(data.StructLayout({"codes": lanes, "tag": tag_layout}))),
            "bias_word": In(fmt.bias_bits), "bias_pos": In(fmt.bias_bits),
            "bias_seg": In(fmt.bias_bits), "bias_out": In(fmt.bias_bits),
            "flush": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt, fx = self._fmt, self._fixed
        scale = fmt.offset - fmt.man_bits
        shift = Signal(signed(8))
        m.d.comb += shift.eq(-fx.frac_bits - (self.bias_out + scale))
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        valid, tag = self.i.valid, self.i.payload.tag
        for k in range(SUM_LATENCY):
            nv = self.o.valid if k == SUM_LATENCY - 1 else Signal(name=f"valid{k}")
            nt = self.o.payload.tag if k == SUM_LATENCY - 1 else Signal.like(tag, name=f"tag{k}")
            with m.If(self.flush):
                m.d.sync += nv.eq(0)
            with m.Elif(en):
                m.d.sync += [nv.eq(valid), nt.eq(tag)]
            valid, tag = nv, nt
        for lane in range(self._n):
            total = Signal(signed(fx.width + 2), name=f"sum{lane}")
            parts = []
            for name in ("word", "pos", "seg"):
                conv = AFToFixed(fmt=fmt, fixed=fx)
                m.submodules[f"{name}_fixed{lane}"] = conv
                m.d.comb += [conv.code.eq(self.i.payload[name][lane]),
                             conv.bias.eq(getattr(self, f"bias_{name}"))]
                parts.append(conv.fixed)
            with m.If(en):
                m.d.sync += total.eq(parts[0] + parts[1] + parts[2])
            rq = AFRequantCore(fmt=fmt, in_width=fx.width + 2,
                               shift_min=-fx.frac_bits - (fmt.bias_max + scale),
                               shift_max=-fx.frac_bits - scale, stages=REQUANT_STAGES)
            m.submodules[f"requant{lane}"] = rq
            m.d.comb += [rq.value.eq(total), rq.shift.eq(shift), rq.en.eq(en)]
            with m.If(en):
                m.d.sync += self.o.payload.codes[lane].eq(rq.code)
        return m


class EmbedUnit(LaneUnit, wiring.Component):
    """Executes one EMBED command: ``rows * n * cols`` output beats of ``n`` codes.

    For each token ``t < tokens`` the unit reads its entry (``row | segment << 24``) from the
    aux memory, the row pointer and the row's ``cols`` masks from the store, then per vector
    ``j`` the position codes of row ``t``, the segment codes of ``segment`` and the words that
    hold the vector's packed values; it expands the values by the mask, converts the three codes
    of each lane exactly to ``fixed``, adds them and requantizes the sum once (:class:`EmbedSum`,
    as :func:`sw.golden.embedding.embedding_sum`). Rows ``tokens .. rows * n - 1`` give
    code-0 beats. Beats leave in row-major order, each with its coordinate: it belongs in lane
    ``row % n`` of activation word ``dst_base + (row // n) * dst_stride + col``.

    Every ReRAM read count is fixed (:func:`hw.timing.embed_words`), so without back-pressure
    the unit takes exactly :func:`hw.timing.embed_cycles` cycles from ``start`` to ``done``
    and makes :func:`hw.timing.embed_reram_reads` reads.

    Errors (:class:`EmbedError`) are found before the reads they concern; the unit then stops
    issuing, drops the words still in flight and the beats not yet out, and finishes: ``done``
    with ``error`` high and ``err_code`` set. The row pointer, mask, position and segment bases
    must be multiples of the ReRAM word (the layout places every part on a word).

    Parameters
    ----------
    fmt : AFFormat
        Code format (8-bit codes: the store holds one code per byte).
    n : int
        Codes per beat (the memory map's ``n``).
    fixed : FixedFormat
        Exact fixed point of the sum.
    memmap : MemoryMap
        Store size and word (both powers of two; at most 2^24 bytes) and ``n``.
    max_cols : int
        Largest ``cols`` (E / n) accepted (the masks of a row are held in registers).

    Attributes
    ----------
    start : Signal(1), in
        Pulse in ``IDLE`` (``~busy``): samples every command port below.
    rows, cols : Signal(8), in
        Destination rows and embedding width, in tiles of n.
    tokens : Signal(12), in
        Valid tokens.
    tok_addr : Signal(16), in
        Aux word of token 0's entry (token ``t`` at ``tok_addr + t``).
    rowptr_base, mask_base, value_base, pos_base, seg_base : Signal(24), in
        Byte addresses of :data:`hw.isa.EMBED_DESC`.
    bias_word, bias_pos, bias_seg, bias_out : Signal(fmt.bias_bits), in
        Bias registers.
    vocab_rows : Signal(25), in
        Rows of the token table (a token row at or above it is an error).
    seg_rows : Signal(9), in
        Rows of the segment table.
    pos_rows : Signal(13), in
        Rows of the position table (``tokens`` above it is an error).
    aux_en : Signal(1), out; aux_addr : Signal(16), out; aux_data : Signal(32), in
        Aux read port: the scalar (first :data:`hw.isa.SCALAR_BYTES` bytes, little-endian) of
        word ``aux_addr`` is expected on ``aux_data`` in the cycle after ``aux_en``.
    reram : Out(read_signature(depth, word_bytes))
        To :class:`hw.reram.ReramStore` ``rd`` (``wiring.connect``).
    o : stream, out
        Payload ``{codes: n codes, tag: {row, col}}`` (lane 0 in the low bits).
    busy : Signal(1), out
        From ``start`` to ``done``.
    done : Signal(1), out
        One-cycle pulse when the command has finished (every beat out, or after an error).
    error : Signal(1), out; err_code : Signal(3), out
        Set with ``done`` on an error (:class:`EmbedError`), cleared by the next ``start``.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, n=16, fixed: FixedFormat = FixedFormat(),
                 memmap: MemoryMap | None = None, max_cols=16):
        with checked_construction(self):
            check_format(fmt, fixed)
            if fmt.n_bits != 8:
                raise ValueError(f"the store holds byte codes: fmt.n_bits must be 8, not "
                                 f"{fmt.n_bits}")
            memmap = MemoryMap(n=n) if memmap is None else memmap
            if not isinstance(memmap, MemoryMap):
                raise TypeError(f"memmap must be a MemoryMap, not {memmap!r}")
            if memmap.n != n:
                raise ValueError(f"memmap.n ({memmap.n}) must equal n ({n})")
            _pow2("reram_word_bytes", memmap.reram_word_bytes)
            if _pow2("reram_bytes", memmap.reram_bytes) > _ADDR_BITS:
                raise ValueError(f"reram_bytes must be at most 2^{_ADDR_BITS} (descriptor "
                                 f"addresses), not {memmap.reram_bytes}")
            if not isinstance(max_cols, int) or isinstance(max_cols, bool) \
                    or not 1 <= max_cols <= 255:
                raise ValueError(f"max_cols must be an integer in 1..255, not {max_cols!r}")
        self._fmt, self._n, self._fixed, self._mm = fmt, n, fixed, memmap
        self._max_cols = max_cols
        depth, wb = memmap.depth("reram"), memmap.reram_word_bytes
        lanes = data.ArrayLayout(fmt.n_bits, n)
        self._tag = data.StructLayout({"row": range(255 * n + 1), "col": 8})
        bias = In(fmt.bias_bits)
        super().__init__({
            "start": In(1), "rows": In(8), "cols": In(8), "tokens": In(12), "tok_addr": In(16),
            **{f"{p}_base": In(_ADDR_BITS) for p in ("rowptr", "mask", "value", "pos", "seg")},
            "bias_word": bias, "bias_pos": bias, "bias_seg": bias, "bias_out": bias,
            "vocab_rows": In(TOKEN_ROW_BITS + 1), "seg_rows": In(9), "pos_rows": In(13),
            "aux_en": Out(1), "aux_addr": Out(16), "aux_data": In(8 * SCALAR_BYTES),
            "reram": Out(read_signature(depth, wb)),
            "o": Out(stream.Signature(data.StructLayout({"codes": lanes, "tag": self._tag}))),
            "busy": Out(1), "done": Out(1), "error": Out(1), "err_code": Out(3),
        })

    @property
    def memmap(self):
        return self._mm

    @property
    def max_cols(self):
        return self._max_cols

    def elaborate(self, platform):
        m = Module()
        n, mm = self._n, self._mm
        wb = mm.reram_word_bytes
        lgwb, lgb = _pow2("", wb), _pow2("", mm.reram_bytes)
        depth_bits = lgb - lgwb
        mb = max(1, -(-n // 8))
        rw, _, pw, _, vw = embed_words(n, 1, wb)
        mr_max = -(-(self._max_cols * mb + wb - 1) // wb)
        wbits, mbits = 8 * wb, self._max_cols * mb * 8
        wide = _ADDR_BITS + 16

        m.submodules.sum = sm = EmbedSum(fmt=self._fmt, n=n, fixed=self._fixed,
                                         tag_layout=self._tag)
        req, resp = self.reram.req, self.reram.resp

        # The command, sampled at start.
        c = {name: Signal.like(getattr(self, name), name=f"c_{name}") for name in (
            "rows", "cols", "tokens", "tok_addr", "rowptr_base", "mask_base", "value_base",
            "pos_base", "seg_base", "vocab_rows", "seg_rows", "pos_rows", "bias_word", "bias_pos",
            "bias_seg", "bias_out")}
        for name in ("bias_word", "bias_pos", "bias_seg", "bias_out"):
            m.d.comb += getattr(sm, name).eq(c[name])
        e_bytes = Signal(16)                      # E: bytes of a position or segment row
        m.d.comb += e_bytes.eq(c["cols"] * n)
        rows_n = Signal(range(255 * n + 1))
        m.d.comb += rows_n.eq(c["rows"] * n)
        total = Signal(range(255 * 255 * n + 1))
        m.d.comb += total.eq(rows_n * c["cols"])
        # Mask words per row (hw.timing.embed_words): the row's masks start at a multiple of
        # g = min(wb, lowest set bit of cols * mb) in a word.
        mrow = Signal(16)
        m.d.comb += mrow.eq(c["cols"] * mb)
        low = Signal(16)
        m.d.comb += low.eq(mrow & (~mrow + 1))
        mr = Signal(range(mr_max + 1))
        with m.If(low >= wb):
            m.d.comb += mr.eq(mrow >> lgwb)
        with m.Else():
            m.d.comb += mr.eq((mrow + 2 * wb - 1 - low) >> lgwb)

        # Issuer state.
        t = Signal(12)
        row, seg = Signal(TOKEN_ROW_BITS), Signal(8)
        rp_byte, mask_byte, pos_byte, seg_byte = (Signal(wide, name=s) for s in (
            "rp_byte", "mask_byte", "pos_byte", "seg_byte"))
        ik, ij = Signal(range(rw + mr_max + 2 * pw + vw + 1)), Signal(8)
        ipa, isa, ivp = Signal(wide), Signal(wide), Signal(lgb)
        imask = Signal(mbits)
        inflight = Signal(8)
        err = Signal(3)
        ocount = Signal.like(total)

        # Consumer state.
        ck, cj, ct = Signal.like(ik), Signal(8), Signal(range(255 * n + 1))
        hbuf = Signal((rw + mr_max) * wbits)
        posbuf, segbuf = Signal(pw * wbits), Signal(pw * wbits)
        vbuf = Signal((vw - 1) * wbits)
        cmask, cvp = Signal(mbits), Signal(lgb)
        cpo, cso = Signal(max(lgwb, 1)), Signal(max(lgwb, 1))
        cph = Signal(2)

        took_req = req.valid & req.ready
        took_resp = resp.valid & resp.ready
        m.d.sync += inflight.eq(inflight + took_req - took_resp)
        with m.If(sm.o.valid & sm.o.ready):
            m.d.sync += ocount.eq(ocount + 1)
        m.d.comb += [self.o.valid.eq(sm.o.valid), self.o.payload.eq(sm.o.payload),
                     sm.o.ready.eq(self.o.ready)]

        # The row latch: the header of a row is in and nothing else is in flight.
        latch = Signal()
        rowptr = Signal(32)
        m.d.comb += rowptr.eq(hbuf[:rw * wbits].bit_select(rp_byte[:lgwb] * 8, 32)
                              if lgwb else hbuf[:32])
        masks = Signal(mbits)
        m.d.comb += masks.eq(hbuf[rw * wbits:] >> (mask_byte[:lgwb] * 8) if lgwb
                             else hbuf[rw * wbits:])
        vp0 = Signal(lgb)
        m.d.comb += vp0.eq(c["value_base"] + rowptr)
        with m.If(latch):
            m.d.sync += [imask.eq(masks), cmask.eq(masks), ivp.eq(vp0), cvp.eq(vp0),
                         ipa.eq(pos_byte), isa.eq(seg_byte), cpo.eq(pos_byte), cso.eq(seg_byte)]

        def word_of(byte_addr, k):
            return (byte_addr[lgwb:] + k)[:depth_bits]

        def fail(code):
            m.d.sync += [err.eq(code), self.error.eq(1), self.err_code.eq(code)]
            m.next = "ERR"

        m.d.comb += self.busy.eq(1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.busy.eq(0)
                with m.If(self.start):
                    m.d.sync += [r.eq(getattr(self, name)) for name, r in c.items()]
                    m.d.sync += [t.eq(0), ocount.eq(0), err.eq(0), self.error.eq(0),
                                 self.err_code.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                bad_cmd = ((c["rows"] == 0) | (c["cols"] == 0) | (c["cols"] > self._max_cols)
                           | (c["tokens"] > rows_n) | (c["tokens"] > c["pos_rows"]))
                aligned = Cat(c[f"{p}_base"][:lgwb] for p in ("rowptr", "mask", "pos", "seg"))
                bad_addr = ((aligned != 0) | (c["value_base"] >= mm.reram_bytes)
                            | (c["pos_base"] + c["tokens"] * e_bytes > mm.reram_bytes))
                for p in ("rowptr", "mask", "pos", "seg"):
                    bad_addr |= c[f"{p}_base"] >= mm.reram_bytes
                with m.If(bad_cmd):
                    fail(EmbedError.COMMAND)
                with m.Elif(bad_addr):
                    fail(EmbedError.ADDRESS)
                with m.Elif(c["tokens"] == 0):
                    m.next = "FIN"
                with m.Else():
                    m.next = "TOK"
            with m.State("TOK"):
                m.d.comb += [self.aux_en.eq(1), self.aux_addr.eq(c["tok_addr"] + t)]
                m.next = "ADDR"
            with m.State("ADDR"):
                a_row = self.aux_data[:TOKEN_ROW_BITS]
                a_seg = self.aux_data[TOKEN_ROW_BITS:]
                m.d.sync += [row.eq(a_row), seg.eq(a_seg),
                             rp_byte.eq(c["rowptr_base"] + a_row * 4),
                             mask_byte.eq(c["mask_base"] + a_row * mrow),
                             pos_byte.eq(c["pos_base"] + t * e_bytes),
                             seg_byte.eq(c["seg_base"] + a_seg * e_bytes)]
                m.next = "CHK"
            with m.State("CHK"):
                with m.If(row >= c["vocab_rows"]):
                    fail(EmbedError.TOKEN_ROW)
                with m.Elif(seg >= c["seg_rows"]):
                    fail(EmbedError.SEGMENT)
                with m.Elif((rp_byte + 4 > mm.reram_bytes) | (mask_byte + mrow > mm.reram_bytes)
                            | (seg_byte + e_bytes > mm.reram_bytes)):
                    fail(EmbedError.ADDRESS)
                with m.Else():
                    m.d.sync += ik.eq(0)
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += req.valid.eq(1)
                with m.If(ik < rw):
                    m.d.comb += req.payload.eq(word_of(rp_byte, ik))
                with m.Else():
                    m.d.comb += req.payload.eq(word_of(mask_byte, ik - rw))
                with m.If(req.ready):
                    m.d.sync += ik.eq(ik + 1)
                    with m.If(ik == rw + mr - 1):
                        m.next = "HWAIT"
            with m.State("HWAIT"):
                with m.If(inflight == 0):
                    m.d.comb += latch.eq(1)
                    m.d.sync += [ik.eq(0), ij.eq(0)]
                    m.next = "VEC"
            with m.State("VEC"):
                m.d.comb += req.valid.eq(1)
                with m.If(ik < pw):
                    m.d.comb += req.payload.eq(word_of(ipa, ik))
                with m.Elif(ik < 2 * pw):
                    m.d.comb += req.payload.eq(word_of(isa, ik - pw))
                with m.Else():
                    m.d.comb += req.payload.eq(word_of(ivp, ik - 2 * pw))
                with m.If(req.ready):
                    m.d.sync += ik.eq(ik + 1)
                    with m.If(ik == 2 * pw + vw - 1):
                        m.d.sync += [ik.eq(0), ij.eq(ij + 1), ipa.eq(ipa + n), isa.eq(isa + n),
                                     ivp.eq(ivp + sum(imask[i] for i in range(n))),
                                     imask.eq(imask >> (8 * mb))]
                        with m.If(ij == c["cols"] - 1):
                            m.d.sync += t.eq(t + 1)
                            with m.If(t == c["tokens"] - 1):
                                m.next = "FIN"
                            with m.Else():
                                m.next = "TOK"
            with m.State("FIN"):
                with m.If(ocount == total):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
            with m.State("ERR"):
                m.d.comb += sm.flush.eq(1)
                with m.If(inflight == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

        # Consumer: takes the words in the order they were requested.
        with m.If((cph == _Phase.IDLE) & self.start & ~self.busy):
            m.d.sync += [ck.eq(0), cj.eq(0), ct.eq(0),
                         cph.eq(Mux(self.tokens == 0, _Phase.PAD, _Phase.HDR))]
        with m.Switch(cph):
            with m.Case(_Phase.HDR):
                m.d.comb += resp.ready.eq(1)
                with m.If(resp.valid):
                    with m.Switch(ck):
                        for k in range(rw + mr_max):
                            with m.Case(k):
                                m.d.sync += hbuf.word_select(k, wbits).eq(resp.payload)
                    m.d.sync += ck.eq(ck + 1)
                    with m.If(ck == rw + mr - 1):
                        m.d.sync += [ck.eq(0), cph.eq(_Phase.VEC)]
            with m.Case(_Phase.VEC):
                self._consume_vector(m, SimpleNamespace(
                    sm=sm, resp=resp, cph=cph, ck=ck, cj=cj, ct=ct, c=c, posbuf=posbuf,
                    segbuf=segbuf, vbuf=vbuf, cmask=cmask, cvp=cvp, cpo=cpo, cso=cso, mb=mb,
                    pw=pw, vw=vw, wbits=wbits))
            with m.Case(_Phase.PAD):
                m.d.comb += [sm.i.valid.eq(1), sm.i.payload.tag.row.eq(ct),
                             sm.i.payload.tag.col.eq(cj)]
                with m.If(ct >= rows_n):
                    m.d.comb += sm.i.valid.eq(0)
                    m.d.sync += cph.eq(_Phase.IDLE)
                with m.Elif(sm.i.ready):
                    m.d.sync += cj.eq(cj + 1)
                    with m.If(cj == c["cols"] - 1):
                        m.d.sync += [cj.eq(0), ct.eq(ct + 1)]
        with m.If(err != 0):
            # Drop whatever is still in flight; the issuer finishes when nothing is. (A start
            # after a refused command clears err: its own phase stands.)
            m.d.comb += [resp.ready.eq(1), sm.i.valid.eq(0)]
            with m.If(~(self.start & ~self.busy)):
                m.d.sync += cph.eq(_Phase.IDLE)
        return m

    def _consume_vector(self, m, st):
        """Position and segment words into their buffers, value words into the window; the
        last value word makes the beat."""
        resp, pw, vw = st.resp, st.pw, st.vw
        with m.If(st.ck < 2 * pw + vw - 1):
            m.d.comb += resp.ready.eq(1)
            with m.If(resp.valid):
                m.d.sync += st.ck.eq(st.ck + 1)
                with m.Switch(st.ck):
                    for k in range(2 * pw + vw - 1):
                        buf, slot = ((st.posbuf, k) if k < pw else (st.segbuf, k - pw)
                                     if k < 2 * pw else (st.vbuf, k - 2 * pw))
                        with m.Case(k):
                            m.d.sync += buf.word_select(slot, st.wbits).eq(resp.payload)
        with m.Else():
            self._emit_beat(m, st)

    def _emit_beat(self, m, st):
        """Expand the vector's packed values (from byte ``cvp % wb`` of the window) by its
        mask and hand the beat to the sum pipeline."""
        n, sm, resp = self._n, st.sm, st.resp
        wb = self._mm.reram_word_bytes
        lgwb = _pow2("", wb)
        window = Cat(st.vbuf, resp.payload)
        mask = st.cmask[:n]
        vo = st.cvp[:lgwb] if lgwb else Const(0, 1)
        rank = Const(0, 1)
        for i in range(n):
            byte = window.word_select(vo + rank, 8)
            m.d.comb += sm.i.payload.word[i].eq(mask[i].replicate(8) & byte)
            rank = rank + mask[i]
        # A vector narrower than a word sits at a multiple of n bytes in it.
        pos = st.posbuf.bit_select(st.cpo * 8, 8 * n) if n < wb else st.posbuf
        sg = st.segbuf.bit_select(st.cso * 8, 8 * n) if n < wb else st.segbuf
        m.d.comb += [sm.i.payload.pos.eq(pos[:8 * n]), sm.i.payload.seg.eq(sg[:8 * n]),
                     sm.i.payload.tag.row.eq(st.ct), sm.i.payload.tag.col.eq(st.cj),
                     sm.i.valid.eq(resp.valid), resp.ready.eq(sm.i.ready)]
        with m.If(resp.valid & sm.i.ready):
            m.d.sync += [st.ck.eq(0), st.cj.eq(st.cj + 1), st.cmask.eq(st.cmask >> (8 * st.mb)),
                         st.cvp.eq(st.cvp + sum(mask[i] for i in range(n))),
                         st.cpo.eq(st.cpo + n), st.cso.eq(st.cso + n)]
            with m.If(st.cj == st.c["cols"] - 1):
                m.d.sync += [st.cj.eq(0), st.ct.eq(st.ct + 1),
                             st.cph.eq(Mux(st.ct == st.c["tokens"] - 1, _Phase.PAD,
                                           _Phase.HDR))]

register_block(
    "embed_unit", "Embedding unit: token rows from the ReRAM store + position + segment rows",
    build=lambda n, reram_bytes, reram_word_bytes, reram_latency, max_cols, width, frac_bits,
    **p: EmbedUnit(fmt=AFFormat(**p), n=n, fixed=FixedFormat(width=width, frac_bits=frac_bits),
                   memmap=MemoryMap(n=n, reram_bytes=reram_bytes,
                                    reram_word_bytes=reram_word_bytes,
                                    reram_latency=reram_latency), max_cols=max_cols),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 16,
            "reram_bytes": 2 * 1024 * 1024, "reram_word_bytes": 8, "reram_latency": 2,
            "max_cols": 16, "width": 32, "frac_bits": 16},
)
