"""``edgebert train``: distil and compress a student on a GLUE task (the EdgeBERT recipe)."""

import argparse
from pathlib import Path

HELP = """\
Runs the whole recipe of configs/default.toml (or the file given): stage 1 trains the backbone
with distillation, adaptive attention span, pruning on a cubic schedule and AdaptivFloat
quantization-aware training; stage 2 trains the early off-ramps; then activation biases are
calibrated and the early-exit threshold, exit predictor and DVFS tables are chosen on a held-out
slice of the training set. Results are reported on dev.

Checkpoints (safetensors) go to the output directory; run the same command again to resume.
Override any setting with --set SECTION.KEY=VALUE, e.g. --set train.epochs=1 --set prune.block=1.

--device cuda trains on a CUDA GPU (the default recipe's 7,120 steps take about 67 minutes with
2 CPU threads); the student file is the same kind either way, and `edgebert export` and
`edgebert evaluate` run on the CPU.

--set train.fast=true takes the faster step (sw/train/fast.py): bfloat16 products in the linear
layers (float32 accumulation and master weights), dropout from 16-bit random draws and fused
AdamW, about 1.5 times faster per step on a CPU with AVX-512 BF16 (`edgebert bench step`
measures yours); calibration and every reported figure use the exact float32 products. In
two runs of the default recipe it cost 1.4 points of dev accuracy (docs/training.md): use it
to try ideas quickly, not for a final image.

--set train.average_from=F keeps, as the backbone's weights, their mean over every step from
fraction F of the backbone steps to the last (F >= prune.end, when the masks are final; 1.0:
the last weights): a one-run counterpart of --soup that costs no extra steps.

--ingredients N trains N runs of the recipe at once, each in its own process with --threads / N
threads and its own train.order_seed (the recipe's, then the next ones), into OUT/ingredient<i>,
and writes their soup (below) to OUT. On a 2-core CPU two one-thread runs take little longer
than one two-thread run (`edgebert bench step --processes 2` measures yours): two runs of the
default recipe took 76 min this way (whole batches), against about 150 min one after the other
(shifted batches); their soup was not better than the default image (docs/training.md). Run
the command again to resume: unfinished ingredients go on from their checkpoints.

--soup DIR DIR ... makes no new run: it averages finished students of the same recipe (e.g. two
runs with other train.epochs or train.order_seed; train.seed also draws the held-out slice,
so it must agree), prunes the mean again, calibrates it and chooses
its tables as a run does, and writes an ordinary student to --out (docs/training.md: the
default image is such a soup).
"""


