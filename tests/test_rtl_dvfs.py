import pytest

from hw.dvfs import DvfsController
from sim.runner import require_simulator, run_cocotb


@pytest.mark.rtl
def test_dvfs_icarus():
    require_simulator("icarus")
    p = {"bins": 8, "vcode_bits": 4, "fcode_bits": 4}
    res = run_cocotb(DvfsController(**p), "dvfs", "sim.tb_dvfs", params=p)
    assert res["tests"] == 2
