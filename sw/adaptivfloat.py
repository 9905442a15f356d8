"""AdaptivFloat in PyTorch: the one rounding rule, the quantizer and quantization-aware training.

The rounding rule ([F2] in DESIGN.md) is written once, in :func:`round_to_code`, on exact
values of the form ``magnitude * 2^shift`` with an integer magnitude. The encoder feeds it the
exact binary expansion of each float64 (``torch.frexp``), the golden requantizer
(:mod:`sw.golden.af`) feeds it accumulator integers, so both agree bit for bit by construction.
:func:`quantize` (values in, values out: the QAT hot path) rounds the floats' bit patterns
instead, for speed; a test holds it equal to ``decode(encode(x))`` on every boundary.

Value of a code with bias ``b``: ``(-1)^s * sig * 2^(exp + b + offset - M)`` with
``sig = 2^M + man``; the code ``exp = man = 0`` is zero. All magnitudes below are expressed in
units of ``2^(b + offset - M)``, where the representable magnitudes are 0, then
``2^M + 1 .. 2^(M+1) - 1`` (exp 0), then steps of ``2^e`` in binade ``e``.
"""

import math

import torch

from hw.layouts import DEFAULT_AF, AFFormat

__all__ = [
    "round_to_code", "check_codes", "check_finite", "encode", "decode", "quantize",
    "weight_bias", "fake_quantize", "ulp",
]

# Shifts are clamped here: an int64 magnitude below 2^62 shifted right by 62 or more is zero with
# a remainder below half a unit, which the rule below handles without a wider shift.
_MAX_SHIFT = 62
# Magnitudes the rule accepts: below 2^62, so that doubling and the shifts above stay in int64.
_MAG_LIMIT = 1 << 62


def _shift_right_round_half_even(mag, r):
    """``round_half_even(mag / 2^r)`` for ``r >= 1`` (tensor), and whether anything was dropped."""
    rc = r.clamp(max=_MAX_SHIFT)
    floor = mag >> rc
    rem = mag - (floor << rc)
    half = torch.ones_like(mag) << (rc - 1)
    up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    # With r beyond the clamp, half is really larger than any magnitude: never round up.
    up &= r <= _MAX_SHIFT
    return floor + up.to(mag.dtype)


def _floor_shift(mag, s):
    """``floor(mag * 2^s)`` for any integer tensor ``s``, plus a flag for a non-zero remainder."""
    left = s.clamp(min=0, max=_MAX_SHIFT)
    right = (-s).clamp(min=0, max=_MAX_SHIFT)
    floor = (mag << left) >> right
    dropped = (mag - ((mag >> right) << right)) != 0
    dropped |= (-s > _MAX_SHIFT) & (mag != 0)
    floor = torch.where(-s > _MAX_SHIFT, torch.zeros_like(floor), floor)
    return floor, dropped


def round_to_code(sign, mag, shift, fmt: AFFormat = DEFAULT_AF):
    """The AdaptivFloat rounding rule [F2]: exact value ``(-1)^sign * mag * 2^shift`` → code.

    ``mag`` is a non-negative int64 tensor below 2^62 (checked) and ``shift`` an int64 tensor
    (broadcast with ``mag``); the value is in units of ``2^(b + offset - M)`` of the target
    bias. Rounds to the nearest representable value; on a tie picks the code with the even
    mantissa (zero counts as even); magnitudes above the largest value saturate to ±max. Zero
    is always code 0.
    Returns the codes as int64.
    """
    m = fmt.man_bits
    mag = mag.to(torch.int64)
    lo = hi = 0
    if mag.numel():
        lo, hi = int(mag.min()), int(mag.max())
        if lo < 0 or hi >= _MAG_LIMIT:
            raise ValueError(
                f"magnitudes must be in 0..2^62 - 1 (exact int64 arithmetic), found "
                f"{lo if lo < 0 else hi}")
    shift = torch.as_tensor(shift, dtype=torch.int64).expand_as(mag)
    # floor(log2(mag)) for mag > 0; frexp is exact for integers below 2^53 and monotone above.
    lead = torch.frexp(mag.to(torch.float64))[1].to(torch.int64) - 1
    if hi >= 1 << 53:  # only then (never for encoded floats) is the slow exact path needed
        lead = torch.where(mag >= (1 << 53), _bit_length(mag) - 1, lead)
    exp = (lead + shift - m).clamp(min=0)
    # Significand q = round_half_even(value / 2^exp), in [2^M, 2^(M+1)] when exp > 0.
    t = shift - exp
    q = torch.where(
        t >= 0,
        mag << t.clamp(min=0, max=m + 1),
        _shift_right_round_half_even(mag, (-t).clamp(min=1)),
    )
    carry = q == (2 << m)
    exp = torch.where(carry, exp + 1, exp)
    q = torch.where(carry, torch.full_like(q, 1 << m), q)
    # Binade 0 holds 0 and 2^M + 1 .. 2^(M+1) - 1: values below 2^M + 1 go to whichever of
    # 0 and 2^M + 1 is nearer; the midpoint (2^M + 1) / 2 ties to zero (even mantissa).
    small = (exp == 0) & (q <= (1 << m))
    twice, dropped = _floor_shift(mag, shift + 1)
    nearer_min = (twice > (1 << m) + 1) | ((twice == (1 << m) + 1) & dropped)
    q = torch.where(small, torch.where(nearer_min, (1 << m) + 1, 0), q)
    is_zero = q == 0
    sat = exp > fmt.exp_max
    exp = torch.where(sat, fmt.exp_max, exp)
    man = torch.where(sat, (1 << m) - 1, q - (1 << m)).clamp(min=0)
    code = (sign.to(torch.int64) << (fmt.n_bits - 1)) | (exp << m) | man
    return torch.where(is_zero, 0, code)


