"""Golden AdaptivFloat arithmetic: lane product, accumulation, requantization, fixed point.

These are the integer-exact models of the multiplier lane, the accumulator, the requantizer and
the AdaptivFloat-to-fixed converter ([F4], [F5] in DESIGN.md). Requantization uses the one
rounding rule, :func:`sw.adaptivfloat.round_to_code`.
"""

import torch

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from sw.adaptivfloat import decode_parts, round_to_code

__all__ = [
    "lane_product", "accumulate", "requantize", "requantize_scaled", "to_fixed",
    "product_scale_exponent",
]


def lane_product(a, b, fmt: AFFormat = DEFAULT_AF):
    """Exact product of two code tensors as a signed integer ``±sig_a·sig_b << (exp_a + exp_b)``.

    The biases are not applied: the real product is this integer times
    ``2^(scale(bias_a) + scale(bias_b))`` (see :func:`product_scale_exponent`).
    """
    _, ea, sa = decode_parts(a, fmt)
    _, eb, sb = decode_parts(b, fmt)
    return (sa * sb) << (ea + eb)


def product_scale_exponent(bias_a, bias_b, fmt: AFFormat = DEFAULT_AF):
    """Power of two of one unit of a lane product / accumulator for the two operand biases."""
    return fmt.scale_exponent(fmt.check_bias(bias_a, "bias_a")) + \
        fmt.scale_exponent(fmt.check_bias(bias_b, "bias_b"))


def accumulate(products, dim=-1, acc_bits=None):
    """Exact sum of lane products along ``dim``; with ``acc_bits`` also check it fits that width.

    The hardware accumulator is sized at elaboration so that it cannot overflow; the check here
    is the golden model's guard that a caller stayed within the inner dimension it declared.
    """
    acc = products.to(torch.int64).sum(dim=dim)
    if acc_bits is not None and acc.numel():
        lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
        if int(acc.min()) < lo or int(acc.max()) > hi:
            raise OverflowError(f"accumulator value outside a signed {acc_bits}-bit register")
    return acc


def requantize_scaled(value, scale_exp, bias_out, fmt: AFFormat = DEFAULT_AF):
    """Exact value ``value * 2^scale_exp`` (signed int64 tensor) → codes with bias ``bias_out``.

    ``|value|`` must be below 2^62 (checked): every accumulator :func:`hw.layouts.acc_width_for`
    sizes is.
    """
    fmt.check_bias(bias_out, "bias_out")
    value = value.to(torch.int64)
    shift = scale_exp - fmt.scale_exponent(bias_out)
    # -2^63 has no int64 magnitude: clamp it to -(2^63 - 1), which round_to_code refuses too.
    mag = value.clamp(min=-((1 << 63) - 1)).abs()
    return round_to_code(value < 0, mag, torch.tensor(shift), fmt).to(
        torch.uint8 if fmt.n_bits <= 8 else torch.int32)


def requantize(acc, bias_a, bias_b, bias_out, fmt: AFFormat = DEFAULT_AF):
    """Accumulator of products of operands with biases ``bias_a``, ``bias_b`` → output codes."""
    return requantize_scaled(acc, product_scale_exponent(bias_a, bias_b, fmt), bias_out, fmt)


def to_fixed(codes, bias, fixed: FixedFormat = FixedFormat(), fmt: AFFormat = DEFAULT_AF):
    """Codes with bias ``bias`` → signed fixed point (int64, ``fixed.frac_bits`` fractional).

    Exact: ``fixed`` must hold every value of ``fmt`` (checked, with a clear error).
    """
    fixed.check_holds(fmt)
    fmt.check_bias(bias)
    _, exp, sig = decode_parts(codes, fmt)
    return sig << (exp + fmt.scale_exponent(bias) + fixed.frac_bits)
