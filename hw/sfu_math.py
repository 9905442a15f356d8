"""Fixed-point function kernels of the special function units, as gateware: exp, 1/x, 1/sqrt, ln.

The formats, rounding steps and tables are those of :mod:`hw.sfu_tables` (one place, shared with
the golden model :mod:`sw.golden.sfu_math`, which repeats every step on int64 tensors). Each
kernel builder adds its logic to a module ``m`` and takes an optional *cut* (:mod:`hw.sfu_pipe`)
that pipelines it.
"""

from amaranth.hdl import Const, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from hw.sfu_pipe import MUL_CUTS, delay, mul
from hw.sfu_tables import (
    EXP_FRAC,
    EXP_HI_BITS,
    EXP_MID_BITS,
    EXP_T_HI,
    EXP_T_MID,
    EXP_U_FRAC,
    LN_FRAC,
    LN_INDEX_BITS,
    LN_T,
    LOG2E,
    LOG2E_FRAC,
    RECIP_FRAC,
    RECIP_INDEX_BITS,
    RECIP_T,
    RSQRT_FRAC,
    RSQRT_INDEX_FRAC,
    RSQRT_T,
)

__all__ = [
    # The formats of the kernels' results, from hw.sfu_tables.
    "EXP_FRAC", "RECIP_FRAC", "RSQRT_FRAC", "LN_FRAC",
    "EXP_U_CUTS", "EXP_TABLE_CUTS", "RECIP_CUTS", "RSQRT_CUTS", "rom", "exp_neg", "exp_neg_u",
    "exp_neg_u_abs", "exp_neg_table", "bit_length_signal", "reciprocal", "rsqrt", "ln_normalized",
]

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
