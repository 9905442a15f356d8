"""Cycle model of the matrix engine ([P1]); equal, cycle for cycle, to its counters.

What the engine (:mod:`hw.matmul`) does per run, and so what this model counts:

* ``total`` (counter ``cyc_total``): every cycle the engine is busy, from the cycle after
  ``start`` to the cycle before ``done``:
  ``1`` (shape check) ``+ Σ_row tiles (2 + stream cycles) + n + 10`` (flush: five token
  stages S1, S1b, S2..S4, n drain rows, bias and ReLU, three requantizer pipeline stages, the
  code register, the Y write; ``hw.matmul.config.FLUSH_EXTRA`` = 10).
* stream cycles of a row tile: for every column block, every mask word (the n masks of
  ``k = j·n .. j·n+n-1``) takes ``max(1, number of non-zero masks in it)`` cycles: one per
  non-zero vector, or one idle scan for an all-zero word. The final cycle of a block (its
  *tile-closing* token) waits until n cycles have passed since the previous tile-closing
  token, because the previous tile's shadow accumulators take n cycles to drain.
* ``mac`` (``cyc_mac``): cycles that issued a non-zero weight vector (the n×n array busy).
* ``skipped`` (``vec_skipped``): all-zero vectors, never issued (counted once per row tile).
* ``stall`` (``cyc_stall``): cycles a tile-closing token waited for the drain.

The value stream never starves the scanner (the engine fetches one n-code word per cycle and
keeps up to 3n codes ahead, so at least n are always landed), and the Y writes never block, so
these formulas are exact, not bounds; the tests hold the RTL counters equal to them.
"""

from dataclasses import dataclass

import torch

from hw.matmul.config import CHECK_CYCLES, FLUSH_EXTRA, PRIME_CYCLES
from sw.sparse import PackedWeights

__all__ = ["MatmulCycles", "matmul_cycles", "dense_masks"]


@dataclass(frozen=True)
class MatmulCycles:
    """Predicted counter values of one run, plus the work it represents."""

    total: int
    mac: int
    skipped: int
    stall: int
    n: int
    macs: int  # multiply-accumulates of the dense product, rows·K·cols

    @property
    def utilization(self):
        """Dense-equivalent MACs per offered MAC slot: ``rows·K·cols / (n² · total)``."""
        return self.macs / (self.n * self.n * self.total)


def dense_masks(k, cols, n):
    """Masks of a dense K × cols weight matrix (every vector non-zero), shaped like
    :attr:`PackedWeights.masks`."""
    return torch.full((cols // n, k), (1 << n) - 1, dtype=torch.int64)


def matmul_cycles(weights, rows, n=None):
    """Counters of a run with ``rows`` rows of X and weights ``weights``.

    ``weights`` is :class:`~sw.sparse.PackedWeights` or its ``masks`` tensor (cols/n × K, then
    ``n`` is required). Shapes are those the engine accepts (multiples of n).
    """
    if isinstance(weights, PackedWeights):
        masks, n = weights.masks, weights.n
    else:
        masks = weights
        if n is None:
            raise ValueError("n is required when weights is a mask tensor")
    blocks, k = masks.shape
    if not isinstance(rows, int) or rows < 1 or rows % n or k % n:
        raise ValueError(f"rows and K must be positive multiples of n={n}, not {rows} and {k}")
    nonzero = (masks != 0).reshape(blocks, k // n, n).sum(dim=2)  # per mask word
    body = nonzero.clamp(min=1).sum(dim=1).tolist()  # cycles per tile
    t, stall = 0, 0
    prev_last = -n
    for _ in range(rows // n):
        t += PRIME_CYCLES
        for cycles in body:
            last = t + cycles - 1
            wait = max(0, prev_last + n - last)
            stall += wait
            prev_last = last + wait
            t = prev_last + 1
    tiles_rows = rows // n
    nz_vectors = int((masks != 0).sum())
    return MatmulCycles(
        total=CHECK_CYCLES + t + n + FLUSH_EXTRA,
        mac=tiles_rows * nz_vectors,
        skipped=tiles_rows * (blocks * k - nz_vectors),
        stall=stall,
        n=n,
        macs=rows * k * blocks * n,
    )
