"""``edgebert bench step``: one training step of a config's student, float32 against the fast
step (``train.fast``, :mod:`sw.train.fast`), side by side in one run.

For each phase of the recipe's schedule (float; AdaptivFloat weights, from
``train.qat_weights_from``; weights and activations, from ``train.qat_acts_from``) it times the
backbone's step as the recipe runs it (forward to the last off-ramp with the token states,
loss, backward, gradient clipping, AdamW) on random sentences of ``--tokens`` tokens, and
prints milliseconds per step for both steps, their ratio, and the schedule-weighted mean. The
student is built from the config (``student.vocab_size`` by ``--vocab``, as the recipe keeps
about 11,600 of 30,522 SST-2 rows); its weights are random, which costs the same.
"""

import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def register(sub):
    p = sub.add_parser("step", help="training step time, float32 against train.fast",
                       description=__doc__)
    p.add_argument("-c", "--config", type=Path, default=ROOT / "configs" / "default.toml",
                   help="recipe config (default: configs/default.toml)")
    p.add_argument("--vocab", type=int, default=11575,
                   help="token-table rows (default: 11575, the SST-2 recipe's kept vocabulary)")
    p.add_argument("--tokens", type=int, default=28,
                   help="tokens per sentence (default: 28, about the SST-2 training mean)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per case (default: 8)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed blocks per case, the fastest reported (default: 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=run)


def time_step(cfg, vocab, tokens, fast, weights, acts, steps, repeat, seed=0):
    """Fastest mean seconds per backbone step over ``repeat`` blocks of ``steps``."""
    import dataclasses

    import torch

    from sw.student import Student
    from sw.train.fast import set_fast

    torch.manual_seed(seed)
    r = cfg.train
    scfg = dataclasses.replace(cfg.student, vocab_size=vocab)
    if tokens > scfg.max_len:
        raise ValueError(f"--tokens must be at most student.max_len = {scfg.max_len}")
    model = Student(scfg).train()
    set_fast(model, fast)
    model.quant.weights, model.quant.acts = weights, acts
    model.act_q.observe = True
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay, fused=fast or None)
    ids = torch.randint(0, vocab, (r.batch_size, tokens))
    mask = torch.ones_like(ids)
    target = torch.randn(r.batch_size, tokens, scfg.hidden)

    def step():
        logits, hidden = model(ids, mask, ramps=[scfg.layers - 1], return_hidden=True)
        loss = logits[0].logsumexp(-1).mean() + (hidden[-1] - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for _ in range(2):
        step()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def run(args):
    import torch

    from sw.train import load_config

    for name in ("vocab", "tokens", "steps", "repeat", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1, not {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    r = cfg.train
    share = {"float": r.qat_weights_from, "weights_af8": r.qat_acts_from - r.qat_weights_from,
             "weights_and_acts_af8": 1.0 - r.qat_acts_from}
    rows, mean = [], {"float32": 0.0, "fast": 0.0}
    for phase, (w, a) in zip(share, [(False, False), (True, False), (True, True)], strict=True):
        t = {kind: time_step(cfg, args.vocab, args.tokens, kind == "fast", w, a, args.steps,
                             args.repeat)
             for kind in ("float32", "fast")}
        for kind in mean:
            mean[kind] += share[phase] * t[kind]
        row = {"phase": phase, "share_of_steps": round(share[phase], 3),
               "float32_ms": round(1e3 * t["float32"], 1), "fast_ms": round(1e3 * t["fast"], 1),
               "speedup": round(t["float32"] / t["fast"], 2)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {"phase": "schedule_mean", "config": str(args.config), "threads": args.threads,
               "batch": r.batch_size, "tokens": args.tokens,
               "float32_ms": round(1e3 * mean["float32"], 1),
               "fast_ms": round(1e3 * mean["fast"], 1),
               "speedup": round(mean["float32"] / mean["fast"], 2)}
    print(json.dumps(summary))
    rows.append(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0
