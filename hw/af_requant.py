"""AdaptivFloat requantizer core ([F2]): exact ``value · 2^shift`` → nearest code, combinational.

This is the hardware form of :func:`sw.adaptivfloat.round_to_code`: round to nearest, ties to the
even mantissa (zero counts as even), saturate to ±max, zero is code 0. Callers compute ``shift``
as the power of two of one unit of ``value`` minus ``scale_exponent(bias_out)``; for a matmul
accumulator that is ``bias_a + bias_b - bias_out + offset - M``.

How: ``|value|`` is first shifted left by ``shift - min(shift_min, 0)`` into a fixed-point
number ``X`` with ``F = -min(shift_min, 0)`` fractional bits; from its leading one the binade
``exp`` follows, then one right shift by ``exp + F`` gives the significand with its round and
sticky bits. No intermediate is wider than ``2X``. The leading one and the trailing zeros are
found on the narrow ``|value|``, beside the pre-shift (``X``'s are those plus the shift), and the
sticky bit is the comparison ``tz(X) + 1 < rshift`` rather than a mask over ``2X``: the ECP5's
slowest requantizer paths ran through the leading-one tree and that mask (docs/flows.md).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.checks import check_int, checked_construction
from hw.layouts import DEFAULT_AF, AFFormat
from hw.matmul.config import requant_shift_range
from hw.registry import register_block

__all__ = ["AFRequantCore", "DEFAULT_STAGES", "MAX_STAGES", "leading_one", "trailing_zeros"]


def _bit_index(m, value, name, *, lowest):
    """Index of the most (``lowest=False``) or least (``lowest=True``) significant set bit of
    ``value``, as a Signal: a binary tree of log2 levels of 2:1 multiplexers over ``value``
    padded with zeros to a power of two."""
    idx = Signal(range(max(len(value), 2)), name=name)
    width = 1 << len(idx)

    def tree(v):
        # (any bit set, index of the wanted one) of a power-of-two-wide v.
        if len(v) == 2:
            return v.any(), (~v[0] if lowest else v[1])
        half = len(v) // 2
        any_lo, idx_lo = tree(v[:half])
        any_hi, idx_hi = tree(v[half:])
        if lowest:
            return any_lo | any_hi, Cat(Mux(any_lo, idx_lo, idx_hi), ~any_lo)
        return any_lo | any_hi, Cat(Mux(any_hi, idx_hi, idx_lo), any_hi)

    _, found = tree(Cat(value, Const(0, width - len(value))))
    m.d.comb += idx.eq(found)
    return idx


def leading_one(m, value, name):
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0), as a Signal.

    A binary tree (log2 levels of 2:1 multiplexers), not a priority chain as long as ``value``.
    """
    return _bit_index(m, value, name, lowest=False)


def trailing_zeros(m, value, name):
    """Index of the least significant set bit of ``value``, as a Signal; for 0 it is
    ``2^k - 1``, ``2^k`` being ``len(value)`` rounded up to a power of two (test ``value != 0``
    where that matters). The same binary tree as :func:`leading_one`, from the other end.
    """
    return _bit_index(m, value, name, lowest=True)


# Where the pipeline registers go for each ``stages``. The cuts, in data-flow order: "pre" after
# |value| and the pre-shift, "lead" after the leading one, ``exp`` and the right-shift amount,
# "round" after the right shift (significand, half and sticky bits), "out" on the code.
_CUTS_FOR_STAGES = {
    0: (),
    1: ("lead",),
    2: ("pre", "round"),
    3: ("pre", "lead", "round"),
    4: ("pre", "lead", "round", "out"),
}
MAX_STAGES = max(_CUTS_FOR_STAGES)
# The registered block's pipeline depth: meets 100 MHz on the ECP5-8 (docs/flows.md).
DEFAULT_STAGES = 3


