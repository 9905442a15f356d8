import pytest
import torch

from hw.layouts import AFFormat
from sw.adaptivfloat import encode
from sw.golden.sfu_check import attention_scores, measure_softmax, softmax_reference
from sw.golden.softmax import MASK_ONE, softmax, span_mask

FMT = AFFormat()
BIAS_OUT = 3  # probabilities: largest value 1.9375


@pytest.mark.slow
@pytest.mark.parametrize("renorm", [False, True])
def test_accuracy_on_attention_like_rows(renorm):
    fig = measure_softmax(rows=10_000, length=64, renorm=renorm)
    print(fig)
    assert fig["elements"] == 10_000 * 64
    assert fig["max_ulp"] <= 1
    assert fig["equal_rate"] >= 0.99


def _full(length):
    return torch.full((length,), MASK_ONE, dtype=torch.int64)


@pytest.mark.parametrize("length", [2, 64, 512])
def test_equal_scores_give_one_over_length(length):
    codes = torch.full((1, length), 0x35)
    got = softmax(codes, _full(length), 5, BIAS_OUT)
    assert torch.equal(got[0], encode(torch.full((length,), 1.0 / length), BIAS_OUT, FMT))


def test_one_dominant_score():
    codes = torch.zeros(1, 64, dtype=torch.int64)
    codes[0, 17] = 0x7F  # 31 at bias 7 against zeros
    got = softmax(codes, _full(64), 7, BIAS_OUT)
    assert got[0, 17] == encode(torch.tensor([1.0]), BIAS_OUT, FMT)[0]
    assert int(got.sum()) == int(got[0, 17])


def test_very_negative_scores():
    spread = torch.tensor([[0.0, -0.5, -1.0, -2.0]], dtype=torch.float64)
    codes = encode(spread - 28, 7, FMT)
    assert torch.equal(softmax(codes, _full(4), 7, BIAS_OUT),
                       softmax_reference(codes, 7, _full(4), False, BIAS_OUT, FMT))


def test_span_zero_and_full():
    codes = encode(attention_scores(4, 64, seed=5), 6, FMT)
    zero = span_mask(-16, 16, 64)
    assert int(zero.sum()) == 0
    assert int(softmax(codes, zero, 6, BIAS_OUT).to(torch.int64).sum()) == 0
    assert int(softmax(codes, zero, 6, BIAS_OUT, renorm=True).to(torch.int64).sum()) == 0
    full = span_mask(64, 16, 64)
    assert torch.equal(full, _full(64))
    assert torch.equal(softmax(codes, full, 6, BIAS_OUT, renorm=True),
                       softmax(codes, full, 6, BIAS_OUT))


def test_span_mask_values():
    m = span_mask(3.0, 4, 10)
    # (4 + 3 - x) / 4 clamped: 1 for x <= 3, then 0.75, 0.5, 0.25, 0.
    assert m.tolist() == [256, 256, 256, 256, 192, 128, 64, 0, 0, 0]
    with pytest.raises(ValueError, match="ramp must be positive"):
        span_mask(3.0, 0, 10)


def test_bad_mask_is_refused():
    with pytest.raises(ValueError, match="mask values must be in 0..256"):
        softmax(torch.zeros(1, 4, dtype=torch.int64), torch.full((4,), 257), 0, 3)
