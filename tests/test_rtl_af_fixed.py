"""The AF→fixed converter's generated Verilog, every code × every bias, on both simulators."""

import pytest
import torch

from hw.af_fixed import AFToFixed
from hw.layouts import DEFAULT_AF, FixedFormat
from sim.lanes import run_lanes
from sim.runner import SIMULATORS
from sw.golden.af import to_fixed


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_all_codes_all_biases(simulator, tmp_path):
    fmt, fixed = DEFAULT_AF, FixedFormat(width=32, frac_bits=16)
    codes = torch.arange(fmt.code_max + 1)
    n_bias = fmt.bias_max + 1
    code = codes.repeat(n_bias)
    bias = torch.arange(n_bias).repeat_interleave(len(codes))
    expected = torch.cat([to_fixed(codes, b, fixed, fmt) for b in range(n_bias)])
    result = run_lanes(lambda: AFToFixed(fmt=fmt, fixed=fixed), {"code": code, "bias": bias},
                       {"fixed": expected}, name="af_to_fixed_lanes", workdir=tmp_path,
                       simulator=simulator, lanes=32)
    assert result["compared"] == 256 * 8
