"""LayerNorm ([H4]): exact integer sums, epsilon, table + Newton inverse square root, gamma and
beta each with its own bias, requantized. n elements per cycle per pass; bit-exact to
:func:`sw.golden.layernorm.layernorm`.

Two passes over a row buffer: (1) load the row (x, gamma, beta) and sum x and x^2 exactly, then
``D = L*S2 - S1^2 + L^2*eps`` and its inverse square root, (2) read the row back, normalise,
scale, shift, requantize and stream out.

Every step is a pipeline with a register after each table lookup and each DSP product
(:mod:`hw.sfu_pipe`) and a pipelined requantizer; pass 2 stalls as a whole with the output
(``en = ~o.valid | o.ready``), pass 1 and the scale never stall. The cycles per row are
:func:`sw.perf.sfu.layernorm_cycles`.
"""

import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from hw.af_mul import af_fields
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat
from hw.registry import register_block
from hw.sfu_common import check_lanes, check_row
from hw.sfu_math import RSQRT_CUTS, rsqrt
from hw.sfu_pipe import MUL_CUTS, Flight, delay, dsp_target, mul, register_cut, tree
from hw.sfu_row import RowControl, RowUnit
from hw.sfu_tables import EPS_BITS, LN_Z_FRAC, RSQRT_FRAC

__all__ = ["LayerNorm", "EPS_BITS"]

# Pipeline stages of the adder trees that sum a beat in pass 1: fixed, so the cycles per row do
# not depend on n (each stage adds ceil(log2 n) / 2 levels).
SUM_TREE_STAGES = 2
# Pipeline stages of the requantizer (hw/af_requant.py): three cut it into pieces that each fit
# 10 ns on the ECP5-8.
REQUANT_STAGES = 3
# Cycles between the last input beat and the first read of pass 2. S1 and S2 are final
# 3 + SUM_TREE_STAGES cycles after the last beat, r1 and j another 2 MUL_CUTS + 1 + RSQRT_CUTS
# cycles later (D, then its inverse square root), when the first value read in pass 2 reaches
# the product with r1 (5 cycles after the read is issued).
NORM_CYCLES = SUM_TREE_STAGES + 2 * MUL_CUTS + RSQRT_CUTS - 2


def af_integer(m, fmt, code, name):
    """Exact signed integer ``±sig << exp`` of a code (in units of its tensor's scale)."""
    sign, exp, sig = af_fields(fmt, code)
    mag = Signal(fmt.sig_bits + fmt.exp_max, name=f"{name}_mag")
    m.d.comb += mag.eq(sig << exp)
    out = Signal(signed(len(mag) + 1), name=name)
    m.d.comb += out.eq(Mux(sign, -mag, mag))
    return out


