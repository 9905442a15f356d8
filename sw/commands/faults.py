"""``edgebert faults``: accuracy of the golden executor with a faulty ReRAM embedding store."""

import argparse
import json
from pathlib import Path

HELP = """\
Injects multi-level-cell faults into the ReRAM image of the embedding store (row pointers,
masks, values, position and segment tables; sw/program/faults.py, after NVMExplorer's model:
cells of 1, 2 or 3 bits, a fault moves a cell to an adjacent level), runs the dev split through
the golden executor with early exit (what the chip computes from those bytes) and plots the
accuracy against the bit-error rate for each cell type. A second sweep injects faults into one
stored part at a time (masks, values, row pointers) to show which hurts most. Writes
faults.json and two plots to --out.

examples:
  edgebert faults sw/assets/sst2_default.ebimg --data /path/to/sst2 \\
      --ber 1e-6,1e-5,1e-4,1e-3,1e-2
  edgebert faults IMAGE --data DIR --bits 2,3 --slc-masks --coding gray --limit 200
"""

PART_STUDY = ("word.masks", "word.values", "word.rowptr")


def register(sub):
    p = sub.add_parser("faults", help="accuracy against ReRAM bit-error rate per cell type",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("--ber", default="1e-6,1e-5,1e-4,1e-3,1e-2",
                   help="bit-error rates, comma-separated (default: %(default)s)")
    p.add_argument("--bits", default="1,2,3",
                   help="bits per cell to study, comma-separated (default: %(default)s)")
    p.add_argument("--part-bits", type=int, default=2,
                   help="bits per cell of the one-part-at-a-time sweep (default: 2; 0: skip it)")
    p.add_argument("--coding", choices=("binary", "gray"), default="binary",
                   help="level coding of a cell: plain binary as NVMExplorer, or Gray "
                        "(default: binary)")
    p.add_argument("--slc-masks", action="store_true",
                   help="keep the bitmasks in single-level cells (fault-free)")
    p.add_argument("--seed", type=int, default=0, help="fault seed (default: 0)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N dev sentences (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/faults"),
                   help="output directory (default: runs/faults)")
    p.set_defaults(func=run)


def _floats(text, what):
    try:
        out = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, not {text!r}") from None
    if not out:
        raise ValueError(f"{what} must list at least one number")
    return out


class _Accuracy:
    """Accuracy of a layout on prepared sentence groups (one program per length)."""

    def __init__(self, lay, texts, labels):
        import torch

        from sw.program.compiler import compile_program
        from sw.program.executor import GoldenExecutor
        from sw.program.frontend import encode_texts

        enc, _ = encode_texts(lay, texts)
        groups = {}
        for i, e in enumerate(enc):
            groups.setdefault(e.length, []).append(i)
        self.groups = [(idx, compile_program(lay, t).program_bytes(),
                        torch.stack([enc[i].rows for i in idx]),
                        torch.stack([enc[i].segments for i in idx]))
                       for t, idx in sorted(groups.items())]
        self.labels = torch.as_tensor(labels)
        self.weights = GoldenExecutor(lay)

    def __call__(self, lay):
        import torch

        from sw.program.executor import GoldenExecutor

        ex = GoldenExecutor(lay)
        # Only the ReRAM differs: share the decoded weight matrices.
        ex._matrices = self.weights._matrices
        pred = torch.empty_like(self.labels)
        layers = torch.empty_like(self.labels)
        for idx, prog, rows, segs in self.groups:
            r = ex.run(prog, rows, segs)
            pred[idx] = r.label
            layers[idx] = r.exit_layer
        return float((pred == self.labels).float().mean()), float(layers.float().mean())


