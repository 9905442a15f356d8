"""Fixed-point function kernels of the special function units: exp, reciprocal, 1/sqrt, ln.

One place defines the internal formats and generates the tables; the gateware helpers below and
the golden model (:mod:`sw.golden.sfu_math`) both read them, so the two cannot drift apart. Every
step is an integer operation with a named rounding; the golden model repeats the same steps on
int64 tensors.

Internal formats (all unsigned unless said otherwise):

- ``exp``: argument ``d <= 0`` in signed fixed point with ``F`` fractional bits. ``u = floor(-d *
  LOG2E / 2^(F + LOG2E_FRAC - EXP_U_FRAC))`` (``EXP_U_FRAC`` fractional bits, so
  ``exp(d) = 2^-u``); ``k = floor(u)``, the next 8 + 8 fraction bits index two 256-entry tables
  of ``2^-f`` (``EXP_FRAC`` fractional bits, round to nearest); the rest of ``u`` is dropped
  (relative error below 2^-16.5). ``e = floor(T_HI[hi] * T_MID[mid] / 2^(EXP_FRAC + min(k,
  EXP_FRAC + 1)))``: ``EXP_FRAC`` fractional bits, ``exp(0)`` is exactly ``2^EXP_FRAC``.
- reciprocal of an integer ``S >= 1``: ``k = floor(log2 S)``, ``s = floor(S * 2^(RECIP_FRAC -
  k))`` (so ``s / 2^RECIP_FRAC`` is in [1, 2)); a 256-entry table (midpoints, round to nearest)
  gives ``r0``, one Newton step ``r1 = floor(r0 * (2^(RECIP_FRAC+1) - floor(s * r0 /
  2^RECIP_FRAC)) / 2^RECIP_FRAC)``; then ``1/S ~= r1 * 2^-(RECIP_FRAC + k)`` (relative error
  below 2^-17).
- inverse square root of an integer ``D >= 1``: ``j = floor(floor(log2 D) / 2)``, ``t =
  floor(D * 2^(RSQRT_FRAC - 2j))`` in [1, 4); a 384-entry table over [1, 4) with a step of 1/128
  gives ``y``; one Newton step ``r1 = floor(y * (3 * 2^RSQRT_FRAC - floor(t * floor(y^2 /
  2^RSQRT_FRAC) / 2^RSQRT_FRAC)) / 2^(RSQRT_FRAC + 1))``; then ``1/sqrt(D) ~= r1 *
  2^-(RSQRT_FRAC + j)`` (relative error below 2^-17).
- LayerNorm: ``z = floor((L x - S1) * r1 / 2^(RSQRT_FRAC + j - LN_Z_FRAC))``, signed,
  ``LN_Z_FRAC`` fractional bits.
- entropy: terms ``floor(-d * e / 2^ENT_TERM_SHIFT)``; ``H`` with ``LN_FRAC`` fractional bits.
- span mask: ``SPAN_MASK_FRAC`` fractional bits, 0 .. 2^SPAN_MASK_FRAC.
- ``ln`` of ``s`` in [1, 2): the fraction of ``s`` rounded (half up) to ``LN_INDEX_BITS`` bits
  indexes a 1025-entry table of ``ln(1 + j / 1024)`` with ``LN_FRAC`` fractional bits (exact
  zero at ``s = 1``, error below 2^-11);
  ``ln 2`` with ``LN_FRAC`` fractional bits (both round to nearest).
"""

import math

from amaranth.hdl import Const, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from hw.sfu_pipe import MUL_CUTS, delay, mul

__all__ = [
    "EXP_FRAC", "LOG2E_FRAC", "LOG2E", "EXP_U_FRAC", "EXP_HI_BITS", "EXP_MID_BITS", "EXP_T_HI",
    "EXP_T_MID", "RECIP_FRAC", "RECIP_INDEX_BITS", "RECIP_T", "RSQRT_FRAC", "RSQRT_INDEX_FRAC",
    "RSQRT_T", "LN_FRAC", "LN_Z_FRAC", "ENT_TERM_SHIFT", "SPAN_MASK_FRAC", "LN_INDEX_BITS",
    "LN_T", "LN2", "EXP_U_CUTS", "EXP_TABLE_CUTS", "RECIP_CUTS", "RSQRT_CUTS", "rom", "exp_neg",
    "exp_neg_u", "exp_neg_u_abs", "exp_neg_table", "bit_length_signal", "reciprocal", "rsqrt",
    "ln_normalized",
]