class LayerNorm(RowUnit):
    """Row-wise LayerNorm of AdaptivFloat activations with AdaptivFloat gamma and beta.

    A row of ``length * n`` elements arrives as ``length`` beats, each carrying the activations
    and the gamma and beta values of the same columns (read by the caller from their own
    addresses in the aux buffer); :func:`sw.perf.sfu.layernorm_cycles` gives the cycles per row.

    Parameters
    ----------
    fmt : AFFormat
        Format of activations, gamma, beta and output.
    n : int
        Elements per beat.
    max_len : int
        Longest row (elements), a multiple of ``n``; sets the row buffer depth.

    Attributes
    ----------
    i : stream, in
        Payload ``{x: n codes, gamma: n codes, beta: n codes}``.
    o : stream, out
        Payload ``n`` codes.
    length : Signal(range(max_len // n + 1)), in
        Row length in beats, 1 .. max_len // n; held while a row is in flight.
    bias_in, bias_gamma, bias_beta, bias_out : Signal(fmt.bias_bits), in
        Bias registers.
    eps : Signal(EPS_BITS), in
        Epsilon in units of the squared input unit (:func:`sw.golden.layernorm.eps_units`).
    busy : Signal(1), out
        A row is in flight.
    error : Signal(1), out
        ``length`` is 0 or above the maximum: the unit accepts no input until it is legal.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, n=16, max_len=1024):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
            check_lanes(n)
            max_beats = check_row(n, max_len)
        self._fmt, self._n = fmt, n
        self._max_len, self._max_beats = max_len, max_beats
        lanes = data.ArrayLayout(fmt.n_bits, n)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"x": lanes, "gamma": lanes,
                                                        "beta": lanes}))),
            "o": Out(stream.Signature(lanes)),
            "length": In(range(max_beats + 1)),
            "bias_in": In(fmt.bias_bits),
            "bias_gamma": In(fmt.bias_bits),
            "bias_beta": In(fmt.bias_bits),
            "bias_out": In(fmt.bias_bits),
            "eps": In(EPS_BITS),
        })

    @property
    def max_len(self):
        return self._max_len

    def elaborate(self, platform):
        m = Module()
        fmt, n, w = self._fmt, self._n, self._fmt.n_bits
        lbits = (self._max_len - 1).bit_length()
        # Pass 1 and the scale are never stalled; pass 2 stalls with the output.
        free = register_cut(m, dsp=dsp_target(platform, "layernorm"))
        en = Signal()
        held = register_cut(m, en, dsp=dsp_target(platform, "layernorm"))
        row = RowControl(m, self, data=Cat(*[Cat(self.i.payload.x[k], self.i.payload.gamma[k],
                                                 self.i.payload.beta[k]) for k in range(n)]),
                         read_en=en, size=self.length, limit=self._max_beats)
        rd, count, taken = row.rd, row.count, row.taken
        wait = Signal(range(NORM_CYCLES + 1))
        xbits = fmt.sig_bits + fmt.exp_max + 1
        s1 = Signal(signed(xbits + lbits + 1))
        s2 = Signal(2 * xbits + lbits)
        length = Signal(range(self._max_len + 1))
        m.d.comb += length.eq(self.length * n)

        # Pass 1: L1: the incoming activations as integers | L2: their squares | the beat's sums
        # (SUM_TREE_STAGES) | accumulate.
        xs_in = [af_integer(m, fmt, self.i.payload.x[k], f"x_in{k}") for k in range(n)]
        v1, first1, *x1 = free([taken, count == 0, *xs_in])
        # The squares, registered with stage L2 (in the DSPs' output registers where the cut
        # can; see hw/sfu_pipe.register_cut).
        squares = []
        for k, p in enumerate(free.products([(x, x) for x in x1])):
            sq = Signal(2 * xbits - 1, name=f"sq{k}")
            m.d.comb += sq.eq(p)
            squares.append(sq)
        v2, first2, *x2 = free([v1, first1, *x1])
        rest = [*x2, *squares]
        beat_s1 = tree(free, rest[:n], operator.add, SUM_TREE_STAGES)
        beat_s2 = tree(free, rest[n:], operator.add, SUM_TREE_STAGES)
        v_sum, first_sum = delay(free, [v2, first2], SUM_TREE_STAGES)
        with m.If(v_sum):
            with m.If(first_sum):
                m.d.sync += [s1.eq(beat_s1), s2.eq(beat_s2)]
            with m.Else():
                m.d.sync += [s1.eq(s1 + beat_s1), s2.eq(s2 + beat_s2)]

        # The scale, free-running from S1 and S2 (stable from the end of pass 1 to the end of
        # pass 2): L S2, S1^2, L^2 (MUL_CUTS) | L S2 - S1^2, L^2 eps (MUL_CUTS) | D = L^2 (var +
        # eps), at least 1 | its inverse square root (RSQRT_CUTS).
        dbits = len(length) + len(s2) + 2
        ls2, s1s1, ll = (mul(free, length, s2), mul(free, s1, s1), mul(free, length, length))
        diff_v = Signal(signed(dbits))
        m.d.comb += diff_v.eq(ls2 - s1s1)
        lle = mul(free, ll, self.eps)
        (diff_v,) = delay(free, [diff_v], MUL_CUTS)
        dsum = Signal(signed(dbits + len(length) + EPS_BITS))
        m.d.comb += dsum.eq(diff_v + lle)
        dval = Signal(dbits - 1)
        m.d.comb += dval.eq(Mux(dsum < 1, 1, dsum))
        (dval,) = free([dval])
        r1, j = rsqrt(m, "rsqrt", dval, cut=free)

        # Pass 2, advancing when ``en``: A: read issued (valid_a) | B: the codes read |
        # C: x, gamma, beta as integers | D: L x | E: L x - S1 | (L x - S1) r1 (MUL_CUTS) | G: z |
        # gamma z (MUL_CUTS), beta aligned | I: y = gamma z + beta | requantize (REQUANT_STAGES)
        # into the output register.
        valid_a = Signal()
        flight = Flight(held, valid_a)
        stage = flight.stage
        valid_b, (codes,) = stage(valid_a, [rd.data])

        def lane(k, which):
            base = (3 * k + which) * w
            return codes[base:base + w]

        ints = [af_integer(m, fmt, lane(k, which), f"{'xgb'[which]}{k}")
                for k in range(n) for which in range(3)]
        valid_c, ints = stage(valid_b, ints)
        xs, gs, bs = ints[0::3], ints[1::3], ints[2::3]
        lx = held.products([(length, x) for x in xs])  # L x, registered with stage D
        valid_d, rest = stage(valid_c, [*gs, *bs])
        gs, bs = rest[:n], rest[n:]
        valid_e, rest = stage(valid_d, [*[x - s1 for x in lx], *gs, *bs])
        centred, gs, bs = rest[:n], rest[n:2 * n], rest[2 * n:]
        prods = [mul(held, c, r1) for c in centred]
        valid_f, rest = stage(valid_e, [*gs, *bs], MUL_CUTS)
        gs, bs = rest[:n], rest[n:]
        zbits = LN_Z_FRAC + (lbits + 1) // 2 + 3
        zs = []
        for k in range(n):
            z = Signal(signed(zbits), name=f"z{k}")
            m.d.comb += z.eq(prods[k] >> (j + (RSQRT_FRAC - LN_Z_FRAC)))
            zs.append(z)
        valid_g, rest = stage(valid_f, [*zs, *gs, *bs])
        zs, gs, bs = rest[:n], rest[n:2 * n], rest[2 * n:]
        bshift = Signal(range(LN_Z_FRAC + 2 * fmt.bias_max + 1))
        m.d.comb += bshift.eq(self.bias_beta + LN_Z_FRAC - self.bias_gamma)
        gz = [mul(held, g, z) for g, z in zip(gs, zs, strict=True)]
        valid_h, bb = stage(valid_g, [b << bshift for b in bs], MUL_CUTS)
        ys = []
        for k in range(n):
            y = Signal(signed(xbits + zbits + 1), name=f"y{k}")
            m.d.comb += y.eq(gz[k] + bb[k])
            ys.append(y)
        valid_i, ys = stage(valid_h, ys)

        shift = Signal(signed(8))
        m.d.comb += shift.eq(self.bias_gamma - self.bias_out - LN_Z_FRAC)
        codes_out = []
        for k in range(n):
            rq = AFRequantCore(fmt=fmt, in_width=len(ys[k]),
                               shift_min=-fmt.bias_max - LN_Z_FRAC,
                               shift_max=fmt.bias_max - LN_Z_FRAC, stages=REQUANT_STAGES)
            m.submodules[f"requant{k}"] = rq
            m.d.comb += [rq.value.eq(ys[k]), rq.shift.eq(shift), rq.en.eq(en)]
            codes_out.append(rq.code)
        valid_rq, _ = stage(valid_i, [], REQUANT_STAGES)
        in_flight = flight.any

        with m.FSM():
            row.load_state(count == self.length - 1, "NORM", on_last=[wait.eq(NORM_CYCLES)])
            row.wait_state("NORM", wait, "OUT")  # the sums and the scale settle
            row.output_state(self.length, en, valid_a, valid_rq, codes_out, in_flight)
        return m


register_block(
    "layernorm", "LayerNorm (exact sums, epsilon, inverse square root, gamma, beta)",
    build=lambda n, max_len, **p: LayerNorm(fmt=AFFormat(**p), n=n, max_len=max_len),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 16,
            "max_len": 1024},
)
