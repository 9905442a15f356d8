"""The quantizer and the one rounding rule, against an exact rational reference ([F1]-[F3])."""

import math
from fractions import Fraction

import pytest
import torch
from af_reference import code_value, nearest_code
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.layouts import DEFAULT_AF, AFFormat
from sw.adaptivfloat import (
    check_codes,
    check_finite,
    decode,
    decode_parts,
    encode,
    fake_quantize,
    quantize,
    round_to_code,
    ulp,
    weight_bias,
)

FORMATS = [DEFAULT_AF, AFFormat(n_bits=6, exp_bits=2, offset=-3, bias_bits=2),
           AFFormat(n_bits=10, exp_bits=4, offset=0, bias_bits=4),
           AFFormat(n_bits=5, exp_bits=1, offset=5, bias_bits=1)]
FMT_IDS = [f"N{f.n_bits}E{f.exp_bits}o{f.offset}" for f in FORMATS]


def all_codes(fmt):
    return torch.arange(fmt.code_max + 1)


def test_default_format_matches_design():
    # [F1]: N=8, E=3, M=4, offset -10, 3-bit bias; value of exp 1, man 8 at bias 2.
    f = DEFAULT_AF
    assert (f.n_bits, f.exp_bits, f.man_bits, f.offset, f.bias_max) == (8, 3, 4, -10, 7)
    code = torch.tensor([(0 << 7) | (1 << 4) | 8, (1 << 7) | (1 << 4) | 8], dtype=torch.uint8)
    assert decode(code, 2, f, torch.float64).tolist() == [2.0 ** (1 + 2 - 10) * 1.5,
                                                         -(2.0 ** (1 + 2 - 10)) * 1.5]


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_decode_every_code_every_bias(fmt):
    codes = all_codes(fmt)
    for bias in range(fmt.bias_max + 1):
        got = decode(codes, bias, fmt, torch.float64).tolist()
        assert got == [float(code_value(c, bias, fmt)) for c in codes.tolist()]


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_representable_values_round_trip(fmt):
    codes = all_codes(fmt)
    neg_zero = 1 << (fmt.n_bits - 1)
    for bias in range(fmt.bias_max + 1):
        back = encode(decode(codes, bias, fmt, torch.float64), bias, fmt).to(torch.int64)
        # Every code comes back, except negative zero, which encodes as the one zero, 0.
        assert back.tolist() == [0 if c == neg_zero else c for c in codes.tolist()]


