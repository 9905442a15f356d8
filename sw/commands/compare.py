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

  edgebert compare sw/assets/sst2_default.ebimg --sentence "a gorgeous , witty film ." \\
      --simulator verilator
  edgebert compare IMAGE --data ../shared/data/sst2 --count 20 --simulator verilator
  edgebert compare tiny.ebimg --small --sentence "a gorgeous , witty film ."
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
