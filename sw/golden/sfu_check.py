"""Accuracy figures of the special function units against float64 (used by tests and benches).

``ordinal_distance`` counts representable AdaptivFloat steps between two codes; "within one
unit in the last place" means a distance of at most 1.
"""

import torch

from hw.layouts import DEFAULT_AF, AFFormat

__all__ = ["ordinal_distance", "compare_codes"]


def _ordinal(codes, fmt):
    c = codes.to(torch.int64)
    mag = c & ((1 << (fmt.n_bits - 1)) - 1)
    return torch.where((c >> (fmt.n_bits - 1)) == 1, -mag, mag)


def ordinal_distance(a, b, fmt: AFFormat = DEFAULT_AF):
    """Number of representable steps between codes ``a`` and ``b`` (0 when equal)."""
    return (_ordinal(a, fmt) - _ordinal(b, fmt)).abs()


def compare_codes(got, ref, fmt: AFFormat = DEFAULT_AF):
    """``{"elements", "equal_rate", "max_ulp"}`` of ``got`` against the reference codes."""
    dist = ordinal_distance(got, ref, fmt)
    return {"elements": dist.numel(), "equal_rate": float((dist == 0).double().mean()),
            "max_ulp": int(dist.max())}


def attention_scores(rows, length, seed=0):
    """Float64 rows like BERT attention scores: Gaussian, row scale 0.5..4, 2 % outliers x4."""
    g = torch.Generator().manual_seed(seed)
    std = torch.empty(rows, 1, dtype=torch.float64).uniform_(0.5, 4.0, generator=g)
    s = torch.randn(rows, length, generator=g, dtype=torch.float64) * std
    outlier = torch.rand(rows, length, generator=g) < 0.02
    return torch.where(outlier, s * 4, s)


def hidden_activations(rows, length, seed=0):
    """Float64 rows like BERT residual-stream activations: per-row offset and scale, with a few
    large outlier channels (the same channels in every row, as in real BERT layers)."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(rows, 1, generator=g, dtype=torch.float64) * 0.3
    std = torch.empty(rows, 1, dtype=torch.float64).uniform_(0.3, 2.0, generator=g)
    x = mean + torch.randn(rows, length, generator=g, dtype=torch.float64) * std
    channels = torch.randperm(length, generator=g)[:max(1, length // 64)]
    x[:, channels] *= 6
    return x


def offramp_logits(rows, classes, seed=0):
    """Float64 off-ramp logits: a random margin between the top class and the others."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, classes, generator=g, dtype=torch.float64)
    margin = torch.empty(rows, dtype=torch.float64).uniform_(0.0, 8.0, generator=g)
    top = torch.randint(0, classes, (rows,), generator=g)
    x[torch.arange(rows), top] += margin
    return x


def softmax_reference(codes, bias_in, mask, renorm, bias_out, fmt: AFFormat = DEFAULT_AF):
    """Correctly rounded float64 span-masked softmax of the decoded scores."""
    from sw.adaptivfloat import decode, encode
    from sw.golden.softmax import MASK_ONE

    p = torch.softmax(decode(codes, bias_in, fmt, torch.float64), dim=-1)
    y = p * mask.to(torch.float64) / MASK_ONE
    if renorm:
        total = y.sum(dim=-1, keepdim=True)
        y = torch.where(total > 0, y / total.clamp(min=1e-300), 0.0)
    return encode(y, bias_out, fmt)


def measure_softmax(rows=10_000, length=64, renorm=False, seed=1, fmt: AFFormat = DEFAULT_AF):
    """Golden softmax against float64 on attention-like rows with random spans (ramp 16)."""
    from sw.adaptivfloat import encode, weight_bias
    from sw.golden.softmax import softmax, span_mask

    s = attention_scores(rows, length, seed)
    bias_in = weight_bias(s, fmt)
    codes = encode(s, bias_in, fmt)
    g = torch.Generator().manual_seed(seed + 1)
    spans = torch.empty(rows).uniform_(-20, length + 16, generator=g)
    mask = torch.stack([span_mask(float(z), 16, length) for z in spans])
    bias_out = 3  # probabilities: largest value 1.9375 for the default format
    got = softmax(codes, mask, bias_in, bias_out, renorm, fmt)
    ref = softmax_reference(codes, bias_in, mask, renorm, bias_out, fmt)
    return {"unit": "softmax", "rows": rows, "length": length, "renorm": renorm,
            **compare_codes(got, ref, fmt)}


