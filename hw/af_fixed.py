"""AdaptivFloat → signed fixed point ([F5]): exact conversion for the special function units."""

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.af_mul import af_fields
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.registry import register_block

__all__ = ["AFToFixed"]


class AFToFixed(wiring.Component):
    """Combinational, exact: ``fixed = ±sig << (exp + bias + offset - M + frac_bits)``.

    Matches :func:`sw.golden.af.to_fixed`. Construction fails with a clear error unless the
    fixed-point format holds every value of the AdaptivFloat format for every bias.

    Parameters
    ----------
    fmt : AFFormat
        Input format.
    fixed : FixedFormat
        Output format (``width`` bits, ``frac_bits`` fractional).

    Attributes
    ----------
    code : Signal(fmt.n_bits), in
        Input code.
    bias : Signal(fmt.bias_bits), in
        The tensor's bias register.
    fixed : Signal(signed(fixed.width)), out
        The value in fixed point.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, fixed: FixedFormat = FixedFormat()):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
            if not isinstance(fixed, FixedFormat):
                raise TypeError(f"fixed must be a FixedFormat, not {fixed!r}")
            fixed.check_holds(fmt)
        self._fmt = fmt
        self._fixed = fixed
        super().__init__({
            "code": In(fmt.n_bits),
            "bias": In(fmt.bias_bits),
            "fixed": Out(signed(fixed.width)),
        })

    @property
    def fmt(self):
        return self._fmt

    @property
    def fixed_format(self):
        return self._fixed

    def elaborate(self, platform):
        m = Module()
        fmt, fx = self._fmt, self._fixed
        sign, exp, sig = af_fields(fmt, self.code)
        # check_holds guarantees the constant part is >= 0, so the shift is unsigned. It is
        # applied as appended zero bits: only exp + bias is a variable shift (a variable shift
        # by an n-bit amount widens by 2^n - 1 bits).
        const = fmt.offset - fmt.man_bits + fx.frac_bits
        mag = (Cat(Const(0, const), sig) << (exp + self.bias))[:fx.width - 1]
        m.d.comb += self.fixed.eq(Mux(sign, -mag, mag))
        return m


register_block(
    "af_to_fixed", "AdaptivFloat to signed fixed point, exact (combinational)",
    build=lambda width, frac_bits, **p: AFToFixed(
        fmt=AFFormat(**p), fixed=FixedFormat(width=width, frac_bits=frac_bits)),
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "width": 32,
            "frac_bits": 16},
)
