"""The requantizer core's generated Verilog against the golden ``requantize``, on both simulators.

Stimulus: edge cases for every output bias and every ``bias_a + bias_b`` (exact values, exact
ties, carries into the next binade, saturation on both signs, zero, the input extremes) plus
100,000 random accumulators; all compared as integer codes.
"""

import pytest
import torch
from af_reference import matmul_shift, requant_cases, requantize_each

from hw.af_requant import AFRequantCore
from hw.layouts import DEFAULT_AF
from sim.lanes import run_lanes
from sim.runner import SIMULATORS

IN_WIDTH = 40
N_RANDOM = 100_000


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_edge_and_random_values(simulator, tmp_path):
    fmt = DEFAULT_AF
    acc, bias_a, bias_b, bias_out = requant_cases(fmt, IN_WIDTH, N_RANDOM, seed=3)
    assert len(torch.unique(bias_out)) == fmt.bias_max + 1
    shift = matmul_shift(fmt, bias_a, bias_b, bias_out)
    lo, hi = int(shift.min()), int(shift.max())
    result = run_lanes(
        lambda: AFRequantCore(fmt=fmt, in_width=IN_WIDTH, shift_min=lo, shift_max=hi),
        {"value": acc, "shift": shift},
        {"code": requantize_each(acc, bias_a, bias_b, bias_out, fmt)},
        name="af_requant_lanes", workdir=tmp_path, simulator=simulator, lanes=32)
    assert result["compared"] == len(acc) > N_RANDOM
