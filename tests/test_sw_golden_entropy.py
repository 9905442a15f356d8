import math

import pytest
import torch

from hw.layouts import AFFormat
from hw.sfu_math import LN_FRAC
from sw.adaptivfloat import decode, encode, weight_bias
from sw.golden.entropy import entropy, entropy_exit, threshold_units
from sw.golden.sfu_check import offramp_logits

FMT = AFFormat()


def float_entropy(codes, bias):
    x = decode(codes, bias, FMT, torch.float64)
    return -(torch.softmax(x, -1) * torch.log_softmax(x, -1)).sum(-1)


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 3, 10, 64, 256])
def test_accuracy_and_exit_decisions(classes):
    rows = 10_000
    x = offramp_logits(rows, classes, seed=classes)
    bias = weight_bias(x, FMT)
    codes = encode(x, bias, FMT)
    h = entropy(codes, bias, FMT)
    h_float = float_entropy(codes, bias)
    err = (h.double() / (1 << LN_FRAC) - h_float).abs()
    decided = 0
    for t in (0.05, 0.2, 0.4, 0.6):
        thr = threshold_units(t * math.log(classes))
        clear = (h_float - thr / (1 << LN_FRAC)).abs() > 0.01
        assert torch.equal(entropy_exit(h, thr)[clear], (h_float < thr / (1 << LN_FRAC))[clear])
        decided += int(clear.sum())
    print(f"entropy {classes} classes: max |dH| = {float(err.max()):.2e} nats over {rows} rows, "
          f"{decided} clear exit decisions all equal")
    assert float(err.max()) <= 0.01


def test_edge_cases():
    # All equal: H = ln C; one dominant: H ~ 0; very negative logits: shift invariant.
    for classes in (2, 64, 4096):
        h = entropy(torch.full((1, classes), 0x35), 5, FMT)
        assert abs(float(h) / (1 << LN_FRAC) - math.log(classes)) <= 0.01
    dominant = torch.zeros(1, 10, dtype=torch.int64)
    dominant[0, 3] = 0x7F
    assert float(entropy(dominant, 7, FMT)) / (1 << LN_FRAC) <= 0.01
    spread = torch.tensor([[0.0, -0.5, -1.5]], dtype=torch.float64)
    a = entropy(encode(spread - 28, 7, FMT), 7, FMT)
    b = float_entropy(encode(spread - 28, 7, FMT), 7)
    assert abs(float(a) / (1 << LN_FRAC) - float(b)) <= 0.01
    # One class: H = 0 up to the ln table's half step at s = 1 (ln(1 + 2^-11)).
    assert 0 <= int(entropy(torch.tensor([[0x44]]), 3, FMT)) <= (1 << LN_FRAC) >> 11


def test_threshold_units():
    assert threshold_units(0.5) == 1 << (LN_FRAC - 1)
    with pytest.raises(ValueError, match="threshold must be in"):
        threshold_units(-0.1)
