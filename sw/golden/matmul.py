"""Golden matrix engine ([H1], [H2], [F4]): ``Y = act(X·W + bias)`` requantized, integer-exact.

One function per hardware step, each built on :mod:`sw.golden.af`:

* :func:`accumulate_matmul`: the exact sum of lane products over the inner dimension (the
  accumulator of every MAC after the last weight vector of a tile);
* :func:`align_bias`: the bias codes as integers in the accumulator's unit (exact, see below);
* :func:`matmul`: accumulator + aligned bias, optional ReLU, then :func:`sw.golden.af.requantize`
  (the one rounding rule) with the output bias.

Units: a lane product of codes with biases ``bias_x``, ``bias_w`` is an integer in units of
``2^(scale(bias_x) + scale(bias_w))`` with ``scale(b) = b + offset - M``. A bias code with bias
register ``bias_b`` is ``±sig · 2^(exp + scale(bias_b))``, i.e. ``±sig << (exp + bias_b - bias_x
- bias_w - offset + M)`` accumulator units. That shift is never negative when
``offset <= M - 2·bias_max`` (true for the default format: -10 <= 4 - 14); :func:`bias_shift_range`
checks it, so the bias is added exactly, never rounded.
"""

import torch

from hw.layouts import DEFAULT_AF, AFFormat
from hw.matmul.config import bias_shift_range
from sw.adaptivfloat import check_codes, decode_parts
from sw.golden.af import accumulate, lane_product, requantize
from sw.sparse import PackedWeights, unpack_bitmask

__all__ = ["bias_shift_range", "align_bias", "accumulate_matmul", "matmul"]

# Rows of X per chunk of the broadcast lane products, so memory stays bounded (about 4 M
# products per chunk) on large shapes.
_CHUNK_PRODUCTS = 1 << 22


def align_bias(bias, bias_x, bias_w, bias_b, fmt: AFFormat = DEFAULT_AF):
    """Bias codes (any shape) → signed int64 in accumulator units of ``bias_x``, ``bias_w``."""
    bias_shift_range(fmt)
    for name, b in (("bias_x", bias_x), ("bias_w", bias_w), ("bias_b", bias_b)):
        fmt.check_bias(b, name)
    _, exp, sig = decode_parts(check_codes(bias, fmt, "bias codes"), fmt)
    return sig << (exp + bias_b - bias_x - bias_w - fmt.offset + fmt.man_bits)


def _dense_weights(w, fmt):
    if isinstance(w, PackedWeights):
        return unpack_bitmask(w)
    check_codes(w, fmt, "weight codes")
    return w


def accumulate_matmul(x, w, fmt: AFFormat = DEFAULT_AF, acc_bits=None):
    """Exact ``Σ_k lane_product(x[r, k], w[k, c])`` as an int64 (rows × cols) tensor.

    ``w`` is a dense (K × cols) code tensor or :class:`~sw.sparse.PackedWeights`. With
    ``acc_bits`` every result is also checked to fit a signed accumulator of that width.
    """
    check_codes(x, fmt, "X codes")
    w = _dense_weights(w, fmt)
    if x.dim() != 2 or w.dim() != 2:
        raise ValueError(f"X and W must be 2-D, not {x.dim()}-D and {w.dim()}-D")
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"inner dimensions must agree: X is {tuple(x.shape)}, W is {tuple(w.shape)}")
    rows, k = x.shape
    cols = w.shape[1]
    step = max(1, _CHUNK_PRODUCTS // max(1, k * cols))
    parts = []
    for r0 in range(0, rows, step):
        prods = lane_product(x[r0:r0 + step, :, None], w[None, :, :], fmt)
        parts.append(accumulate(prods, dim=1, acc_bits=acc_bits))
    return torch.cat(parts) if parts else torch.zeros(0, cols, dtype=torch.int64)


def matmul(x, w, bias, *, bias_x, bias_w, bias_b, bias_out, relu=False,
           fmt: AFFormat = DEFAULT_AF):
    """Golden engine output codes ``requant(act(X·W + bias))`` (rows × cols, uint8 for N ≤ 8).

    Parameters
    ----------
    x : integer tensor (rows, K)
        X codes with bias register ``bias_x``.
    w : integer tensor (K, cols) or PackedWeights
        W codes with bias register ``bias_w`` (dense or in the bitmask format).
    bias : integer tensor (cols,)
        Bias codes with bias register ``bias_b``; added exactly (:func:`align_bias`).
    bias_out : int
        Bias register of the output.
    relu : bool
        Apply ReLU after the bias, before requantization (negative values become code 0).
    """
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    fmt.check_bias(bias_out, "bias_out")
    acc = accumulate_matmul(x, w, fmt)
    check_codes(bias, fmt, "bias codes")
    if bias.dim() != 1 or bias.shape[0] != acc.shape[1]:
        raise ValueError(
            f"bias must be a vector of {acc.shape[1]} codes (one per output column), not shape "
            f"{tuple(bias.shape)}")
    value = acc + align_bias(bias, bias_x, bias_w, bias_b, fmt)
    if relu:
        value = value.clamp(min=0)
    return requantize(value, bias_x, bias_w, bias_out, fmt)
