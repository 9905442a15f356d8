"""``edgebert bench golden``: the golden executor on a whole dev split, timed, for every
committed image, beside the float fake-quant evaluation of the same image.

Prints, per image: sentences, seconds and sentences per second of the golden executor with early
exit on (the target: the 872 SST-2 dev sentences in at most 30 s on a 2-core machine), its
accuracy, and the float path's seconds and accuracy, in one run so the ratio is measured side
by side. Threads: --threads (default 2).
"""

import json
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def register(sub):
    p = sub.add_parser("golden", help="golden executor speed on a dev split, per image",
                       description=__doc__)
    p.add_argument("images", nargs="*", type=Path,
                   help="weight images (default: every committed image in sw/assets)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--no-float", action="store_true", help="skip the float path")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=run)


def run(args):
    import torch

    from sw.commands.evaluate import evaluate_image
    from sw.data import load_split
    from sw.image import read_image
    from sw.program.layout import lay_out
    from sw.program.run import run_texts

    torch.set_num_threads(args.threads)
    images = args.images or sorted(ASSETS.glob("*.ebimg"))
    dev = load_split(args.data, "dev")
    labels = torch.tensor([e.label for e in dev])
    texts = [e.text_a for e in dev]
    pairs = [e.text_b for e in dev] if dev[0].text_b is not None else None
    rows = []
    for path in images:
        img = read_image(path)
        t0 = time.perf_counter()
        lay = lay_out(img)
        runs = run_texts(lay, texts, pairs, early_exit=True)
        golden_s = time.perf_counter() - t0
        row = {"image": str(path), "sentences": len(dev), "threads": args.threads,
               "golden_s": round(golden_s, 2),
               "golden_sentences_per_s": round(len(dev) / golden_s, 1),
               "golden_accuracy_early_exit": float((runs.label == labels).double().mean()),
               "avg_exit_layer": float(runs.exit_layer.double().mean())}
        if not args.no_float:
            t0 = time.perf_counter()
            res = evaluate_image(img, dev)
            row["float_s"] = round(time.perf_counter() - t0, 2)
            row["float_accuracy_early_exit"] = res["accuracy_early_exit"]
            row["float_over_golden_time"] = round(row["float_s"] / golden_s, 2)
        print(json.dumps(row))
        rows.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0
