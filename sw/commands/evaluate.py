"""``edgebert evaluate``: accuracy and early exit of a weight image on a GLUE dev set."""

import argparse
import json
from pathlib import Path

HELP = """\
Reports the accuracy of a weight image on the dev split: with all layers, and with entropy
early exit at the image's threshold (average layers run).

--backend golden (default) runs the image's command program on the golden executor: integer
AdaptivFloat codes, the special-function units' tables, exact accumulators; what the chip
computes. --backend float rebuilds the float student with fake quantization from the image's
codes (torch softmax and LayerNorm), the training tool's view of the same image.
"""


def register(sub):
    p = sub.add_parser("evaluate", help="accuracy of a weight image on a dev set",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("--backend", choices=("golden", "float"), default="golden",
                   help="golden executor (default) or the float fake-quant student")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.set_defaults(func=run)


def _check_vocab(img):
    from sw.export import vocab_digest

    if img.meta.get("vocab_sha256") != vocab_digest():
        raise ValueError("the image's token ids refer to another vocabulary than the installed "
                         "all-MiniLM-L6-v2 one (vocab_sha256 differs)")


def evaluate_image(img, dev_examples):
    """Dev metrics of an image on the float fake-quant student: accuracy (all layers, early
    exit) and average layers."""
    from sw.export import model_from_image
    from sw.student import early_exit
    from sw.tokenizer import WordPiece, encode_examples
    from sw.train import evaluate_logits

    _check_vocab(img)
    model = model_from_image(img)
    tok = WordPiece(max_len=model.config.max_len)
    batch, labels = encode_examples(tok, dev_examples)
    logits = evaluate_logits(model, batch)
    preds, layers = early_exit(logits, img.meta["threshold"])
    return {"accuracy_all_layers": float((logits[-1].argmax(-1) == labels).float().mean()),
            "accuracy_early_exit": float((preds == labels).float().mean()),
            "avg_layers": float(layers.float().mean()), "n": len(labels),
            "labels_all_layers": logits[-1].argmax(-1), "labels_early_exit": preds,
            "exit_layer": layers}


def evaluate_golden(img, dev_examples, *, progress=False):
    """The same metrics on the golden executor (see :func:`sw.program.run.golden_metrics`)."""
    from sw.program.layout import lay_out
    from sw.program.run import golden_metrics

    _check_vocab(img)
    m = golden_metrics(lay_out(img), dev_examples, progress=progress)
    return {k: m[k] for k in ("accuracy_all_layers", "accuracy_early_exit", "avg_layers", "n")}


def run(args):
    import torch

    from sw.data import load_split
    from sw.image import read_image

    torch.set_num_threads(args.threads)
    img = read_image(args.image)
    dev = load_split(args.data, "dev")
    if args.backend == "golden":
        res = evaluate_golden(img, dev, progress=True)
    else:
        res = evaluate_image(img, dev)
    res = {k: v for k, v in res.items() if isinstance(v, int | float)}
    res["backend"] = args.backend
    print(f"{args.image}: dev accuracy {res['accuracy_all_layers']:.4f} (all layers), "
          f"{res['accuracy_early_exit']:.4f} with early exit at {res['avg_layers']:.2f} of "
          f"{img.model['layers']} layers, {res['n']} sentences ({args.backend} backend)")
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2))
