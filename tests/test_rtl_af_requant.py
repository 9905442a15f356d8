"""The requantizer core's generated Verilog against the golden ``requantize``, on both simulators.

Stimulus: edge cases for every output bias and every ``bias_a + bias_b`` (exact values, exact
ties, carries into the next binade, saturation on both signs, zero, the input extremes) plus
100,000 random accumulators; all compared as integer codes.
"""

import pytest
import torch
from af_reference import matmul_shift, requant_cases, requantize_each

from hw.layouts import DEFAULT_AF
from sim.af_units import NAME, REQUANT_IN_WIDTH, af_units, requant_shift_range
from sim.lanes import run_vectors
from sim.runner import SIMULATORS

N_RANDOM = 100_000


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_edge_and_random_values(simulator, tmp_path):
    fmt = DEFAULT_AF
    acc, bias_a, bias_b, bias_out = requant_cases(fmt, REQUANT_IN_WIDTH, N_RANDOM, seed=3)
    assert len(torch.unique(bias_out)) == fmt.bias_max + 1
    shift = matmul_shift(fmt, bias_a, bias_b, bias_out)
    assert (int(shift.min()), int(shift.max())) == requant_shift_range(fmt)
    result = run_vectors(
        af_units(fmt=fmt), {"requant_value": acc, "requant_shift": shift},
        {"requant_code": requantize_each(acc, bias_a, bias_b, bias_out, fmt)},
        name=NAME, workdir=tmp_path, simulator=simulator)
    assert result["compared"] == len(acc) > N_RANDOM
