"""``edgebert sim``: sentences through the accelerator's RTL, driven through its buses."""

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HELP = """\
Builds the accelerator's Verilog (AXI4-Lite registers, AXI4 memory windows and the top) and runs
each sentence on it in a cocotb simulation, driven only through its buses (sim/tb_system.py):
the host loads every memory image and the program, starts, and after the IRQ reads the
logits, the exit layer, the DVFS decision and the counters. Prints what `edgebert run` prints,
computed by the RTL, and the simulated cycles, wall time and simulated cycles per second.

  edgebert sim sw/assets/sst2_default.ebimg --sentence "a gorgeous , witty film ." \\
      --simulator verilator
  edgebert sim tiny.ebimg --small --sentence "a gorgeous , witty film ." --waves

The accelerator is generated with the image's memory map (the defaults of hw.memmap for its
n), or with --small the registered n = 4 block's (edgebert verilog -b accelerator). Builds are
cached under build/sim/ (Verilator: about a minute for n = 4, several for n = 16).
"""


def add_common(p):
    """The options `edgebert sim` and `edgebert compare` share."""
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--simulator", choices=("icarus", "verilator"), default="icarus",
                   help="HDL simulator (default: icarus)")
    p.add_argument("--small", action="store_true",
                   help="generate the small n = 4 accelerator of `edgebert verilog -b "
                        "accelerator` (for tiny images) instead of the image's memory map")
    p.add_argument("--no-early-exit", action="store_true",
                   help="run every layer (ENTROPY never stops the program)")
    p.add_argument("--backpressure", type=float, default=0.3,
                   help="probability that a bus channel pauses in a cycle (default: 0.3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")


def register(sub):
    p = sub.add_parser("sim", help="run sentences on the accelerator's RTL through its buses",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    p.add_argument("--sentence", action="append", metavar="TEXT", required=True,
                   help="a sentence to run (repeatable)")
    p.add_argument("--mhz", default="100,500",
                   help="clock frequencies for the latency, comma-separated (default: 100,500)")
    p.add_argument("--waves", action="store_true",
                   help="record every signal (Icarus: FST, Verilator: VCD) and print the path")
    p.set_defaults(func=run)


def prepare(args, texts):
    """``(image, layout, accelerator, jobs)`` of ``texts`` for the options of ``args``."""
    import torch

    from sim.system_bench import accelerator_for, build_job, small_memmap
    from sw.image import read_image
    from sw.program.executor import GoldenExecutor
    from sw.program.layout import lay_out

    if not 0 <= args.backpressure < 1:
        raise ValueError(f"--backpressure must be in [0, 1), not {args.backpressure}")
    torch.set_num_threads(args.threads)
    img = read_image(args.image)
    lay = lay_out(img, small_memmap() if args.small else None)
    ex = GoldenExecutor(lay)
    jobs = [build_job(lay, t, early_exit=not args.no_early_exit, executor=ex) for t in texts]
    return img, lay, accelerator_for(lay, small=args.small), jobs


def rtl_runs(img, results, jobs):
    """A :class:`sw.program.run.SentenceRuns`-shaped view of the RTL results, for
    :func:`sw.commands.run.describe`."""
    import torch

    from hw.regmap import ENTROPY_FRAC

    layers = img.model["layers"]
    n = len(results)
    ent = torch.full((n, layers), float("nan"), dtype=torch.float64)
    dvfs = torch.full((n, 4), -1, dtype=torch.int64)
    summaries = []
    for i, (res, job) in enumerate(zip(results, jobs, strict=True)):
        by_pc = {c["pc"]: c for c in job["commands"]}
        for c in res["commands"]:
            want = by_pc.get(c["pc"], {})
            if want.get("op") == "ENTROPY" and "entropy" in c:
                ent[i, want["layer"] - 1] = c["entropy"] / (1 << ENTROPY_FRAC)
            if want.get("op") == "DVFS" and "dvfs" in c:
                dvfs[i] = torch.tensor(c["dvfs"])
        cyc = res["counters"]["CYCLES"]
        summaries.append({"cycles": cyc, "commands": res["final"]["commands"],
                          "mac_share": res["counters"]["MAC_CYCLES"] / max(cyc, 1)})
    return SimpleNamespace(
        tokens=[j["tokens"] for j in jobs],
        truncated=torch.tensor([j["truncated"] for j in jobs]),
        label=torch.tensor([r["final"]["label"] for r in results]),
        exit_layer=torch.tensor([r["final"]["exit_layer"] for r in results]),
        entropy=ent, dvfs=dvfs, summaries=summaries)


def simulate(args, img, acc, jobs):
    """Run ``jobs``; ``(SystemRun, wall seconds)``, or ``None`` after printing why the
    simulation did not finish every job."""
    from sim.system_bench import run_system

    t0 = time.perf_counter()
    run = run_system(acc, jobs, simulator=args.simulator, backpressure=args.backpressure,
                     waves=getattr(args, "waves", False))
    wall = time.perf_counter() - t0
    if len(run.results) < len(jobs):
        print(f"edgebert {args.command}: error: the {args.simulator} simulation stopped after "
              f"{len(run.results)} of {len(jobs)} sentences: {run.failure}", file=sys.stderr)
        return None
    return run, wall


def run(args):
    from sw.commands.run import _mhz, describe

    mhz = _mhz(args.mhz)
    img, lay, acc, jobs = prepare(args, args.sentence)
    done = simulate(args, img, acc, jobs)
    if done is None:
        return 1
    run_, wall = done
    runs = rtl_runs(img, run_.results, jobs)
    for i, res in enumerate(run_.results):
        print(f"sentence {i + 1}: {args.sentence[i]!r}")
        for line in describe(runs, i, img, mhz):
            print(f"  {line.replace('modelled cycles', 'RTL cycles', 1)}")
        st = res["status"]
        if st["error"]:
            print(f"  ERROR {st['error_name']} at command {st['error_pc']}")
    t = run_.timing
    sim_cycles = sum(r["run_sim_cycles"] for r in run_.results)
    run_wall = sum(r["run_wall_s"] for r in run_.results)
    print(f"{args.simulator}: build {t.get('build_s', 0):.1f} s, simulation {t.get('run_s', 0):.1f}"
          f" s (wall {wall:.1f} s in all); the programs ran {sim_cycles:,} simulated clock "
          f"cycles (bus traffic of the single steps included) in {run_wall:.1f} s: "
          f"{sim_cycles / max(run_wall, 1e-9):,.0f} cycles/s")
    if run_.waves:
        print(f"waves: {run_.waves}")
    bad = [r for r in run_.results if r["status"]["error"] or r["mismatch"]]
    for r in bad:
        print(f"mismatch with the golden model: {r['mismatch']} (edgebert compare shows every "
              f"command)")
    return 1 if bad else 0