def _ties_and_neighbours(fmt, bias):
    """Every exact value, midpoint, and nearby float64, plus values around and beyond ±max."""
    vals = sorted({code_value(c, bias, fmt) for c in range(fmt.code_max + 1)})
    xs = []
    for lo, hi in zip(vals, vals[1:], strict=False):
        mid = (lo + hi) / 2
        for v in (lo, mid):
            f = float(v)
            xs += [f, math.nextafter(f, math.inf), math.nextafter(f, -math.inf)]
    top = float(vals[-1])
    xs += [top * 1.01, top * 1e6, -top * 1e6, 1e300, -1e300, 5e-324, -5e-324]
    return torch.tensor(xs, dtype=torch.float64)


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_encode_matches_reference_at_ties_and_edges(fmt):
    for bias in sorted({0, 1, fmt.bias_max // 2, fmt.bias_max}):
        x = _ties_and_neighbours(fmt, bias)
        got = encode(x, bias, fmt).to(torch.int64).tolist()
        assert got == [nearest_code(Fraction(v), bias, fmt) for v in x.tolist()]


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_encode_matches_reference_on_random_values(fmt):
    g = torch.Generator().manual_seed(5)
    bias = fmt.bias_max // 2
    top = fmt.max_value(bias)
    # Log-uniform magnitudes from far below the smallest value to far above the largest.
    x = torch.exp2(torch.empty(4000, dtype=torch.float64).uniform_(
        math.log2(fmt.min_value(bias)) - 4, math.log2(top) + 2, generator=g))
    x = x * torch.where(torch.rand(4000, generator=g) < 0.5, -1.0, 1.0)
    got = encode(x, bias, fmt).to(torch.int64).tolist()
    assert got == [nearest_code(Fraction(v), bias, fmt) for v in x.tolist()]


def test_encode_float32_and_float16_inputs():
    x = torch.tensor([0.3, -0.05, 1e-4, 7.0], dtype=torch.float32)
    for t in (x, x.half(), x.bfloat16()):
        got = encode(t, 3).to(torch.int64).tolist()
        assert got == [nearest_code(Fraction(float(v)), 3, DEFAULT_AF) for v in t.tolist()]
        assert quantize(t, 3).dtype == t.dtype


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_quantize_equals_decode_of_encode(fmt):
    # quantize computes on the floats' bits, encode/decode on codes (round_to_code): they must
    # agree on every exact value, midpoint and their float neighbours, and beyond ±max, at every
    # bias, in float64, float32 and bfloat16, with +0 for everything that rounds to zero.
    for bias in range(fmt.bias_max + 1):
        pts = _ties_and_neighbours(fmt, bias)
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            x = pts.to(dtype)
            x = torch.cat([x[torch.isfinite(x)], -x[torch.isfinite(x)]])
            try:
                ref = decode(encode(x, bias, fmt), bias, fmt, dtype)
            except ValueError:  # this dtype cannot hold the format at this bias
                with pytest.raises(ValueError, match="cannot hold"):
                    quantize(x, bias, fmt)
                continue
            got = quantize(x, bias, fmt)
            assert got.dtype == dtype
            assert torch.equal(got, ref)
            assert not torch.signbit(got[got == 0]).any()


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_round_to_code_matches_reference(fmt):
    # Integer magnitudes times 2^shift, in units of the output's significand step, over shifts
    # that put them in every binade, below the smallest value and beyond saturation; then
    # magnitudes above 2^53 (where float64 cannot hold them) shifted back into range.
    unit = Fraction(2) ** fmt.scale_exponent(0)
    small = torch.arange(0, 300)
    big = torch.tensor([2**53 - 1, 2**53, 2**53 + 1, 2**61 + 2**40 + 1, 2**62 - 1, 3 << 59])
    cases = [(small, shift) for shift in range(-12, 4)]
    cases += [(big, shift) for shift in range(-64, -40)]
    for mags, shift in cases:
        for sign in (0, 1):
            got = round_to_code(torch.full_like(mags, sign), mags, torch.tensor(shift), fmt)
            want = [nearest_code((-1) ** sign * m * Fraction(2) ** shift * unit, 0, fmt)
                    for m in mags.tolist()]
            assert got.tolist() == want, f"shift {shift}, sign {sign}"


def test_round_to_code_ties_go_to_even_mantissa():
    f = DEFAULT_AF
    # In units of the step at bias 0: 16+1 = 17 is the smallest value; 17/2 ties to zero.
    mags = torch.tensor([17, 35, 37, 63, 124, 126, 1023, 8000])
    got = round_to_code(torch.zeros_like(mags), mags, torch.tensor(-1), f).tolist()
    # 8.5 -> 0; 17.5 -> 18 (man 2, even); 18.5 -> 18; 31.5 -> 32 = 2^5: carry into exp 1, man 0;
    # 62 -> 62 (exp 1, man 15); 63 -> 64 (tie between 62 and 64: 64 has man 0);
    # 511.5 -> 512 (nearer than 496: carry into exp 5); 4000 > max 31·2^7 = 3968 -> max.
    assert got == [0, 0x02, 0x02, 0x10, 0x1F, 0x20, 0x50, 0x7F]


def test_quantizer_saturates_with_sign():
    top = DEFAULT_AF.max_value(0)
    x = torch.tensor([top * 3, -top * 3, top, -top], dtype=torch.float64)
    assert quantize(x, 0).tolist() == [top, -top, top, -top]
    assert encode(x, 0).tolist() == [0x7F, 0xFF, 0x7F, 0xFF]


def test_zero_and_tiny_values_are_code_zero():
    x = torch.tensor([0.0, -0.0, 1e-30, -1e-30])
    assert encode(x, 0).tolist() == [0, 0, 0, 0]
    assert torch.equal(quantize(x, 0), torch.zeros(4))


# Property tests (hypothesis): bounded example counts so they take seconds. Each example draws
# a format (the default one and three others) and a bias in its register range.
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def format_and_bias(draw):
    fmt = draw(st.sampled_from(FORMATS))
    return fmt, draw(st.integers(0, fmt.bias_max))


@settings(max_examples=300, deadline=None)
@given(x=st.lists(FINITE, min_size=1, max_size=20), fb=format_and_bias())
def test_quantize_is_idempotent(x, fb):
    fmt, bias = fb
    q = quantize(torch.tensor(x, dtype=torch.float64), bias, fmt)
    assert torch.equal(quantize(q, bias, fmt), q)


@settings(max_examples=400, deadline=None)
@given(a=FINITE, b=FINITE, fb=format_and_bias())
def test_quantize_is_monotone(a, b, fb):
    fmt, bias = fb
    lo, hi = min(a, b), max(a, b)
    q = quantize(torch.tensor([lo, hi], dtype=torch.float64), bias, fmt)
    assert q[0] <= q[1]


@settings(max_examples=300, deadline=None)
@given(fb=format_and_bias(), data=st.data())
def test_representable_value_is_unchanged(fb, data):
    fmt, bias = fb
    code = data.draw(st.integers(0, fmt.code_max))
    x = torch.tensor([float(code_value(code, bias, fmt))], dtype=torch.float64)
    assert torch.equal(quantize(x, bias, fmt), x)


@settings(max_examples=500, deadline=None)
@given(t=st.floats(0.0, 1.0), neg=st.booleans(), fb=format_and_bias())
def test_error_at_most_half_ulp_before_saturation(t, neg, fb):
    # Between the smallest and largest magnitudes the error is at most half the grid step.
    fmt, bias = fb
    lo, hi = fmt.min_value(bias), fmt.max_value(bias)
    x = torch.tensor([(lo + t * (hi - lo)) * (-1 if neg else 1)], dtype=torch.float64)
    err = (quantize(x, bias, fmt) - x).abs()
    assert err <= ulp(x, bias, fmt) / 2
    assert ulp(x, bias, fmt) <= 2.0 ** (fmt.exp_max + fmt.scale_exponent(bias))


def test_ulp_is_the_grid_step():
    f = DEFAULT_AF
    for bias in range(f.bias_max + 1):
        vals = sorted({code_value(c, bias, f) for c in range(128)})[1:]  # positive non-zero
        steps = [float(b - a) for a, b in zip(vals, vals[1:], strict=False)]
        got = ulp(torch.tensor([float(v) for v in vals[:-1]], dtype=torch.float64), bias)
        assert got.tolist() == steps


# [F3]: weight bias.
@pytest.mark.parametrize("peak,bias", [
    (1.0, 3),                     # floor(log2 1) - 7 + 10
    (2.0, 4), (math.nextafter(2.0, 0), 3), (0.25, 1), (0.2, 0),
    (2.0 ** -10, 0),              # clamped at 0
    (16.0, 7), (1e6, 7),          # clamped at bias_max
])
def test_weight_bias_rule(peak, bias):
    x = torch.tensor([0.0, -peak, peak / 3], dtype=torch.float64)
    assert weight_bias(x) == bias


def test_weight_bias_of_exact_powers_of_two():
    f = DEFAULT_AF
    for k in range(-3, 4):
        b = weight_bias(torch.tensor([2.0 ** k]))
        assert b == k - f.exp_max - f.offset
        # The peak then lies in the top binade: representable without saturation.
        assert quantize(torch.tensor([2.0 ** k]), b).item() == 2.0 ** k


def test_weight_bias_of_all_zero_and_empty_tensors():
    assert weight_bias(torch.zeros(4, 4)) == 0
    assert weight_bias(torch.zeros(0)) == 0


def test_fake_quantize_forward_and_straight_through_gradient():
    top = DEFAULT_AF.max_value(2)
    x = torch.tensor([0.01, -0.1, top, -top, top * 1.5, -top * 2, 0.0], dtype=torch.float64,
                     requires_grad=True)
    y = fake_quantize(x, 2)
    assert torch.equal(y.detach(), quantize(x.detach(), 2))
    y.backward(torch.arange(1.0, 8.0, dtype=torch.float64))
    # Gradient passes unchanged inside ±max, is zero where the value saturated.
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 7.0]


def test_fake_quantize_default_bias_is_the_weight_bias():
    x = torch.tensor([0.3, -1.7, 0.02])
    assert torch.equal(fake_quantize(x), quantize(x, weight_bias(x)))


# Bad input: clear errors.
@pytest.mark.parametrize("bad,what", [(math.nan, "1 NaN and 0 infinite"),
                                      (math.inf, "0 NaN and 1 infinite"),
                                      (-math.inf, "0 NaN and 1 infinite")])
def test_nan_and_inf_are_refused(bad, what):
    x = torch.tensor([0.5, bad])
    for call in (lambda: encode(x, 0), lambda: quantize(x, 0), lambda: weight_bias(x),
                 lambda: fake_quantize(x)):
        with pytest.raises(ValueError, match=rf"input has {what} element\(s\) \(first at index "
                                             r"\(1,\)\); AdaptivFloat has no encoding"):
            call()


def test_check_finite_refuses_non_float_tensors():
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor, not list"):
        check_finite([1.0])
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor, not torch.int64"):
        check_finite(torch.tensor([1]))


@pytest.mark.parametrize("bias,exc,msg", [
    (8, ValueError, r"bias must be in the bias register range 0\.\.7, not 8"),
    (-1, ValueError, r"bias must be in the bias register range 0\.\.7, not -1"),
    (1.0, TypeError, r"bias must be an integer, not 1\.0"),
    (True, TypeError, r"bias must be an integer, not True"),
])
def test_bias_outside_register_range_is_refused(bias, exc, msg):
    x = torch.tensor([0.5])
    for call in (lambda: encode(x, bias), lambda: decode(torch.tensor([1]), bias),
                 lambda: quantize(x, bias), lambda: ulp(x, bias), lambda: fake_quantize(x, bias)):
        with pytest.raises(exc, match=msg):
            call()


@pytest.mark.parametrize("codes,exc,msg", [
    (torch.tensor([1.0]), TypeError, r"codes must be an integer tensor, not torch.float32"),
    (torch.tensor([True]), TypeError, r"codes must be an integer tensor, not torch.bool"),
    ([1, 2], TypeError, r"codes must be a torch.Tensor, not list"),
    (torch.tensor([3, 256]), ValueError,
     r"codes must be in 0\.\.255 for 8-bit AdaptivFloat, found 256"),
    (torch.tensor([-1, 3]), ValueError,
     r"codes must be in 0\.\.255 for 8-bit AdaptivFloat, found -1"),
])
def test_malformed_code_tensors_are_refused(codes, exc, msg):
    for call in (lambda: check_codes(codes), lambda: decode(codes, 0),
                 lambda: decode_parts(codes)):
        with pytest.raises(exc, match=msg):
            call()


def test_round_to_code_refuses_magnitudes_outside_its_range():
    for mag in (-5, 1 << 62):
        with pytest.raises(ValueError, match=rf"magnitudes must be in 0\.\.2\^62 - 1 \(exact "
                                             rf"int64 arithmetic\), found {mag}"):
            round_to_code(torch.tensor([0]), torch.tensor([mag]), torch.tensor(0))


def test_decode_refuses_a_dtype_that_cannot_hold_the_values_exactly():
    # Overflow: 2^(15 + 63 + 64) is beyond float32 (it came back as inf).
    wide = AFFormat(n_bits=12, exp_bits=4, offset=64, bias_bits=6)
    with pytest.raises(ValueError, match=r"torch.float32 cannot hold every value of AFFormat\(.*"
                                         r"\) with bias 63 exactly; use torch.float64"):
        decode(torch.tensor([2047]), 63, wide)
    assert decode(torch.tensor([2047]), 0, wide).item() == (2 - 2**-7) * 2.0 ** (15 + 64)
    # Precision: 15-bit significands do not fit float16's 11 (they came back rounded).
    fine = AFFormat(n_bits=16, exp_bits=1, offset=0, bias_bits=3)
    with pytest.raises(ValueError, match=r"torch.float16 cannot hold every value of AFFormat"):
        quantize(torch.tensor([3.5], dtype=torch.float16), 0, fine)
    assert quantize(torch.tensor([3.5], dtype=torch.float16), 0).dtype == torch.float16
