"""The accelerator top's Verilog under Icarus: a tiny-image sentence from command 0 (EMBED), every
command's destination act words, H, exit flag and DVFS decision equal to the golden trace, every
command's counters (cycles, MAC cycles, act / aux / ReRAM accesses) equal to the cycle model.
The ReRAM store is the external Verilog storage, loaded by ``$readmemh`` (the Amaranth tests
run the ``Memory`` one)."""

import json

import pytest

from hw.reram import external_verilog, hex_image
from hw.top.top import _TINY
from hw.verilog_out import to_verilog
from sim.runner import BUILD_ROOT, require_simulator
from sim.top_bench import bench_setup, build_top, sentence_case, tiny_sentence
from sim.top_default import run_verilog


@pytest.mark.rtl
@pytest.mark.slow
def test_top_icarus(tmp_path):
    require_simulator("icarus")
    lay, words, golden, costs, kwargs, tokens = tiny_sentence(_TINY, 2)
    hexfile = tmp_path / "reram.hex"
    hexfile.write_text(hex_image(lay.images["reram"], lay.memmap.reram_word_bytes))
    # The Verilog holds the tiny image's aux and desc; the bench writes the weights, the
    # program and the token entries through the host ports. One sentence: Icarus runs the
    # n = 4 top at a few hundred cycles per second (several sentences on one top:
    # `python -m sim.top_default`).
    dut, *_ = build_top(lay, words, golden, tokens, reram=False,
                        top_kwargs={**kwargs, "reram_external": True,
                                    "reram_init_file": str(hexfile)})
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({**bench_setup(lay, dut.engine_config), "sentences": [
        sentence_case(lay, words, golden, costs, tokens)]}))
    text = to_verilog(dut, name="top") + external_verilog()
    run_verilog(text, (BUILD_ROOT / "icarus" / "top-external").resolve(), "icarus",
                {"cases": str(cases)})
