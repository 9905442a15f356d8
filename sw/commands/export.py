"""``edgebert export``: write the weight image of a trained student (and $readmemh files)."""

import argparse
import json
from pathlib import Path

HELP = """\
Reads a trained student (student.safetensors from `edgebert train`) and writes its weight image
(.ebimg): embeddings for the ReRAM, encoder and off-ramp weights in the bitmask SRAM format, and
the aux data (LayerNorm parameters, span masks, activation biases, exit threshold, predictor and
DVFS tables). The image is read back and checked before the command returns. With --hex, also
writes one $readmemh file per memory and a memory map.
"""


def register(sub):
    p = sub.add_parser("export", help="write the weight image of a trained student",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("student", type=Path, nargs="?",
                   default=Path("runs/student/student.safetensors"),
                   help="trained student (default: runs/student/student.safetensors)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/student/model.ebimg"),
                   help="image file (default: runs/student/model.ebimg)")
    p.add_argument("-n", "--vector-width", type=int, default=16,
                   help="the accelerator's vector width n (default: 16)")
    p.add_argument("--hex", type=Path, default=None, metavar="DIR",
                   help="also write $readmemh files to DIR")
    p.add_argument("--word-bytes", type=int, default=16,
                   help="bytes per $readmemh line (default: 16)")
    p.add_argument("--summary", type=Path, default=None, metavar="JSON",
                   help="also write the image's size and the run's recorded metrics as JSON")
    p.set_defaults(func=run)


def run(args):
    from sw.export import build_image
    from sw.image import HwParams, export_hex, image_bytes, read_image, write_image
    from sw.train import load_student

    model, metrics = load_student(args.student)
    img = build_image(model, metrics, hw=HwParams(n=args.vector_width, fmt=model.quant.fmt))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    size = write_image(img, args.out)
    back = read_image(args.out, hw=img.hw)
    if image_bytes(back) != args.out.read_bytes():
        raise ValueError(f"{args.out} does not read back to the same bytes")
    parts = ", ".join(f"{k} {v} B" for k, v in img.section_bytes().items())
    print(f"wrote {args.out}: {size} bytes ({parts})")
    if args.summary is not None:
        dev = {k: v for k, v in metrics["dev"].items() if k != "sweep"}
        summary = {"image_bytes": size, "sections": img.section_bytes(), "dev": dev,
                   "holdout": {k: v for k, v in metrics["holdout"].items() if k != "sweep"},
                   "threshold": metrics["threshold"], "sparsity": metrics["sparsity"],
                   "spans": metrics["spans"], "calibration": metrics["calibration"],
                   "train_s": metrics["train_s"], "n_train": metrics["n_train"],
                   "kd": metrics["kd"], "vocab_kept": metrics["vocab_kept"],
                   "config": metrics["config"]}
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.summary}")
    if args.hex is not None:
        export_hex(img, args.hex, word_bytes=args.word_bytes)
        print(f"wrote $readmemh files and memory_map.json to {args.hex}")
