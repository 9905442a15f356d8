"""Golden fixed-point kernels of the special function units: exp, reciprocal, 1/sqrt, ln.

Integer-exact models of the gateware helpers in :mod:`hw.sfu_math` (formats, tables and
rounding are defined once, in :mod:`hw.sfu_tables`). Every function takes and returns int64 tensors.
"""

import torch

from hw import sfu_tables as k_

__all__ = ["exp_neg", "bit_length", "reciprocal", "rsqrt", "ln_normalized"]

_T_HI = torch.tensor(k_.EXP_T_HI, dtype=torch.int64)
_T_MID = torch.tensor(k_.EXP_T_MID, dtype=torch.int64)
_RECIP_T = torch.tensor(k_.RECIP_T, dtype=torch.int64)
_RSQRT_T = torch.tensor(k_.RSQRT_T, dtype=torch.int64)
_LN_T = torch.tensor(k_.LN_T, dtype=torch.int64)


def exp_neg(d, frac_bits):
    """``exp(d)`` for fixed-point ``d <= 0`` (``frac_bits`` fractional), ``EXP_FRAC`` fraction bits.

    Steps (truncations are floors): ``u = floor(-d * LOG2E / 2^(F + LOG2E_FRAC - EXP_U_FRAC))``,
    ``k = u >> EXP_U_FRAC``, table lookups on the next 8 + 8 bits, product shifted right by
    ``EXP_FRAC + min(k, EXP_FRAC + 1)``.
    """
    d = d.to(torch.int64)
    if d.numel() and int(d.max()) > 0:
        raise ValueError("exp_neg arguments must be <= 0 (the row maximum is subtracted first)")
    u = ((-d) * k_.LOG2E) >> (frac_bits + k_.LOG2E_FRAC - k_.EXP_U_FRAC)
    f = u & ((1 << k_.EXP_U_FRAC) - 1)
    hi = f >> (k_.EXP_U_FRAC - k_.EXP_HI_BITS)
    mid = (f >> (k_.EXP_U_FRAC - k_.EXP_HI_BITS - k_.EXP_MID_BITS)) & ((1 << k_.EXP_MID_BITS) - 1)
    k = (u >> k_.EXP_U_FRAC).clamp(max=k_.EXP_FRAC + 1)
    return (_T_HI[hi] * _T_MID[mid]) >> (k + k_.EXP_FRAC)


def bit_length(x):
    """``floor(log2 x)`` of a positive int64 tensor (0 for 0), exactly."""
    x = x.to(torch.int64)
    n = torch.zeros_like(x)
    for s in (32, 16, 8, 4, 2, 1):
        big = (x >> (n + s)) != 0
        n = torch.where(big, n + s, n)
    return n


def _normalize(x, k, frac):
    """``floor(x * 2^(frac - k))`` for shift amounts of either sign."""
    return torch.where(k <= frac, x << (frac - k).clamp(min=0), x >> (k - frac).clamp(min=0))


def reciprocal(value):
    """``(r1, k, s)``: ``1/value ~= r1 * 2^-(RECIP_FRAC + k)`` for int64 ``value >= 1``.

    ``s`` is ``value`` normalised to [1, 2) with ``RECIP_FRAC`` fractional bits (floor); ``r0``
    from the table at its top ``RECIP_INDEX_BITS`` fraction bits; one Newton step with floors.
    """
    value = value.to(torch.int64)
    if value.numel() and int(value.min()) < 1:
        raise ValueError("reciprocal arguments must be >= 1")
    f = k_.RECIP_FRAC
    k = bit_length(value)
    s = _normalize(value, k, f)
    r0 = _RECIP_T[(s >> (f - k_.RECIP_INDEX_BITS)) & ((1 << k_.RECIP_INDEX_BITS) - 1)]
    sr = (s * r0) >> f
    r1 = (r0 * ((1 << (f + 1)) - sr)) >> f
    return r1, k, s


def rsqrt(value):
    """``(r1, j)``: ``1/sqrt(value) ~= r1 * 2^-(RSQRT_FRAC + j)`` for int64 ``value >= 1``."""
    value = value.to(torch.int64)
    if value.numel() and int(value.min()) < 1:
        raise ValueError("rsqrt arguments must be >= 1")
    f = k_.RSQRT_FRAC
    j = bit_length(value) >> 1
    t = _normalize(value, 2 * j, f)
    y = _RSQRT_T[(t >> (f - k_.RSQRT_INDEX_FRAC)) - (1 << k_.RSQRT_INDEX_FRAC)]
    y2 = (y * y) >> f
    ty2 = (t * y2) >> f
    r1 = (y * (3 * (1 << f) - ty2)) >> (f + 1)
    return r1, j


def ln_normalized(s):
    """``ln(s / 2^RECIP_FRAC)`` with ``LN_FRAC`` fractional bits for ``s`` in [1, 2): the table at
    the fraction of ``s`` rounded half up to ``LN_INDEX_BITS`` bits."""
    shift = k_.RECIP_FRAC - k_.LN_INDEX_BITS
    frac = s & ((1 << k_.RECIP_FRAC) - 1)
    return _LN_T[(frac + (1 << (shift - 1))) >> shift]