def layernorm_reference(codes, bias_in, gamma, bias_gamma, beta, bias_beta, eps, bias_out,
                        fmt: AFFormat = DEFAULT_AF):
    """Correctly rounded float64 LayerNorm of the decoded inputs (the same epsilon register)."""
    from sw.adaptivfloat import decode, encode

    x = decode(codes, bias_in, fmt, torch.float64)
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    eps_f = eps * 2.0 ** (2 * fmt.scale_exponent(bias_in))
    y = (decode(gamma, bias_gamma, fmt, torch.float64) * (x - mean) / torch.sqrt(var + eps_f)
         + decode(beta, bias_beta, fmt, torch.float64))
    return encode(y, bias_out, fmt)


def layernorm_params(length, seed=0, fmt: AFFormat = DEFAULT_AF):
    """(gamma codes, bias, beta codes, bias) like trained LayerNorm parameters."""
    from sw.adaptivfloat import encode, weight_bias

    g = torch.Generator().manual_seed(seed)
    gamma = 1 + 0.2 * torch.randn(length, generator=g, dtype=torch.float64)
    beta = 0.1 * torch.randn(length, generator=g, dtype=torch.float64)
    bg, bb = weight_bias(gamma, fmt), weight_bias(beta, fmt)
    return encode(gamma, bg, fmt), bg, encode(beta, bb, fmt), bb


def measure_layernorm(rows=10_000, length=128, bias_out=6, eps=1e-3, seed=1,
                      fmt: AFFormat = DEFAULT_AF):
    """Golden LayerNorm against float64 on activation-like rows."""
    from sw.adaptivfloat import encode, weight_bias
    from sw.golden.layernorm import eps_units, layernorm

    x = hidden_activations(rows, length, seed)
    bias_in = weight_bias(x, fmt)
    codes = encode(x, bias_in, fmt)
    gamma, bg, beta, bb = layernorm_params(length, seed + 1, fmt)
    e = eps_units(eps, bias_in, fmt)
    got = layernorm(codes, gamma, beta, bias_in, bg, bb, bias_out, e, fmt)
    ref = layernorm_reference(codes, bias_in, gamma, bg, beta, bb, e, bias_out, fmt)
    return {"unit": "layernorm", "rows": rows, "length": length, "bias_out": bias_out,
            "eps_register": e, **compare_codes(got, ref, fmt)}


def float_entropy(codes, bias, fmt: AFFormat = DEFAULT_AF):
    """Float64 entropy (nats) of decoded logit rows."""
    from sw.adaptivfloat import decode

    x = decode(codes, bias, fmt, torch.float64)
    return -(torch.softmax(x, -1) * torch.log_softmax(x, -1)).sum(-1)


def measure_entropy(rows=10_000, classes=2, seed=None, fmt: AFFormat = DEFAULT_AF):
    """Golden entropy and exit flags against float64 on off-ramp-like logits.

    Exit decisions are compared at thresholds of 5, 20, 40 and 60 % of ln(classes) wherever the
    float entropy is more than 0.01 nats from the threshold.
    """
    import math

    from hw.sfu_tables import LN_FRAC
    from sw.adaptivfloat import encode, weight_bias
    from sw.golden.entropy import entropy, entropy_exit, threshold_units

    x = offramp_logits(rows, classes, classes if seed is None else seed)
    bias = weight_bias(x, fmt)
    codes = encode(x, bias, fmt)
    h = entropy(codes, bias, fmt)
    h_float = float_entropy(codes, bias, fmt)
    err = (h.double() / (1 << LN_FRAC) - h_float).abs()
    clear = mismatches = 0
    for t in (0.05, 0.2, 0.4, 0.6):
        thr = threshold_units(t * math.log(max(classes, 2)))
        far = (h_float - thr / (1 << LN_FRAC)).abs() > 0.01
        want = h_float < thr / (1 << LN_FRAC)
        clear += int(far.sum())
        mismatches += int((entropy_exit(h, thr) != want)[far].sum())
    return {"unit": "entropy", "rows": rows, "classes": classes,
            "max_abs_dH_nats": float(err.max()), "clear_decisions": clear,
            "decision_mismatches": mismatches}
