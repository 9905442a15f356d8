"""The AF→fixed converter's generated Verilog, every code × every bias, on both simulators."""

import pytest
import torch

from hw.layouts import DEFAULT_AF, FixedFormat
from sim.af_units import NAME, af_units
from sim.lanes import run_vectors
from sim.runner import SIMULATORS
from sw.golden.af import to_fixed


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_all_codes_all_biases(simulator, tmp_path):
    fmt, fixed = DEFAULT_AF, FixedFormat(width=32, frac_bits=16)
    codes = torch.arange(fmt.code_max + 1)
    n_bias = fmt.bias_max + 1
    code = codes.repeat(n_bias)
    bias = torch.arange(n_bias).repeat_interleave(len(codes))
    expected = torch.cat([to_fixed(codes, b, fixed, fmt) for b in range(n_bias)])
    result = run_vectors(af_units(fmt=fmt, fixed=fixed), {"fixed_code": code, "fixed_bias": bias},
                         {"fixed_fixed": expected}, name=NAME, workdir=tmp_path,
                         simulator=simulator)
    assert result["compared"] == 256 * 8
