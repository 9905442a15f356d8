"""Golden AdaptivFloat ops against references that are not themselves ([F2], [F4], [F5])."""

import math
from fractions import Fraction

import pytest
import torch
from af_reference import nearest_code, requant_cases

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat, acc_width_for
from sw.adaptivfloat import decode, encode
from sw.golden.af import (
    accumulate,
    lane_product,
    product_scale_exponent,
    requantize,
    requantize_scaled,
    to_fixed,
)

FORMATS = [DEFAULT_AF, AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2),
           AFFormat(n_bits=9, exp_bits=4, offset=2, bias_bits=3)]
FMT_IDS = [f"N{f.n_bits}E{f.exp_bits}o{f.offset}" for f in FORMATS]


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_lane_product_equals_float_product_of_decoded_values(fmt):
    # Every pair of codes: the float64 product of the decoded values (exact: 2(M+1) <= 53
    # significant bits) equals the integer product times its unit.
    codes = torch.arange(fmt.code_max + 1)
    a, b = torch.cartesian_prod(codes, codes).unbind(1)
    for bias_a, bias_b in ((0, 0), (fmt.bias_max, 1)):
        want = decode(a, bias_a, fmt, torch.float64) * decode(b, bias_b, fmt, torch.float64)
        unit = product_scale_exponent(bias_a, bias_b, fmt)
        prod = lane_product(a, b, fmt)
        assert prod.dtype == torch.int64
        assert torch.equal(torch.ldexp(prod.to(torch.float64), torch.tensor(unit)), want)
        # [F4]: every product fits the signed lane width.
        assert int(prod.abs().max()) < 1 << (fmt.product_bits - 1)


def test_product_scale_exponent():
    f = DEFAULT_AF
    assert product_scale_exponent(2, 5, f) == (2 - 14) + (5 - 14)
    with pytest.raises(ValueError, match=r"bias_b must be in the bias register range 0\.\.7, "
                                         r"not 8"):
        product_scale_exponent(0, 8, f)


def test_accumulate_is_exact_and_guards_its_width():
    f = DEFAULT_AF
    k = 1000
    width = acc_width_for(f, k)
    # Worst case: k products of the largest magnitude, both signs.
    top = lane_product(torch.tensor([0x7F]), torch.tensor([0x7F]), f)
    big = top.repeat(k)
    assert int(accumulate(big, acc_bits=width)) == k * int(top)
    assert int(accumulate(-big, acc_bits=width)) == -k * int(top)
    with pytest.raises(OverflowError, match=r"accumulator value outside a signed 34-bit "
                                            r"register"):
        accumulate(big, acc_bits=width - 1)
    g = torch.Generator().manual_seed(4)
    p = torch.randint(-(1 << 24), 1 << 24, (8, 64), generator=g)
    assert accumulate(p).tolist() == [sum(r) for r in p.tolist()]


def _reference_requantize(acc, bias_a, bias_b, bias_out, fmt):
    unit = Fraction(2) ** product_scale_exponent(bias_a, bias_b, fmt)
    return [nearest_code(v * unit, bias_out, fmt) for v in acc.tolist()]