def _bit_length(x):
    """Exact bit length of a non-negative int64 tensor (used only above 2^53)."""
    n = torch.zeros_like(x)
    for k in (32, 16, 8, 4, 2, 1):
        big = (x >> (n + k)) != 0
        n = torch.where(big, n + k, n)
    return n + (x != 0).to(torch.int64)


def check_finite(x, what="input"):
    """Raise ``ValueError`` naming the problem if ``x`` has NaN or infinite elements."""
    if not torch.is_tensor(x):
        raise TypeError(f"{what} must be a torch.Tensor, not {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{what} must be a floating-point tensor, not {x.dtype}")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{what} has {n_nan} NaN and {n_inf} infinite element(s) (first at index {first}); "
            f"AdaptivFloat has no encoding for them")
    return x


def check_codes(codes, fmt: AFFormat = DEFAULT_AF, what="codes"):
    """Raise unless ``codes`` is an integer tensor with every value in ``0 .. 2^N - 1``."""
    if not torch.is_tensor(codes):
        raise TypeError(f"{what} must be a torch.Tensor, not {type(codes).__name__}")
    if codes.dtype == torch.bool or torch.is_floating_point(codes) or torch.is_complex(codes):
        raise TypeError(f"{what} must be an integer tensor, not {codes.dtype}")
    if codes.numel():
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi > fmt.code_max:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{what} must be in 0..{fmt.code_max} for {fmt.n_bits}-bit AdaptivFloat, "
                f"found {bad}")
    return codes


def _code_dtype(fmt):
    return torch.uint8 if fmt.n_bits <= 8 else torch.int32


def encode(x, bias, fmt: AFFormat = DEFAULT_AF):
    """Float tensor → AdaptivFloat codes with tensor bias ``bias`` (uint8 for N ≤ 8)."""
    fmt.check_bias(bias)
    check_finite(x)
    x64 = x.detach().to(torch.float64)
    frac, exp = torch.frexp(x64.abs())
    mag = torch.ldexp(frac, torch.full_like(exp, 53)).to(torch.int64)
    shift = exp.to(torch.int64) - 53 - fmt.scale_exponent(bias)
    return round_to_code(x64 < 0, mag, shift, fmt).to(_code_dtype(fmt))


def decode_parts(codes, fmt: AFFormat = DEFAULT_AF):
    """Split codes into (sign, exponent field, signed significand) int64 tensors; zero → sig 0."""
    check_codes(codes, fmt)
    c = codes.to(torch.int64)
    m = fmt.man_bits
    sign = (c >> (fmt.n_bits - 1)) & 1
    exp = (c >> m) & fmt.exp_max
    man = c & ((1 << m) - 1)
    sig = torch.where((exp == 0) & (man == 0), 0, man + (1 << m))
    return sign, exp, torch.where(sign == 1, -sig, sig)


def _check_dtype_holds(dtype, bias, fmt):
    """Raise unless ``dtype`` represents every value of ``fmt`` at ``bias`` exactly."""
    info = torch.finfo(dtype)
    digits = 1 - math.frexp(info.eps)[1] + 1  # significand bits, the hidden one included
    if (fmt.sig_bits > digits or fmt.max_value(bias) > info.max
            or fmt.min_value(bias) < info.smallest_normal):
        raise ValueError(
            f"{dtype} cannot hold every value of {fmt} with bias {bias} exactly; use "
            f"torch.float64")


