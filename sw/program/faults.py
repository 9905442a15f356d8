"""ReRAM multi-level-cell faults of the embedding store ([H8]), applied to the memory image.

The model follows NVMExplorer's injector (lpentecost/NVMExplorer ``nvmexplorer_src/nvmFI``):
each stored part of the ReRAM image (row pointers, masks, values, position and segment tables)
is a byte stream cut into cells of ``bits_per_cell`` bits (most significant bit first; the last
cell of a part is padded with zero bits that are not stored). A cell holds one of ``2^k``
levels: the plain binary value of its bits (NVMExplorer's ``convert_mlc_mat``) or, with
``coding="gray"``, the level whose Gray code its bits are. A fault moves a cell to an
adjacent level: up or down with equal probability, the lowest level only up and the highest
only down.

Rate: ``ber`` is a bit-error rate. A cell is faulty with probability ``min(1, k * ber)``, so
that with Gray coding (one bit changes per adjacent-level move) the stored bits flip at exactly
``ber``; with binary coding a move can change several bits (level 1 -> 2 of a 2-bit cell flips
both), so the flipped-bit rate is higher: :class:`FaultReport` counts it.

Parts listed in ``slc`` are kept in single-level cells (NVMExplorer's bitmask option stores the
mask in SLCs); they fault at ``slc_ber`` (default 0: NVMExplorer's 1-bit-per-cell level
distributions put the SLC error rate near zero).

Determinism: part ``i`` draws from ``numpy.random.default_rng([seed, i, k])``, so the faults
of one part do not depend on which other parts are injected. The result is a new
:class:`~sw.program.layout.MemoryLayout` whose ``images["reram"]`` is the faulty copy: the golden
executor and the RTL load the same bytes.
"""

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["PARTS", "FaultReport", "part_ranges", "inject", "CODINGS"]

# Stored parts of the ReRAM image (symbols of the layout), in address order.
PARTS = ("word.rowptr", "word.masks", "word.values", "pos", "seg")
CODINGS = ("binary", "gray")


@dataclass(frozen=True)
class FaultReport:
    """What an injection did: cells faulty and bits flipped per part, bits stored."""

    cells: dict
    faulty_cells: dict
    flipped_bits: dict
    stored_bits: dict

    @property
    def bit_error_rate(self):
        """Flipped bits per stored bit over the injected parts."""
        bits = sum(self.stored_bits.values())
        return sum(self.flipped_bits.values()) / bits if bits else 0.0


def part_ranges(layout):
    """``{part: (first byte, end byte)}`` of every stored part of the ReRAM image (a part ends
    where the next begins; the last at the end of the image)."""
    sym = layout.symbols["reram"]
    wb = layout.memmap.word_bytes("reram")
    starts = sorted((sym[p] * wb, p) for p in PARTS)
    size = layout.images["reram"].size
    out = {}
    for (a, p), nxt in zip(starts, [*(s for s, _ in starts[1:]), size], strict=True):
        out[p] = (a, nxt)
    return out


def _gray(x):
    return x ^ (x >> 1)


def _ungray(g, k):
    x = g.copy()
    for s in range(1, k):
        x ^= g >> s
    return x


def _check(bits_per_cell, ber, seed, coding, name="ber"):
    if bits_per_cell not in (1, 2, 3):
        raise ValueError(f"bits_per_cell must be 1, 2 or 3, not {bits_per_cell!r}")
    if isinstance(ber, bool) or not isinstance(ber, int | float) or not 0 <= ber <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], not {ber!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {CODINGS}, not {coding!r}")


def _inject_part(data, k, ber, rng, coding):
    """Faulty copy of ``data`` (uint8) and (cells, faulty cells, flipped bits)."""
    bits = np.unpackbits(data)
    nbits = bits.size
    pad = -nbits % k
    cells_bits = np.concatenate([bits, np.zeros(pad, dtype=np.uint8)]).reshape(-1, k)
    weights = (1 << np.arange(k - 1, -1, -1)).astype(np.int64)
    value = cells_bits.astype(np.int64) @ weights
    level = _ungray(value, k) if coding == "gray" else value
    p = min(1.0, k * ber)
    faulty = rng.random(level.size) < p
    up = rng.random(level.size) < 0.5
    top = (1 << k) - 1
    step = np.where(level == 0, 1, np.where(level == top, -1, np.where(up, 1, -1)))
    new_level = np.where(faulty, level + step, level)
    new_value = _gray(new_level) if coding == "gray" else new_level
    new_bits = ((new_value[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8)
    new_bits = new_bits.reshape(-1)[:nbits]
    flipped = int((new_bits != bits).sum())
    return np.packbits(new_bits), level.size, int(faulty.sum()), flipped


def inject(layout, bits_per_cell, ber, seed=0, *, parts=PARTS, slc=(), slc_ber=0.0,
           coding="binary"):
    """A copy of ``layout`` with faults in its ReRAM image, and a :class:`FaultReport`.

    ``parts`` are the stored parts that fault (default all); those also in ``slc`` are kept in
    single-level cells and fault at ``slc_ber``. At ``ber = 0`` (and ``slc_ber = 0``) the image
    is unchanged.
    """
    _check(bits_per_cell, ber, seed, coding)
    _check(1, slc_ber, seed, coding, name="slc_ber")
    for p in (*parts, *slc):
        if p not in PARTS:
            raise ValueError(f"a stored part is one of {PARTS}, not {p!r}")
    img = layout.images["reram"].copy()
    ranges = part_ranges(layout)
    rep = {k: {} for k in ("cells", "faulty_cells", "flipped_bits", "stored_bits")}
    for i, p in enumerate(PARTS):
        if p not in parts:
            continue
        a, b = ranges[p]
        k, rate = (1, slc_ber) if p in slc else (bits_per_cell, ber)
        rng = np.random.default_rng([seed, i, k])
        new, cells, faulty, flipped = _inject_part(img[a:b], k, rate, rng, coding)
        img[a:b] = new
        rep["cells"][p], rep["faulty_cells"][p] = cells, faulty
        rep["flipped_bits"][p], rep["stored_bits"][p] = flipped, (b - a) * 8
    images = dict(layout.images)
    images["reram"] = img
    return replace(layout, images=images), FaultReport(**rep)
