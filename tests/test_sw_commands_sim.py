"""``edgebert sim`` and ``edgebert compare`` on the tiny image: what a user sees, and their
refusals. The RTL runs use the small n = 4 accelerator (``--small``) under Icarus."""

import json
import re

import pytest

from sim.runner import require_simulator
from sim.system_bench import SystemRun, build_job, compare, small_memmap
from sw.cli import main
from sw.image import read_image, write_image
from sw.program.layout import lay_out
from sw.tiny_image import TINY_SENTENCES, build_tiny_image
from tests.test_sw_default_image import ROOT


@pytest.fixture(scope="module")
def tiny3_path(tmp_path_factory):
    # Seed 9, three layers: sentence 0 leaves at layer 1.
    img, _ = build_tiny_image(9, layers=3)
    path = tmp_path_factory.mktemp("tiny") / "tiny3.ebimg"
    write_image(img, path)
    return path


@pytest.mark.rtl
@pytest.mark.slow
def test_sim_prints_what_run_prints_from_the_rtl_with_waves(tiny3_path, capsys):
    require_simulator("icarus")
    assert main(["run", str(tiny3_path), "--sentence", TINY_SENTENCES[0]]) == 0
    golden = capsys.readouterr().out.splitlines()
    assert main(["sim", str(tiny3_path), "--small", "--sentence", TINY_SENTENCES[0],
                 "--waves"]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("sentence 1:"):].splitlines()
    # Tokens, entropies, exit decision, label, DVFS: the same lines as the golden executor's.
    assert lines[:6] == golden[:6]
    # The whole program from EMBED (19 commands); the RTL's counters equal the cycle model's.
    assert re.match(r"  RTL cycles 3,361 \(19 commands, matrix engine computing [\d.]+ %\)",
                    lines[6]), lines[6]
    assert lines[6] == golden[6].replace("modelled cycles", "RTL cycles", 1)
    m = re.search(r"programs ran ([\d,]+) simulated clock cycles .* ([\d,]+) cycles/s", out)
    assert m and int(m.group(1).replace(",", "")) >= 3361
    waves = re.search(r"^waves: (\S+\.fst)$", out, re.M)
    assert waves and (ROOT / waves.group(1)).stat().st_size > 0


@pytest.mark.rtl
@pytest.mark.slow
def test_compare_prints_every_command_bit_exact(tiny3_path, capsys):
    require_simulator("icarus")
    assert main(["compare", str(tiny3_path), "--small", "--sentence", TINY_SENTENCES[0]]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^ +(\d+)  (\w+) +([\d,]+) +([\d,]+)  (equal|DIFFER)", out, re.M)
    assert [int(r[0]) for r in rows] == list(range(19)) and rows[0][1] == "EMBED"
    assert all(r[2] == r[3] and r[4] == "equal" for r in rows)
    assert "1 of 1 sentence(s) bit-exact on icarus" in out


def test_compare_names_the_first_mismatch_and_fails(tiny3_path, capsys, monkeypatch):
    import sw.commands.compare as cmd

    lay = lay_out(read_image(tiny3_path), small_memmap())
    job = build_job(lay, TINY_SENTENCES[0])
    res = {"commands": [{k: v for k, v in c.items() if k not in ("op", "layer", "logits",
                                                                   "logits_words")}
                        for c in json.loads(json.dumps(job["commands"]))],
           "final": {k: job["final"][k] for k in ("logits", "exit_layer", "label", "exit",
                                                  "cycles", "commands")},
           "status": {"error": 0}, "counters": {"CYCLES": job["final"]["cycles"]}}
    word = next(iter(res["commands"][2]["act"]))
    res["commands"][2]["act"][word] ^= 0x80 << 8  # row 0, code 1: the sign bit
    cmp = compare(job, res)
    res.update(mismatch=cmp.mismatch, rows=cmp.rows)
    monkeypatch.setattr(cmd, "simulate", lambda *a: (SystemRun([res], {}, None, None), 1.0))
    assert main(["compare", str(tiny3_path), "--small", "--sentence", TINY_SENTENCES[0]]) == 1
    out = capsys.readouterr().out
    pc = res["commands"][2]["pc"]
    assert re.search(rf"^ +{pc}  MATMUL +[\d,]+ +[\d,]+  DIFFER$", out, re.M)
    assert re.search(rf"MISMATCH: command {pc} \(MATMUL\): act word {word} row 0 code 1 is "
                     rf"0x[0-9a-f]{{2}}, golden 0x[0-9a-f]{{2}}$", out, re.M)
    assert "0 of 1 sentence(s) bit-exact" in out


@pytest.mark.parametrize("argv,message", [
    (["sim", "missing.ebimg", "--sentence", "x"], r"missing\.ebimg"),
    (["sim", "{tiny}", "--sentence", "x", "--backpressure", "1.5"],
     r"--backpressure must be in \[0, 1\), not 1\.5"),
    (["compare", "{tiny}", "--data", "{tmp}", "--count", "0"], r"--count must be positive"),
    (["compare", "{default}", "--small", "--sentence", "x"],
     r"the image was built for vector width n = 16; this accelerator has n = 4"),
])
def test_bad_input_is_refused_clearly(tiny3_path, tmp_path, capsys, argv, message):
    argv = [a.format(tiny=tiny3_path, tmp=tmp_path,
                     default=ROOT / "sw" / "assets" / "sst2_default.ebimg") for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"edgebert {argv[0]}: error: ") and re.search(message, err), err


def test_help_texts_explain_the_commands(capsys):
    for name in ("sim", "compare"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "through its buses" in out or "driven only through its buses" in out
        assert "--simulator {icarus,verilator}" in out and "--small" in out
