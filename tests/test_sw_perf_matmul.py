"""Cycle model of the matrix engine: closed forms for dense layers, skipping, drain stalls, and
the [H1]/[H2] targets at n = 16 (the RTL equality is in tests/test_hw_matmul.py and
tests/test_rtl_matmul.py)."""

import pytest
import torch

from sw.perf.matmul import dense_masks, matmul_cycles
from sw.sparse import pack_bitmask

# Flush after the last token: S1, S1b, S2..S4, n drain rows, bias and ReLU, three requantizer
# stages, the code register and the Y write: n + 10.
FLUSH = 10

SHAPES = [(32, 128, 128), (32, 128, 512), (32, 512, 128), (128, 768, 768)]


@pytest.mark.parametrize("rows,k,cols", SHAPES)
def test_dense_closed_form(rows, k, cols):
    n = 16
    c = matmul_cycles(dense_masks(k, cols, n), rows, n)
    # check + per row tile (prime 2 + one cycle per vector) + flush.
    assert c.total == 1 + (rows // n) * (2 + (cols // n) * k) + n + FLUSH
    assert c.mac == (rows // n) * (cols // n) * k
    assert c.skipped == 0 and c.stall == 0
    assert c.utilization >= 0.95


def block_sparse_masks(g, k, cols, n, keep):
    return torch.where(torch.rand(cols // n, k, generator=g) < keep, (1 << n) - 1, 0)


@pytest.mark.parametrize("rows,k,cols", SHAPES)
def test_half_block_sparsity_target(rows, k, cols):
    n = 16
    g = torch.Generator().manual_seed(1)
    masks = block_sparse_masks(g, k, cols, n, 0.5)
    dense = matmul_cycles(dense_masks(k, cols, n), rows, n)
    sparse = matmul_cycles(masks, rows, n)
    assert sparse.total <= 0.55 * dense.total
    assert sparse.skipped == (rows // n) * int((masks == 0).sum())


def test_all_zero_words_cost_one_cycle_each():
    n, k = 4, 16
    masks = torch.zeros(1, k, dtype=torch.int64)
    masks[0, 5] = 0b1010  # one vector in word 1; words 0, 2, 3 are all zero
    c = matmul_cycles(masks, 4, n)
    # Words: 1 + 1 + 1 + 1 (the last word closes the tile with a zero token).
    assert c.total == 1 + 2 + 4 + n + FLUSH
    assert (c.mac, c.skipped, c.stall) == (1, 15, 0)


def test_short_tiles_wait_for_the_drain():
    n, cols = 4, 12
    masks = torch.zeros(cols // n, n, dtype=torch.int64)
    masks[:, 0] = 1  # one vector per tile: each tile is one cycle, the drain needs n
    c = matmul_cycles(masks, 4, n)
    # Closing tokens at stream cycles 0, 4, 8 (after 2 prime cycles the first is free).
    assert c.stall == 2 * (n - 1)
    assert c.total == 1 + 2 + (1 + 2 * n) + n + FLUSH


def test_packed_weights_and_masks_agree():
    g = torch.Generator().manual_seed(2)
    w = torch.randint(1, 127, (32, 16), generator=g)
    w[torch.rand(w.shape, generator=g) < 0.7] = 0
    packed = pack_bitmask(w, 8)
    assert matmul_cycles(packed, 16) == matmul_cycles(packed.masks, 16, 8)


def test_bad_shapes():
    with pytest.raises(ValueError, match="multiples of n=4"):
        matmul_cycles(dense_masks(8, 8, 4), 6, 4)
    with pytest.raises(ValueError, match="n is required"):
        matmul_cycles(dense_masks(8, 8, 4), 8)
