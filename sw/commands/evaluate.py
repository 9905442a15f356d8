"""``edgebert evaluate``: accuracy and early exit of a weight image on a GLUE dev set."""

import argparse
import json
from pathlib import Path

HELP = """\
Rebuilds the student from a weight image (computing with exactly the image's AdaptivFloat
codes, activation biases, span masks and exit threshold) and reports its accuracy on the dev
split: all layers, and with entropy early exit at the image's threshold (average layers run).
"""


def register(sub):
    p = sub.add_parser("evaluate", help="accuracy of a weight image on a dev set",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.set_defaults(func=run)


def evaluate_image(img, dev_examples):
    """Dev metrics of an image: accuracy (all layers, early exit) and average layers."""
    from sw.export import model_from_image, vocab_digest
    from sw.student import early_exit
    from sw.tokenizer import WordPiece, encode_examples
    from sw.train import evaluate_logits

    if img.meta.get("vocab_sha256") != vocab_digest():
        raise ValueError("the image's token ids refer to another vocabulary than the installed "
                         "all-MiniLM-L6-v2 one (vocab_sha256 differs)")
    model = model_from_image(img)
    tok = WordPiece(max_len=model.config.max_len)
    batch, labels = encode_examples(tok, dev_examples)
    logits = evaluate_logits(model, batch)
    preds, layers = early_exit(logits, img.meta["threshold"])
    return {"accuracy_all_layers": float((logits[-1].argmax(-1) == labels).float().mean()),
            "accuracy_early_exit": float((preds == labels).float().mean()),
            "avg_layers": float(layers.float().mean()), "n": len(labels)}


def run(args):
    import torch

    from sw.data import load_split
    from sw.image import read_image

    torch.set_num_threads(args.threads)
    img = read_image(args.image)
    res = evaluate_image(img, load_split(args.data, "dev"))
    print(f"{args.image}: dev accuracy {res['accuracy_all_layers']:.4f} (all layers), "
          f"{res['accuracy_early_exit']:.4f} with early exit at {res['avg_layers']:.2f} of "
          f"{img.model['layers']} layers, {res['n']} sentences")
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2))
