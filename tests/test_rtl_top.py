"""The accelerator top's Verilog under Icarus: a tiny-image sentence, every command's cycles
equal the model, ENTROPY and DVFS equal the golden run, every act word written equals it."""

import pytest

from hw.top.top import _TINY
from sim.runner import require_simulator, run_cocotb
from sim.top_bench import build_top, tiny_sentence


@pytest.mark.rtl
@pytest.mark.slow
def test_top_icarus():
    require_simulator("icarus")
    lay, words, golden, _, kwargs = tiny_sentence(_TINY, 2)
    dut, *_ = build_top(lay, words, golden, top_kwargs=kwargs)
    res = run_cocotb(dut, "top", "sim.tb_top", params={"top": _TINY, "sentence": 2})
    assert res["tests"] == 1
