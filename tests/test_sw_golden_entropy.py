import math

import pytest
import torch

from hw.layouts import AFFormat
from hw.sfu_tables import LN_FRAC
from sw.adaptivfloat import encode
from sw.golden.entropy import entropy, threshold_units
from sw.golden.sfu_check import float_entropy, measure_entropy

FMT = AFFormat()


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 3, 10, 64, 256])
def test_accuracy_and_exit_decisions(classes):
    fig = measure_entropy(rows=10_000, classes=classes)
    print(fig)
    assert fig["max_abs_dH_nats"] <= 0.01
    assert fig["clear_decisions"] > 10_000
    assert fig["decision_mismatches"] == 0


def test_edge_cases():
    # All equal: H = ln C; one dominant: H ~ 0; very negative logits: shift invariant.
    for classes in (2, 64, 4096):
        h = entropy(torch.full((1, classes), 0x35), 5, FMT)
        assert abs(float(h) / (1 << LN_FRAC) - math.log(classes)) <= 0.01
    dominant = torch.zeros(1, 10, dtype=torch.int64)
    dominant[0, 3] = 0x7F
    assert float(entropy(dominant, 7, FMT)) / (1 << LN_FRAC) <= 0.01
    codes = encode(torch.tensor([[0.0, -0.5, -1.5]], dtype=torch.float64) - 28, 7, FMT)
    assert abs(float(entropy(codes, 7, FMT)) / (1 << LN_FRAC)
               - float(float_entropy(codes, 7, FMT))) <= 0.01
    assert int(entropy(torch.tensor([[0x44]]), 3, FMT)) == 0  # one class: no uncertainty
    assert int(entropy(dominant, 7, FMT)) == 0  # the others' exponentials are below 2^-25


def test_threshold_units():
    assert threshold_units(0.5) == 1 << (LN_FRAC - 1)
    with pytest.raises(ValueError, match="threshold must be in"):
        threshold_units(-0.1)
