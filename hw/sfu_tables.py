"""Fixed-point formats and tables of the special function units: exp, 1/x, 1/sqrt, ln.

Defined once, read by the gateware kernels (:mod:`hw.sfu_math`), the units and the golden model
(:mod:`sw.golden.sfu_math`), so none of them can drift apart. Plain Python: imports neither
Amaranth nor PyTorch.

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
- ``H_BITS``: width of an entropy result (``LN_FRAC`` fractional bits, four integer bits);
  ``EPS_BITS``: width of LayerNorm's epsilon register.
"""

import math

__all__ = [
    "EXP_FRAC", "LOG2E_FRAC", "LOG2E", "EXP_U_FRAC", "EXP_HI_BITS", "EXP_MID_BITS", "EXP_T_HI",
    "EXP_T_MID", "RECIP_FRAC", "RECIP_INDEX_BITS", "RECIP_T", "RSQRT_FRAC", "RSQRT_INDEX_FRAC",
    "RSQRT_T", "LN_FRAC", "LN_Z_FRAC", "ENT_TERM_SHIFT", "SPAN_MASK_FRAC", "LN_INDEX_BITS",
    "LN_T", "LN2", "H_BITS", "EPS_BITS",
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

# Entropy results: H <= ln(classes) <= ln(4096) < 16, so four integer bits.
H_BITS = LN_FRAC + 4
# LayerNorm's epsilon, in units of the squared input unit (sw.golden.layernorm.eps_units).
EPS_BITS = 24
