"""Independent references and stimulus for the AdaptivFloat tests.

The reference here shares no code with :mod:`sw.adaptivfloat`: it lists every code's exact
value as a :class:`fractions.Fraction` straight from the definition in DESIGN.md [F1] and
picks the nearest one by comparison ([F2]: nearest, ties to the even mantissa, zero counts as
even; saturation needs no special case because nothing lies beyond ±max).
"""

import bisect
import functools
from fractions import Fraction

import torch

from hw.layouts import AFFormat


def code_value(code, bias, fmt: AFFormat):
    """Exact value of one code, from the [F1] definition."""
    m = fmt.man_bits
    sign = code >> (fmt.n_bits - 1)
    exp = (code >> m) & ((1 << fmt.exp_bits) - 1)
    man = code & ((1 << m) - 1)
    if exp == 0 and man == 0:
        return Fraction(0)
    v = Fraction(2) ** (exp + bias + fmt.offset) * (1 + Fraction(man, 1 << m))
    return -v if sign else v


@functools.cache
def positive_grid(bias, fmt: AFFormat):
    """Sorted (value, code) of zero and every positive non-zero code."""
    half = 1 << (fmt.n_bits - 1)
    return sorted((code_value(c, bias, fmt), c) for c in range(half)
                  if c == 0 or code_value(c, bias, fmt) != 0)


def nearest_code(x, bias, fmt: AFFormat):
    """The code [F2] gives the exact rational ``x``: nearest value, ties to even mantissa."""
    x = Fraction(x)
    grid = positive_grid(bias, fmt)
    values = [v for v, _ in grid]
    mag = abs(x)
    i = bisect.bisect_left(values, mag)
    if i == len(values):
        code = grid[-1][1]
    elif values[i] == mag or i == 0:
        code = grid[i][1]
    else:
        (lo, c_lo), (hi, c_hi) = grid[i - 1], grid[i]
        if mag - lo < hi - mag:
            code = c_lo
        elif hi - mag < mag - lo:
            code = c_hi
        else:
            code = c_lo if (c_lo & ((1 << fmt.man_bits) - 1)) % 2 == 0 else c_hi
    if code == 0 or x > 0:
        return code
    return code | (1 << (fmt.n_bits - 1))


def matmul_shift(fmt, bias_a, bias_b, bias_out):
    """Shift of the requantizer core for an accumulator of products (see hw/af_requant.py)."""
    return bias_a + bias_b - bias_out + fmt.offset - fmt.man_bits


def requant_cases(fmt: AFFormat, in_width, n_random, seed=0):
    """Accumulator stimulus ``(acc, bias_a, bias_b, bias_out)`` as int64 tensors.

    Edge cases for every output bias and every ``bias_a + bias_b``: every representable
    magnitude, every midpoint between neighbours (exact ties, including the mantissa carry into
    the next binade and the tie between zero and the smallest value) and one unit either side,
    magnitudes just above ±max (saturation), 0, ±1 and the extremes of the input width; both
    signs. Then ``n_random`` random accumulators spread over every binade of the input.
    """
    lo_in, hi_in = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    half = 1 << (fmt.n_bits - 1)
    # Representable magnitudes in output units 2^scale(bias_out): integers.
    mags = sorted({code_value(c, 0, fmt) * 2 ** (fmt.man_bits - fmt.offset) for c in range(half)})
    rows = []
    for bias_out in range(fmt.bias_max + 1):
        for ab in range(2 * fmt.bias_max + 1):
            bias_a = min(ab, fmt.bias_max)
            bias_b = ab - bias_a
            # One output unit 2^scale(bias_out) is 2^-shift accumulator units.
            shift = matmul_shift(fmt, bias_a, bias_b, bias_out)
            unit = Fraction(2) ** -shift
            points = set()
            for k, v in enumerate(mags):
                points.add(v * unit)
                if k + 1 < len(mags):
                    mid = (v + mags[k + 1]) / 2 * unit
                    points.update((mid, mid - 1, mid + 1))
            top = mags[-1] * unit
            points.update((top + 1, top + unit / 2, top + unit, 2 * top, Fraction(1),
                           Fraction(hi_in)))
            for p in points:
                if p.denominator == 1 and 0 <= p <= hi_in:
                    rows.extend([(int(p), bias_a, bias_b, bias_out),
                                 (-int(p), bias_a, bias_b, bias_out)])
            rows.append((lo_in, bias_a, bias_b, bias_out))
    edge = torch.tensor(sorted(set(rows)), dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    acc = torch.randint(lo_in, hi_in + 1, (n_random,), generator=g)
    acc = acc >> torch.randint(0, in_width, (n_random,), generator=g)
    biases = torch.randint(0, fmt.bias_max + 1, (n_random, 3), generator=g)
    rand = torch.cat([acc.unsqueeze(1), biases], dim=1)
    return torch.cat([edge, rand]).unbind(1)


def requantize_each(acc, bias_a, bias_b, bias_out, fmt: AFFormat):
    """The golden :func:`sw.golden.af.requantize` with per-element biases (int64 codes)."""
    from sw.golden.af import requantize

    out = torch.empty_like(acc)
    triples = torch.stack([bias_a, bias_b, bias_out], dim=1)
    for t in torch.unique(triples, dim=0).tolist():
        sel = (triples == torch.tensor(t)).all(dim=1)
        out[sel] = requantize(acc[sel], *t, fmt).to(torch.int64)
    return out
