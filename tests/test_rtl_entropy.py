import pytest

from hw.entropy import EntropyExit
from hw.layouts import AFFormat, FixedFormat
from sim.runner import require_simulator, run_cocotb


@pytest.mark.rtl
@pytest.mark.slow
# n = 8: the beat's maximum has a third compare level and stage, and the sum pass waits for it.
@pytest.mark.parametrize(("simulator", "n"), [("icarus", 4), ("verilator", 4), ("icarus", 8)])
def test_entropy(simulator, n):
    require_simulator(simulator)
    fmt, fixed, max_classes = AFFormat(), FixedFormat(), 64
    res = run_cocotb(EntropyExit(fmt=fmt, n=n, max_classes=max_classes, fixed=fixed),
                     "entropy_exit", "sim.tb_entropy", simulator=simulator,
                     params={"n": n, "max_classes": max_classes, "fmt": vars(fmt),
                             "fixed": vars(fixed)})
    assert res["tests"] == 3
