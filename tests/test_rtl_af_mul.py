"""The multiplier lane's generated Verilog, all 256 × 256 code pairs, on Icarus and Verilator."""

import pytest
import torch

from hw.layouts import DEFAULT_AF
from sim.af_units import NAME, af_units
from sim.lanes import run_vectors
from sim.runner import SIMULATORS
from sw.golden.af import lane_product


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_all_code_pairs(simulator, tmp_path):
    fmt = DEFAULT_AF
    codes = torch.arange(fmt.code_max + 1)
    a, b = torch.cartesian_prod(codes, codes).unbind(1)
    result = run_vectors(af_units(fmt=fmt), {"mul_a": a, "mul_b": b},
                         {"mul_product": lane_product(a, b, fmt)}, name=NAME, workdir=tmp_path,
                         simulator=simulator)
    assert result["compared"] == 256 * 256
