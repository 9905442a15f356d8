"""Shared bit formats: AFFormat, FixedFormat, accumulator sizing ([F1], [F4], [F5])."""

import pytest
from amaranth.lib import data

from hw.layouts import DEFAULT_AF, AFFormat, FixedFormat, acc_width_for, af_code_layout


def test_default_format_properties():
    f = DEFAULT_AF
    assert (f.man_bits, f.exp_max, f.bias_max, f.sig_bits, f.code_max) == (4, 7, 7, 5, 255)
    # sign + 2 × 5 significand bits + shift by up to 2 × 7.
    assert f.product_bits == 25
    assert f.scale_exponent(0) == -14 and f.scale_exponent(7) == -7
    assert f.max_value(0) == 31 * 2.0 ** (7 - 14)
    assert f.min_value(0) == 17 * 2.0 ** -14
    assert f.check_bias(7) == 7


def test_code_layout_is_sign_exp_man():
    layout = af_code_layout(DEFAULT_AF)
    assert isinstance(layout, data.StructLayout)
    assert [(name, f.offset, f.width) for name, f in layout] == [
        ("man", 0, 4), ("exp", 4, 3), ("sign", 7, 1)]


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"n_bits": 8, "exp_bits": 7}, ValueError,
     r"exp_bits must be at most n_bits - 2 = 6 so that the mantissa has at least one bit, not 7"),
    ({"n_bits": 8, "exp_bits": 8}, ValueError, r"exp_bits must be at most n_bits - 2 = 6"),
    ({"exp_bits": 0}, ValueError, r"exp_bits must be at least 1, not 0"),
    ({"n_bits": 2, "exp_bits": 1}, ValueError, r"n_bits must be at least 3, not 2"),
    ({"n_bits": 17}, ValueError, r"n_bits must be at most 16, not 17"),
    ({"n_bits": 8.0}, TypeError, r"n_bits must be an integer, not 8\.0"),
    ({"exp_bits": True}, TypeError, r"exp_bits must be an integer, not True"),
    ({"offset": 65}, ValueError, r"offset must be at most 64, not 65"),
    ({"bias_bits": 0}, ValueError, r"bias_bits must be at least 1, not 0"),
    ({"bias_bits": 7}, ValueError, r"bias_bits must be at most 6, not 7"),
    ({"n_bits": 16, "exp_bits": 5}, ValueError,
     r"n_bits=16, exp_bits=5 give 85-bit lane products; at most 48 are supported"),
])
def test_impossible_formats_are_refused(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        AFFormat(**kwargs)


@pytest.mark.parametrize("bias,exc,msg", [
    (8, ValueError, r"bias must be in the bias register range 0\.\.7, not 8"),
    (-1, ValueError, r"bias must be in the bias register range 0\.\.7, not -1"),
    ("3", TypeError, r"bias must be an integer, not '3'"),
])
def test_check_bias(bias, exc, msg):
    with pytest.raises(exc, match=msg):
        DEFAULT_AF.check_bias(bias)


def test_acc_width_for():
    f = DEFAULT_AF
    assert acc_width_for(f, 1) == 25
    assert acc_width_for(f, 2) == 26
    assert acc_width_for(f, 1024) == 35 and acc_width_for(f, 1025) == 36
    # Sufficient: K products of the largest magnitude (31 · 31 · 2^14) fit, for either sign.
    top = 31 * 31 << 14
    for k in (1, 3, 768, 1 << 14):
        w = acc_width_for(f, k)
        assert -(1 << (w - 1)) <= -k * top and k * top <= (1 << (w - 1)) - 1
    with pytest.raises(ValueError, match=r"max_inner_dim must be at least 1, not 0"):
        acc_width_for(f, 0)
    with pytest.raises(TypeError, match=r"max_inner_dim must be an integer, not 4\.0"):
        acc_width_for(f, 4.0)


def test_fixed_format():
    fx = FixedFormat()
    assert (fx.width, fx.frac_bits, fx.min_int, fx.max_int) == (32, 16, -(1 << 31), (1 << 31) - 1)
    assert fx.check_holds(DEFAULT_AF) is fx
    FixedFormat(20, 14).check_holds(DEFAULT_AF)  # the narrowest that holds the default format


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"width": 16, "frac_bits": 16}, ValueError, r"frac_bits must be less than width \(16\), "
                                                 r"not 16"),
    ({"width": 1}, ValueError, r"width must be at least 2, not 1"),
    ({"width": 65}, ValueError, r"width must be at most 64, not 65"),
    ({"frac_bits": -1}, ValueError, r"frac_bits must be at least 0, not -1"),
])
def test_impossible_fixed_formats_are_refused(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        FixedFormat(**kwargs)


@pytest.mark.parametrize("fixed,msg", [
    (FixedFormat(32, 13), r"frac_bits must be at least 14 to hold the smallest step of "
                          r"AFFormat\(.*\) exactly, not 13"),
    (FixedFormat(19, 14), r"width must be at least 20 to hold the largest value of "
                          r"AFFormat\(.*\) with 14 fractional bits, not 19"),
])
def test_fixed_format_too_narrow_is_refused(fixed, msg):
    with pytest.raises(ValueError, match=msg):
        fixed.check_holds(DEFAULT_AF)
