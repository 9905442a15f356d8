"""Golden entropy early-exit assessment ([H5]): integer tensors only, one function per step.

``H = ln sum e^x - sum x e^x / sum e^x`` on the off-ramp logits, as log-sum-exp with the
maximum subtracted (``d = x - max <= 0``, ``e = exp(d)``):
``H = ln S + T / S`` with ``S = sum e`` and ``T = sum (-d) e``.

1. ``x = to_fixed(logits)`` ([F5]); ``mx = max x`` (pass 1).
2. ``e = exp_neg(x - mx)`` (``EXP_FRAC`` fractional bits); ``S = sum e`` exact;
   ``T = sum floor((-d) * e / 2^ENT_TERM_SHIFT)`` (pass 2).
3. ``1/S ~= r1 * 2^-(RECIP_FRAC + k)``, with ``s`` = S normalised to [1, 2);
   ``ln S = (k - EXP_FRAC) * LN2 + LN_T[s]``;
   ``T / S = floor(T * r1 / 2^(F - ENT_TERM_SHIFT + RECIP_FRAC + k - LN_FRAC))`` (``k >=
   EXP_FRAC`` since ``S >= exp(0)``, so the shift is positive); ``H = ln S + T / S`` with
   ``LN_FRAC`` fractional bits.
4. ``exit = H < threshold`` (threshold register in the same format).
"""

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from hw.sfu_tables import ENT_TERM_SHIFT, EXP_FRAC, H_BITS, LN2, LN_FRAC, RECIP_FRAC
from sw.golden.af import to_fixed
from sw.golden.sfu_math import exp_neg, ln_normalized, reciprocal

__all__ = ["entropy_sums", "entropy_value", "entropy", "entropy_exit", "threshold_units",
           "H_BITS"]


def threshold_units(threshold):
    """The threshold register for a float entropy threshold (nats): ``round(t * 2^LN_FRAC)``."""
    if not 0 <= threshold < 2 ** (H_BITS - LN_FRAC):
        raise ValueError(f"threshold must be in [0, {2 ** (H_BITS - LN_FRAC)}) nats, "
                         f"not {threshold!r}")
    return round(threshold * (1 << LN_FRAC))


def entropy_sums(x, frac_bits):
    """Pass 2: ``(S, T)`` per row from fixed-point logits ``x`` (max subtracted here)."""
    d = x - x.max(dim=-1, keepdim=True).values
    e = exp_neg(d, frac_bits)
    terms = ((-d) * e) >> ENT_TERM_SHIFT
    return e.sum(dim=-1), terms.sum(dim=-1)


def entropy_value(s, t, frac_bits):
    """``H = ln S + T / S`` with ``LN_FRAC`` fractional bits (see the module docstring)."""
    r1, k, norm = reciprocal(s)
    ln_s = (k - EXP_FRAC) * LN2 + ln_normalized(norm)
    shift = frac_bits - ENT_TERM_SHIFT + RECIP_FRAC + k - LN_FRAC
    return ln_s + ((t * r1) >> shift)


def entropy(logits, bias_in, fmt: AFFormat = DEFAULT_AF, fixed: FixedFormat = FixedFormat()):
    """Entropy (nats, ``LN_FRAC`` fractional bits, int64) of each row of logit codes."""
    if logits.shape[-1] < 1:
        raise ValueError("logits need at least one class")
    x = to_fixed(logits, bias_in, fixed, fmt)
    s, t = entropy_sums(x, fixed.frac_bits)
    return entropy_value(s, t, fixed.frac_bits)


def entropy_exit(h, threshold):
    """The exit flag: ``H < threshold`` (both in ``LN_FRAC`` fractional bits)."""
    return h < threshold

