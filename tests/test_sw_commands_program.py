"""``edgebert program``, ``run`` and ``evaluate --backend`` on the tiny image: what a user sees."""

import json
import re

import pytest

from hw.isa import layout_table
from sw.cli import main
from sw.image import write_image
from sw.tiny_image import TINY_SENTENCES, build_tiny_image
from tests.test_sw_default_image import ROOT


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    img, _ = build_tiny_image(0, layers=2)
    path = tmp_path_factory.mktemp("tiny") / "tiny.ebimg"
    write_image(img, path)
    return path


def test_docs_show_the_generated_isa_table():
    assert layout_table() in (ROOT / "docs" / "program.md").read_text()


def test_program_prints_every_command_with_cycles_and_totals(tiny_path, capsys, tmp_path):
    assert main(["program", str(tiny_path), "--tokens", "7", "--words",
                 "--out", str(tmp_path / "mem")]) == 0
    out = capsys.readouterr().out
    m = re.search(r"(\d+) commands for 7 tokens \(padded to 8\), n = 4", out)
    assert m
    commands = int(m.group(1))
    # One line per command, numbered 0 .. commands-1, each followed by its decoded word.
    assert len(re.findall(r"^ +\d+ +[\d,]+ +[\d,]+  \S", out, re.M)) == commands
    assert out.count("0x") == commands
    assert "END" in out and "EMBED" in out and "head 0: S = Q.K^T" in out
    assert "head 1" not in out  # the tiny image's second head has span zero
    assert re.search(r"total: [\d,]+ cycles", out)
    assert (tmp_path / "mem" / "prog.bin").stat().st_size == commands * 16


def test_run_prints_tokens_entropies_label_dvfs_and_latency(tiny_path, capsys, tmp_path):
    js = tmp_path / "r.json"
    assert main(["run", str(tiny_path), "--sentence", TINY_SENTENCES[0], "--no-early-exit",
                 "--mhz", "100,250", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "tokens (8): [CLS] a gorgeous , witty film . [SEP]" in out
    assert len(re.findall(r"^ +[12] +-?\d+\.\d{4}  (yes|no)", out, re.M)) == 2
    assert re.search(r"label [01] at layer 2 of 2", out)
    assert "DVFS after layer 1: bin" in out
    assert re.search(r"us at 100 MHz, [\d.,]+ us at 250 MHz", out)
    rec = json.loads(js.read_text())["sentences"][0]
    assert rec["exit_layer"] == 2 and len(rec["entropy"]) == 2 and not rec["truncated"]
    assert rec["cycles"] > 0


def test_run_says_when_a_sentence_is_truncated(tiny_path, capsys):
    long = " ".join(["a gorgeous , witty film ."] * 6)
    assert main(["run", str(tiny_path), "--sentence", long]) == 0
    out = capsys.readouterr().out
    assert "tokens (16 (truncated to max_len)):" in out
    assert "1 sentence(s) truncated to max_len (16 tokens)" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--sentence", "   "], "texts_a[0] must be a non-empty string, not '   '"),
    (["--sentence", "a film", "--mhz", "fast"], "--mhz must be comma-separated numbers, not "
                                               "'fast'"),
    (["--sentence", "a film", "--mhz", "0"], "--mhz must list positive frequencies, not '0'"),
])
def test_run_refuses_bad_input_with_a_clear_error(tiny_path, capsys, args, message):
    assert main(["run", str(tiny_path), *args]) == 1
    assert f"edgebert run: error: {message}" in capsys.readouterr().err


def test_program_refuses_a_sentence_longer_than_max_len(tiny_path, capsys):
    assert main(["program", str(tiny_path), "--tokens", "17"]) == 1
    assert "a sentence has 1..16 tokens (max_len), not 17" in capsys.readouterr().err


def test_evaluate_golden_and_float_backends_agree_on_the_tiny_image(tiny_path, tmp_path, capsys):
    data = tmp_path / "glue"
    data.mkdir()
    rows = "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(TINY_SENTENCES))
    (data / "dev.tsv").write_text("sentence\tlabel\n" + rows)
    res = {}
    for backend in ("golden", "float"):
        js = tmp_path / f"{backend}.json"
        assert main(["evaluate", str(tiny_path), "--data", str(data), "--backend", backend,
                     "--threads", "1", "--json", str(js)]) == 0
        res[backend] = json.loads(js.read_text())
        assert f"({backend} backend)" in capsys.readouterr().out
    assert res["golden"]["n"] == res["float"]["n"] == len(TINY_SENTENCES)
    # The same number of correct sentences (the float path reports a float32 mean).
    correct = {b: round(r["accuracy_all_layers"] * r["n"]) for b, r in res.items()}
    assert correct["golden"] == correct["float"]
