"""Residual add ([H7]): two AdaptivFloat tensors with their own biases, requantized ([F5])."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.af_fixed import AFToFixed
from hw.af_requant import DEFAULT_STAGES as REQUANT_STAGES
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block
from hw.sfu_common import LaneUnit, check_format, check_lanes

__all__ = ["ResidualAdd", "LATENCY"]

# Sum register, the requantizer's pipeline stages, output register.
LATENCY = 1 + REQUANT_STAGES + 1


class ResidualAdd(LaneUnit, wiring.Component):
    """``o = requantize(a + b)`` lane by lane, ``n`` lanes per beat, pipelined (:data:`LATENCY`).

    Each input is converted exactly to ``fixed`` (:class:`hw.af_fixed.AFToFixed`), the sum is
    exact (one more bit than ``fixed``) and registered, and the pipelined
    :class:`hw.af_requant.AFRequantCore` rounds it to the nearest code of ``bias_out`` (ties to
    even, saturating): the correctly rounded sum, registered as the output payload. The whole
    pipeline advances only when the output can move (``~o.valid | o.ready``), so back-pressure
    stalls it without losing beats. Matches :func:`sw.golden.residual.residual_add`.

    Parameters
    ----------
    fmt : AFFormat
        Format of inputs and output.
    n : int
        Lanes per beat.
    fixed : FixedFormat
        Internal fixed-point format; must hold every value of ``fmt``.

    Attributes
    ----------
    i : stream, in
        Payload ``{a: n codes, b: n codes}`` (lane 0 in the low bits).
    o : stream, out
        Payload ``n`` codes.
    bias_a, bias_b, bias_out : Signal(fmt.bias_bits), in
        Bias registers of ``a``, ``b`` and the output.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, n=16, fixed: FixedFormat = FixedFormat()):
        with checked_construction(self):
            check_format(fmt, fixed)
            check_lanes(n)
        self._fmt, self._n, self._fixed = fmt, n, fixed
        lanes = data.ArrayLayout(fmt.n_bits, n)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": lanes, "b": lanes}))),
            "o": Out(stream.Signature(lanes)),
            "bias_a": In(fmt.bias_bits),
            "bias_b": In(fmt.bias_bits),
            "bias_out": In(fmt.bias_bits),
        })

    @property
    def latency(self):
        """Cycles from an accepted input beat to its output beat being valid (no stalls)."""
        return LATENCY

    def elaborate(self, platform):
        m = Module()
        fmt, fx = self._fmt, self._fixed
        scale = fmt.offset - fmt.man_bits
        shift = Signal(signed(8))
        m.d.comb += shift.eq(-fx.frac_bits - (self.bias_out + scale))
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        valid = self.i.valid
        for k in range(LATENCY - 1):
            nxt = Signal(name=f"valid{k}")
            with m.If(en):
                m.d.sync += nxt.eq(valid)
            valid = nxt
        with m.If(en):
            m.d.sync += self.o.valid.eq(valid)
        for lane in range(self._n):
            total = Signal(signed(fx.width + 1), name=f"sum{lane}")
            parts = []
            for name, bias in (("a", self.bias_a), ("b", self.bias_b)):
                conv = AFToFixed(fmt=fmt, fixed=fx)
                m.submodules[f"{name}_fixed{lane}"] = conv
                m.d.comb += [conv.code.eq(self.i.payload[name][lane]), conv.bias.eq(bias)]
                parts.append(conv.fixed)
            with m.If(en):
                m.d.sync += total.eq(parts[0] + parts[1])
            rq = AFRequantCore(fmt=fmt, in_width=fx.width + 1,
                               shift_min=-fx.frac_bits - (fmt.bias_max + scale),
                               shift_max=-fx.frac_bits - scale, stages=REQUANT_STAGES)
            m.submodules[f"requant{lane}"] = rq
            m.d.comb += [rq.value.eq(total), rq.shift.eq(shift), rq.en.eq(en)]
            with m.If(en):
                m.d.sync += self.o.payload[lane].eq(rq.code)
        return m


register_block(
    "residual_add", "Residual add of two AdaptivFloat tensors, requantized (n lanes/cycle)",
    build=lambda n, width, frac_bits, **p: ResidualAdd(
        fmt=AFFormat(**p), n=n, fixed=FixedFormat(width=width, frac_bits=frac_bits)),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "n": 16, "width": 32,
            "frac_bits": 16},
)
