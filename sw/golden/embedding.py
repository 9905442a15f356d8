"""Golden embedding unit ([H8]): gather token rows from the bitmask-packed ReRAM table, add the
position and segment rows, requantize.

The token table is a ``(V * E / n) x n`` matrix in the bitmask format of :mod:`sw.sparse`
(one n-bit mask per n embedding values of a row, rows in order) plus ``rowptr``: the index of
each row's first packed value. The unit reads row ``v``'s ``E / n`` masks and, from
``rowptr[v]`` on, its non-zero codes; the three codes of each element are converted exactly to
fixed point ([F5]), added exactly, and the sum is requantized once with the one rounding rule.
"""

import torch

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat
from sw.golden.af import requantize_scaled, to_fixed

__all__ = ["gather_rows", "embedding_sum"]


def gather_rows(rowptr, masks, values, n, *, wrap=False):
    """Dense ``(V, E)`` codes of every row of a bitmask-packed table, each row read from its own
    ``rowptr`` entry (as the embedding unit gathers it).

    ``rowptr`` (V,), ``masks`` (V * E / n,) and ``values`` (nnz,) are integer tensors. A value
    index past the end of ``values`` is an error, unless ``wrap``: then ``values`` is the whole
    memory seen from the table's value base and the index wraps around it, as the ReRAM address
    counter of the embedding unit does (a faulty row pointer or mask reads other bytes of the
    store, never out of it).
    """
    rowptr = rowptr.to(torch.int64)
    masks = masks.to(torch.int64)
    v = rowptr.numel()
    if masks.numel() % max(v, 1):
        raise ValueError(f"{masks.numel()} masks do not split into {v} rows")
    per_row = masks.numel() // v
    masks = masks.reshape(v, per_row)
    bits = (masks.unsqueeze(-1) >> torch.arange(n)) & 1           # (V, E/n, n)
    counts = bits.sum(-1)
    starts = rowptr[:, None] + counts.cumsum(1) - counts          # first value of each vector
    idx = starts.unsqueeze(-1) + bits.cumsum(-1) - bits           # rank of each set bit
    if wrap:
        idx = idx % values.numel()
    elif bits.any() and int(idx[bits.bool()].max()) >= values.numel():
        raise ValueError("a row's packed values run past the end of the value array")
    codes = torch.where(bits.bool(), values.to(torch.int64)[idx.clamp(max=values.numel() - 1)],
                        torch.zeros((), dtype=torch.int64))
    return codes.reshape(v, per_row * n).to(values.dtype)


def embedding_sum(word, pos, seg, bias_word, bias_pos, bias_seg, bias_out,
                  fmt: AFFormat = DEFAULT_AF, fixed: FixedFormat = FixedFormat()):
    """``requantize(word + pos + seg)`` of three code tensors of one shape, each with its bias:
    the correctly rounded sum (exact in ``fixed``, which must hold every value of ``fmt`` with
    two integer bits to spare)."""
    if not word.shape == pos.shape == seg.shape:
        raise ValueError(f"word, pos and seg must have one shape, not {tuple(word.shape)}, "
                         f"{tuple(pos.shape)} and {tuple(seg.shape)}")
    total = (to_fixed(word, bias_word, fixed, fmt) + to_fixed(pos, bias_pos, fixed, fmt)
             + to_fixed(seg, bias_seg, fixed, fmt))
    return requantize_scaled(total, -fixed.frac_bits, bias_out, fmt)
