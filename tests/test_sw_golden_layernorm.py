import pytest
import torch

from hw.layouts import AFFormat
from sw.adaptivfloat import encode
from sw.golden.layernorm import eps_units, layernorm
from sw.golden.sfu_check import (
    compare_codes,
    hidden_activations,
    layernorm_params,
    layernorm_reference,
    measure_layernorm,
)

FMT = AFFormat()


@pytest.mark.slow
@pytest.mark.parametrize("bias_out", [5, 6])
def test_accuracy_on_activation_like_rows(bias_out):
    fig = measure_layernorm(rows=10_000, length=128, bias_out=bias_out)
    print(fig)
    assert fig["elements"] == 10_000 * 128
    assert fig["max_ulp"] <= 1
    assert fig["equal_rate"] >= 0.99


def test_constant_row_gives_beta():
    gamma, bg, beta, bb = layernorm_params(128, seed=3)
    for eps in (0, 1):
        got = layernorm(torch.full((2, 128), 0x4A), gamma, beta, 4, bg, bb, bb, eps, FMT)
        assert torch.equal(got[0], beta.to(got.dtype))


def test_longest_row_and_two_elements():
    gamma, bg, beta, bb = layernorm_params(1024, seed=4)
    codes = encode(hidden_activations(8, 1024, seed=5), 7, FMT)
    got = layernorm(codes, gamma, beta, 7, bg, bb, 6, 0, FMT)
    ref = layernorm_reference(codes, 7, gamma, bg, beta, bb, 0, 6, FMT)
    assert compare_codes(got, ref, FMT)["max_ulp"] <= 1
    two = encode(torch.tensor([[1.0, -1.0]]), 5, FMT)
    one = encode(torch.ones(2), 4, FMT)
    zero = torch.zeros(2, dtype=torch.int64)
    # (x - mean) / std of [1, -1] is exactly [1, -1].
    want = encode(torch.tensor([[1.0, -1.0]]), 4, FMT)
    assert torch.equal(layernorm(two, one, zero, 5, 4, 0, 4, 0, FMT), want)


def test_eps_units_and_errors():
    assert eps_units(2.0 ** -20, 0, FMT) == 2 ** 8  # scale 2^-14 at bias 0: units of 2^-28
    with pytest.raises(ValueError, match="eps must be non-negative"):
        eps_units(-1.0, 0, FMT)
    with pytest.raises(ValueError, match="eps must be in 0..16777215"):
        layernorm(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64),
                  torch.zeros(4, dtype=torch.int64), 0, 0, 0, 0, eps=1 << 24)
