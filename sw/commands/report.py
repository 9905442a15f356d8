"""``edgebert report``: JSON and plots for a trained student and its weight image."""

import argparse
import json
from pathlib import Path

HELP = """\
Writes report.json and three plots (accuracy vs. average exit layer, sparsity per tensor,
memory breakdown of the weight image) from a training run's metrics.json and, if given, its
weight image.
"""


def register(sub):
    p = sub.add_parser("report", help="JSON and plots for a trained student and its image",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", type=Path, default=Path("runs/student/metrics.json"),
                   help="metrics.json of a training run (default: runs/student/metrics.json)")
    p.add_argument("--image", type=Path, default=None, help="its weight image (.ebimg)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/student/report"),
                   help="output directory (default: runs/student/report)")
    p.set_defaults(func=run)


def run(args):
    from sw.image import read_image
    from sw.report import write_report

    if not args.metrics.is_file():
        raise FileNotFoundError(f"metrics file {str(args.metrics)!r} does not exist")
    metrics = json.loads(args.metrics.read_text())
    img = read_image(args.image) if args.image is not None else None
    size = args.image.stat().st_size if args.image is not None else None
    rep, paths = write_report(metrics, args.out, img, size)
    d = rep["dev"]
    print(f"dev: all layers {d['accuracy_all_layers']:.4f}, early exit "
          f"{d['accuracy_early_exit']:.4f} at {d['avg_layers']:.2f} layers")
    for p in paths:
        print(f"wrote {p}")
