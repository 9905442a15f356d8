"""Verilator lint of every generated block: no errors, and every remaining warning explained."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.registry import blocks
from sim.runner import require_simulator
from sw.cli import main
from sw.flows.lint import EXPLAINED, lint_block, lint_verilog


@pytest.fixture(autouse=True)
def _verilator():
    require_simulator("verilator")


BLOCKS = blocks()


# Array blocks are linted at n=4 here to keep the suite fast (Amaranth's Verilog backend takes
# minutes on the largest blocks at n=16); `edgebert lint` lints every block at its defaults.
LINT_N = 4
# The ReRAM store too: Amaranth writes an initial value for every word (2 MiB: two minutes).
LINT_RERAM_BYTES = 64 * 1024


def _small(block):
    params = dict(block.params)
    if params.get("reram_bytes", 0) > LINT_RERAM_BYTES:
        params["reram_bytes"] = LINT_RERAM_BYTES
    if "n" in params and params["n"] > LINT_N:
        try:
            return block.build(**{**params, "n": LINT_N})
        except (ValueError, TypeError):
            pass  # the block does not support n=4: lint its defaults
    return block.build(**params)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_lints_clean(name, tmp_path):
    r = lint_block(_small(BLOCKS[name]), name, tmp_path)
    assert r["errors"] == [], r["errors"]
    assert r["unexplained"] == [], (
        f"{name}: Verilator warning code(s) {r['unexplained']} are not explained in "
        f"sw/flows/lint.py EXPLAINED (and docs/flows.md): "
        f"{[w for w in r['warnings'] if w['code'] in r['unexplained']][:3]}")


class _Registered(wiring.Component):
    a: In(4)
    y: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + 1)
        return m


def test_clocked_block_warnings_are_counted_and_explained(tmp_path):
    r = lint_block(_Registered(), "registered", tmp_path)
    assert r["errors"] == [] and r["unexplained"] == []
    # `reg y = 4'h0;` assigned in an always block: Amaranth's init value.
    assert r["counts"].get("PROCASSINIT", 0) >= 1
    assert set(r["counts"]) <= set(EXPLAINED)


def test_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output y);\n  assign y = a & nosuch;\nendmodule\n")
    r = lint_verilog(bad, "bad")
    assert r["errors"], r
    assert any("nosuch" in e["message"] for e in r["errors"])


def test_unexplained_warning_code_is_flagged(tmp_path):
    odd = tmp_path / "odd.v"
    # A latch: Verilator's LATCH warning is not one Amaranth output produces.
    odd.write_text("module odd(input e, input d, output reg q);\n"
                   "  always @* if (e) q = d;\nendmodule\n")
    r = lint_verilog(odd, "odd")
    assert {w["code"] for w in r["warnings"]} - set(EXPLAINED), r


def test_cli_lint(capsys, tmp_path):
    assert main(["lint", "-b", "af_mul", "-b", "af_to_fixed", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "af_mul" in out and "af_to_fixed" in out and "WIDTHEXPAND:" in out
