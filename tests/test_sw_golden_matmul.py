"""Golden matrix engine: exactness against an independent float64 reference, ReLU, bias, errors,
and the bounded error against a float32 matmul ([V] golden vs float)."""

import pytest
import torch

from hw.layouts import DEFAULT_AF, AFFormat
from sw.adaptivfloat import decode, encode, quantize, ulp, weight_bias
from sw.golden.matmul import accumulate_matmul, align_bias, bias_shift_range, matmul
from sw.sparse import pack_bitmask

FMT = DEFAULT_AF


def random_codes(g, *shape, fmt=FMT):
    c = torch.randint(0, fmt.code_max + 1, shape, generator=g)
    return torch.where(c == 1 << (fmt.n_bits - 1), 0, c)


def exact_reference(x, w, bias, bx, bw, bb, bo, relu, fmt=FMT):
    """Sum in float64, exact for these sizes (products need ≤ 10 significant bits and the
    exponents span < 40 bits), then THE rounding rule through the float encoder."""
    xf, wf = decode(x, bx, fmt, torch.float64), decode(w, bw, fmt, torch.float64)
    y = xf @ wf + decode(bias, bb, fmt, torch.float64)
    if relu:
        y = y.clamp(min=0)
    return encode(y, bo, fmt).to(torch.int64)


def test_hand_example():
    # 1·1 + 2·0.5 + bias 0.25 = 2.25, exactly representable with bias_out 6 (binade of 2).
    b = 6
    x = encode(torch.tensor([[1.0, 2.0]]), b)
    w = encode(torch.tensor([[1.0], [0.5]]), b)
    bias = encode(torch.tensor([0.25]), b)
    y = matmul(x, w, bias, bias_x=b, bias_w=b, bias_b=b, bias_out=b)
    assert float(decode(y, b)[0, 0]) == 2.25


@pytest.mark.parametrize("seed", range(6))
def test_equals_exact_float64_reference(seed):
    g = torch.Generator().manual_seed(seed)
    rows, k, cols = (int(v) for v in torch.randint(1, 40, (3,), generator=g))
    x, w, bias = random_codes(g, rows, k), random_codes(g, k, cols), random_codes(g, cols)
    bx, bw, bb, bo = (int(v) for v in torch.randint(0, 8, (4,), generator=g))
    relu = bool(seed % 2)
    got = matmul(x, w, bias, bias_x=bx, bias_w=bw, bias_b=bb, bias_out=bo, relu=relu)
    want = exact_reference(x, w, bias, bx, bw, bb, bo, relu)
    assert torch.equal(got.to(torch.int64), want)


def test_packed_and_dense_weights_agree():
    g = torch.Generator().manual_seed(7)
    x, w, bias = random_codes(g, 8, 16), random_codes(g, 16, 8), random_codes(g, 8)
    w[torch.rand(w.shape, generator=g) < 0.6] = 0
    regs = dict(bias_x=2, bias_w=5, bias_b=1, bias_out=4, relu=True)
    assert torch.equal(matmul(x, w, bias, **regs), matmul(x, pack_bitmask(w, 4), bias, **regs))


def test_relu_makes_negative_outputs_zero_and_keeps_positive():
    b = 6
    x = encode(torch.tensor([[1.0, 1.0]]), b)
    w = encode(torch.tensor([[-3.0, 2.0], [1.0, 1.0]]), b)
    zero = torch.zeros(2, dtype=torch.int64)
    y = matmul(x, w, zero, bias_x=b, bias_w=b, bias_b=b, bias_out=b, relu=True)
    assert y.tolist() == [[0, int(encode(torch.tensor(3.0), b))]]
    y = matmul(x, w, zero, bias_x=b, bias_w=b, bias_b=b, bias_out=b, relu=False)
    assert decode(y, b).tolist() == [[-2.0, 3.0]]


def test_bias_alignment_is_exact_at_the_extremes():
    lo, hi = bias_shift_range(FMT)
    assert (lo, hi) == (0, 28)  # default format: -2·7 + 10 + 4 and 7 + 7 + 10 + 4
    # The largest bias with the largest bias register against the smallest product unit.
    biggest = torch.tensor([FMT.code_max >> 1])
    aligned = align_bias(biggest, 0, 0, FMT.bias_max)
    unit = 2.0 ** (2 * FMT.scale_exponent(0))
    assert float(aligned[0]) * unit == float(decode(biggest, FMT.bias_max)[0])


def test_accumulator_width_guard():
    x = torch.full((1, 64), 0x7F)
    w = torch.full((64, 1), 0x7F)
    acc = accumulate_matmul(x, w)
    assert int(acc[0, 0]) == 64 * (31 * 31 << 14)
    with pytest.raises(OverflowError, match="accumulator"):
        accumulate_matmul(x, w, acc_bits=30)


def test_bad_input_errors():
    g = torch.Generator().manual_seed(0)
    x, w, bias = random_codes(g, 4, 8), random_codes(g, 8, 4), random_codes(g, 4)
    regs = dict(bias_x=1, bias_w=1, bias_b=1, bias_out=1)
    with pytest.raises(ValueError, match="inner dimensions must agree"):
        matmul(x, w[:4], bias, **regs)
    with pytest.raises(ValueError, match="bias must be a vector of 4 codes"):
        matmul(x, w, bias[:3], **regs)
    with pytest.raises(ValueError, match="bias_b must be in the bias register range 0..7"):
        matmul(x, w, bias, **{**regs, "bias_b": 8})
    with pytest.raises(ValueError, match=r"bias codes must be in 0..255"):
        matmul(x, w, bias + 300, **regs)
    with pytest.raises(TypeError, match="relu must be a bool"):
        matmul(x, w, bias, **regs, relu=1)
    with pytest.raises(ValueError, match="offset must be at most M - 2·bias_max = -10"):
        bias_shift_range(AFFormat(offset=-9))


def test_golden_within_one_ulp_of_float32():
    """Every golden output is within one AdaptivFloat ulp of the correctly rounded float32
    result of the same dequantized operands (measured worst case printed with -s)."""
    worst = 0.0
    count = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(100 + seed)
        rows, k, cols = 16, 128 * (1 + seed % 3), 32
        # Realistic operands: normal data quantized with the weight bias rule ([F3]).
        xf = torch.randn(rows, k, generator=g)
        wf = torch.randn(k, cols, generator=g) * 0.05
        bf = torch.randn(cols, generator=g) * 0.1
        bx, bw, bb = weight_bias(xf), weight_bias(wf), weight_bias(bf)
        x, w, bias = encode(xf, bx), encode(wf, bw), encode(bf, bb)
        relu = bool(seed % 2)
        exact = decode(x, bx, dtype=torch.float64) @ decode(w, bw, dtype=torch.float64)
        bo = weight_bias(exact)
        y = matmul(x, w, bias, bias_x=bx, bias_w=bw, bias_b=bb, bias_out=bo, relu=relu)
        yf = decode(x, bx) @ decode(w, bw) + decode(bias, bb)
        if relu:
            yf = yf.clamp(min=0)
        rounded = quantize(yf, bo)
        err = (decode(y, bo, dtype=torch.float64) - rounded.to(torch.float64)).abs()
        units = err / ulp(rounded, bo)
        assert float(units.max()) <= 1.0, f"seed {seed}: {float(units.max())} ulp"
        worst = max(worst, float(units.max()))
        count += y.numel()
    assert count == 8 * 16 * 32
    print(f"golden vs float32: worst {worst} ulp over {count} outputs")
