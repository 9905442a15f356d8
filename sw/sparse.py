"""The bitmask sparse-weight format of the matrix engine ([H2]) — its one packer and unpacker.

The engine is output-stationary and consumes one weight *vector* per cycle: ``W[k, c0:c0+n]``,
row ``k`` of the ``K × cols`` weight matrix across ``n`` consecutive output columns. A vector
is stored as an ``n``-bit mask (bit ``j`` set when ``W[k, c0 + j]`` is non-zero) plus its
non-zero codes packed in increasing ``j``. Vectors are ordered column block by column block,
``k`` ascending within a block; ``offsets[cb]`` is where block ``cb``'s codes start. An all-zero
vector has mask 0 and no codes, and the engine skips it: no MAC cycle.

In ``nn.Linear`` terms (weight ``out × in``) a vector is ``weight[c0:c0+n, k]``: 1×n block
pruning must zero n consecutive output features of one input feature.
"""

from dataclasses import dataclass

import torch

from hw.checks import check_count
from hw.layouts import DEFAULT_AF, AFFormat
from sw.adaptivfloat import check_codes

__all__ = ["PackedWeights", "pack_bitmask", "unpack_bitmask"]


def _popcount(x):
    count = torch.zeros_like(x)
    while bool((x != 0).any()):
        count += x & 1
        x = x >> 1
    return count


@dataclass(frozen=True, eq=False)
class PackedWeights:
    """A ``rows × cols`` code matrix in bitmask format (see the module docstring).

    Attributes
    ----------
    n : int
        Vector width (the engine's lane count).
    rows, cols : int
        Shape of the dense matrix (K × output columns); ``cols`` is a multiple of ``n``.
    masks : int64 tensor (cols // n, rows)
        One ``n``-bit mask per vector.
    values : uint8 tensor (nnz,)
        The non-zero codes, in vector order.
    offsets : int64 tensor (cols // n + 1,)
        Start of each column block in ``values``; the last entry is ``nnz``.
    """

    n: int
    rows: int
    cols: int
    masks: torch.Tensor
    values: torch.Tensor
    offsets: torch.Tensor

    def __post_init__(self):
        n = self.n
        check_count("vector width n", n)
        blocks = self.cols // n
        if self.rows < 1 or self.cols < 1 or self.cols % n:
            raise ValueError(
                f"shape must be positive with cols a multiple of n={n}, not "
                f"{self.rows}×{self.cols}")
        if tuple(self.masks.shape) != (blocks, self.rows):
            raise ValueError(
                f"masks must have shape ({blocks}, {self.rows}), not {tuple(self.masks.shape)}")
        if bool(((self.masks < 0) | (self.masks >= (1 << n))).any()):
            raise ValueError(f"masks must be {n}-bit values")
        counts = _popcount(self.masks.to(torch.int64)).sum(dim=1)
        expect = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        if self.values.dim() != 1 or self.values.numel() != int(expect[-1]):
            raise ValueError(
                f"masks mark {int(expect[-1])} non-zero codes but {self.values.numel()} are "
                f"packed: mask and packed data disagree")
        if not torch.equal(self.offsets.to(torch.int64), expect):
            raise ValueError("column-block offsets disagree with the masks")
        if bool((self.values == 0).any()):
            raise ValueError("packed data holds a zero code where its mask says non-zero")

    @property
    def nnz(self):
        return self.values.numel()

    @property
    def density(self):
        return self.nnz / (self.rows * self.cols)

    @property
    def zero_vectors(self):
        """Number of all-zero vectors (the engine skips each one)."""
        return int((self.masks == 0).sum())


def pack_bitmask(codes, n, fmt: AFFormat = DEFAULT_AF):
    """Pack a ``K × cols`` AdaptivFloat code matrix into the bitmask format with width ``n``.

    Zero is code 0; the non-canonical negative zero (sign bit alone) is refused rather than
    silently rewritten.
    """
    check_codes(codes, fmt, "weight codes")
    if codes.dim() != 2:
        raise ValueError(f"weight codes must be a 2-D (K × cols) tensor, not {codes.dim()}-D")
    rows, cols = codes.shape
    check_count("vector width n", n)
    if rows < 1 or cols < 1 or cols % n:
        raise ValueError(f"cols must be a positive multiple of n={n}, not {cols} (K={rows})")
    c = codes.to(torch.int64)
    if bool((c == 1 << (fmt.n_bits - 1)).any()):
        raise ValueError("weight codes contain negative zero; encode zero as code 0")
    blocks = c.reshape(rows, cols // n, n).permute(1, 0, 2)  # (block, k, j)
    nonzero = blocks != 0
    masks = (nonzero.to(torch.int64) << torch.arange(n)).sum(dim=2)
    values = blocks[nonzero].to(torch.uint8 if fmt.n_bits <= 8 else torch.int32)
    counts = nonzero.sum(dim=(1, 2))
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    return PackedWeights(n=n, rows=rows, cols=cols, masks=masks, values=values, offsets=offsets)


def unpack_bitmask(packed: PackedWeights):
    """The dense ``K × cols`` code matrix of ``packed``."""
    n, rows, cols = packed.n, packed.rows, packed.cols
    bits = ((packed.masks.unsqueeze(-1) >> torch.arange(n)) & 1).bool()  # (block, k, j)
    dense = torch.zeros(bits.shape, dtype=packed.values.dtype)
    dense[bits] = packed.values
    return dense.permute(1, 0, 2).reshape(rows, cols)
