import pytest

from hw.layouts import AFFormat, FixedFormat
from hw.softmax import Softmax
from sim.runner import require_simulator, run_cocotb


@pytest.mark.rtl
@pytest.mark.slow
def test_softmax_icarus():
    require_simulator("icarus")
    fmt, fixed, n, max_len = AFFormat(), FixedFormat(), 8, 128
    res = run_cocotb(Softmax(fmt=fmt, n=n, max_len=max_len, fixed=fixed), "softmax",
                     "sim.tb_softmax", params={"n": n, "max_len": max_len, "fmt": vars(fmt),
                                               "fixed": vars(fixed)})
    assert res["tests"] == 3
