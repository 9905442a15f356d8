"""The multiplier lane's generated Verilog, all 256 × 256 code pairs, on Icarus and Verilator."""

import pytest
import torch

from hw.af_mul import AFMulLane
from hw.layouts import DEFAULT_AF
from sim.lanes import run_lanes
from sim.runner import SIMULATORS
from sw.golden.af import lane_product


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_all_code_pairs(simulator, tmp_path):
    fmt = DEFAULT_AF
    codes = torch.arange(fmt.code_max + 1)
    pairs = torch.cartesian_prod(codes, codes)
    a, b = pairs[:, 0], pairs[:, 1]
    result = run_lanes(lambda: AFMulLane(fmt=fmt), {"a": a, "b": b},
                       {"product": lane_product(a, b, fmt)}, name="af_mul_lanes",
                       workdir=tmp_path, simulator=simulator, lanes=32)
    assert result["compared"] == 256 * 256
