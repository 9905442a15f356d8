"""``edgebert compare``: the golden executor and the accelerator's RTL, command by command."""

import argparse

from sw.commands.sim import add_common, prepare, simulate

HELP = """\
Runs each sentence on the golden executor (the chip in software) and on the accelerator's RTL,
driven only through its buses in single-step mode (sim/tb_system.py): after every command the
host reads back, through the AXI4 window, every act word the command wrote, ENTROPY's H and
exit flag, the DVFS decision and the command's cycle counter. Prints a table per command (pc,
opcode, RTL cycles, cycle-model cycles, buffers equal) and, on a mismatch, the first differing
command, buffer and element with both values. Exits with status 1 on any mismatch.

--bench tape runs the accelerator's top (the same sequencer, units and memories, without the
bus slaves) at its host ports instead, from a Verilog testbench that plays the loads and the
sentences from tapes and dumps every command's counters and act words (sim/tape_bench.py): no
Python in the simulation loop, so the default image (n = 16) runs on Verilator in seconds
after a build of a few minutes (the Verilog is cached under build/sim/verilog, the build under
build/sim/verilator).

  edgebert compare sw/assets/sst2_default.ebimg --sentence "a gorgeous , witty film ." \\
      --simulator verilator
  edgebert compare IMAGE --data ../shared/data/sst2 --count 20 --simulator verilator
  edgebert compare tiny.ebimg --small --sentence "a gorgeous , witty film ."
  edgebert compare sw/assets/sst2_default.ebimg --bench tape --simulator verilator \
      --sentence "a gorgeous , witty , seductive movie ."
"""


def register(sub):
    p = sub.add_parser("compare", help="compare the RTL with the golden model, command by "
                                       "command", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sentence", action="append", metavar="TEXT",
                     help="a sentence to compare (repeatable)")
    src.add_argument("--data", metavar="DIR", help="a GLUE task directory: compare its --split")
    p.add_argument("--split", choices=("dev", "train"), default="dev",
                   help="split of --data (default: dev)")
    p.add_argument("--count", type=int, default=1,
                   help="the first COUNT sentences of --data (default: 1)")
    p.add_argument("--bench", choices=("axi", "tape"), default="axi",
                   help="axi (default): the accelerator through its buses, cocotbext-axi, single "
                        "step; tape: the top at its host ports from a Verilog tape bench (fast; "
                        "no bus slaves, no back-pressure)")
    p.set_defaults(func=run)


def table(job, res):
    """Lines of the per-command table of one sentence."""
    lines = ["   pc  op             RTL cycles  model cycles  buffers"]
    for pc, op, got, want, equal in res["rows"]:
        mark = "" if got == want else "  <- cycles differ"
        lines.append(f"{pc:>5}  {op:<12} {got:>12,}  {want:>12,}  "
                     f"{'equal' if equal else 'DIFFER'}{mark}")
    return lines


def run(args):
    if args.data is not None:
        from sw.data import load_split

        if args.count < 1:
            raise ValueError(f"--count must be positive, not {args.count}")
        texts = [e.text_a for e in load_split(args.data, args.split, limit=args.count)]
    else:
        texts = args.sentence
    if args.bench == "tape":
        return run_tape(args, texts)
    img, lay, acc, jobs = prepare(args, texts)
    done = simulate(args, img, acc, jobs)
    if done is None:
        return 1
    run_, wall = done
    bad = 0
    for i, (job, res) in enumerate(zip(jobs, run_.results, strict=True)):
        print(f"sentence {i + 1}: {texts[i]!r} ({len(job['tokens'])} tokens)")
        for line in table(job, res):
            print(f"  {line}")
        fin = res["final"]
        print(f"  label {fin['label']} (golden {job['final']['label']}), exit layer "
              f"{fin['exit_layer']} (golden {job['final']['exit_layer']}), "
              f"{res['counters']['CYCLES']:,} RTL cycles (model {job['final']['cycles']:,})")
        if res["mismatch"]:
            bad += 1
            print(f"  MISMATCH: {res['mismatch']}")
        else:
            print("  bit-exact: every command's buffers and cycles equal the golden model")
    t = run_.timing
    print(f"{len(jobs) - bad} of {len(jobs)} sentence(s) bit-exact on {args.simulator} "
          f"(build {t.get('build_s', 0):.1f} s, simulation {t.get('run_s', 0):.1f} s, "
          f"wall {wall:.1f} s)")
    return 1 if bad else 0


def run_tape(args, texts):
    """``--bench tape``: the top at its host ports (:mod:`sim.tape_run`)."""
    import time

    import torch

    from sim.system_bench import small_memmap
    from sim.tape_bench import TapeMismatch
    from sim.tape_run import run_cases, sentence_cases
    from sw.image import read_image
    from sw.program.layout import lay_out

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lay = lay_out(read_image(args.image), small_memmap() if args.small else None)
    cases = sentence_cases(lay, texts, early_exit=not args.no_early_exit)
    try:
        r = run_cases(lay, [c for _, c, _ in cases], simulator=args.simulator, small=args.small,
                      log=lambda m: print(m, flush=True))
    except TapeMismatch as e:
        print(f"MISMATCH: {e}")
        return 1
    for i, ((tokens, case, _), res) in enumerate(zip(cases, r["results"], strict=True)):
        print(f"sentence {i + 1}: {texts[i]!r} ({tokens} tokens)")
        rows = [(c["pc"], c["op"], got["cycles"], c["cycles"], True)
                for c, got in zip(case["commands"], res["commands"], strict=True)]
        for line in table(None, {"rows": rows}):
            print(f"  {line}")
        print(f"  exit layer {res['exit_layer']} (golden {case['exit_layer']}), "
              f"{res['cycles']:,} RTL cycles (model "
              f"{sum(c['cycles'] for c in case['commands']):,}), {res['compared_words']:,} act "
              f"words compared")
        print("  bit-exact: every command's act words, H, exit flag, DVFS decision and "
              "counters equal the golden model")
    cycles = sum(x["cycles"] for x in r["results"])
    print(f"{len(cases)} of {len(cases)} sentence(s) bit-exact on {args.simulator}, tape bench "
          f"(Verilog {r['verilog_s']:.1f} s, build {r['build_s']:.1f} s, simulation "
          f"{r['run_s']:.1f} s: {cycles:,} cycles, {cycles / max(r['run_s'], 1e-9):,.0f} "
          f"cycles/s; wall {time.perf_counter() - t0:.1f} s)")
    return 0
