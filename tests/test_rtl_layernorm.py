import pytest

from hw.layernorm import LayerNorm
from hw.layouts import AFFormat
from sim.runner import require_simulator, run_cocotb


@pytest.mark.rtl
@pytest.mark.slow
def test_layernorm_icarus():
    require_simulator("icarus")
    fmt, n, max_len = AFFormat(), 8, 128
    res = run_cocotb(LayerNorm(fmt=fmt, n=n, max_len=max_len), "layernorm", "sim.tb_layernorm",
                     params={"n": n, "max_len": max_len, "fmt": vars(fmt)})
    assert res["tests"] == 3
