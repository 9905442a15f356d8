"""ReRAM fault model of the embedding store (sw/program/faults.py) and the wrapping reads."""

import re

import numpy as np
import pytest
import torch

from sw.golden.embedding import gather_rows
from sw.image import read_image
from sw.program.executor import GoldenExecutor
from sw.program.faults import PARTS, inject, part_ranges
from sw.program.layout import lay_out


@pytest.fixture(scope="module")
def lay():
    torch.set_num_threads(1)
    return lay_out(read_image("sw/assets/sst2_small.ebimg"))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rate_zero_leaves_the_image_unchanged(lay, k):
    faulty, rep = inject(lay, k, 0.0, seed=7)
    assert np.array_equal(faulty.images["reram"], lay.images["reram"])
    assert rep.bit_error_rate == 0 and sum(rep.faulty_cells.values()) == 0
    for m in lay.images:
        if m != "reram":
            assert faulty.images[m] is lay.images[m]


def test_faults_are_deterministic_per_seed(lay):
    a, ra = inject(lay, 2, 1e-3, seed=1)
    b, rb = inject(lay, 2, 1e-3, seed=1)
    c, _ = inject(lay, 2, 1e-3, seed=2)
    assert np.array_equal(a.images["reram"], b.images["reram"]) and ra == rb
    assert not np.array_equal(a.images["reram"], c.images["reram"])
    assert not np.array_equal(a.images["reram"], lay.images["reram"])
    # The original is untouched.
    assert np.array_equal(lay.images["reram"], lay_out(read_image(
        "sw/assets/sst2_small.ebimg")).images["reram"])


def test_one_part_faults_do_not_depend_on_the_others(lay):
    alone, _ = inject(lay, 3, 1e-3, seed=3, parts=("word.masks",))
    every, _ = inject(lay, 3, 1e-3, seed=3)
    a, b = part_ranges(lay)["word.masks"]
    assert np.array_equal(alone.images["reram"][a:b], every.images["reram"][a:b])
    outside = np.ones(lay.images["reram"].size, bool)
    outside[a:b] = False
    assert np.array_equal(alone.images["reram"][outside], lay.images["reram"][outside])


def test_gray_levels_flip_one_bit_per_fault(lay):
    _, rep = inject(lay, 2, 1e-3, seed=4, coding="gray")
    assert rep.flipped_bits == rep.faulty_cells
    assert rep.bit_error_rate == pytest.approx(1e-3, rel=0.05)
    _, rep = inject(lay, 2, 1e-3, seed=4)
    assert sum(rep.flipped_bits.values()) > sum(rep.faulty_cells.values())


def test_binary_faults_move_a_cell_to_an_adjacent_level(lay):
    faulty, _ = inject(lay, 2, 1e-2, seed=5, parts=("word.values",))
    a, b = part_ranges(lay)["word.values"]

    def cells(x):
        bits = np.unpackbits(x[a:b]).reshape(-1, 2)
        return bits[:, 0].astype(int) * 2 + bits[:, 1]

    d = cells(faulty.images["reram"]) - cells(lay.images["reram"])
    assert set(np.unique(d)) == {-1, 0, 1}


def test_slc_parts_stay_clean(lay):
    faulty, rep = inject(lay, 3, 1e-2, seed=6, slc=("word.masks",))
    a, b = part_ranges(lay)["word.masks"]
    assert np.array_equal(faulty.images["reram"][a:b], lay.images["reram"][a:b])
    assert rep.faulty_cells["word.masks"] == 0 and rep.faulty_cells["word.values"] > 0


@pytest.mark.parametrize("kw, msg", [
    ({"bits_per_cell": 4, "ber": 0.1}, "bits_per_cell must be 1, 2 or 3, not 4"),
    ({"bits_per_cell": 2, "ber": -1e-3}, "ber must be a number in [0, 1], not -0.001"),
    ({"bits_per_cell": 2, "ber": 0.1, "seed": -1},
     "seed must be a non-negative integer, not -1"),
    ({"bits_per_cell": 2, "ber": 0.1, "coding": "thermometer"},
     "coding must be one of ('binary', 'gray'), not 'thermometer'"),
    ({"bits_per_cell": 2, "ber": 0.1, "parts": ("word.bias",)},
     f"a stored part is one of {PARTS}, not 'word.bias'"),
])
def test_bad_arguments(lay, kw, msg):
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        inject(lay, **kw)


def test_faulty_row_pointer_wraps_around_the_store(lay):
    clean = GoldenExecutor(lay).embed_tables(lay.desc_index["embed"])[0]
    # Without faults the wrapping read equals the plain one.
    rr = lay.images["reram"]
    sym, wb = lay.symbols["reram"], lay.memmap.word_bytes("reram")
    v = lay.config["vocab_size"]
    rowptr = torch.from_numpy(np.frombuffer(rr[:4 * v].tobytes(), "<u4").astype(np.int64))
    masks = torch.from_numpy(np.frombuffer(
        rr[sym["word.masks"] * wb:sym["word.values"] * wb].tobytes(), "<u2")[:v * 8]
        .astype(np.int64))
    values = torch.from_numpy(rr[sym["word.values"] * wb:sym["pos"] * wb].copy())
    assert torch.equal(clean, gather_rows(rowptr, masks, values, lay.n))
    with pytest.raises(ValueError, match="run past the end"):
        gather_rows(rowptr[-1:] + 10 ** 6, masks[-8:], values, lay.n)
    # Row 5's pointer far past the table: the unit reads bytes (value base + i) mod 2 MB.
    images = dict(lay.images)
    images["reram"] = rr.copy()
    bad = 0xFFFFFF00
    images["reram"][20:24] = np.frombuffer(np.uint32(bad).tobytes(), np.uint8)
    from dataclasses import replace

    table = GoldenExecutor(replace(lay, images=images)).embed_tables(lay.desc_index["embed"])[0]
    store = np.zeros(lay.memmap.reram_bytes, np.uint8)
    store[:rr.size] = rr
    mask = masks.reshape(v, 8)[5]
    bits = ((mask[:, None] >> torch.arange(16)) & 1).reshape(-1).bool()
    addr = (sym["word.values"] * wb + bad + torch.arange(int(bits.sum()))) % store.size
    expect = torch.zeros(128, dtype=torch.uint8)
    expect[bits] = torch.from_numpy(store[addr.numpy()])
    assert torch.equal(table[5], expect)
    assert torch.equal(table[torch.arange(v) != 5], clean[torch.arange(v) != 5])
