"""The default configuration on a Verilog simulator: the top at n = 16 with the committed default
image (``sw/assets/sst2_default.ebimg``, :func:`sw.program.layout.lay_out`), whole SST-2 dev
sentences from command 0, every command's buffers bit-exact and counters equal to the model.

::

    EDGEBERT_DATA=/path/to/sst2 python -m sim.top_default --count 20 [--simulator verilator]

Runs (a) one 32-token dev sentence with every layer (compiled without exits) and (b) the first
``--count`` dev sentences compiled with early exit, all on one build (:mod:`sim.tb_top`). The
ReRAM store is the external Verilog storage loaded by ``$readmemh``
(:func:`hw.reram.external_verilog`), so Verilog generation does not spell out its 2 MiB.
Prints and writes (``--out``/report.json) the Verilog generation, build and simulation wall
times, simulated cycles per second and, for the 32-token sentence, the cycles per unit and the
share of cycles in which the matrix engine computes.
"""

import argparse
import json
import os
import time
from pathlib import Path

__all__ = ["main", "run_verilog"]

DEFAULT_IMAGE = Path(__file__).resolve().parent.parent / "sw" / "assets" / "sst2_default.ebimg"


def run_verilog(text, build_dir, simulator, params, *, cxx_opt=None):
    """Build Verilog ``text`` (module ``top``; e.g. with :func:`hw.reram.external_verilog`
    appended, which :func:`sim.runner.run_cocotb` cannot take) in ``build_dir`` and run
    :mod:`sim.tb_top` with ``params``; ``text`` ``None`` runs the build already there. Returns
    ``(build_s, run_s)``; raises if the test failed or compared nothing. ``cxx_opt`` (e.g.
    ``"-O0"``) replaces Verilator's C++ optimisation flags (``-Os``)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from sim.runner import _check_simulator, _prepare_env, _verilator_make_fix

    _prepare_env(_check_simulator(simulator))
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / "top.v"
    runner = get_runner(simulator)
    t0 = time.perf_counter()
    if text is not None:
        if not src.exists() or src.read_text() != text:
            src.write_text(text)
        args = (["-Wno-fatal", "-O3", "--x-assign", "0"] if simulator == "verilator"
                else ["-g2005"])
        old = os.environ.get("MAKEFLAGS")
        if cxx_opt:
            os.environ["MAKEFLAGS"] = " ".join(p for p in (old, f"OPT_FAST={cxx_opt}",
                                                           f"OPT_GLOBAL={cxx_opt}") if p)
        try:
            with _verilator_make_fix(simulator):
                runner.build(sources=[src], hdl_toplevel="top", build_dir=build_dir,
                             build_args=args, timescale=("1ns", "1ps"), always=False)
        finally:
            if old is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = old
    build_s = time.perf_counter() - t0
    root = str(Path(__file__).resolve().parent.parent)
    env = {"EB_PARAMS": json.dumps(params),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    t0 = time.perf_counter()
    results = runner.test(test_module="sim.tb_top", hdl_toplevel="top", build_dir=build_dir,
                          hdl_toplevel_lang="verilog",
                          test_dir=build_dir, extra_env=env,
                          results_xml=str(build_dir / f"results-{os.getpid()}.xml"))
    run_s = time.perf_counter() - t0
    n_tests, n_failed = get_results(Path(results))
    if n_tests == 0 or n_failed:
        raise AssertionError(f"sim.tb_top failed on {simulator} (see {build_dir})")
    return build_s, run_s


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.top_default", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--data", default=None, help="SST-2 directory (default: EDGEBERT_DATA)")
    ap.add_argument("--count", type=int, default=20, help="dev sentences with early exit")
    ap.add_argument("--tokens", type=int, default=32,
                    help="length of the all-layers sentence (0: none)")
    ap.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    ap.add_argument("--bench", choices=("tape", "cocotb"), default="tape",
                    help="tape (default): the generated Verilog bench of sim.tape_bench, no "
                         "Python in the loop; cocotb: sim.tb_top through VPI (slow at n = 16)")
    ap.add_argument("--out", type=Path, default=Path("build/top_default"))
    ap.add_argument("--cxx-opt", default=None,
                    help="C++ optimisation of the Verilator build (default: -O1 for the tape "
                         "bench; -O0 for cocotb, whose -Os build of the n = 16 top took over "
                         "an hour on 2 cores)")
    ap.add_argument("--reuse-build", action="store_true",
                    help="run the simulator build already in OUT (no Verilog, no build)")
    args = ap.parse_args(argv)
    cxx_opt = args.cxx_opt or ("-O1" if args.bench == "tape" else "-O0")

    import torch

    torch.set_num_threads(1)
    from hw.reram import external_verilog, hex_image
    from hw.top.memories import word_images
    from hw.top.top import Top
    from hw.verilog_out import to_verilog
    from sim.tape_run import run_cases, sentence_cases, top_kwargs
    from sim.top_bench import bench_setup
    from sw.data import load_split, resolve_data_dir
    from sw.image import read_image
    from sw.program.frontend import encode_texts
    from sw.program.layout import lay_out

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    lay = lay_out(read_image(args.image))
    dev = load_split(resolve_data_dir(args.data), "dev")
    texts = [ex.text_a for ex in dev]
    enc, _ = encode_texts(lay, texts)
    long = next((t for t, e in zip(texts, enc, strict=True) if e.length == args.tokens), None)
    if long is None and args.tokens:
        raise SystemExit(f"no dev sentence has {args.tokens} tokens")
    t0 = time.perf_counter()
    cases = sentence_cases(lay, [long], early_exit=False) if args.tokens else []
    if args.count:
        cases += sentence_cases(lay, texts[:args.count], early_exit=True)
    golden_s = time.perf_counter() - t0
    print(f"golden executor and cycle model: {len(cases)} sentences in {golden_s:.1f} s",
          flush=True)

    tape = args.bench == "tape"
    run_dir = out / (f"tape-{args.simulator}" if tape else args.simulator)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tape:
        # The top holds no image contents (the tapes load every memory; the ReRAM store reads
        # reram.hex from the run directory): one build serves every image of a memory map.
        text = (run_dir / "top.v").read_text() if args.reuse_build else None
        r = run_cases(lay, [c for _, c, _ in cases], simulator=args.simulator,
                      run_dir=run_dir, cxx_opt=cxx_opt, text=text)
        verilog_s, build_s, run_s = r["verilog_s"], r["build_s"], r["run_s"]
        print(f"Verilog {verilog_s:.1f} s (0: cached), {args.simulator} build {build_s:.1f} s "
              f"(0: unchanged), run {run_s:.1f} s", flush=True)
        # One wall time for the whole tape (loading every memory included), split over the
        # sentences in proportion to their cycles.
        total = sum(x["cycles"] for x in r["results"]) or 1
        for x in r["results"]:
            x["wall_s"] = run_s * x["cycles"] / total
        rtl = {"load_s": 0.0, "sentences": r["results"]}
    else:
        hexfile = run_dir / "reram.hex"
        hexfile.write_text(hex_image(lay.images["reram"], lay.memmap.reram_word_bytes))
        t0 = time.perf_counter()
        images = {m: v for m, v in lay.images.items() if m not in ("reram", "prog")}
        # The same top parameters as the tape bench's (tables, layers, rows and K the image
        # needs), with the image's contents in the memories.
        top = Top(memmap=lay.memmap, fmt=lay.fmt, init=word_images(lay.memmap, images),
                  reram_external=True, reram_init_file=str(hexfile), **top_kwargs(lay))
        text = None
        if not args.reuse_build:
            text = to_verilog(top, name="top") + external_verilog()
        verilog_s = time.perf_counter() - t0
        if text is not None:
            print(f"Verilog: {len(text.splitlines())} lines in {verilog_s:.1f} s", flush=True)
        setup = bench_setup(lay, top.engine_config)
        setup["sentences"] = [c for _, c, _ in cases]
        (out / "cases.json").write_text(json.dumps(setup))
        report_path = out / "rtl.json"
        build_s, run_s = run_verilog(text, run_dir, args.simulator,
                                     {"cases": str(out / "cases.json"),
                                      "report": str(report_path)}, cxx_opt=cxx_opt)
        print(f"{args.simulator} build {build_s:.1f} s, run {run_s:.1f} s", flush=True)
        rtl = json.loads(report_path.read_text())
    report = {"simulator": args.simulator, "bench": args.bench, "cxx_opt": cxx_opt,
              "verilog_s": verilog_s, "build_s": build_s, "golden_s": golden_s,
              "run_s": run_s, "load_s": rtl["load_s"], "sentences": []}
    for (length, case, _), got in zip(cases, rtl["sentences"], strict=True):
        report["sentences"].append({"tokens": length, "commands": len(case["commands"]),
                                    "exit_layer": case["exit_layer"], "cycles": got["cycles"],
                                    "wall_s": got["wall_s"],
                                    "cycles_per_s": got["cycles"] / got["wall_s"]})
    if args.tokens:
        units, mac = {}, 0
        for c in rtl["sentences"][0]["commands"]:
            units[c["op"]] = units.get(c["op"], 0) + c["cycles"]
            mac += c["mac"]
        total = rtl["sentences"][0]["cycles"]
        report["all_layers"] = {"cycles": total, "mac_cycles": mac, "mac_share": mac / total,
                                "unit_cycles": units,
                                "unit_share": {u: v / total for u, v in units.items()},
                                "mac_share_of_matmul": mac / (units.get("MATMUL", 0)
                                                              + units.get("MATMUL_ACT", 0))}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.tokens:
        a = report["sentences"][0]
        print(f"all layers, {a['tokens']} tokens: {a['commands']} commands, {a['cycles']} "
              f"cycles in {a['wall_s']:.1f} s ({a['cycles_per_s']:.0f} cycles/s); engine computing "
              f"{report['all_layers']['mac_share']:.1%} of the cycles")
        for u, v in sorted(units.items(), key=lambda kv: -kv[1]):
            print(f"  {u:10s} {v:8d} cycles ({v / total:.1%})")
    rest = report["sentences"][1 if args.tokens else 0:]
    if rest:
        print(f"{len(rest)} dev sentences with early exit: every command bit-exact, counters = "
          f"model; {sum(s['cycles'] for s in rest)} cycles in "
              f"{sum(s['wall_s'] for s in rest):.1f} s")
    print(f"Verilog {verilog_s:.1f} s, build {build_s:.1f} s, simulator run {run_s:.1f} s "
          f"({args.bench} bench; cocotb loads {rtl['load_s']:.1f} s); report: "
          f"{out / 'report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
