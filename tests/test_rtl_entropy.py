import pytest

from hw.entropy import EntropyExit
from hw.layouts import AFFormat, FixedFormat
from sim.runner import run_cocotb, simulator_available


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.skipif(not simulator_available("icarus"), reason="Icarus Verilog not installed")
def test_entropy_icarus():
    fmt, fixed, n, max_classes = AFFormat(), FixedFormat(), 4, 64
    res = run_cocotb(EntropyExit(fmt=fmt, n=n, max_classes=max_classes, fixed=fixed),
                     "entropy_exit", "sim.tb_entropy",
                     params={"n": n, "max_classes": max_classes, "fmt": vars(fmt),
                             "fixed": vars(fixed)})
    assert res["tests"] == 3
