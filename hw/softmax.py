"""Span-masked softmax ([H3]): row-wise, n elements per cycle per pass, bit-exact to the golden.

Three passes over a row buffer: (1) load the row and find its maximum, (2) read it back,
compute the exponentials and their (masked) sum, then one cycle for the reciprocal, (3) read it
back again, recompute the exponentials, multiply by the mask and the reciprocal, requantize and
stream out. Passes 2 and 3 share one pipelined datapath (read, exp argument, tables and mask,
product with the reciprocal), so each pass takes one beat per cycle after a fixed latency.
Formats and rounding are those of :mod:`sw.golden.softmax`.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.af_fixed import AFToFixed
from hw.af_requant import DEFAULT_STAGES as REQUANT_STAGES
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block
from hw.sfu_common import LaneUnit, check_format, check_lanes, check_row
from hw.sfu_math import (
    EXP_FRAC,
    RECIP_FRAC,
    SPAN_MASK_FRAC,
    exp_neg_table,
    exp_neg_u,
    reciprocal,
)

__all__ = ["Softmax"]

MASK_BITS = SPAN_MASK_FRAC + 1


class Softmax(LaneUnit, wiring.Component):
    """Row-wise softmax of AdaptivFloat scores times a per-key span mask, optional renormalising.

    A row of ``length * n`` scores arrives as ``length`` beats; the row's output leaves as
    ``length`` beats after the whole row was read; :func:`sw.perf.sfu.softmax_cycles` gives the
    cycles per row.

    Parameters
    ----------
    fmt : AFFormat
        Format of scores and probabilities.
    n : int
        Elements per beat.
    max_len : int
        Longest row (elements), a multiple of ``n``; sets the row buffer depth.
    fixed : FixedFormat
        Fixed-point format of the scores ([F5]).

    Attributes
    ----------
    i : stream, in
        Payload ``{x: n codes, mask: n x (SPAN_MASK_FRAC + 1) bits}``: scores and their span
        mask values (0 .. 2^SPAN_MASK_FRAC).
    o : stream, out
        Payload ``n`` codes.
    length : Signal(range(max_len // n + 1)), in
        Row length in beats, 1 .. max_len // n; held while a row is in flight.
    bias_in, bias_out : Signal(fmt.bias_bits), in
        Bias registers of the scores and of the probabilities.
    renorm : Signal(1), in
        Divide by the masked sum instead of the plain sum.
    busy : Signal(1), out
        A row is in flight.
    error : Signal(1), out
        ``length`` is 0 or above the maximum: the unit accepts no input until it is legal.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, n=16, max_len=512,
                 fixed: FixedFormat = FixedFormat()):
        with checked_construction(self):
            check_format(fmt, fixed)
            check_lanes(n)
            max_beats = check_row(n, max_len)
        self._fmt, self._n, self._fixed = fmt, n, fixed
        self._max_len, self._max_beats = max_len, max_beats
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(fmt.n_bits, n),
                "mask": data.ArrayLayout(MASK_BITS, n)}))),
            "o": Out(stream.Signature(data.ArrayLayout(fmt.n_bits, n))),
            "length": In(range(max_beats + 1)),
            "bias_in": In(fmt.bias_bits),
            "bias_out": In(fmt.bias_bits),
            "renorm": In(1),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def max_len(self):
        return self._max_len

    def elaborate(self, platform):
        m = Module()
        fmt, fx, n = self._fmt, self._fixed, self._n
        lane_bits = fmt.n_bits + MASK_BITS
        mem = Memory(shape=lane_bits * n, depth=self._max_beats, init=[])
        m.submodules.row = mem
        wr = mem.write_port()
        rd = mem.read_port()

        def fixed_of(name, codes):
            out = []
            for lane, code in enumerate(codes):
                conv = AFToFixed(fmt=fmt, fixed=fx)
                m.submodules[f"{name}{lane}"] = conv
                m.d.comb += [conv.code.eq(code), conv.bias.eq(self.bias_in)]
                out.append(conv.fixed)
            return out

        count = Signal(range(self._max_beats + 1))
        mx = Signal(signed(fx.width))
        acc_width = EXP_FRAC + 1 + MASK_BITS + (self._max_len - 1).bit_length()
        acc = Signal(acc_width)
        r1 = Signal(RECIP_FRAC + 1)
        k = Signal(range(acc_width))
        valid_a = Signal()  # a read was issued: rd.data holds a beat
        en = Signal()

        # Pass 1: the running maximum over the incoming beats (masked-out ones skipped when
        # renormalising).
        in_x = fixed_of("in_fixed", [self.i.payload.x[j] for j in range(n)])
        level = [Mux(self.renorm & (self.i.payload.mask[j] == 0), fx.min_int, in_x[j])
                 for j in range(n)]
        # The beat's maximum as a tree of pairwise maxima (log2 n comparators deep, not n).
        depth = 0
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level) - 1, 2):
                # A Signal per node: the expression uses both operands twice.
                node = Signal(signed(fx.width), name=f"best{depth}_{j // 2}")
                m.d.comb += node.eq(Mux(level[j + 1] > level[j], level[j + 1], level[j]))
                nxt.append(node)
            level = nxt + level[len(level) - len(level) % 2:]
            depth += 1
        best = level[0]
        row_best = Signal(signed(fx.width))
        m.d.comb += row_best.eq(Mux(count == 0, best, Mux(best > mx, best, mx)))

        # Passes 2 and 3 share one pipelined datapath from the row buffer, advancing when ``en``:
        # A: read issued (valid_a) | B: rd.data -> x -> d -> u (registered) | C: 2^-u from the
        # tables, times the mask (registered) | then the sum (pass 2) or the output (pass 3).
        rx = [rd.data[j * lane_bits:j * lane_bits + fmt.n_bits] for j in range(n)]
        rmask = [rd.data[j * lane_bits + fmt.n_bits:(j + 1) * lane_bits] for j in range(n)]
        xs = fixed_of("rd_fixed", rx)
        ds = []
        for j in range(n):
            d = Signal(signed(fx.width + 1), name=f"d{j}")
            m.d.comb += d.eq(Mux(xs[j] > mx, 0, xs[j] - mx))
            ds.append(d)
        us = exp_neg_u(m, "exp", ds, fx.frac_bits)
        valid_b, valid_c = Signal(), Signal()
        u_b = [Signal(len(u), name=f"u_b{j}") for j, u in enumerate(us)]
        mask_b = [Signal(MASK_BITS, name=f"mask_b{j}") for j in range(n)]
        es = exp_neg_table(m, "exp", u_b)
        e_c = [Signal(EXP_FRAC + 1, name=f"e_c{j}") for j in range(n)]
        ems = [Signal(EXP_FRAC + 1 + MASK_BITS, name=f"em_c{j}") for j in range(n)]
        with m.If(en):
            m.d.sync += [valid_b.eq(valid_a), valid_c.eq(valid_b)]
            for j in range(n):
                m.d.sync += [u_b[j].eq(us[j]), mask_b[j].eq(rmask[j]), e_c[j].eq(es[j]),
                             ems[j].eq(es[j] * mask_b[j])]
        pipe_empty = ~valid_a & ~valid_b & ~valid_c
        beat_sum = Signal(acc_width)
        m.d.comb += beat_sum.eq(Mux(self.renorm, sum(ems), sum(e_c) << SPAN_MASK_FRAC))

        recip_r1, recip_k, _ = reciprocal(m, "recip", acc | (acc == 0), registered=True)
        scale = fmt.offset - fmt.man_bits
        shift = Signal(signed(8))
        m.d.comb += shift.eq(-RECIP_FRAC - k - (self.bias_out + scale))
        # Pass 3 only, stage D: the product with the reciprocal (registered), then the
        # pipelined requantizer (REQUANT_STAGES stages) and the output register.
        valid_d = Signal()
        v_d = [Signal(len(ems[j]) + len(r1), name=f"v_d{j}") for j in range(n)]
        with m.If(en):
            m.d.sync += valid_d.eq(valid_c)
            for j in range(n):
                m.d.sync += v_d[j].eq(ems[j] * r1)
        codes = []
        for j in range(n):
            rq = AFRequantCore(fmt=fmt, in_width=len(v_d[j]) + 1,
                               shift_min=-RECIP_FRAC - (acc_width - 1) - (fmt.bias_max + scale),
                               shift_max=-RECIP_FRAC - scale, stages=REQUANT_STAGES)
            m.submodules[f"requant{j}"] = rq
            m.d.comb += [rq.value.eq(v_d[j]), rq.shift.eq(shift), rq.en.eq(en)]
            codes.append(rq.code)
        # Valid bits of the requantizer stages; they move in pass 3 only, so that the sum
        # pass's beats never reach the output.
        valid_q = [Signal(name=f"valid_q{k}") for k in range(REQUANT_STAGES)]

        m.d.comb += [
            wr.addr.eq(count),
            wr.data.eq(Cat(*[Cat(self.i.payload.x[j], self.i.payload.mask[j])
                             for j in range(n)])),
            rd.addr.eq(count),
            rd.en.eq(en),
        ]
        last = count == self.length - 1

        m.d.comb += self.error.eq((self.length == 0) | (self.length > self._max_beats))
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += [self.i.ready.eq(~self.error), en.eq(1)]
                with m.If(self.i.valid & ~self.error):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [mx.eq(row_best), count.eq(count + 1)]
                    with m.If(last):
                        m.d.sync += [count.eq(0), acc.eq(0)]
                        m.next = "SUM"
            with m.State("SUM"):
                m.d.comb += [self.busy.eq(1), en.eq(1)]
                m.d.sync += valid_a.eq(count != self.length)
                with m.If(count != self.length):
                    m.d.sync += count.eq(count + 1)
                with m.If(valid_c):
                    m.d.sync += acc.eq(acc + beat_sum)
                with m.If((count == self.length) & pipe_empty):
                    m.next = "RECIP"
            with m.State("RECIP"):  # the reciprocal's first (registered) half
                m.d.comb += [self.busy.eq(1), en.eq(1)]
                m.next = "RECIP_NEWTON"
            with m.State("RECIP_NEWTON"):
                m.d.comb += [self.busy.eq(1), en.eq(1)]
                m.d.sync += [r1.eq(recip_r1), k.eq(recip_k), count.eq(0)]
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += [self.busy.eq(1), en.eq(~self.o.valid | self.o.ready)]
                with m.If(en):
                    m.d.sync += [valid_a.eq(count != self.length),
                                 Cat(*valid_q, self.o.valid).eq(Cat(valid_d, *valid_q))]
                    for j in range(n):
                        m.d.sync += self.o.payload[j].eq(codes[j])
                    with m.If(count != self.length):
                        m.d.sync += count.eq(count + 1)
                    with m.Elif(pipe_empty & ~valid_d & ~Cat(*valid_q).any()):
                        m.d.sync += count.eq(0)
                        m.next = "LOAD"
        return m


