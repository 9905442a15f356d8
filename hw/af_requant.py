"""AdaptivFloat requantizer core ([F2]): exact ``value · 2^shift`` → nearest code, combinational.

This is the hardware form of :func:`sw.adaptivfloat.round_to_code`: round to nearest, ties to the
even mantissa (zero counts as even), saturate to ±max, zero is code 0. Callers compute ``shift``
as the power of two of one unit of ``value`` minus ``scale_exponent(bias_out)``; for a matmul
accumulator that is ``bias_a + bias_b - bias_out + offset - M``.

How: ``|value|`` is first shifted left by ``shift - shift_min`` into a fixed-point number ``X``
with ``F = -min(shift_min, 0)`` fractional bits; from its leading one the binade ``exp``
follows, then one right shift by ``exp + F`` gives the significand with its round and sticky
bits.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat
from hw.registry import register_block

__all__ = ["AFRequantCore", "leading_one"]


def leading_one(m, value, name):
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0), as a Signal."""
    idx = Signal(range(max(len(value), 2)), name=name)
    for i in range(len(value)):
        with m.If(value[i]):
            m.d.comb += idx.eq(i)
    return idx


class AFRequantCore(wiring.Component):
    """Combinational requantizer: ``code = round_to_code(value < 0, |value|, shift)``.

    Parameters
    ----------
    fmt : AFFormat
        Output format.
    in_width : int
        Width of the signed input ``value``.
    shift_min, shift_max : int
        Range of ``shift`` the instance must support (checked at construction).

    Attributes
    ----------
    value : Signal(signed(in_width)), in
        Exact input in units of ``2^(shift + scale_exponent(bias_out))``.
    shift : Signal(signed(...)), in
        Power-of-two scale of ``value`` relative to the output's unit; must lie in
        ``shift_min .. shift_max``.
    code : Signal(fmt.n_bits), out
        Requantized code.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, in_width, shift_min, shift_max):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
            for name, v in (("in_width", in_width), ("shift_min", shift_min),
                            ("shift_max", shift_max)):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 2 <= in_width <= 128:
                raise ValueError(f"in_width must be in 2..128, not {in_width}")
            if shift_min > shift_max:
                raise ValueError(
                    f"shift_min ({shift_min}) must not be greater than shift_max ({shift_max})")
            if shift_max - shift_min > 128:
                raise ValueError(
                    f"shift range {shift_min}..{shift_max} is wider than 128; the pre-shifter "
                    f"would be impractically wide")
        self._fmt = fmt
        self._in_width = in_width
        self._shift_min = shift_min
        self._shift_max = shift_max
        super().__init__({
            "value": In(signed(in_width)),
            "shift": In(signed(max(abs(shift_min), abs(shift_max)).bit_length() + 1)),
            "code": Out(fmt.n_bits),
        })

    @property
    def fmt(self):
        return self._fmt

    @property
    def in_width(self):
        return self._in_width

    @property
    def shift_range(self):
        return self._shift_min, self._shift_max

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        mb = fmt.man_bits
        base = min(self._shift_min, 0)
        frac = -base

        mag = Signal(self._in_width)
        m.d.comb += mag.eq(Mux(self.value < 0, -self.value, self.value))
        pre = Signal(range(self._shift_max - base + 1))
        m.d.comb += pre.eq(self.shift - base)
        x = Signal(self._in_width + self._shift_max - base)
        m.d.comb += x.eq(mag << pre)
        lead = leading_one(m, x, "lead")

        # exp = max(0, floor(log2 V) - M) with floor(log2 V) = lead - F.
        exp = Signal(range(len(x) + 1))
        with m.If(lead > frac + mb):
            m.d.comb += exp.eq(lead - frac - mb)
        rshift = Signal(range(len(x) + frac + 1))
        m.d.comb += rshift.eq(exp + frac)

        # Significand q = floor(X >> rshift) with round (half) and sticky bits: shifting 2X by
        # rshift leaves the half bit as bit 0; the sticky bits are those of 2X below rshift.
        x2 = Signal(len(x) + 1)
        m.d.comb += x2.eq(Cat(Const(0, 1), x))
        shifted = Signal(len(x2))
        m.d.comb += shifted.eq(x2 >> rshift)
        mask = Signal(len(x2))
        m.d.comb += mask.eq((Const(1, len(x2) + 1) << rshift) - 1)
        sticky = (x2 & mask) != 0
        half, lsb = shifted[0], shifted[1]
        q = Signal(mb + 2)
        m.d.comb += q.eq(shifted[1:mb + 3] + (half & (sticky | lsb)))

        # Carry out of the significand: 2^(M+1) becomes 2^M one binade up.
        exp_c = Signal(len(exp) + 1)
        q_c = Signal(mb + 1)
        with m.If(q[mb + 1]):
            m.d.comb += [exp_c.eq(exp + 1), q_c.eq(1 << mb)]
        with m.Else():
            m.d.comb += [exp_c.eq(exp), q_c.eq(q[:mb + 1])]

        # Binade 0 below 2^M + 1: nearer of 0 and 2^M + 1; the midpoint ties to zero.
        # 2V compared with 2^M + 1: twice = floor(2V), dropped = any bit below.
        twice = Signal(len(x) + 1)
        dropped = Signal()
        if frac >= 1:
            m.d.comb += twice.eq(x >> (frac - 1))
            m.d.comb += dropped.eq(x[:frac - 1] != 0 if frac > 1 else 0)
        else:
            m.d.comb += [twice.eq(x << 1), dropped.eq(0)]
        small = (exp_c == 0) & (q_c <= (1 << mb))
        nearer_min = (twice > (1 << mb) + 1) | ((twice == (1 << mb) + 1) & dropped)

        sign = self.value < 0
        with m.If(small):
            with m.If(nearer_min):
                m.d.comb += self.code.eq(Cat(Const(1, mb), Const(0, fmt.exp_bits), sign))
            with m.Else():
                m.d.comb += self.code.eq(0)
        with m.Elif(exp_c > fmt.exp_max):
            m.d.comb += self.code.eq(Cat(Const((1 << mb) - 1, mb), Const(fmt.exp_max, fmt.exp_bits),
                                         sign))
        with m.Else():
            m.d.comb += self.code.eq(Cat(q_c[:mb], exp_c[:fmt.exp_bits], sign))
        return m


def _selfcheck(**params):
    import torch

    from hw.selfcheck import run_comb
    from sw.adaptivfloat import round_to_code

    in_width = params.pop("in_width")
    fmt = AFFormat(**params)
    lo, hi = _matmul_shift_range(fmt)
    g = torch.Generator().manual_seed(2)
    count = 3000
    value = torch.randint(-(1 << (in_width - 1)), 1 << (in_width - 1), (count,), generator=g)
    # Spread magnitudes over every binade, not only the top bits.
    value = value >> torch.randint(0, in_width - 1, (count,), generator=g)
    shift = torch.randint(lo, hi + 1, (count,), generator=g)
    expected = round_to_code(value < 0, value.abs(), shift, fmt)
    dut = AFRequantCore(fmt=fmt, in_width=in_width, shift_min=lo, shift_max=hi)
    n = run_comb(dut, {"value": value, "shift": shift}, {"code": expected})
    return f"{n} random values over shifts {lo}..{hi} equal the golden round_to_code"


def _matmul_shift_range(fmt):
    """Shifts a matmul accumulator needs: bias_a + bias_b - bias_out + offset - M."""
    return (-fmt.bias_max + fmt.offset - fmt.man_bits,
            2 * fmt.bias_max + fmt.offset - fmt.man_bits)


def _build(in_width, **p):
    fmt = AFFormat(**p)
    lo, hi = _matmul_shift_range(fmt)
    return AFRequantCore(fmt=fmt, in_width=in_width, shift_min=lo, shift_max=hi)


register_block(
    "af_requant", "AdaptivFloat requantizer core (round to nearest, ties to even, saturate)",
    build=_build,
    selfcheck=_selfcheck,
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "in_width": 40},
)
