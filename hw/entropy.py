"""Entropy early-exit assessment ([H5]): ``H`` of the off-ramp logits, threshold, exit flag.

Two passes over a row buffer: (1) load the logits and find their maximum, (2) read them back
and sum ``e = exp(x - max)`` and ``(max - x) * e``; then the reciprocal of ``S``, ``H = ln S +
T / S`` and the comparison. Bit-exact to :func:`sw.golden.entropy.entropy`.

Every pass is a pipeline with a register after each table lookup and each DSP product
(:mod:`hw.sfu_pipe`), so that no path holds more than one multiplier or one carry chain after
a table; nothing in a pass waits for the output, so the stages run freely and the FSM only counts
their fixed latency (:data:`sw.perf.sfu.ENTROPY_OVERHEAD`).
"""

import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from hw.checks import check_int, checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block
from hw.sfu_common import check_format, check_lanes
from hw.sfu_math import (
    EXP_TABLE_CUTS,
    EXP_U_CUTS,
    RECIP_CUTS,
    exp_neg_table,
    exp_neg_u_abs,
    ln_normalized,
    reciprocal,
)
from hw.sfu_pipe import (
    MAX_TREE_MIN_STAGES,
    MUL_CUTS,
    Flight,
    delay,
    dsp_target,
    max_tree_stages,
    mul,
    register_cut,
    tree,
)
from hw.sfu_row import RowControl, RowUnit
from hw.sfu_tables import ENT_TERM_SHIFT, EXP_FRAC, H_BITS, LN2, LN_FRAC, RECIP_FRAC

__all__ = ["EntropyExit", "H_BITS", "result_layout", "max_tree_stages"]

# Pipeline stages of the beat's sums: fixed, so their cycles do not depend on n (each stage
# reduces ceil(log2 n) / 2 levels of adders).
SUM_TREE_STAGES = 2
# Cycles from final S and T to the result: the reciprocal, the product with T (and the ln
# table), the shift (and ln S).
RESULT_CYCLES = RECIP_CUTS + MUL_CUTS + 1


def result_layout():
    """Payload of the result stream: the entropy (``LN_FRAC`` fractional bits) and the flag."""
    return data.StructLayout({"entropy": H_BITS, "exit": 1})


