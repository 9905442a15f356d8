"""``edgebert bench synth``: resources and Fmax of every block, swept over the array size n.

Every registered block with an ``n`` parameter (the matrix engine and the special-function
units) is built for each n in the sweep (default 4, 8, 16); every other block once at its
defaults. Each build goes through :func:`sw.flows.synth.synthesize` (harness, Yosys, nextpnr)
on each board. A size that does not fit the device, or a build that fails, is a row with its
error, not a missing row. For the matrix engine (a block whose name contains ``matmul``,
``matrix`` or ``engine``, with n x n MACs per [H1]) the LUTs per MAC are reported.
``--no-dsp`` maps multipliers to LUTs (on the ECP5 every lane multiplier otherwise takes one
MULT18X18D, of which the 85F has 156).

Writes ``synth.json`` (every report) and ``synth.png`` (Fmax and LUTs against n) to the output
directory and prints a table. Builds run one at a time; give ``--nice 10`` on a shared machine.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

from sw.commands.synth import add_tool_options

DEFAULT_SIZES = (4, 8, 16)
_MAC_BLOCK = re.compile(r"matmul|matrix|engine")


def register(sub):
    p = sub.add_parser("synth", help="sweep FPGA synthesis over blocks and n",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", "--block", action="append", default=None, metavar="NAME",
                   help="only this block (repeatable; default: all registered blocks)")
    p.add_argument("--board", action="append", default=None, metavar="BOARD",
                   help="board, repeatable (default: ulx3s-85f)")
    p.add_argument("-n", "--sizes", type=_sizes, default=DEFAULT_SIZES, metavar="N,N,...",
                   help="values of n for blocks that have it (default: 4,8,16)")
    p.add_argument("-o", "--out", type=Path, default=Path("build/bench/synth"),
                   help="output directory (default: build/bench/synth)")
    p.add_argument("--markdown", action="store_true",
                   help="also print the table in Markdown (as in docs/flows.md)")
    add_tool_options(p)
    p.set_defaults(func=run)


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated integers, not {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive, not {text!r}")
    return sizes


def plan(table, names, sizes):
    """``[(name, params)]`` to build: each n for blocks that have it, else the defaults."""
    jobs = []
    for name in names:
        block = table[name]
        if "n" in block.params:
            jobs += [(name, {**block.params, "n": n}) for n in sizes]
        else:
            jobs.append((name, dict(block.params)))
    return jobs


def luts_per_mac(report):
    """LUTs per MAC of a matrix-engine report (n x n MACs), else None.

    Counted from Yosys, so a design that synthesised but does not fit the device has one too.
    """
    if ("block_cells" not in report or not _MAC_BLOCK.search(report["block"])
            or "n" not in report["params"]):
        return None
    return report["block_cells"]["luts"] / report["params"]["n"] ** 2


def run(args):
    from tqdm import tqdm

    from hw.registry import blocks
    from sw.flows.synth import FlowError, format_markdown, format_table, get_board, synthesize

    boards = [get_board(b) for b in (args.board or ["ulx3s-85f"])]
    table = blocks()
    names = args.block or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown block(s) {', '.join(unknown)}; known: {', '.join(table)}")
    jobs = [(board, name, params) for board in boards for name, params in plan(table, names,
                                                                                args.sizes)]
    reports = []
    t0 = time.perf_counter()
    for board, name, params in tqdm(jobs, desc="synth", unit="build", file=sys.stderr):
        tag = "-".join(f"{k}{v}" for k, v in params.items() if k == "n")
        build_dir = args.out / "builds" / "-".join(filter(None, (name, tag, board.name)))
        try:
            top = table[name].build(**params)
        except (ValueError, TypeError, OverflowError) as e:
            reports.append({"block": name, "board": board.name, "params": params,
                            "error": f"generator refused the parameters: {e}",
                            "kind": "bad_params"})
            continue
        try:
            r = synthesize(top, name=name, board=board, params=params, build_dir=build_dir,
                           seed=args.seed, nice=args.nice, timeout_s=args.timeout,
                           dsp=not args.no_dsp, lut_units=args.lut_unit,
                           router=args.router)
        except FlowError as e:
            r = {"block": name, "board": board.name, "params": params,
                 "error": str(e).splitlines()[0], "kind": e.kind, "log": str(e.log)}
            if e.block_cells is not None:
                r["block_cells"] = e.block_cells
        r["luts_per_mac"] = luts_per_mac(r)
        reports.append(r)
    wall = time.perf_counter() - t0

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synth.json").write_text(json.dumps(
        {"sizes": list(args.sizes), "boards": [b.name for b in boards], "wall_s": round(wall, 1),
         "reports": reports}, indent=2) + "\n")
    print(format_table([_labelled(r) for r in reports]))
    if args.markdown:
        print(format_markdown([_labelled(r) for r in reports]))
    for r in reports:
        if r.get("luts_per_mac") is not None:
            print(f"{r['block']} n={r['params']['n']} on {r['board']}: "
                  f"{r['luts_per_mac']:.1f} LUTs per MAC ({r['params']['n'] ** 2} MACs)")
    slow = [r for r in reports if "error" not in r and not r["meets_target"]]
    for r in slow:
        cp = r["critical_path"] or {}
        print(f"below target: {_labelled(r)['block']} on {r['board']}: {r['fmax_mhz']:.1f} MHz "
              f"< {r['target_mhz']:g} MHz; critical path {cp.get('from')} -> {cp.get('to')}")
    _plot(reports, args.out / "synth.png")
    print(f"{len(reports)} build(s) in {wall:.0f} s; reports: {args.out / 'synth.json'}, "
          f"plot: {args.out / 'synth.png'}")
    return 0


def _labelled(r):
    """The report with ``n`` shown in the block column where the block has it."""
    n = r.get("params", {}).get("n")
    return {**r, "block": f"{r['block']} n={n}" if n is not None else r["block"]}


def _plot(reports, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_f, ax_l) = plt.subplots(1, 2, figsize=(10, 4))
    series = {}
    for r in reports:
        if "error" in r:
            continue
        series.setdefault((r["block"], r["board"]), []).append(
            (r["params"].get("n", 0), r["fmax_mhz"], r["block_cells"]["luts"]))
    for (block, board), points in sorted(series.items()):
        points.sort()
        xs = list(range(len(points))) if len(points) == 1 else [p[0] for p in points]
        style = "o-" if len(points) > 1 else "s"
        ax_f.plot(xs, [p[1] for p in points], style, label=f"{block} ({board})")
        ax_l.plot(xs, [p[2] for p in points], style, label=f"{block} ({board})")
    for ax, label in ((ax_f, "Fmax (MHz)"), (ax_l, "LUT4 of the block")):
        ax.set_xlabel("n (blocks without n at 0)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    ax_l.set_yscale("log")
    ax_f.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
