import pytest
import torch

from hw.layouts import AFFormat
from sw.adaptivfloat import decode, encode
from sw.golden.residual import residual_add


def test_every_pair_is_the_correctly_rounded_sum():
    fmt = AFFormat()
    codes = torch.arange(fmt.code_max + 1)
    a, b = codes.repeat_interleave(len(codes)), codes.repeat(len(codes))
    for bias_a, bias_b, bias_out in ((0, 0, 0), (3, 5, 4), (7, 0, 7)):
        exact = decode(a, bias_a, fmt, torch.float64) + decode(b, bias_b, fmt, torch.float64)
        got = residual_add(a, b, bias_a, bias_b, bias_out, fmt)
        assert torch.equal(got, encode(exact, bias_out, fmt))


def test_saturates_with_the_sign():
    fmt = AFFormat()
    top = torch.tensor([0x7F, 0xFF])
    assert residual_add(top, top, 7, 7, 0, fmt).tolist() == [0x7F, 0xFF]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="same shape"):
        residual_add(torch.zeros(3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64), 0, 0, 0)
