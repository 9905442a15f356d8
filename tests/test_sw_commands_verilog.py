"""``edgebert verilog``: the main job on defaults, and clear errors for impossible parameters."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sw.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_defaults_write_verilog_and_pass_self_checks(tmp_path):
    out = tmp_path / "v"
    r = subprocess.run([sys.executable, "-m", "sw.cli", "verilog", "-o", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"af_mul", "af_requant", "af_to_fixed"} <= set(manifest)
    for name, entry in manifest.items():
        text = Path(entry["verilog"]).read_text()
        assert f"module {name}(" in text
        assert "FAILED" not in entry.get("selfcheck", "")
    assert r.stdout.count("self-check passed") == len(manifest)


def test_bad_parameter_exits_non_zero_through_the_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sw.cli", "verilog", "-o", str(tmp_path),
                        "-b", "af_mul", "-p", "exp_bits=7"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1
    assert ("edgebert verilog: error: exp_bits must be at most n_bits - 2 = 6 so that the "
            "mantissa has at least one bit, not 7") in r.stderr


@pytest.mark.parametrize("argv,msg", [
    (["-p", "n_bits=x"], "parameter n_bits must be an integer, not 'x'"),
    (["-p", "n_bits"], "parameter must look like NAME=VALUE, not 'n_bits'"),
    (["-p", "bogus=1"], "no selected block has parameter(s) bogus"),
    (["-b", "af_mul", "-p", "in_width=40"], "no selected block has parameter(s) in_width"),
    (["-b", "nope"], "unknown block(s) nope; known: "),
    (["-b", "af_mul", "-p", "n_bits=2"], "n_bits must be at least 3, not 2"),
    (["-b", "af_requant", "-p", "in_width=1"], "in_width must be in 2..128, not 1"),
    (["-b", "af_to_fixed", "-p", "frac_bits=8"],
     "frac_bits must be at least 14 to hold the smallest step of"),
    (["-b", "af_to_fixed", "-p", "width=16"], "frac_bits must be less than width (16), not 16"),
    (["-b", "af_to_fixed", "-p", "width=18"],
     "width must be at least 22 to hold the largest value of"),
])
def test_impossible_parameters_give_a_clear_error(argv, msg, tmp_path, capsys):
    assert main(["verilog", "-o", str(tmp_path), "--no-check", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgebert verilog: error: ") and msg in err


def test_list_blocks(capsys):
    assert main(["verilog", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("af_mul", "af_requant", "af_to_fixed"):
        assert name in out


def test_dsp_ecp5_instantiates_mult18x18d_in_the_sfus_only(tmp_path):
    argv = ["-b", "entropy_exit", "-b", "residual_add", "-p", "n=4", "--no-check"]
    assert main(["verilog", "-o", str(tmp_path / "g"), *argv]) == 0
    assert main(["verilog", "-o", str(tmp_path / "e"), "--dsp", "ecp5", *argv]) == 0
    generic = (tmp_path / "g" / "entropy_exit.v").read_text()
    ecp5 = (tmp_path / "e" / "entropy_exit.v").read_text()
    assert "MULT18X18D" not in generic
    assert ecp5.count("MULT18X18D #(") > 0
    # A block without chunk products is the same Verilog either way.
    assert ((tmp_path / "g" / "residual_add.v").read_text()
            == (tmp_path / "e" / "residual_add.v").read_text())
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["entropy_exit"]["dsp"] == "ecp5"
