import pytest
import torch

from hw.layouts import AFFormat
from sw.adaptivfloat import decode, encode, weight_bias
from sw.golden.layernorm import eps_units, layernorm
from sw.golden.sfu_check import compare_codes, hidden_activations

FMT = AFFormat()


def _params(length, seed):
    g = torch.Generator().manual_seed(seed)
    gamma = 1 + 0.2 * torch.randn(length, generator=g, dtype=torch.float64)
    beta = 0.1 * torch.randn(length, generator=g, dtype=torch.float64)
    bg, bb = weight_bias(gamma, FMT), weight_bias(beta, FMT)
    return encode(gamma, bg, FMT), bg, encode(beta, bb, FMT), bb


def reference(codes, bias_in, gamma, bg, beta, bb, eps, bias_out):
    """Correctly rounded float64 LayerNorm of the decoded inputs (the same epsilon register)."""
    x = decode(codes, bias_in, FMT, torch.float64)
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    eps_f = eps * 2.0 ** (2 * FMT.scale_exponent(bias_in))
    y = (decode(gamma, bg, FMT, torch.float64) * (x - mean) / torch.sqrt(var + eps_f)
         + decode(beta, bb, FMT, torch.float64))
    return encode(y, bias_out, FMT)


@pytest.mark.slow
@pytest.mark.parametrize("bias_out", [5, 6])
def test_accuracy_on_activation_like_rows(bias_out):
    rows, length = 10_000, 128
    x = hidden_activations(rows, length, seed=1)
    bias_in = weight_bias(x, FMT)
    codes = encode(x, bias_in, FMT)
    gamma, bg, beta, bb = _params(length, seed=2)
    eps = eps_units(1e-3, bias_in)
    got = layernorm(codes, gamma, beta, bias_in, bg, bb, bias_out, eps, FMT)
    fig = compare_codes(got, reference(codes, bias_in, gamma, bg, beta, bb, eps, bias_out), FMT)
    print(f"layernorm bias_out={bias_out} eps={eps}: {fig}")
    assert fig["elements"] == rows * length
    assert fig["max_ulp"] <= 1
    assert fig["equal_rate"] >= 0.99


def test_constant_row_gives_beta():
    gamma, bg, beta, bb = _params(128, seed=3)
    for eps in (0, 1):
        got = layernorm(torch.full((2, 128), 0x4A), gamma, beta, 4, bg, bb, bb, eps, FMT)
        assert torch.equal(got[0], beta.to(got.dtype))


def test_longest_row_and_small_rows():
    gamma, bg, beta, bb = _params(1024, seed=4)
    x = hidden_activations(8, 1024, seed=5)
    codes = encode(x, 7, FMT)
    got = layernorm(codes, gamma, beta, 7, bg, bb, 6, 0, FMT)
    ref = reference(codes, 7, gamma, bg, beta, bb, 0, 6)
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