def decode(codes, bias, fmt: AFFormat = DEFAULT_AF, dtype=torch.float32):
    """AdaptivFloat codes with bias ``bias`` → float tensor, exactly.

    Raises ``ValueError`` when ``dtype`` cannot hold every value of the format at this bias
    exactly (float32 holds the default format; float64 holds every format).
    """
    fmt.check_bias(bias)
    _check_dtype_holds(dtype, bias, fmt)
    _, exp, sig = decode_parts(codes, fmt)
    return torch.ldexp(sig.to(torch.float64), exp + fmt.scale_exponent(bias)).to(dtype)


# Float dtypes whose bit patterns quantize() rounds directly: (integer view, mantissa bits).
_FLOAT_BITS = {torch.float32: (torch.int32, 23), torch.float64: (torch.int64, 52)}


def quantize(x, bias, fmt: AFFormat = DEFAULT_AF):
    """Float → nearest AdaptivFloat value (as a float tensor of ``x``'s dtype).

    Equal to ``decode(encode(x, bias), bias)`` element for element (zero is +0), computed on the
    floats' bit patterns instead of through codes, about 40 times faster: that is what
    quantization-aware training and the fake-quantized evaluation spend their time on. Inside
    the format's range an AdaptivFloat binade is a float binade with M mantissa bits, so
    rounding the float's significand to M bits (ties to even, the carry running into the
    exponent) is the rule [F2]; below binade 0 and above the top the rule's own cases apply.
    ``tests/test_sw_adaptivfloat.py`` holds the two paths equal on every grid point, midpoint and
    their float neighbours, at every bias of several formats.
    """
    fmt.check_bias(bias)
    check_finite(x)
    _check_dtype_holds(x.dtype, bias, fmt)
    m = fmt.man_bits
    scale = fmt.scale_exponent(bias)
    work = x.detach() if x.dtype in _FLOAT_BITS else x.detach().to(torch.float32)  # exact
    ints, mbits = _FLOAT_BITS[work.dtype]
    drop = mbits - m
    bits = work.view(ints) & torch.iinfo(ints).max  # |x|
    if drop:
        half_even = ((1 << (drop - 1)) - 1) + ((bits >> drop) & 1)
        bits_rounded = (bits + half_even) & ~((1 << drop) - 1)
    else:  # the float has exactly M mantissa bits: nothing to round
        bits_rounded = bits
    rounded = bits_rounded.view(work.dtype)
    # Binade 0 holds 0 and 2^M + 1 .. 2^(M+1) - 1 steps (2^M itself is no code): what rounds
    # to 2^M or below goes to the nearer of 0 and 2^M + 1, the midpoint to zero.
    first = ((1 << m) + 1) * 2.0 ** scale
    below = torch.where(2 * bits.view(work.dtype) > first, first, 0.0)
    y = torch.where(rounded <= 2.0 ** (scale + m), below, rounded).clamp(max=fmt.max_value(bias))
    return torch.where((work < 0) & (y > 0), -y, y).to(x.dtype)


def weight_bias(x, fmt: AFFormat = DEFAULT_AF):
    """The automatic weight bias [F3]: floor(log2 max|x|) - (2^E - 1) - offset, clamped.

    An all-zero tensor gets bias 0. Returns a Python int.
    """
    check_finite(x)
    peak = float(x.detach().abs().max()) if x.numel() else 0.0
    if peak == 0.0:
        return 0
    # frexp gives floor(log2) exactly; math.log2 can round up just below a power of two.
    b = math.frexp(peak)[1] - 1 - fmt.exp_max - fmt.offset
    return min(max(b, 0), fmt.bias_max)


def ulp(x, bias, fmt: AFFormat = DEFAULT_AF):
    """Spacing of the AdaptivFloat grid at ``|x|`` (the unit in the last place), as float64.

    Below the smallest normal binade the grid step is that of binade 0.
    """
    fmt.check_bias(bias)
    x64 = x.detach().to(torch.float64).abs()
    scale = fmt.scale_exponent(bias)
    lead = torch.frexp(x64)[1].to(torch.int64) - 1
    binade = (lead - scale - fmt.man_bits).clamp(min=0, max=fmt.exp_max)
    return torch.ldexp(torch.ones_like(x64), binade + scale)


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, fmt):
        limit = fmt.max_value(bias)
        ctx.save_for_backward(x.abs() <= limit)
        return quantize(x, bias, fmt)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        # Straight-through inside the representable range; zero where the value saturated.
        return grad * inside.to(grad.dtype), None, None


def fake_quantize(x, bias=None, fmt: AFFormat = DEFAULT_AF):
    """Quantize in the forward pass, pass gradients straight through (QAT).

    With ``bias=None`` the weight bias rule [F3] picks the bias from ``x`` itself.
    """
    if bias is None:
        bias = weight_bias(x, fmt)
    return _FakeQuantize.apply(x, bias, fmt)
