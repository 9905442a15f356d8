"""Entropy early-exit assessment ([H5]): ``H`` of the off-ramp logits, threshold, exit flag.

Two passes over a row buffer: (1) load the logits and find their maximum, (2) read them back
and sum ``e = exp(x - max)`` and ``(max - x) * e``; then one cycle for the reciprocal and one
for ``H = ln S + T / S`` and the comparison. Bit-exact to :func:`sw.golden.entropy.entropy`.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.af_fixed import AFToFixed
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block
from hw.sfu_common import check_format, check_lanes
from hw.sfu_math import (
    ENT_TERM_SHIFT,
    EXP_FRAC,
    LN2,
    LN_FRAC,
    RECIP_FRAC,
    exp_neg_table,
    exp_neg_u,
    ln_normalized,
    reciprocal,
)

__all__ = ["EntropyExit", "H_BITS", "result_layout"]

# H <= ln(classes) <= ln(4096) < 16: four integer bits.
H_BITS = LN_FRAC + 4


def result_layout():
    """Payload of the result stream: the entropy (``LN_FRAC`` fractional bits) and the flag."""
    return data.StructLayout({"entropy": H_BITS, "exit": 1})


class EntropyExit(wiring.Component):
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
            if not isinstance(max_classes, int) or isinstance(max_classes, bool):
                raise TypeError(f"max_classes must be an integer, not {max_classes!r}")
            if not 1 <= max_classes <= 4096:
                raise ValueError(f"max_classes must be in 1..4096, not {max_classes}")
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
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def fmt(self):
        return self._fmt

    @property
    def n(self):
        return self._n

    @property
    def max_classes(self):
        return self._max_classes

    def elaborate(self, platform):
        m = Module()
        fmt, fx, n = self._fmt, self._fixed, self._n
        mem = Memory(shape=fmt.n_bits * n, depth=self._max_beats, init=[])
        m.submodules.row = mem
        wr = mem.write_port()
        rd = mem.read_port()

        def fixed_of(name, codes):
            out = []
            for j, code in enumerate(codes):
                conv = AFToFixed(fmt=fmt, fixed=fx)
                m.submodules[f"{name}{j}"] = conv
                m.d.comb += [conv.code.eq(code), conv.bias.eq(self.bias_in)]
                out.append(conv.fixed)
            return out

        count = Signal(range(self._max_beats + 1))
        beats = Signal(range(self._max_beats + 1))
        m.d.comb += beats.eq((self.classes + (n - 1)) // n)
        read_beat = Signal(range(self._max_beats + 1))  # beat whose data rd.data holds
        mx = Signal(signed(fx.width))
        cbits = (self._max_classes - 1).bit_length()
        s = Signal(EXP_FRAC + 1 + cbits)
        # |d| < 2^(top of the fixed values + 1); a term is below 2^(that + EXP_FRAC + 1 - shift).
        dbits = fmt.sig_bits + fmt.exp_max + fmt.scale_exponent(fmt.bias_max) + fx.frac_bits + 2
        tbits = dbits + EXP_FRAC + 1 - ENT_TERM_SHIFT
        t = Signal(tbits + cbits)
        valid_a = Signal()

        def lane_valid(beat, j):
            return beat * n + j < self.classes

        # Pass 1: the maximum over the valid lanes of the incoming beats.
        in_x = fixed_of("in_fixed", [self.i.payload[j] for j in range(n)])
        best = Const(fx.min_int, signed(fx.width))
        for j in range(n):
            cand = Mux(lane_valid(count, j), in_x[j], fx.min_int)
            # A Signal per step: the expression uses the running value twice.
            step = Signal(signed(fx.width), name=f"best{j}")
            m.d.comb += step.eq(Mux(cand > best, cand, best))
            best = step

        # Pass 2, pipelined: A: read issued (valid_a) | B: x -> d -> u registered | C: 2^-u from
        # the tables and the term (-d) e, masked to the valid lanes, registered | accumulate.
        xs = fixed_of("rd_fixed", [rd.data[j * fmt.n_bits:(j + 1) * fmt.n_bits]
                                   for j in range(n)])
        ds = []
        for j in range(n):
            d = Signal(signed(dbits), name=f"d{j}")
            m.d.comb += d.eq(xs[j] - mx)
            ds.append(d)
        us = exp_neg_u(m, "exp", ds, fx.frac_bits)
        valid_b, valid_c = Signal(), Signal()
        u_b = [Signal(len(u), name=f"u_b{j}") for j, u in enumerate(us)]
        negd_b = [Signal(dbits, name=f"negd_b{j}") for j in range(n)]
        ok_b = [Signal(name=f"ok_b{j}") for j in range(n)]
        es = exp_neg_table(m, "exp", u_b)
        e_c = [Signal(EXP_FRAC + 1, name=f"e_c{j}") for j in range(n)]
        term_c = [Signal(tbits, name=f"term_c{j}") for j in range(n)]
        m.d.sync += [valid_b.eq(valid_a), valid_c.eq(valid_b)]
        for j in range(n):
            m.d.sync += [u_b[j].eq(us[j]), negd_b[j].eq((-ds[j]).as_unsigned()),
                         ok_b[j].eq(lane_valid(read_beat, j)),
                         e_c[j].eq(Mux(ok_b[j], es[j], 0)),
                         term_c[j].eq(Mux(ok_b[j], (negd_b[j] * es[j]) >> ENT_TERM_SHIFT, 0))]
        beat_s, beat_t = sum(e_c), sum(term_c)

        # Result: H = (k - EXP_FRAC) ln 2 + ln(s) + T r1 / 2^(k + const).
        r1 = Signal(RECIP_FRAC + 1)
        k = Signal(range(len(s)))
        ln_s = Signal(LN_FRAC + 1)
        recip_r1, recip_k, recip_s = reciprocal(m, "recip", s, registered=True)
        ln_val = ln_normalized(m, "ln", recip_s)
        const = fx.frac_bits - ENT_TERM_SHIFT + RECIP_FRAC - LN_FRAC + EXP_FRAC
        over = Signal(range(len(s)))
        m.d.comb += over.eq(k - EXP_FRAC)
        h = Signal(H_BITS)
        m.d.comb += h.eq(over * LN2 + ln_s + ((t * r1) >> (over + const)))

        m.d.comb += [
            wr.addr.eq(count),
            wr.data.eq(self.i.payload.as_value()),
            rd.addr.eq(count),
            rd.en.eq(1),
        ]

        m.d.comb += self.error.eq((self.classes == 0) | (self.classes > self._max_classes))
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(~self.error)
                with m.If(self.i.valid & ~self.error):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [mx.eq(Mux((count == 0) | (best > mx), best, mx)),
                                 count.eq(count + 1)]
                    with m.If(count == beats - 1):
                        m.d.sync += [count.eq(0), s.eq(0), t.eq(0)]
                        m.next = "SUM"
            with m.State("SUM"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [valid_a.eq(count != beats), read_beat.eq(count)]
                with m.If(count != beats):
                    m.d.sync += count.eq(count + 1)
                with m.If(valid_c):
                    m.d.sync += [s.eq(s + beat_s), t.eq(t + beat_t)]
                with m.If((count == beats) & ~valid_a & ~valid_b & ~valid_c):
                    m.next = "RECIP"
            with m.State("RECIP"):  # the reciprocal's first (registered) half
                m.d.comb += self.busy.eq(1)
                m.next = "RECIP_NEWTON"
            with m.State("RECIP_NEWTON"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [r1.eq(recip_r1), k.eq(recip_k), ln_s.eq(ln_val), count.eq(0)]
                m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [self.o.payload.entropy.eq(h),
                             self.o.payload.exit.eq(h < self.threshold), self.o.valid.eq(1)]
                m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += self.o.valid.eq(0)
                    m.next = "LOAD"
        return m


def _selfcheck(n, max_classes, width, frac_bits, **params):
    import torch

    from hw.sfu_sim import run_stream
    from sw.golden.entropy import entropy

    fmt, fixed = AFFormat(**params), FixedFormat(width=width, frac_bits=frac_bits)
    g = torch.Generator().manual_seed(5)
    checked = 0
    for classes in (2, max_classes, max(1, max_classes - 1)):
        rows = 3
        x = torch.randint(0, fmt.code_max + 1, (rows, classes), generator=g)
        want = entropy(x, 5, fmt, fixed)
        nb = -(-classes // n)
        padded = torch.zeros(rows, nb * n, dtype=torch.int64)
        padded[:, :classes] = x
        beats = [list(b) for b in padded.reshape(-1, n).tolist()]
        dut = EntropyExit(fmt=fmt, n=n, max_classes=max_classes, fixed=fixed)
        threshold = int(want[0])
        got = run_stream(dut, beats, rows, config={"classes": classes, "bias_in": 5,
                                                   "threshold": threshold})
        for r, res in enumerate(got):
            if (res.entropy, res.exit) != (int(want[r]), int(want[r]) < threshold):
                raise AssertionError(f"entropy row {r} ({classes} classes): RTL "
                                     f"({res.entropy}, {res.exit}) != golden {int(want[r])}")
            checked += 1
    return f"{checked} rows (2 .. {max_classes} classes) equal the golden entropy and exit flag"


register_block(
    "entropy_exit", "Entropy early-exit assessment (log-sum-exp, threshold, exit flag)",
    build=lambda n, max_classes, width, frac_bits, **p: EntropyExit(
        fmt=AFFormat(**p), n=n, max_classes=max_classes,
        fixed=FixedFormat(width=width, frac_bits=frac_bits)),
    selfcheck=_selfcheck,
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 4,
            "max_classes": 64, "width": 32, "frac_bits": 16},
)
