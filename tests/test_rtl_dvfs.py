import pytest

from hw.dvfs import DvfsController
from sim.runner import run_cocotb, simulator_available


@pytest.mark.rtl
@pytest.mark.skipif(not simulator_available("icarus"), reason="Icarus Verilog not installed")
def test_dvfs_icarus():
    p = {"bins": 8, "vcode_bits": 4, "fcode_bits": 4}
    res = run_cocotb(DvfsController(**p), "dvfs", "sim.tb_dvfs", params=p)
    assert res["tests"] == 2
