"""The accelerator top's Verilog under Icarus: tiny-image sentences from command 0 (EMBED), every
command's destination act words, H, exit flag and DVFS decision equal to the golden trace, every
command's counters (cycles, MAC cycles, act / aux / ReRAM accesses) equal to the cycle model."""

import json

import pytest

from hw.top.top import _TINY
from sim.runner import require_simulator, run_cocotb
from sim.top_bench import bench_setup, build_top, sentence_case, tiny_sentence


@pytest.mark.rtl
@pytest.mark.slow
def test_top_icarus(tmp_path):
    require_simulator("icarus")
    lay, words, golden, costs, kwargs, tokens = tiny_sentence(_TINY, 2)
    # The Verilog holds the tiny image's reram, aux and desc; the bench writes the weights, the
    # program and the token entries through the host ports.
    dut, *_ = build_top(lay, words, golden, tokens, top_kwargs=kwargs)
    # One sentence (Icarus runs the n = 4 top at a few hundred cycles per second); several
    # sentences on one top run in `python -m sim.top_default` (Verilator, n = 16).
    sentences = [sentence_case(lay, words, golden, costs, tokens)]
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({**bench_setup(lay, dut), "sentences": sentences}))
    res = run_cocotb(dut, "top", "sim.tb_top", params={"cases": str(cases)})
    assert res["tests"] == 1
