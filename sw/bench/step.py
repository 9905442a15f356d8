"""``edgebert bench step``: one training step of a config's student, float32 against the fast
step (``train.fast``, :mod:`sw.train.fast`), side by side in one run.

For each phase of the recipe's schedule (float; AdaptivFloat weights, from
``train.qat_weights_from``; weights and activations, from ``train.qat_acts_from``) it times the
backbone's step as the recipe runs it (forward to the last off-ramp with the token states,
loss, backward, gradient clipping, AdamW) on random sentences of ``--tokens`` tokens, and
prints milliseconds per step for both steps, their ratio, and the schedule-weighted mean. The
student is built from the config (``student.vocab_size`` by ``--vocab``, as the recipe keeps
about 11,600 of 30,522 SST-2 rows); its weights are random, which costs the same.

A third column, ``fast_float32_ms``, is the fast step with float32 products
(``train.fast_products = "float32"``: only the dropout draws and AdamW change).

``--processes N`` adds one row: the float32 step in N processes at once, each with
``--threads`` / N threads, against one process with all ``--threads`` (both timed the same way,
the median block of each phase, in worker processes), and the throughput ratio: how many more
steps per second N side-by-side runs (``edgebert train --ingredients N``) make than one.
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
    p.add_argument("--processes", type=int, default=1,
                   help="also time the float32 step in this many processes at once, "
                        "--threads shared among them (default: 1: not timed)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=run)


KINDS = {"float32": (False, "float32"), "fast": (True, "bfloat16"),
         "fast_float32": (True, "float32")}


def time_step(cfg, vocab, tokens, kind, weights, acts, steps, repeat, seed=0, stat=min):
    """Seconds per backbone step of step ``kind`` (a :data:`KINDS` key): the fastest (or
    ``stat``) of ``repeat`` blocks' means over ``steps``."""
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
    fast, products = KINDS[kind]
    set_fast(model, fast, products=products)
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
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return stat(times)


def _shares(r):
    return {"float": r.qat_weights_from, "weights_af8": r.qat_acts_from - r.qat_weights_from,
            "weights_and_acts_af8": 1.0 - r.qat_acts_from}


_PHASES = [(False, False), (True, False), (True, True)]


def _worker(config, vocab, tokens, steps, repeat, threads, barrier, queue):
    """One process of the side-by-side row: the schedule-weighted float32 step, median blocks."""
    import statistics

    import torch

    from sw.train import load_config

    torch.set_num_threads(threads)
    cfg = load_config(config)
    barrier.wait()
    mean = sum(share * time_step(cfg, vocab, tokens, "float32", w, a, steps, repeat,
                                 stat=statistics.median)
               for share, (w, a) in zip(_shares(cfg.train).values(), _PHASES, strict=True))
    queue.put(mean)


def _in_processes(args, n, threads):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(args.config), args.vocab, args.tokens,
                                               args.steps, args.repeat, threads, barrier, queue))
             for _ in range(n)]
    for p in procs:
        p.start()
    got = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a timing process failed (exit status {p.exitcode})")
    return sum(got) / n


def run(args):
    import torch

    from sw.train import load_config

    for name in ("vocab", "tokens", "steps", "repeat", "threads", "processes"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1, not {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    r = cfg.train
    share = _shares(r)
    rows, mean = [], dict.fromkeys(KINDS, 0.0)
    for phase, (w, a) in zip(share, _PHASES, strict=True):
        t = {kind: time_step(cfg, args.vocab, args.tokens, kind, w, a, args.steps, args.repeat)
             for kind in KINDS}
        for kind in mean:
            mean[kind] += share[phase] * t[kind]
        row = {"phase": phase, "share_of_steps": round(share[phase], 3),
               "float32_ms": round(1e3 * t["float32"], 1), "fast_ms": round(1e3 * t["fast"], 1),
               "speedup": round(t["float32"] / t["fast"], 2),
               "fast_float32_ms": round(1e3 * t["fast_float32"], 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    summary = {"phase": "schedule_mean", "config": str(args.config), "threads": args.threads,
               "batch": r.batch_size, "tokens": args.tokens,
               "float32_ms": round(1e3 * mean["float32"], 1),
               "fast_ms": round(1e3 * mean["fast"], 1),
               "speedup": round(mean["float32"] / mean["fast"], 2),
               "fast_float32_ms": round(1e3 * mean["fast_float32"], 1)}
    print(json.dumps(summary), flush=True)
    rows.append(summary)
    if args.processes > 1:
        each = max(1, args.threads // args.processes)
        one = _in_processes(args, 1, args.threads)
        side = _in_processes(args, args.processes, each)
        row = {"phase": "side_by_side", "kind": "float32", "processes": args.processes,
               "threads_each": each, "one_process_ms": round(1e3 * one, 1),
               "per_process_ms": round(1e3 * side, 1),
               "throughput_ratio": round(args.processes * one / side, 2)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0
