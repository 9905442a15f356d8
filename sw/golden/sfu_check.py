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