def run(args):
    import torch
    from tqdm import tqdm

    from sw.data import load_split
    from sw.image import read_image
    from sw.program.faults import inject
    from sw.program.layout import lay_out

    torch.set_num_threads(args.threads)
    bers = _floats(args.ber, "--ber")
    bits = [int(b) for b in _floats(args.bits, "--bits")]
    for b in bits + ([args.part_bits] if args.part_bits else []):
        if b not in (1, 2, 3):
            raise ValueError(f"bits per cell must be 1, 2 or 3, not {b}")
    for r in bers:
        if not 0 <= r <= 1:
            raise ValueError(f"a bit-error rate is in [0, 1], not {r:g}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    img = read_image(args.image)
    lay = lay_out(img)
    examples = load_split(args.data, "dev")[:args.limit]
    if any(e.text_b is not None for e in examples):
        raise ValueError("sentence-pair tasks are not supported by the fault study yet")
    acc = _Accuracy(lay, [e.text_a for e in examples], [e.label for e in examples])
    slc = ("word.masks",) if args.slc_masks else ()
    base, base_layers = acc(lay)
    runs = [(k, None, r) for k in bits for r in bers]
    if args.part_bits:
        runs += [(args.part_bits, p, r) for p in PART_STUDY for r in bers]
    rows = []
    for k, part, r in tqdm(runs, desc="fault runs"):
        parts = (part,) if part else None
        kw = {"parts": parts} if parts else {}
        faulty, rep = inject(lay, k, r, args.seed, slc=slc, coding=args.coding, **kw)
        a, layers = acc(faulty)
        rows.append({"bits_per_cell": k, "part": part or "all", "ber": r, "accuracy": a,
                     "loss_points": (base - a) * 100, "avg_exit_layer": layers,
                     "measured_ber": rep.bit_error_rate, "flipped_bits": rep.flipped_bits,
                     "faulty_cells": rep.faulty_cells})
    highest = {}
    for k in bits:
        ok = [x["ber"] for x in rows if x["bits_per_cell"] == k and x["part"] == "all"
              and x["loss_points"] <= 1.0]
        highest[str(k)] = max(ok) if ok else None
    worst = None
    if args.part_bits:
        top = max(bers)
        loss = {p: next(x["loss_points"] for x in rows if x["part"] == p and x["ber"] == top)
                for p in PART_STUDY}
        worst = {"bits_per_cell": args.part_bits, "ber": top, "loss_points": loss,
                 "hurts_most": max(loss, key=loss.get)}
    rep = {"image": str(args.image), "sentences": len(examples), "seed": args.seed,
           "coding": args.coding, "slc_masks": args.slc_masks, "baseline_accuracy": base,
           "baseline_avg_exit_layer": base_layers,
           "highest_ber_within_1_point": highest, "part_study": worst, "runs": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.json").write_text(json.dumps(rep, indent=2))
    paths = _plots(args.out, rep, bits, bers)
    print(f"baseline accuracy {base:.4f} ({len(examples)} sentences)")
    for k in bits:
        h = highest[str(k)]
        print(f"{k} bit(s) per cell: highest BER with <= 1 point lost: "
              f"{'none of those tried' if h is None else f'{h:g}'}")
    if worst:
        print(f"one part at a time ({worst['bits_per_cell']} bits per cell, BER {worst['ber']:g})"
              f": " + ", ".join(f"{p} -{v:.1f} points" for p, v in worst["loss_points"].items())
              + f"; hurts most: {worst['hurts_most']}")
    for p in [args.out / "faults.json", *paths]:
        print(f"wrote {p}")


def _plots(out, rep, bits, bers):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    rows = rep["runs"]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for k in bits:
        sel = [x for x in rows if x["bits_per_cell"] == k and x["part"] == "all"]
        ax.plot([x["ber"] for x in sel], [100 * x["accuracy"] for x in sel], "o-",
                label=f"{k} bit{'s' if k > 1 else ''} per cell")
    ax.axhline(100 * rep["baseline_accuracy"], color="gray", ls="--", label="no faults")
    ax.axhline(100 * rep["baseline_accuracy"] - 1, color="gray", ls=":", label="1 point lost")
    ax.set_xscale("log")
    ax.set_xlabel("bit-error rate")
    ax.set_ylabel("dev accuracy (%)")
    ax.set_title(f"ReRAM embedding store faults ({rep['coding']} levels"
                 f"{', masks in SLC' if rep['slc_masks'] else ''})")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "accuracy_vs_ber.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    if rep["part_study"]:
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for p in PART_STUDY:
            sel = [x for x in rows if x["part"] == p]
            ax.plot([x["ber"] for x in sel], [100 * x["accuracy"] for x in sel], "o-",
                    label=f"only {p}")
        ax.axhline(100 * rep["baseline_accuracy"], color="gray", ls="--", label="no faults")
        ax.set_xscale("log")
        ax.set_xlabel("bit-error rate")
        ax.set_ylabel("dev accuracy (%)")
        ax.set_title(f"Faults in one stored part ({rep['part_study']['bits_per_cell']} bits "
                     f"per cell)")
        ax.legend()
        fig.tight_layout()
        paths.append(out / "accuracy_by_part.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