def register(sub):
    p = sub.add_parser("train", help="distil and compress a student (EdgeBERT recipe)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", type=Path, default=Path("configs/default.toml"),
                   help="TOML config file (default: configs/default.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("--teacher", default="runs/teacher",
                   help="teacher directory with train_logits.safetensors, or 'none' to train "
                        "on labels only (default: runs/teacher)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/student"),
                   help="output directory (default: runs/student)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--device", default="cpu",
                   help="where to train: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--soup", nargs="+", type=Path, metavar="DIR",
                   help="average these finished students (directories with "
                        "student.safetensors) instead of training; -c, --set and --teacher "
                        "are not used (the ingredients carry their config)")
    p.add_argument("--ingredients", type=int, default=1, metavar="N",
                   help="train N runs at once (one process each, other train.order_seed) "
                        "and write their soup to --out (default: 1, one run)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args):
    import torch

    from sw.data import load_split
    from sw.device import resolve_device
    from sw.teacher import cached_augmented, cached_logits, cached_states
    from sw.train import load_config, train

    torch.set_num_threads(args.threads)
    if args.soup:
        if args.ingredients != 1:
            raise SystemExit("edgebert train: --soup averages finished runs; drop --ingredients")
        return _soup(args)
    if args.ingredients < 1:
        raise SystemExit(f"edgebert train: --ingredients must be at least 1, not "
                         f"{args.ingredients}")
    if args.threads < 1:
        raise SystemExit(f"edgebert train: --threads must be at least 1, not {args.threads}")
    try:
        resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(f"edgebert train: --device: {e}") from None
    cfg = load_config(args.config, args.set)
    if args.ingredients > 1:
        return _ingredients(args, cfg)
    train_ex = load_split(args.data, "train", limit=cfg.train.train_limit or None)
    dev_ex = load_split(args.data, "dev")
    logits = None
    if args.teacher != "none":
        logits, labels = cached_logits(args.teacher, len(train_ex))
        if not torch.equal(labels, torch.tensor([e.label for e in train_ex])):
            raise ValueError(f"cached teacher logits in {args.teacher} belong to other "
                             f"training data (labels differ)")
    augmented = None
    if cfg.train.augment:
        if args.teacher == "none":
            raise SystemExit("edgebert train: train.augment needs a teacher's augmented cache; "
                             "with --teacher none add --set train.augment=0")
        augmented = cached_augmented(args.teacher)
    states = aug_states = None
    if cfg.train.hidden_beta > 0:
        if args.teacher == "none":
            raise SystemExit("edgebert train: train.hidden_beta needs a teacher's cached states; "
                             "with --teacher none add --set train.hidden_beta=0")
        states = cached_states(args.teacher, "train", len(train_ex))
        if augmented is not None:
            aug_states = cached_states(args.teacher, "augment", len(augmented[0]))
    m = train(cfg, train_ex, dev_ex, args.out, teacher_logits=logits, augmented=augmented,
              teacher_states=states, augmented_states=aug_states,
              teacher_dir=None if args.teacher == "none" else args.teacher,
              echo=not args.quiet,
              progress=not args.quiet, device=args.device)
    d = m["dev"]
    print(f"dev accuracy: float {d['accuracy_float']:.4f}, quantized all layers "
          f"{d['accuracy_all_layers']:.4f}, early exit {d['accuracy_early_exit']:.4f} at "
          f"{d['avg_layers']:.2f} of {m['student_config']['layers']} layers; encoder sparsity "
          f"{m['sparsity']['encoder']:.3f}, embeddings {m['sparsity']['word']:.3f}; "
          f"{m['train_s']:.0f} s. Student in {args.out}/student.safetensors")


def _soup(args):
    from sw.data import load_split
    from sw.train.soup import soup_students

    if args.device != "cpu":
        raise SystemExit("edgebert train: --soup runs on the CPU; drop --device")
    if args.set:
        raise SystemExit("edgebert train: --soup takes its config from the ingredients; "
                         "drop --set")
    try:
        m = soup_students(args.soup, load_split(args.data, "train"), load_split(args.data, "dev"),
                          args.out, echo=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"edgebert train --soup: {e}") from None
    _print_soup(m, args.out)


def _ingredients(args, cfg):
    from sw.data import load_split
    from sw.train.parallel import order_seeds, train_ingredients
    from sw.train.soup import soup_students

    seeds = order_seeds(cfg.train, args.ingredients)
    if args.threads < args.ingredients:
        print(f"edgebert train: {args.ingredients} ingredients share {args.threads} thread(s); "
              f"each gets one", flush=True)
    common = ["-c", str(args.config), "--teacher", str(args.teacher), "--device", args.device]
    for item in args.set:
        common += ["--set", item]
    if args.data is not None:
        common += ["--data", str(args.data)]
    print(f"training {args.ingredients} ingredients (train.order_seed {seeds}) into "
          f"{args.out}/ingredient0..{args.ingredients - 1}", flush=True)
    try:
        dirs, wall = train_ingredients(common, seeds, args.out, args.threads,
                                       progress=not args.quiet)
    except RuntimeError as e:
        raise SystemExit(f"edgebert train --ingredients: {e}") from None
    print(f"ingredients done in {wall:.0f} s; making their soup", flush=True)
    m = soup_students(dirs, load_split(args.data, "train"), load_split(args.data, "dev"),
                      args.out, echo=not args.quiet)
    _print_soup(m, args.out, f"; ingredients {wall:.0f} s wall")


def _print_soup(m, out, extra=""):
    d = m["dev"]
    print(f"soup dev accuracy: float {d['accuracy_float']:.4f}, quantized all layers "
          f"{d['accuracy_all_layers']:.4f}, early exit {d['accuracy_early_exit']:.4f} at "
          f"{d['avg_layers']:.2f} of {m['student_config']['layers']} layers (ingredients "
          f"{', '.join(f'{a:.4f}' for a in m['soup_dev_accuracy'])}){extra}. Student in "
          f"{out}/student.safetensors")