def _selfcheck(n, max_len, width, frac_bits, **params):
    import torch

    from hw.sfu_sim import run_stream
    from sw.golden.softmax import softmax as golden
    from sw.golden.softmax import span_mask

    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    g = torch.Generator().manual_seed(3)
    beats_per_row, total = max_len // n, 0
    for renorm, z in ((0, float(max_len)), (1, max_len / 3)):
        rows = 3
        x = torch.randint(0, fmt.code_max + 1, (rows, max_len), generator=g)
        mask = span_mask(z, 8, max_len)
        want = golden(x, mask, 6, 3, bool(renorm), fmt, fixed).reshape(-1, n)
        beats = [{"x": list(xb), "mask": list(mb)}
                 for xb, mb in zip(x.reshape(-1, n).tolist(),
                                   mask.repeat(rows).reshape(-1, n).tolist(), strict=True)]
        dut = Softmax(fmt=fmt, n=n, max_len=max_len, fixed=fixed)
        got = run_stream(dut, beats, len(beats), config={
            "length": beats_per_row, "bias_in": 6, "bias_out": 3, "renorm": renorm})
        for r, (gb, wb) in enumerate(zip(got, want.tolist(), strict=True)):
            if list(gb) != wb:
                raise AssertionError(f"softmax beat {r} (renorm={renorm}): RTL {list(gb)} != "
                                     f"golden {wb}")
            total += n
    return f"{total} probabilities in 6 rows (plain and renormalised) equal the golden softmax"


register_block(
    "softmax", "Span-masked row softmax (max, exp, sum, reciprocal, mask, requantize)",
    build=lambda n, max_len, width, frac_bits, **p: Softmax(
        fmt=AFFormat(**p), n=n, max_len=max_len, fixed=FixedFormat(width=width,
                                                                   frac_bits=frac_bits)),
    selfcheck=_selfcheck,
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 16, "max_len": 512,
            "width": 32, "frac_bits": 16},
)
