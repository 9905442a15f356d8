"""Span-masked softmax ([H3]): row-wise, n elements per cycle per pass, bit-exact to the golden.

Three passes over a row buffer: (1) load the row and find its maximum, (2) read it back,
compute the exponentials and their (masked) sum, then the reciprocal of the sum, (3) read it
back again, recompute the exponentials, multiply by the mask and the reciprocal, requantize and
stream out. Passes 2 and 3 share one pipelined datapath (read, exp argument, tables and mask),
so each pass takes one beat per cycle after a fixed latency; pass 3 starts reading while the
reciprocal is still being computed, so that its first value needs it just when it is ready.

Every pass is a pipeline with a register after each table lookup and each DSP product
(:mod:`hw.sfu_pipe`), as in :mod:`hw.entropy` and :mod:`hw.layernorm`. Passes 2 and 3 stall as
a whole with the output (``en = ~o.valid | o.ready``; nothing stalls before the first output
value); pass 1 and the reciprocal never stall. The beat's maximum has a stage per compare
level, so from n = 8 on pass 2 waits for it. The cycles per row are
:func:`sw.perf.sfu.softmax_cycles`. Formats and rounding are those of :mod:`sw.golden.softmax`.
"""

import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from hw.af_requant import DEFAULT_STAGES as REQUANT_STAGES
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block
from hw.sfu_common import check_format, check_lanes, check_row
from hw.sfu_math import (
    EXP_TABLE_CUTS,
    EXP_U_CUTS,
    RECIP_CUTS,
    exp_neg_table,
    exp_neg_u_abs,
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
from hw.sfu_tables import EXP_FRAC, RECIP_FRAC, SPAN_MASK_FRAC

__all__ = ["Softmax"]

MASK_BITS = SPAN_MASK_FRAC + 1
# Pipeline stages of the beat's sum: fixed, so its cycles do not depend on n (each stage reduces
# ceil(log2 n) / 2 levels). The beat's maximum has one stage per compare level
# (hw.sfu_pipe.max_tree_stages), and pass 2 waits a cycle for each past the second.
SUM_TREE_STAGES = 2
# Cycles between the sum pass's last read and the output pass's first: the sum pass's last value
# reaches the product with r1 (the stage after em) as the output pass's first does, then the
# beat sum (SUM_TREE_STAGES), the accumulator (1) and the reciprocal (RECIP_CUTS) must be done
# before the output pass's first value gets there: its read follows the last one of pass 2 by
# SUM_TREE_STAGES + 1 + RECIP_CUTS cycles, two of them the FSM's own (SUM's last, OUT's first).
GAP_CYCLES = SUM_TREE_STAGES + RECIP_CUTS - 1


class Softmax(RowUnit):
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
        })

    @property
    def max_len(self):
        return self._max_len

    def elaborate(self, platform):
        m = Module()
        fmt, fx, n = self._fmt, self._fixed, self._n
        lane_bits = fmt.n_bits + MASK_BITS
        # Pass 1 and the reciprocal are never stalled.
        free = register_cut(m, dsp=dsp_target(platform, "softmax"))
        en = Signal()
        # Passes 2 and 3 stall with the output.
        held = register_cut(m, en, dsp=dsp_target(platform, "softmax"))
        row = RowControl(m, self, data=Cat(*[Cat(self.i.payload.x[j], self.i.payload.mask[j])
                                             for j in range(n)]),
                         read_en=en, size=self.length, limit=self._max_beats)
        rd, count, taken = row.rd, row.count, row.taken
        max_stages = max_tree_stages(n)
        settle = max_stages - MAX_TREE_MIN_STAGES  # cycles pass 2 waits for the maximum
        wait = Signal(range(max(GAP_CYCLES, settle) + 1))
        mx = Signal(signed(fx.width))
        acc_width = EXP_FRAC + 1 + MASK_BITS + (self._max_len - 1).bit_length()
        acc = Signal(acc_width)

        # Pass 1: P: the incoming beats in fixed point, masked-out ones at the minimum when
        # renormalising (registered) | their maximum, a tree of max_tree_stages(n) stages | the
        # running maximum. It is final 2 + max_stages cycles after the last input beat; pass 2
        # starts settle + 1 cycles after that beat, so that its first value reaches the
        # subtraction (stage D) 3 cycles later, exactly when the maximum is final.
        in_x = self.fixed_lanes(m, "in_fixed", [self.i.payload.x[j] for j in range(n)])
        in_m = [Signal(signed(fx.width), name=f"in_m{j}") for j in range(n)]
        for j in range(n):
            m.d.comb += in_m[j].eq(Mux(self.renorm & (self.i.payload.mask[j] == 0),
                                       fx.min_int, in_x[j]))
        p_valid, p_first, *p_x = free([taken, count == 0, *in_m])
        best = tree(free, p_x, lambda a, b: Mux(a > b, a, b), max_stages)
        b_valid, b_first = delay(free, [p_valid, p_first], max_stages)
        with m.If(b_valid):
            m.d.sync += mx.eq(Mux(b_first | (best > mx), best, mx))

        # Passes 2 and 3 share one pipeline from the row buffer, advancing when ``en``, and
        # carry a valid bit each: A: read issued | B: the codes and masks read | C: x in fixed
        # point | D: -d = max - x (0 where x > max) | u (EXP_U_CUTS) | 2^-u (EXP_TABLE_CUTS) |
        # I: e | em = e mask (MUL_CUTS) | then pass 2: the beat's sum (SUM_TREE_STAGES) into the
        # accumulator; pass 3: em r1 (MUL_CUTS), requantize (REQUANT_STAGES), output register.
        valid_a, sum_a = Signal(), Signal()  # a read was issued (sum_a: in pass 2)
        flight = Flight(held, valid_a)  # pass 3's beats: the output pass ends when none is left
        stage = flight.stage
        valid_b, (sum_b, codes) = stage(valid_a, [sum_a, rd.data])
        rx = [codes[j * lane_bits:j * lane_bits + fmt.n_bits] for j in range(n)]
        rmask = [codes[j * lane_bits + fmt.n_bits:(j + 1) * lane_bits] for j in range(n)]
        valid_c, (sum_c, *rest) = stage(valid_b,
                                        [sum_b, *self.fixed_lanes(m, "rd_fixed", rx), *rmask])
        x_c, mask_c = rest[:n], rest[n:]
        negd = [Signal(fx.width + 1, name=f"negd{j}") for j in range(n)]
        m.d.comb += [negd[j].eq(Mux(x_c[j] > mx, 0, mx - x_c[j])) for j in range(n)]
        valid_d, (sum_d, *rest) = stage(valid_c, [sum_c, *negd, *mask_c])
        negd_d, mask_d = rest[:n], rest[n:]
        us = exp_neg_u_abs(m, "exp", negd_d, fx.frac_bits, held)
        valid_e, (sum_e, *mask_e) = stage(valid_d, [sum_d, *mask_d], EXP_U_CUTS)
        es = exp_neg_table(m, "exp", us, held)
        valid_h, (sum_h, *mask_h) = stage(valid_e, [sum_e, *mask_e], EXP_TABLE_CUTS)
        valid_i, (sum_i, *rest) = stage(valid_h, [sum_h, *es, *mask_h])
        e_i, mask_i = rest[:n], rest[n:]
        ems = [mul(held, e_i[j], mask_i[j]) for j in range(n)]
        valid_j, (sum_j, *e_j) = stage(valid_i, [sum_i, *e_i], MUL_CUTS)

        # Pass 2's sum, then the reciprocal, free-running from the final sum (stable until the
        # next row's load pass ends): 1/S ~= r1 2^-(RECIP_FRAC + k), RECIP_CUTS cycles later.
        terms = [Mux(self.renorm, ems[j], e_j[j] << SPAN_MASK_FRAC) for j in range(n)]
        beat_sum = tree(held, terms, operator.add, SUM_TREE_STAGES)
        (sum_valid,) = delay(held, [valid_j & sum_j], SUM_TREE_STAGES)
        with m.If(en & sum_valid):
            m.d.sync += acc.eq(acc + beat_sum)
        r1, k, _ = reciprocal(m, "recip", acc | (acc == 0), cut=free)
        scale = fmt.offset - fmt.man_bits
        shift = Signal(signed(8))
        m.d.comb += shift.eq(-RECIP_FRAC - k - (self.bias_out + scale))
        (shift,) = free([shift])

        # Pass 3: em r1, requantized, into the output register.
        vs = [mul(held, ems[j], r1) for j in range(n)]
        codes_out = []
        for j in range(n):
            rq = AFRequantCore(fmt=fmt, in_width=len(vs[j]) + 1,
                               shift_min=-RECIP_FRAC - (acc_width - 1) - (fmt.bias_max + scale),
                               shift_max=-RECIP_FRAC - scale, stages=REQUANT_STAGES)
            m.submodules[f"requant{j}"] = rq
            m.d.comb += [rq.value.eq(vs[j]), rq.shift.eq(shift), rq.en.eq(en)]
            codes_out.append(rq.code)
        valid_rq, _ = stage(valid_j & ~sum_j, [], MUL_CUTS + REQUANT_STAGES)
        in_flight = flight.any

        with m.FSM():
            row.load_state(count == self.length - 1, "SETTLE" if settle else "SUM",
                           comb=[en.eq(1)], on_last=[acc.eq(0), wait.eq(settle)])
            if settle:  # the beat's maximum is still in its tree
                row.wait_state("SETTLE", wait, "SUM", comb=[en.eq(1)])
            with m.State("SUM"):
                m.d.comb += [self.busy.eq(1), en.eq(1)]
                m.d.sync += [valid_a.eq(count != self.length), sum_a.eq(1)]
                with m.If(count != self.length):
                    m.d.sync += count.eq(count + 1)
                with m.Else():
                    m.d.sync += [count.eq(0), wait.eq(GAP_CYCLES)]
                    m.next = "WAIT"
            # pass 2 drains and the reciprocal settles
            row.wait_state("WAIT", wait, "OUT", comb=[en.eq(1)], sync=[sum_a.eq(0)])
            row.output_state(self.length, en, valid_a, valid_rq, codes_out, in_flight)
        return m


register_block(
    "softmax", "Span-masked row softmax (max, exp, sum, reciprocal, mask, requantize)",
    build=lambda n, max_len, width, frac_bits, **p: Softmax(
        fmt=AFFormat(**p), n=n, max_len=max_len, fixed=FixedFormat(width=width,
                                                                   frac_bits=frac_bits)),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 16, "max_len": 512,
            "width": 32, "frac_bits": 16},
)
