"""AdaptivFloat multiplier lane ([F4]): the exact product of two codes, biases not applied."""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.checks import check_int, checked_construction
from hw.layouts import DEFAULT_AF, AFFormat
from hw.registry import register_block

__all__ = ["AFMulLane", "DEFAULT_STAGES", "af_fields"]

# The registered block's pipeline depth: meets 100 MHz on the ECP5-8 (docs/flows.md).
DEFAULT_STAGES = 1


def af_fields(fmt, code):
    """(sign, exp, significand) of an AdaptivFloat code value; the significand of zero is 0."""
    m = fmt.man_bits
    man, exp, sign = code[:m], code[m:m + fmt.exp_bits], code[fmt.n_bits - 1]
    nonzero = (exp != 0) | (man != 0)
    return sign, exp, Cat(man, nonzero)


class AFMulLane(wiring.Component):
    """One multiplier lane: ``product = ±sig_a·sig_b << (exp_a + exp_b)``, optionally pipelined.

    The real product is ``product · 2^(scale(bias_a) + scale(bias_b))``; the biases are applied
    only at requantization ([F4]). Matches :func:`sw.golden.af.lane_product` bit for bit.

    Parameters
    ----------
    fmt : AFFormat
        The AdaptivFloat format of both operands.
    stages : int
        0 (combinational) or 1: one register after the significand product, the exponent sum
        and the sign, before the shift and the negation.

    Attributes
    ----------
    a : Signal(fmt.n_bits), in
        First operand code.
    b : Signal(fmt.n_bits), in
        Second operand code.
    en : Signal(1, init=1), in
        Clock enable of the pipeline register (it loads only while ``en`` is high); ignored
        when ``stages`` is 0; left undriven it stays 1.
    product : Signal(signed(fmt.product_bits)), out
        Exact signed product of the operands present at the ``latency``-th most recent clock
        edge with ``en`` high (the current operands when ``latency`` is 0).
    latency : int
        Equal to ``stages``.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, stages=0):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
            check_int("stages", stages)
            if stages not in (0, 1):
                raise ValueError(f"stages must be 0 or 1, not {stages}")
        self._fmt = fmt
        self._stages = stages
        super().__init__({
            "a": In(fmt.n_bits),
            "b": In(fmt.n_bits),
            "en": In(1, init=1),
            "product": Out(signed(fmt.product_bits)),
        })

    @property
    def fmt(self):
        return self._fmt

    @property
    def stages(self):
        return self._stages

    @property
    def latency(self):
        return self._stages

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        sa, ea, ga = af_fields(fmt, self.a)
        sb, eb, gb = af_fields(fmt, self.b)
        neg, sig, exp = sa ^ sb, ga * gb, ea + eb
        if self._stages:
            regs = []
            for name, v in (("neg", neg), ("sig", sig), ("exp", exp)):
                r = Signal(Value.cast(v).shape(), name=f"{name}_r")
                with m.If(self.en):
                    m.d.sync += r.eq(v)
                regs.append(r)
            neg, sig, exp = regs
        mag = (sig << exp)[:fmt.product_bits - 1]
        m.d.comb += self.product.eq(Mux(neg, -mag, mag))
        return m


register_block(
    "af_mul", "AdaptivFloat multiplier lane (exact product, pipelined)",
    build=lambda stages, **p: AFMulLane(fmt=AFFormat(**p), stages=stages),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3,
            "stages": DEFAULT_STAGES},
)