EXP_FRAC = 24
LOG2E_FRAC = 24
LOG2E = round(math.log2(math.e) * (1 << LOG2E_FRAC))
EXP_U_FRAC = 20
EXP_HI_BITS = 8
EXP_MID_BITS = 8
EXP_T_HI = [round(2.0 ** (-j / (1 << EXP_HI_BITS)) * (1 << EXP_FRAC))
            for j in range(1 << EXP_HI_BITS)]
EXP_T_MID = [round(2.0 ** (-j / (1 << (EXP_HI_BITS + EXP_MID_BITS))) * (1 << EXP_FRAC))
             for j in range(1 << EXP_MID_BITS)]

RECIP_FRAC = 20
RECIP_INDEX_BITS = 8
RECIP_T = [round((1 << RECIP_FRAC) / (1 + (j + 0.5) / (1 << RECIP_INDEX_BITS)))
           for j in range(1 << RECIP_INDEX_BITS)]

RSQRT_FRAC = 20
RSQRT_INDEX_FRAC = 7
RSQRT_T = [round((1 << RSQRT_FRAC) / math.sqrt((j + 0.5) / (1 << RSQRT_INDEX_FRAC) + 1))
           for j in range(3 << RSQRT_INDEX_FRAC)]

LN_FRAC = 16
# LayerNorm: normalised values (x - mean) / sqrt(var + eps) carry this many fractional bits.
LN_Z_FRAC = 16
# Entropy: each term (-d) * e is shifted right by this much (floor) before it is summed.
ENT_TERM_SHIFT = 16
# Span masks (softmax [H3]) are unsigned fixed point in [0, 1] with this many fractional bits.
SPAN_MASK_FRAC = 8
LN_INDEX_BITS = 10
LN_T = [round(math.log(1 + j / (1 << LN_INDEX_BITS)) * (1 << LN_FRAC))
        for j in range((1 << LN_INDEX_BITS) + 1)]
LN2 = round(math.log(2) * (1 << LN_FRAC))

# Cuts (pipeline stages) of the kernels when given a cut function (see :mod:`hw.sfu_pipe`).
EXP_U_CUTS = MUL_CUTS
EXP_TABLE_CUTS = 2 + MUL_CUTS
RECIP_CUTS = 5 + 2 * MUL_CUTS
RSQRT_CUTS = 5 + 3 * MUL_CUTS


def rom(m, name, values, addrs):
    """A read-only table (``Memory`` with ``init``) with one combinational read port per address.

    Returns the list of data signals, one per address in ``addrs``.
    """
    width = max(max(values).bit_length(), 1)
    mem = Memory(shape=unsigned(width), depth=len(values), init=values)
    m.submodules[name] = mem
    out = []
    for addr in addrs:
        port = mem.read_port(domain="comb")
        m.d.comb += port.addr.eq(addr)
        out.append(port.data)
    return out


def bit_length_signal(m, value, name):
    """``floor(log2 value)`` of an unsigned signal (0 for 0), as a Signal."""
    idx = Signal(range(max(len(value), 2)), name=name)
    for i in range(len(value)):
        with m.If(value[i]):
            m.d.comb += idx.eq(i)
    return idx


def exp_neg_u(m, name, ds, frac_bits):
    """First half of :func:`exp_neg`: ``u = floor(-d * LOG2E / 2^(...))`` for each ``d``."""
    mags = []
    for i, d in enumerate(ds):
        mag = Signal(len(d) + 1, name=f"{name}_negd{i}")
        m.d.comb += mag.eq((-d).as_unsigned())
        mags.append(mag)
    return exp_neg_u_abs(m, name, mags, frac_bits)


def exp_neg_u_abs(m, name, mags, frac_bits, cut=None):
    """:func:`exp_neg_u` of ``d = -mag`` for unsigned ``mags`` (a unit that has ``-d`` already).

    With a ``cut`` (:mod:`hw.sfu_pipe`) the product is pipelined: the results follow ``mags`` by
    ``MUL_CUTS`` cuts.
    """
    shift = frac_bits + LOG2E_FRAC - EXP_U_FRAC
    us = []
    for i, mag in enumerate(mags):
        u = Signal(len(mag) + LOG2E.bit_length() - shift + 1, name=f"{name}_u{i}")
        m.d.comb += u.eq(_mul(cut, mag, Const(LOG2E)) >> shift)
        us.append(u)
    return us


