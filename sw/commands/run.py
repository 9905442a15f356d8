"""``edgebert run``: sentences through the chip in software (the golden executor)."""

import argparse
import json
from pathlib import Path

HELP = """\
Tokenizes each sentence for the image, compiles the command program for its length, executes
the program words on the golden executor (integer codes, the SFU tables, exact accumulators:
what the accelerator computes) and prints, per sentence: the tokens, each layer's entropy and
exit decision, the predicted label and exit layer, the DVFS decision made after layer 1, and
the modelled cycles with the latency at each clock of --mhz.

  edgebert run sw/assets/sst2_default.ebimg --sentence "a gorgeous , witty film ."
  edgebert run IMAGE --data ../shared/data/sst2 --count 20 --json run.json

Sentences longer than the image's max_len are truncated, and the output says so.
"""


def register(sub):
    p = sub.add_parser("run", help="run sentences through the chip in software",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sentence", action="append", metavar="TEXT",
                     help="a sentence to run (repeatable)")
    src.add_argument("--data", metavar="DIR", help="a GLUE task directory: run its --split")
    p.add_argument("--split", choices=("dev", "train"), default="dev",
                   help="split of --data (default: dev)")
    p.add_argument("--count", type=int, default=None,
                   help="only the first COUNT sentences of --data (default: all)")
    p.add_argument("--mhz", default="100,500",
                   help="clock frequencies for the latency, comma-separated (default: 100,500)")
    p.add_argument("--no-early-exit", action="store_true",
                   help="run every layer (ENTROPY never stops the program)")
    p.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.set_defaults(func=run)


def _mhz(text):
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--mhz must be comma-separated numbers, not {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"--mhz must list positive frequencies, not {text!r}")
    return vals


def _latency(cycles, mhz):
    return ", ".join(f"{cycles / m:,.1f} us at {m:g} MHz" for m in mhz)


def describe(runs, i, img, mhz, gold=None):
    """Lines describing sentence ``i`` of a :class:`~sw.program.run.SentenceRuns`."""
    layers = img.model["layers"]
    thr = img.meta["threshold"]
    toks = runs.tokens[i]
    note = " (truncated to max_len)" if runs.truncated[i] else ""
    lines = [f"tokens ({len(toks)}{note}): {' '.join(toks)}", "layer  entropy  exit"]
    ex = int(runs.exit_layer[i])
    for layer in range(layers):
        h = float(runs.entropy[i, layer])
        if h != h:  # not run
            break
        mark = "yes, stop" if layer + 1 == ex and ex < layers else (
            "yes" if h < thr else "no")
        lines.append(f"{layer + 1:>5}  {h:7.4f}  {mark}")
    g = "" if gold is None else f" (gold {gold})"
    lines.append(f"label {int(runs.label[i])}{g} at layer {ex} of {layers} "
                 f"(entropy threshold {thr:.4f})")
    b, pred, v, f = runs.dvfs[i].tolist()
    if b >= 0:
        dv = img.meta.get("dvfs", {})
        mv, mz = dv.get("mv", []), dv.get("mhz", [])
        point = f" = {mv[v]} mV, {mz[f]} MHz" if v < len(mv) and f < len(mz) else ""
        lines.append(f"DVFS after layer 1: bin {b}, predicted exit layer {pred}, "
                     f"vcode {v}, fcode {f}{point}")
    else:
        lines.append("DVFS: not reached (the sentence left at layer 1)")
    s = runs.summaries[i]
    lines.append(f"modelled cycles {s['cycles']:,} ({s['commands']} commands, matrix engine "
                 f"computing {100 * s['mac_share']:.1f} %): {_latency(s['cycles'], mhz)}")
    return lines


def record(runs, i, gold=None):
    s = runs.summaries[i]
    return {"tokens": runs.tokens[i], "truncated": bool(runs.truncated[i]),
            "label": int(runs.label[i]), "gold": gold, "exit_layer": int(runs.exit_layer[i]),
            "entropy": [None if h != h else h for h in runs.entropy[i].tolist()],
            "dvfs": dict(zip(("bin", "predicted_layer", "vcode", "fcode"),
                             runs.dvfs[i].tolist(), strict=True)),
            "cycles": s["cycles"], "unit_cycles": s["unit_cycles"], "mac_share": s["mac_share"]}


def run(args):
    import torch

    from sw.image import read_image
    from sw.program.layout import lay_out
    from sw.program.run import run_texts

    torch.set_num_threads(args.threads)
    mhz = _mhz(args.mhz)
    img = read_image(args.image)
    lay = lay_out(img)
    gold = None
    if args.data is not None:
        from sw.data import load_split

        if args.count is not None and args.count < 1:
            raise ValueError(f"--count must be positive, not {args.count}")
        ex = load_split(args.data, args.split, limit=args.count)
        a = [e.text_a for e in ex]
        b = [e.text_b for e in ex] if ex[0].text_b is not None else None
        gold = [e.label for e in ex]
    else:
        a, b = args.sentence, None
    runs = run_texts(lay, a, b, early_exit=not args.no_early_exit, progress=len(a) > 50)
    out = []
    for i in range(len(runs)):
        g = None if gold is None else gold[i]
        if len(runs) <= 50 or gold is None:
            print(f"sentence {i + 1}: {a[i]!r}")
            for line in describe(runs, i, img, mhz, g):
                print(f"  {line}")
        out.append(record(runs, i, g))
    n = len(runs)
    cyc = runs.cycles.double().mean().item()
    print(f"{n} sentence(s): average exit layer {runs.exit_layer.double().mean():.2f} of "
          f"{img.model['layers']}, {cyc:,.0f} modelled cycles: {_latency(cyc, mhz)}")
    if gold is not None:
        acc = (runs.label == torch.tensor(gold)).double().mean().item()
        print(f"accuracy {acc:.4f} on {n} {args.split} sentences")
    if runs.truncated.any():
        print(f"{int(runs.truncated.sum())} sentence(s) truncated to max_len "
              f"({img.model['max_len']} tokens)")
    if args.json is not None:
        args.json.write_text(json.dumps({"image": str(args.image), "mhz": mhz,
                                         "sentences": out}, indent=1))
    return 0