@pytest.mark.slow
def test_requantize_matches_exact_rational_rounding():
    # Edge cases for every output bias and operand bias sum (exact values, ties, carries,
    # saturation, both signs) plus random accumulators, against the Fraction reference.
    f = DEFAULT_AF
    acc, ba, bb, bo = requant_cases(f, 40, n_random=10_000, seed=7)
    # A fixed quarter of the ~120,000 edge cases keeps the exact reference to seconds; the
    # RTL tests compare all of them with this golden function.
    keep = torch.randperm(len(acc), generator=torch.Generator().manual_seed(7))[:len(acc) // 4]
    acc, ba, bb, bo = acc[keep], ba[keep], bb[keep], bo[keep]
    triples = torch.stack([ba, bb, bo], dim=1)
    groups = torch.unique(triples, dim=0).tolist()
    assert len({t[2] for t in groups}) == f.bias_max + 1
    for t in groups:
        sel = (triples == torch.tensor(t)).all(dim=1)
        got = requantize(acc[sel], *t, f).to(torch.int64).tolist()
        assert got == _reference_requantize(acc[sel], *t, f), f"biases {t}"


@pytest.mark.parametrize("fmt", FORMATS[1:], ids=FMT_IDS[1:])
def test_requantize_other_formats(fmt):
    g = torch.Generator().manual_seed(8)
    acc = torch.randint(-(1 << 30), 1 << 30, (3000,), generator=g)
    acc = acc >> torch.randint(0, 31, (3000,), generator=g)
    for t in ((0, 0, 0), (fmt.bias_max, fmt.bias_max, 0), (0, 1, fmt.bias_max)):
        got = requantize(acc, *t, fmt).to(torch.int64).tolist()
        assert got == _reference_requantize(acc, *t, fmt)


def test_requantize_of_a_dot_product_is_the_quantized_float_result():
    # Integer path (products, exact sum, requantize) == float path (exact float64 dot product
    # of decoded values, then the float quantizer): one rounding rule.
    f = DEFAULT_AF
    g = torch.Generator().manual_seed(9)
    x = torch.randint(0, 256, (200, 16), generator=g)
    w = torch.randint(0, 256, (200, 16), generator=g)
    acc = accumulate(lane_product(x, w, f))
    exact = (decode(x, 3, f, torch.float64) * decode(w, 5, f, torch.float64)).sum(dim=1)
    assert torch.equal(requantize(acc, 3, 5, 4, f), encode(exact, 4, f))


def test_requantize_scaled_fixed_point_input():
    # A fixed-point value with F fractional bits: scale_exp = -F.
    f = DEFAULT_AF
    v = torch.tensor([1 << 16, -(3 << 15), 5, (1 << 31) - 1, 0])
    got = requantize_scaled(v, -16, 3, f).to(torch.int64).tolist()
    assert got == [nearest_code(Fraction(x, 1 << 16), 3, f) for x in v.tolist()]
    with pytest.raises(ValueError, match=r"bias_out must be in the bias register range "
                                         r"0\.\.7, not 9"):
        requantize_scaled(v, -16, 9, f)


@pytest.mark.parametrize("fmt,fixed", [
    (DEFAULT_AF, FixedFormat(32, 16)), (DEFAULT_AF, FixedFormat(24, 14)),
    (FORMATS[1], FixedFormat(16, 8)), (FORMATS[2], FixedFormat(40, 8)),
], ids=["default-32.16", "default-24.14", "N6E2-16.8", "N9E4-40.8"])
def test_to_fixed_equals_decoded_value(fmt, fixed):
    fixed.check_holds(fmt)
    codes = torch.arange(fmt.code_max + 1)
    for bias in range(fmt.bias_max + 1):
        got = to_fixed(codes, bias, fixed, fmt)
        want = decode(codes, bias, fmt, torch.float64)
        assert torch.equal(torch.ldexp(got.to(torch.float64), torch.tensor(-fixed.frac_bits)),
                           want)
        assert fixed.min_int <= int(got.min()) and int(got.max()) <= fixed.max_int


def test_to_fixed_refuses_a_format_too_narrow():
    codes = torch.tensor([1])
    with pytest.raises(ValueError, match=r"frac_bits must be at least 14 to hold the smallest "
                                         r"step of .* exactly, not 13"):
        to_fixed(codes, 0, FixedFormat(32, 13))
    # Largest value 31 · 2^(7 + 7 - 14) = 31: 5 integer bits, 16 fractional, sign.
    with pytest.raises(ValueError, match=r"width must be at least 22 to hold the largest value "
                                         r"of .* with 16 fractional bits, not 21"):
        to_fixed(codes, 0, FixedFormat(21, 16))


def test_golden_ops_refuse_malformed_codes():
    with pytest.raises(TypeError, match=r"codes must be an integer tensor, not torch.float32"):
        lane_product(torch.tensor([1.0]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"codes must be in 0\.\.255 for 8-bit AdaptivFloat, "
                                         r"found 300"):
        to_fixed(torch.tensor([300]), 0)


def test_error_of_requantize_against_float_is_bounded():
    # Golden vs float, stated bound: within ±max the requantized value is within half a grid
    # step of the exact accumulator value (the rule rounds to nearest).
    f = DEFAULT_AF
    acc, *_ = requant_cases(f, 30, n_random=5000, seed=10)
    unit = product_scale_exponent(2, 2, f)
    exact = torch.ldexp(acc.to(torch.float64), torch.tensor(unit))
    got = decode(requantize(acc, 2, 2, 5, f), 5, f, torch.float64)
    inside = (exact.abs() >= f.min_value(5)) & (exact.abs() <= f.max_value(5))
    step = torch.ldexp(torch.ones_like(exact), torch.clamp(
        torch.frexp(exact.abs())[1] - 1 - f.man_bits - f.scale_exponent(5), 0, f.exp_max)
        + f.scale_exponent(5))
    assert bool(inside.any())
    assert bool(((got - exact).abs() <= step / 2)[inside].all())
    assert math.isclose(f.max_value(5), 31 * 2.0 ** (7 + 5 - 14))


def test_requantize_refuses_values_outside_the_exact_range():
    # |value| must stay below 2^62: -2^63 has no int64 magnitude and used to come back as
    # code 0 instead of saturating or rounding.
    for v in (-(2**63), 2**62, -(2**62)):
        with pytest.raises(ValueError, match=r"magnitudes must be in 0\.\.2\^62 - 1"):
            requantize_scaled(torch.tensor([3, v]), -73, 0)
    top = (1 << 62) - 1
    assert requantize_scaled(torch.tensor([top, -top]), -80, 0).tolist() == [
        nearest_code(Fraction(top, 2**80), 0, DEFAULT_AF),
        nearest_code(Fraction(-top, 2**80), 0, DEFAULT_AF)]