class EntropyExit(RowUnit):
    """Entropy of a row of off-ramp logits, compared with a programmable threshold.

    A row of ``classes`` logits arrives as ``ceil(classes / n)`` beats (lanes past ``classes``
    in the last beat are ignored); one result beat leaves per row. :func:`sw.perf.sfu.
    entropy_cycles` gives the cycles per row.

    Parameters
    ----------
    fmt : AFFormat
        Format of the logits.
    n : int
        Logits per beat.
    max_classes : int
        Most classes per row (1 .. 4096); sets the row buffer depth.
    fixed : FixedFormat
        Fixed-point format of the logits ([F5]).

    Attributes
    ----------
    i : stream, in
        Payload ``n`` codes.
    o : stream, out
        Payload :func:`result_layout`: ``entropy`` (nats, ``LN_FRAC`` fractional bits) and
        ``exit`` (``entropy < threshold``).
    classes : Signal(range(max_classes + 1)), in
        Classes per row, 1 .. max_classes; held while a row is in flight.
    bias_in : Signal(fmt.bias_bits), in
        Bias register of the logits.
    threshold : Signal(H_BITS), in
        Exit threshold (nats, ``LN_FRAC`` fractional bits).
    busy : Signal(1), out
        A row is in flight.
    error : Signal(1), out
        ``classes`` is 0 or above the maximum: the unit accepts no input until it is legal.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, n=4, max_classes=64,
                 fixed: FixedFormat = FixedFormat()):
        with checked_construction(self):
            check_format(fmt, fixed)
            check_lanes(n)
            check_int("max_classes", max_classes, lo=1, hi=4096, span=True)
            if fixed.frac_bits - ENT_TERM_SHIFT + RECIP_FRAC - LN_FRAC + EXP_FRAC < 0:
                raise ValueError(f"fixed must have at least "
                                 f"{ENT_TERM_SHIFT - RECIP_FRAC + LN_FRAC - EXP_FRAC} "
                                 f"fractional bits, not {fixed.frac_bits}")
        self._fmt, self._n, self._fixed = fmt, n, fixed
        self._max_classes = max_classes
        self._max_beats = -(-max_classes // n)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(fmt.n_bits, n))),
            "o": Out(stream.Signature(result_layout())),
            "classes": In(range(max_classes + 1)),
            "bias_in": In(fmt.bias_bits),
            "threshold": In(H_BITS),
        })

    @property
    def max_classes(self):
        return self._max_classes

    def elaborate(self, platform):
        m = Module()
        fmt, fx, n = self._fmt, self._fixed, self._n
        # Nothing downstream stalls a pass: the stages run freely.
        cut = register_cut(m, dsp=dsp_target(platform, "entropy"))
        row = RowControl(m, self, data=self.i.payload.as_value(), read_en=1, size=self.classes,
                         limit=self._max_classes)
        rd, count, taken = row.rd, row.count, row.taken

        def lane_valid(beat, j):
            return beat * n + j < self.classes

        beats = Signal(range(self._max_beats + 1))
        m.d.comb += beats.eq((self.classes + (n - 1)) // n)
        read_beat = Signal(range(self._max_beats + 1))  # beat whose data rd.data holds
        wait = Signal(range(RESULT_CYCLES + 1))
        cbits = (self._max_classes - 1).bit_length()
        s = Signal(EXP_FRAC + 1 + cbits)
        # |d| < 2^(top of the fixed values + 1); a term is below 2^(that + EXP_FRAC + 1 - shift).
        dbits = fmt.sig_bits + fmt.exp_max + fmt.scale_exponent(fmt.bias_max) + fx.frac_bits + 2
        tbits = dbits + EXP_FRAC + 1 - ENT_TERM_SHIFT
        t = Signal(tbits + cbits)

        # Pass 1: the incoming beats in fixed point, invalid lanes at the minimum, registered
        # (stage P) | their maximum, a tree of max_tree_stages(n) stages | the running maximum.
        in_x = self.fixed_lanes(m, "in_fixed", [self.i.payload[j] for j in range(n)])
        in_m = [Signal(signed(fx.width), name=f"in_m{j}") for j in range(n)]
        for j in range(n):
            m.d.comb += in_m[j].eq(Mux(lane_valid(count, j), in_x[j], fx.min_int))
        p_valid, p_first, *p_x = cut([taken, count == 0, *in_m])
        max_stages = max_tree_stages(n)
        settle = max_stages - MAX_TREE_MIN_STAGES  # cycles pass 2 waits for the maximum
        best = tree(cut, p_x, lambda a, b: Mux(a > b, a, b), max_stages)
        b_valid, b_first = delay(cut, [p_valid, p_first], max_stages)
        mx = Signal(signed(fx.width))
        with m.If(b_valid):
            m.d.sync += mx.eq(Mux(b_first | (best > mx), best, mx))
        # The maximum is final 2 + max_stages cycles after the last input beat; pass 2 starts
        # settle + 1 cycles after that beat, and its first value reaches the subtraction (stage
        # D) 3 cycles later.

        # Pass 2: A: read issued (valid_a) | B: the codes read | C: x in fixed point |
        # D: -d = max - x | u (EXP_U_CUTS) | 2^-u (EXP_TABLE_CUTS: tables twice, product, shift) |
        # I: e, masked to the valid lanes | the term (-d) e (MUL_CUTS) | the beat's sums
        # (SUM_TREE_STAGES) | accumulate.
        valid_a = Signal()
        flight = Flight(cut, valid_a)
        stage = flight.stage
        ok_a = Signal(n)
        m.d.comb += ok_a.eq(Cat(*[lane_valid(read_beat, j) for j in range(n)]))
        valid_b, (ok_b, codes_b) = stage(valid_a, [ok_a, rd.data])
        xs = self.fixed_lanes(m, "rd_fixed", [codes_b[j * fmt.n_bits:(j + 1) * fmt.n_bits]
                                              for j in range(n)])
        valid_c, (ok_c, *x_c) = stage(valid_b, [ok_b, *xs])
        negd = [Signal(dbits, name=f"negd{j}") for j in range(n)]
        m.d.comb += [negd[j].eq(mx - x_c[j]) for j in range(n)]
        valid_d, (ok_d, *negd_d) = stage(valid_c, [ok_c, *negd])
        us = exp_neg_u_abs(m, "exp", negd_d, fx.frac_bits, cut)
        valid_e, (ok_e, *negd_e) = stage(valid_d, [ok_d, *negd_d], EXP_U_CUTS)
        es = exp_neg_table(m, "exp", us, cut)
        valid_h, (ok_h, *negd_h) = stage(valid_e, [ok_e, *negd_e], EXP_TABLE_CUTS)
        e_m = [Signal(EXP_FRAC + 1, name=f"e_m{j}") for j in range(n)]
        m.d.comb += [e_m[j].eq(Mux(ok_h[j], es[j], 0)) for j in range(n)]
        valid_i, rest = stage(valid_h, [*e_m, *negd_h])
        e_i, negd_i = rest[:n], rest[n:]
        terms = [Signal(tbits, name=f"term{j}") for j in range(n)]
        m.d.comb += [terms[j].eq(mul(cut, negd_i[j], e_i[j]) >> ENT_TERM_SHIFT)
                     for j in range(n)]
        valid_j, e_j = stage(valid_i, e_i, MUL_CUTS)
        beat_s = tree(cut, e_j, operator.add, SUM_TREE_STAGES)
        beat_t = tree(cut, terms, operator.add, SUM_TREE_STAGES)
        valid_sum, _ = stage(valid_j, [], SUM_TREE_STAGES)
        in_flight = flight.any

        # Result, once S and T are final (the stages run freely; the FSM waits RESULT_CYCLES):
        # H = (k - EXP_FRAC) ln 2 + ln(s) + T r1 / 2^(k + const).
        r1, k, s_norm = reciprocal(m, "recip", s, cut=cut)
        const = fx.frac_bits - ENT_TERM_SHIFT + RECIP_FRAC - LN_FRAC + EXP_FRAC
        over = Signal(range(len(s)))
        m.d.comb += over.eq(k - EXP_FRAC)
        prod = Signal(len(t) + len(r1))
        m.d.comb += prod.eq(mul(cut, t, r1))
        # The ln table is read into a register (a block RAM), then waits for the product.
        over_p, ln_p = delay(cut, [over, ln_normalized(m, "ln", s_norm)], MUL_CUTS)
        ratio = Signal(H_BITS)
        ln_s = Signal(H_BITS + 1)
        m.d.comb += [ratio.eq(prod >> (over_p + const)), ln_s.eq(over_p * LN2 + ln_p)]
        ratio_q, ln_q = cut([ratio, ln_s])
        h = Signal(H_BITS)
        m.d.comb += h.eq(ln_q + ratio_q)

        with m.FSM():
            row.load_state(count == beats - 1, "SETTLE" if settle else "SUM",
                           on_last=[s.eq(0), t.eq(0), wait.eq(settle)])
            if settle:  # the beat's maximum is still in its tree
                row.wait_state("SETTLE", wait, "SUM")
            with m.State("SUM"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [valid_a.eq(count != beats), read_beat.eq(count)]
                with m.If(count != beats):
                    m.d.sync += count.eq(count + 1)
                with m.If(valid_sum):
                    m.d.sync += [s.eq(s + beat_s), t.eq(t + beat_t)]
                with m.If((count == beats) & ~in_flight):
                    m.d.sync += [count.eq(0), wait.eq(RESULT_CYCLES)]
                    m.next = "FINISH"
            # S and T are final; the result's stages settle, then load the output register.
            row.wait_state("FINISH", wait, "DONE", on_done=[
                self.o.payload.entropy.eq(h), self.o.payload.exit.eq(h < self.threshold),
                self.o.valid.eq(1)])
            with m.State("DONE"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += self.o.valid.eq(0)
                    m.next = "LOAD"
        return m


register_block(
    "entropy_exit", "Entropy early-exit assessment (log-sum-exp, threshold, exit flag)",
    build=lambda n, max_classes, width, frac_bits, **p: EntropyExit(
        fmt=AFFormat(**p), n=n, max_classes=max_classes,
        fixed=FixedFormat(width=width, frac_bits=frac_bits)),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 4,
            "max_classes": 64, "width": 32, "frac_bits": 16},
)
