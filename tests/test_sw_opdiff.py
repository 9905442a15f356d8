"""Golden executor vs the float student op by op (:mod:`sw.program.opdiff`) on the tiny image,
including mean pooling's softmax (its mask of ones, ``mask.mean``, names no head)."""

from hw.memmap import MemoryMap
from hw.top.top import _MEMMAP_KEYS, _TINY
from sw.program.layout import lay_out
from sw.program.opdiff import op_differences
from sw.tiny_image import TINY_SENTENCES, build_tiny_image

_MM = MemoryMap(**{k: _TINY[k] for k in _MEMMAP_KEYS})


def _diffs(pooling):
    img, _ = build_tiny_image(3, layers=2, pooling=pooling, ln_per_layer=True)
    return op_differences(img, lay_out(img, _MM), list(TINY_SENTENCES[:3]), early_exit=False)


def test_op_differences_with_mean_pooling():
    cls, mean = _diffs("cls"), _diffs("mean")
    # Mean pooling adds one softmax row per off-ramp and sentence (n codes per beat, at least
    # one beat), compared like the attention softmax.
    assert mean["SOFTMAX"]["codes"] > cls["SOFTMAX"]["codes"]
    assert mean["MATMUL_ACT"]["codes"] > cls["MATMUL_ACT"]["codes"]
    for r in (cls, mean):
        # Exact arithmetic on both sides: not one code may differ.
        for op in ("EMBED", "MATMUL", "MATMUL_ACT", "ADD"):
            assert r[op]["codes"] > 0 and r[op]["differ"] == 0, (op, r[op])
        assert r["ENTROPY (exit decision)"]["codes"] == 2 * 3
