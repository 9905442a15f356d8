"""Golden span-masked softmax ([H3]): one function per hardware step, integer tensors only.

Row-wise over AdaptivFloat scores (the 1/sqrt(d) scale is folded into the query weights):

1. ``x = to_fixed(scores)`` exactly ([F5]); ``mx = max(x)`` over the row; with
   renormalisation, over the elements whose mask is not zero (so that the exponentials that
   survive the mask keep their full relative precision).
2. ``e = exp_neg(min(x - mx, 0))`` (``EXP_FRAC`` fractional bits, :mod:`sw.golden.sfu_math`);
   ``em = e * mask`` (``EXP_FRAC + SPAN_MASK_FRAC`` fractional bits, exact).
3. ``S = sum(em)`` with renormalisation, else ``sum(e) << SPAN_MASK_FRAC`` (exact);
   ``1/S ~= r1 * 2^-(RECIP_FRAC + k)`` (table + one Newton step).
4. ``em * r1`` (exact) is requantized with the one rounding rule at scale
   ``2^-(RECIP_FRAC + k)``. A row whose masked sum is zero gives zeros.
"""

import torch

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.sfu_tables import RECIP_FRAC, SPAN_MASK_FRAC
from sw.adaptivfloat import round_to_code
from sw.golden.af import to_fixed
from sw.golden.sfu_math import exp_neg, reciprocal

__all__ = ["span_mask", "softmax_max", "softmax_exp", "softmax_sum", "softmax"]

MASK_ONE = 1 << SPAN_MASK_FRAC


def span_mask(z, ramp, length):
    """The quantized soft span mask ``m_z(x) = clamp((R + z - x) / R, 0, 1)`` for keys 0..L-1.

    ``z`` is the learned span (float), ``ramp`` the ramp length R (> 0); ``x`` is the key index.
    Rounded to nearest (ties to even) with ``SPAN_MASK_FRAC`` fractional bits; int64 tensor.
    """
    if not ramp > 0:
        raise ValueError(f"ramp must be positive, not {ramp!r}")
    x = torch.arange(length, dtype=torch.float64)
    m = ((ramp + float(z) - x) / ramp).clamp(0.0, 1.0)
    return torch.round(m * MASK_ONE).to(torch.int64)


def _check_mask(mask, like):
    mask = torch.as_tensor(mask, dtype=torch.int64)
    if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) > MASK_ONE):
        raise ValueError(f"mask values must be in 0..{MASK_ONE} (fixed point, "
                         f"{SPAN_MASK_FRAC} fractional bits)")
    return mask.expand_as(like)


def softmax_max(x, mask, renorm, fixed: FixedFormat = FixedFormat()):
    """Pass 1: row maximum of the fixed-point scores (shape (..., 1)).

    With ``renorm`` only elements with a non-zero mask count; a row masked out entirely gives
    the smallest value of ``fixed`` (its outputs are all zero anyway).
    """
    if renorm:
        x = torch.where(mask != 0, x, fixed.min_int)
    return x.max(dim=-1, keepdim=True).values


def softmax_exp(x, mx, frac_bits):
    """Pass 2: ``exp(min(x - max, 0))`` of each element (``EXP_FRAC`` fractional bits)."""
    return exp_neg((x - mx).clamp(max=0), frac_bits)


def softmax_sum(e, mask, renorm):
    """Pass 2: the row sum in units of ``2^-(EXP_FRAC + SPAN_MASK_FRAC)`` (exact)."""
    if renorm:
        return (e * mask).sum(dim=-1, keepdim=True)
    return e.sum(dim=-1, keepdim=True) << SPAN_MASK_FRAC


def softmax(scores, mask, bias_in, bias_out, renorm=False, fmt: AFFormat = DEFAULT_AF,
            fixed: FixedFormat = FixedFormat()):
    """Span-masked softmax of code rows ``scores`` (..., L) → output codes (..., L).

    ``mask`` (broadcastable to the rows) holds :func:`span_mask` values; ``renorm`` divides by
    the masked sum instead of the plain sum.
    """
    x = to_fixed(scores, bias_in, fixed, fmt)
    mask = _check_mask(mask, x)
    fmt.check_bias(bias_out, "bias_out")
    e = softmax_exp(x, softmax_max(x, mask, renorm, fixed), fixed.frac_bits)
    total = softmax_sum(e, mask, renorm)
    r1, k, _ = reciprocal(total.clamp(min=1))
    value = e * mask * r1
    shift = -(RECIP_FRAC + k) - fmt.scale_exponent(bias_out)
    return round_to_code(torch.zeros_like(value, dtype=torch.bool), value, shift, fmt).to(
        torch.uint8 if fmt.n_bits <= 8 else torch.int32)
