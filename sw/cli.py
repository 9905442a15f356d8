"""The ``edgebert`` command line. Subcommands live in :mod:`sw.commands`, one module each."""

import argparse
import importlib
import pkgutil
import sys

EPILOG = """\
typical flow:
  edgebert verilog                 write Verilog for every block to build/verilog and self-check it
  edgebert verilog --list          list the blocks and their parameters
  edgebert <command> --help        every command explains its options and defaults

Data: GLUE-format TSV directories, given on the command line or through EDGEBERT_DATA.
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgebert",
        description="EdgeBERT: compressed BERT and its edge accelerator, generated, simulated "
                    "and checked bit for bit against an integer golden model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    import sw.commands

    for info in sorted(pkgutil.iter_modules(sw.commands.__path__), key=lambda i: i.name):
        importlib.import_module(f"sw.commands.{info.name}").register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, OverflowError) as e:
        print(f"edgebert {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
