import pytest

from hw.entropy import EntropyExit
from hw.layouts import AFFormat, FixedFormat
from sim.runner import run_cocotb, simulator_available


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_entropy(simulator):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} not installed")
    fmt, fixed, n, max_classes = AFFormat(), FixedFormat(), 4, 64
    res = run_cocotb(EntropyExit(fmt=fmt, n=n, max_classes=max_classes, fixed=fixed),
                     "entropy_exit", "sim.tb_entropy", simulator=simulator,
                     params={"n": n, "max_classes": max_classes, "fmt": vars(fmt),
                             "fixed": vars(fixed)})
    assert res["tests"] == 3
