import pytest

from hw.layernorm import LayerNorm
from hw.layouts import AFFormat
from sim.runner import run_cocotb, simulator_available


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.skipif(not simulator_available("icarus"), reason="Icarus Verilog not installed")
def test_layernorm_icarus():
    fmt, n, max_len = AFFormat(), 8, 128
    res = run_cocotb(LayerNorm(fmt=fmt, n=n, max_len=max_len), "layernorm", "sim.tb_layernorm",
                     params={"n": n, "max_len": max_len, "fmt": vars(fmt)})
    assert res["tests"] == 3