def exp_neg_table(m, name, us, cut=None):
    """Second half of :func:`exp_neg`: ``2^-u`` from the two tables and one product.

    With a ``cut`` (:mod:`hw.sfu_pipe`) the table outputs are cut twice (the first cut becomes
    the block RAM's read register, the second keeps its clock-to-output time off the
    multiplier) and the product is pipelined (:func:`hw.sfu_pipe.mul`) before the shift: the
    results follow ``us`` by ``EXP_TABLE_CUTS`` cuts.
    """
    c = cut or _no_cut
    his = [u[EXP_U_FRAC - EXP_HI_BITS:EXP_U_FRAC] for u in us]
    mids = [u[EXP_U_FRAC - EXP_HI_BITS - EXP_MID_BITS:EXP_U_FRAC - EXP_HI_BITS] for u in us]
    t_hi = rom(m, f"{name}_t_hi", EXP_T_HI, his)
    t_mid = rom(m, f"{name}_t_mid", EXP_T_MID, mids)
    kcs = []
    for i, u in enumerate(us):
        k = u[EXP_U_FRAC:]
        kc = Signal(range(EXP_FRAC + 2), name=f"{name}_k{i}")
        m.d.comb += kc.eq(Mux(k > EXP_FRAC + 1, EXP_FRAC + 1, k))
        kcs.append(kc)
    nu = len(us)
    looked = c(c(t_hi + t_mid + kcs))
    t_hi, t_mid, kcs = looked[:nu], looked[nu:2 * nu], looked[2 * nu:]
    prods = []
    for i in range(nu):
        p = Signal(2 * (EXP_FRAC + 1), name=f"{name}_p{i}")
        m.d.comb += p.eq(_mul(cut, t_hi[i], t_mid[i]))
        prods.append(p)
    kcs = _mul_delay(cut, kcs)
    out = []
    for i in range(nu):
        e = Signal(EXP_FRAC + 1, name=f"{name}_e{i}")
        m.d.comb += e.eq(prods[i] >> (kcs[i] + EXP_FRAC))
        out.append(e)
    return out


def exp_neg(m, name, ds, frac_bits):
    """``exp(d)`` for each signed fixed-point ``d <= 0`` in ``ds`` (``frac_bits`` fractional).

    Returns unsigned signals with ``EXP_FRAC`` fractional bits (see the module docstring).
    Combinational; pipelined units register between :func:`exp_neg_u` and
    :func:`exp_neg_table`.
    """
    return exp_neg_table(m, name, exp_neg_u(m, name, ds, frac_bits))


def _shift(m, name, value, frac, k):
    """``floor(value * 2^(frac - k))`` for an unsigned signal ``k`` of either side of ``frac``."""
    left = Signal(range(frac + 1), name=f"{name}_l")
    right = Signal(range(max(len(value), 2)), name=f"{name}_r")
    with m.If(k <= frac):
        m.d.comb += left.eq(frac - k)
    with m.Else():
        m.d.comb += right.eq(k - frac)
    return (value << left) >> right


def _stage(m, registered, signals):
    """The signals themselves, or copies registered every cycle when ``registered``."""
    if not registered:
        return signals
    out = [Signal.like(x, name=f"{x.name}_reg") for x in signals]
    m.d.sync += [o.eq(x) for o, x in zip(out, signals, strict=True)]
    return out


def _no_cut(signals):
    return signals


def _mul(cut, a, b):
    """``a * b``: combinational, or pipelined by :func:`hw.sfu_pipe.mul` with a cut."""
    return mul(cut, a, b) if cut else a * b


def _mul_delay(cut, signals):
    """``signals`` delayed alongside a :func:`_mul` (``MUL_CUTS`` cuts, or none)."""
    return delay(cut, signals, MUL_CUTS) if cut else signals