class AFRequantCore(wiring.Component):
    """Requantizer: ``code = round_to_code(value < 0, |value|, shift)``, optionally pipelined.

    Parameters
    ----------
    fmt : AFFormat
        Output format.
    in_width : int
        Width of the signed input ``value``.
    shift_min, shift_max : int
        Range of ``shift`` the instance must support (checked at construction).
    stages : int
        Pipeline registers, ``0 ..`` :data:`MAX_STAGES`. 0 is combinational. The registers go,
        in this order of preference, after the leading-one detector (1 stage), after the
        pre-shift and after the right shift with its round and sticky bits (2), all three (3),
        and on the output code as well (4, so that ``code`` comes straight from a register).

    Attributes
    ----------
    value : Signal(signed(in_width)), in
        Exact input in units of ``2^(shift + scale_exponent(bias_out))``.
    shift : Signal(signed(...)), in
        Power-of-two scale of ``value`` relative to the output's unit; must lie in
        ``shift_min .. shift_max``.
    en : Signal(1, init=1), in
        Clock enable: every pipeline register loads only in a cycle with ``en`` high, so the
        whole pipeline stalls while it is low (a stream user drives ``~valid | ready`` of its
        output). Ignored when ``stages`` is 0; left undriven it stays 1.
    code : Signal(fmt.n_bits), out
        Requantized code of the ``value``/``shift`` pair present at the ``latency``-th most
        recent clock edge with ``en`` high (the current pair when ``latency`` is 0).
    latency : int
        Clock edges with ``en`` high from input to ``code``: equal to ``stages``.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF, in_width, shift_min, shift_max, stages=0):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
            for name, v in (("in_width", in_width), ("shift_min", shift_min),
                            ("shift_max", shift_max), ("stages", stages)):
                check_int(name, v)
            if not 2 <= in_width <= 128:
                raise ValueError(f"in_width must be in 2..128, not {in_width}")
            if shift_min > shift_max:
                raise ValueError(
                    f"shift_min ({shift_min}) must not be greater than shift_max ({shift_max})")
            if shift_max - shift_min > 128:
                raise ValueError(
                    f"shift range {shift_min}..{shift_max} is wider than 128; the pre-shifter "
                    f"would be impractically wide")
            if stages not in _CUTS_FOR_STAGES:
                raise ValueError(f"stages must be in 0..{MAX_STAGES}, not {stages}")
        self._fmt = fmt
        self._in_width = in_width
        self._shift_min = shift_min
        self._shift_max = shift_max
        self._stages = stages
        super().__init__({
            "value": In(signed(in_width)),
            "shift": In(signed(max(abs(shift_min), abs(shift_max)).bit_length() + 1)),
            "en": In(1, init=1),
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

    @property
    def stages(self):
        return self._stages

    @property
    def latency(self):
        return self._stages

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        mb = fmt.man_bits
        base = min(self._shift_min, 0)
        frac = -base
        cuts = _CUTS_FOR_STAGES[self._stages]

        def cut(name, **values):
            """The values after cut ``name``: registered (loaded when ``en``) if it is used."""
            if name not in cuts:
                return values.values()
            regs = []
            for key, v in values.items():
                r = Signal(Value.cast(v).shape(), name=f"{key}_{name}")
                with m.If(self.en):
                    m.d.sync += r.eq(v)
                regs.append(r)
            return regs

        sign = self.value < 0
        mag = Signal(self._in_width)
        m.d.comb += mag.eq(Mux(sign, -self.value, self.value))
        # X = |value| << (shift - base), written as a right shift of |value| << (shift_max - base)
        # so that no intermediate is wider than X (a variable left shift by an n-bit amount
        # would be 2^n - 1 bits wider).
        span = self._shift_max - base
        unpre = Signal(range(self._shift_max - self._shift_min + 1))
        m.d.comb += unpre.eq(self._shift_max - self.shift)
        x = Signal(self._in_width + span)
        m.d.comb += x.eq(Cat(Const(0, span), mag) >> unpre)
        # X = |value| << d exactly (d = shift - base >= 0), so its leading one and its trailing
        # zeros are those of |value| plus d: the two trees run here on the narrow |value|,
        # beside the pre-shift, and leave only small additions to the next stage.
        d = Signal(range(span + 1))
        m.d.comb += d.eq(self.shift - base)
        lead_v = leading_one(m, mag, "lead_v")
        tz_v = trailing_zeros(m, mag, "tz_v")
        nonzero = mag != 0
        x, sign, d, lead_v, tz_v, nonzero = cut("pre", x=x, sign=sign, d=d, lead_v=lead_v,
                                                tz_v=tz_v, nonzero=nonzero)

        # floor(log2 V) = lead - F with lead = lead_v + d (X's leading one, X != 0);
        # exp = max(0, floor(log2 V) - M), and 0 for V = 0.
        lead = Signal(range(len(x)))
        m.d.comb += lead.eq(lead_v + d)
        exp = Signal(range(len(x) + 1))
        with m.If(nonzero & (lead > frac + mb)):
            m.d.comb += exp.eq(lead - frac - mb)
        rshift = Signal(range(len(x) + frac + 1))
        m.d.comb += rshift.eq(exp + frac)
        # The sticky bit below needs "any one of 2X below bit rshift", i.e. X != 0 and
        # tz(X) + 1 < rshift: a comparison of two small numbers instead of masking and OR-ing
        # 2X (that mask was the slowest path of the requantizer on the ECP5).
        tz = Signal(range(len(x) + 1))
        m.d.comb += tz.eq(tz_v + d)
        x, sign, exp, rshift, tz, nonzero = cut("lead", x=x, sign=sign, exp=exp, rshift=rshift,
                                                tz=tz, nonzero=nonzero)

        # Significand q = floor(X >> rshift) with round (half) and sticky bits: shifting 2X by
        # rshift leaves the half bit as bit 0; the sticky bits are those of 2X below rshift.
        x2 = Signal(len(x) + 1)
        m.d.comb += x2.eq(Cat(Const(0, 1), x))
        shifted = Signal(len(x2))
        m.d.comb += shifted.eq(x2 >> rshift)
        sticky = nonzero & (tz + 1 < rshift)
        # Binade 0 below 2^M + 1: nearer of 0 and 2^M + 1; the midpoint ties to zero.
        # 2V compared with 2^M + 1: twice = floor(2V), dropped = any bit below.
        twice = Signal(len(x) + 1)
        dropped = Signal()
        if frac >= 1:
            m.d.comb += twice.eq(x >> (frac - 1))
            m.d.comb += dropped.eq(x[:frac - 1] != 0 if frac > 1 else 0)
        else:
            m.d.comb += [twice.eq(x << 1), dropped.eq(0)]
        nearer_min = (twice > (1 << mb) + 1) | ((twice == (1 << mb) + 1) & dropped)
        top, sticky, nearer_min, sign, exp = cut(
            "round", top=shifted[:mb + 3], sticky=sticky, nearer_min=nearer_min, sign=sign,
            exp=exp)

        half, lsb = top[0], top[1]
        q = Signal(mb + 2)
        m.d.comb += q.eq(top[1:mb + 3] + (half & (sticky | lsb)))
        # Carry out of the significand: 2^(M+1) becomes 2^M one binade up.
        exp_c = Signal(len(exp) + 1)
        q_c = Signal(mb + 1)
        with m.If(q[mb + 1]):
            m.d.comb += [exp_c.eq(exp + 1), q_c.eq(1 << mb)]
        with m.Else():
            m.d.comb += [exp_c.eq(exp), q_c.eq(q[:mb + 1])]
        small = (exp_c == 0) & (q_c <= (1 << mb))

        code = Signal(fmt.n_bits)
        with m.If(small):
            with m.If(nearer_min):
                m.d.comb += code.eq(Cat(Const(1, mb), Const(0, fmt.exp_bits), sign))
            with m.Else():
                m.d.comb += code.eq(0)
        with m.Elif(exp_c > fmt.exp_max):
            m.d.comb += code.eq(Cat(Const((1 << mb) - 1, mb), Const(fmt.exp_max, fmt.exp_bits),
                                    sign))
        with m.Else():
            m.d.comb += code.eq(Cat(q_c[:mb], exp_c[:fmt.exp_bits], sign))
        (code,) = cut("out", code=code)
        m.d.comb += self.code.eq(code)
        return m


def _build(in_width, stages, **p):
    fmt = AFFormat(**p)
    lo, hi = requant_shift_range(fmt)  # the shifts a matmul accumulator needs
    return AFRequantCore(fmt=fmt, in_width=in_width, shift_min=lo, shift_max=hi, stages=stages)


register_block(
    "af_requant", "AdaptivFloat requantizer core (round to nearest, ties to even, saturate)",
    build=_build,
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3, "in_width": 40,
            "stages": DEFAULT_STAGES},
)
