"""``edgebert bench <target>``: benchmarks that print measured figures.

Targets are discovered from :mod:`sw.bench`; each module there adds one sub-command.
"""

import argparse
import importlib
import pkgutil


def register(sub):
    p = sub.add_parser(
        "bench", help="run a benchmark and print its figures",
        description="Benchmarks measure speed, utilisation and resources side by side in one "
                    "run and print the figures (and write JSON where a target says so).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    targets = p.add_subparsers(dest="target", metavar="<target>")
    import sw.bench

    for info in sorted(pkgutil.iter_modules(sw.bench.__path__), key=lambda i: i.name):
        importlib.import_module(f"sw.bench.{info.name}").register(targets)
    p.set_defaults(func=lambda args: _no_target(p))


def _no_target(parser):
    parser.print_help()
    return 2
