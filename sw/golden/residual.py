"""Golden residual add ([H7]): two AdaptivFloat tensors with their own biases, requantized.

Both inputs are converted exactly to fixed point ([F5], :func:`sw.golden.af.to_fixed`), added
exactly, and the sum is requantized with the one rounding rule: the result is the correctly
rounded sum.
"""

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from sw.golden.af import requantize_scaled, to_fixed

__all__ = ["residual_add"]


def residual_add(a, b, bias_a, bias_b, bias_out, fmt: AFFormat = DEFAULT_AF,
                 fixed: FixedFormat = FixedFormat()):
    """``requantize(a + b)``: code tensors ``a``, ``b`` (same shape) → output codes.

    Exact sum in ``fixed`` (which must hold every value of ``fmt``, and one more integer bit for
    the sum), rounded to nearest, ties to even, saturating.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, not {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    total = to_fixed(a, bias_a, fixed, fmt) + to_fixed(b, bias_b, fixed, fmt)
    return requantize_scaled(total, -fixed.frac_bits, bias_out, fmt)
