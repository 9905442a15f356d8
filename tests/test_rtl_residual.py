import pytest

from hw.layouts import AFFormat, FixedFormat
from hw.residual import ResidualAdd
from sim.runner import require_simulator, run_cocotb


@pytest.mark.rtl
@pytest.mark.slow
def test_residual_icarus():
    require_simulator("icarus")
    fmt, fixed = AFFormat(), FixedFormat()
    res = run_cocotb(ResidualAdd(fmt=fmt, n=8, fixed=fixed), "residual_add", "sim.tb_residual",
                     params={"n": 8, "fmt": vars(fmt), "fixed": vars(fixed)})
    assert res["tests"] == 3