def reciprocal(m, name, value, registered=False, cut=None):
    """``(r1, k, s)`` with ``1/value ~= r1 * 2^-(RECIP_FRAC + k)`` for an unsigned ``value >= 1``.

    ``s`` is ``value`` normalised to [1, 2) with ``RECIP_FRAC`` fractional bits (truncated).
    With ``registered`` the normalisation and table lookup are registered before the Newton step:
    the outputs follow ``value`` one cycle later. A ``cut`` (:mod:`hw.sfu_pipe`) instead cuts
    after the leading-one search, after the normalisation, twice after the table lookup (as in
    :func:`exp_neg_table`) and before the second product, and pipelines the Newton step's two
    products (:func:`hw.sfu_pipe.mul`): the outputs follow ``value`` by ``RECIP_CUTS`` cuts.
    """
    c = cut or _no_cut
    k = bit_length_signal(m, value, f"{name}_k")
    value, k = c([value, k])
    s = Signal(RECIP_FRAC + 1, name=f"{name}_s")
    # Normalise to [1, 2) with RECIP_FRAC fractional bits, truncating the bits below.
    m.d.comb += s.eq(_shift(m, f"{name}_norm", value, RECIP_FRAC, k))
    # The two-sided shift of a wide sum is too long to also drive the block RAM's address.
    k, s = c([k, s])
    (r0,) = rom(m, f"{name}_t", RECIP_T, [s[RECIP_FRAC - RECIP_INDEX_BITS:RECIP_FRAC]])
    # A cut table output is cut twice, as in exp_neg_table.
    k, s, r0 = cut(cut([k, s, r0])) if cut else _stage(m, registered, [k, s, r0])
    sr = Signal(RECIP_FRAC + 2, name=f"{name}_sr")
    m.d.comb += sr.eq(_mul(cut, s, r0) >> RECIP_FRAC)
    k, s, r0 = _mul_delay(cut, [k, s, r0])
    step = Signal(RECIP_FRAC + 2, name=f"{name}_step")
    m.d.comb += step.eq((1 << (RECIP_FRAC + 1)) - sr)
    k, s, r0, step = c([k, s, r0, step])  # no carry chain in front of a DSP block
    r1 = Signal(RECIP_FRAC + 1, name=f"{name}_r1")
    m.d.comb += r1.eq(_mul(cut, r0, step) >> RECIP_FRAC)
    k, s = _mul_delay(cut, [k, s])
    return r1, k, s


def rsqrt(m, name, value, registered=False, cut=None):
    """``(r1, j)``: ``1/sqrt(value) ~= r1 * 2^-(RSQRT_FRAC + j)`` for unsigned ``value >= 1``.

    With ``registered`` the normalisation and table lookup are registered before the Newton step:
    the outputs follow ``value`` one cycle later. A ``cut`` (:mod:`hw.sfu_pipe`) instead cuts
    after the leading-one search, the normalisation, twice after the table lookup (as in
    :func:`exp_neg_table`) and before the last product, and pipelines the Newton step's three
    products (:func:`hw.sfu_pipe.mul`): the outputs follow ``value`` by ``RSQRT_CUTS`` cuts.
    """
    c = cut or _no_cut
    k = bit_length_signal(m, value, f"{name}_k")
    value, k = c([value, k])
    j = Signal(range(len(value) // 2 + 1), name=f"{name}_j")
    m.d.comb += j.eq(k >> 1)
    t = Signal(RSQRT_FRAC + 2, name=f"{name}_t")
    m.d.comb += t.eq(_shift(m, f"{name}_norm", value, RSQRT_FRAC, 2 * j))
    j, t = c([j, t])
    idx = Signal(range(len(RSQRT_T)), name=f"{name}_idx")
    m.d.comb += idx.eq((t >> (RSQRT_FRAC - RSQRT_INDEX_FRAC)) - (1 << RSQRT_INDEX_FRAC))
    (y,) = rom(m, f"{name}_tab", RSQRT_T, [idx])
    j, t, y = cut(cut([j, t, y])) if cut else _stage(m, registered, [j, t, y])
    y2 = Signal(RSQRT_FRAC + 1, name=f"{name}_y2")
    m.d.comb += y2.eq(_mul(cut, y, y) >> RSQRT_FRAC)
    j, t, y = _mul_delay(cut, [j, t, y])
    ty2 = Signal(RSQRT_FRAC + 3, name=f"{name}_ty2")
    m.d.comb += ty2.eq(_mul(cut, t, y2) >> RSQRT_FRAC)
    j, y = _mul_delay(cut, [j, y])
    step = Signal(RSQRT_FRAC + 3, name=f"{name}_step")
    m.d.comb += step.eq(3 * (1 << RSQRT_FRAC) - ty2)
    j, y, step = c([j, y, step])  # no carry chain in front of a DSP block
    r1 = Signal(RSQRT_FRAC + 2, name=f"{name}_r1")
    m.d.comb += r1.eq(_mul(cut, y, step) >> (RSQRT_FRAC + 1))
    (j,) = _mul_delay(cut, [j])
    return r1, j


def ln_normalized(m, name, s):
    """``ln(s / 2^RECIP_FRAC)`` with ``LN_FRAC`` fractional bits for ``s`` in [1, 2) (table)."""
    idx = Signal(range(len(LN_T)), name=f"{name}_idx")
    shift = RECIP_FRAC - LN_INDEX_BITS
    m.d.comb += idx.eq((s[:RECIP_FRAC] + (1 << (shift - 1))) >> shift)
    (v,) = rom(m, f"{name}_t", LN_T, [idx])
    return v
