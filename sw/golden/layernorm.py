"""Golden LayerNorm ([H4]): one function per hardware step, integer tensors only.

With ``X = sig << exp`` the exact integer value of each input code in units of its own scale
``2^scale_exponent(bias_in)`` ([F5]: exact fixed point with the bias folded into the unit):

1. ``S1 = sum X``, ``S2 = sum X^2`` (exact integer sums, pass 1).
2. ``D = L*S2 - S1^2 + L^2*eps`` = ``L^2 (var + eps)`` (exact; ``eps`` in units of the squared
   input unit); ``D = max(D, 1)``; ``1/sqrt(D) ~= r1 * 2^-(RSQRT_FRAC + j)`` (table + Newton).
3. ``z = floor((L*X - S1) * r1 / 2^(RSQRT_FRAC + j - LN_Z_FRAC))`` = ``(x - mean)/sqrt(var +
   eps)`` with ``LN_Z_FRAC`` fractional bits (floor).
4. ``y = G*z + (B << (bias_beta - bias_gamma + LN_Z_FRAC))`` exactly, with ``G``, ``B`` the
   integer values of gamma and beta (each code with its own bias), then requantized with the one
   rounding rule at scale ``2^(scale_exponent(bias_gamma) - LN_Z_FRAC)``.
"""


from hw.layouts import DEFAULT_AF, AFFormat
from hw.sfu_tables import EPS_BITS, LN_Z_FRAC, RSQRT_FRAC
from sw.adaptivfloat import decode_parts
from sw.golden.af import requantize_scaled
from sw.golden.sfu_math import rsqrt

__all__ = ["eps_units", "af_integer", "layernorm_sums", "layernorm_scale", "layernorm_normalize",
           "layernorm_affine", "layernorm", "EPS_BITS"]


def eps_units(eps, bias_in, fmt: AFFormat = DEFAULT_AF):
    """The ``eps`` register for a float epsilon: ``round(eps / 2^(2 scale_exponent(bias_in)))``,
    clamped to ``EPS_BITS`` bits."""
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative, not {eps!r}")
    units = round(eps * 2.0 ** (-2 * fmt.scale_exponent(fmt.check_bias(bias_in, "bias_in"))))
    return min(units, (1 << EPS_BITS) - 1)


def af_integer(codes, fmt: AFFormat = DEFAULT_AF):
    """Exact integer value ``±sig << exp`` of each code (in units of the tensor's scale)."""
    _, exp, sig = decode_parts(codes, fmt)
    return sig << exp


def layernorm_sums(x):
    """Pass 1: ``(S1, S2)`` per row, exact."""
    return x.sum(dim=-1, keepdim=True), (x * x).sum(dim=-1, keepdim=True)


def layernorm_scale(s1, s2, length, eps):
    """``(r1, j)`` with ``1/sqrt(max(L*S2 - S1^2 + L^2*eps, 1)) ~= r1 * 2^-(RSQRT_FRAC + j)``."""
    d = length * s2 - s1 * s1 + length * length * eps
    return rsqrt(d.clamp(min=1))


def layernorm_normalize(x, s1, length, r1, j):
    """``z = floor((L*X - S1) * r1 / 2^(RSQRT_FRAC + j - LN_Z_FRAC))`` (``LN_Z_FRAC`` fraction)."""
    return ((length * x - s1) * r1) >> (RSQRT_FRAC + j - LN_Z_FRAC)


def layernorm_affine(z, g, b, bias_gamma, bias_beta):
    """``G*z + (B << (bias_beta - bias_gamma + LN_Z_FRAC))``, exact, at gamma's scale."""
    return g * z + (b << (bias_beta - bias_gamma + LN_Z_FRAC))


def layernorm(x, gamma, beta, bias_in, bias_gamma, bias_beta, bias_out, eps=0,
              fmt: AFFormat = DEFAULT_AF):
    """LayerNorm of code rows ``x`` (..., L) with code vectors ``gamma``, ``beta`` (L,).

    ``eps`` is the epsilon register (:func:`eps_units`). Returns output codes (..., L).
    """
    for name, bias in (("bias_in", bias_in), ("bias_gamma", bias_gamma),
                       ("bias_beta", bias_beta), ("bias_out", bias_out)):
        fmt.check_bias(bias, name)
    if not 0 <= eps < (1 << EPS_BITS):
        raise ValueError(f"eps must be in 0..{(1 << EPS_BITS) - 1}, not {eps!r}")
    length = x.shape[-1]
    xi = af_integer(x, fmt)
    s1, s2 = layernorm_sums(xi)
    r1, j = layernorm_scale(s1, s2, length, eps)
    z = layernorm_normalize(xi, s1, length, r1, j)
    y = layernorm_affine(z, af_integer(gamma, fmt), af_integer(beta, fmt), bias_gamma, bias_beta)
    return requantize_scaled(y, fmt.scale_exponent(bias_gamma) - LN_Z_FRAC, bias_out, fmt)
