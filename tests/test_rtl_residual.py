import pytest

from hw.layouts import AFFormat, FixedFormat
from hw.residual import ResidualAdd
from sim.runner import run_cocotb, simulator_available


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.skipif(not simulator_available("icarus"), reason="Icarus Verilog not installed")
def test_residual_icarus():
    fmt, fixed = AFFormat(), FixedFormat()
    res = run_cocotb(ResidualAdd(fmt=fmt, n=8, fixed=fixed), "residual_add", "sim.tb_residual",
                     params={"n": 8, "fmt": vars(fmt), "fixed": vars(fixed)})
    assert res["tests"] == 3
