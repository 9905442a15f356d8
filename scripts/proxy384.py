"""Float proxy of a student config: labels only (or cached teacher logits), no pruning, no
quantization, no off-ramps; dev accuracy of the last layer every ``--eval-every`` steps.

    OMP_NUM_THREADS=1 nice -n 19 python scripts/proxy384.py --config configs/default.toml \\
        -o runs/proxy384 --steps 3000 --batch 32 --lr 1e-4
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from sw.data import load_split
from sw.teacher import bucketed_order
from sw.tokenizer import default_model_dir
from sw.train.calibrate import accuracy, evaluate_logits
from sw.train.config import load_config
from sw.train.data import rows
from sw.train.loop import _Log, _lr, _make_student, _prepare_data
from sw.train.losses import kd_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    cfg.train.augment = 0
    cfg.train.hidden_beta = 0.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(out / "proxy.log", True)
    t0 = time.time()
    train_ex = load_split(os.environ["EDGEBERT_DATA"], "train")
    dev_ex = load_split(os.environ["EDGEBERT_DATA"], "dev")
    torch.manual_seed(cfg.train.seed)
    md = default_model_dir()
    d = _prepare_data(cfg, md, train_ex, dev_ex, None, None, None, None)
    model, scfg, kept = _make_student(cfg, d, md, None, log)
    log(f"config {json.dumps(scfg.to_dict())}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=cfg.train.weight_decay)
    lengths = d.fit.attention_mask.sum(1)
    order = bucketed_order(lengths, args.batch,
                           math.ceil(args.steps * args.batch / len(lengths)), cfg.train.seed)
    last = scfg.layers - 1
    model.train()
    loss_avg, results = None, []
    for step in range(args.steps):
        idx = order[step * args.batch:(step + 1) * args.batch]
        ids, mask, types = rows(d.fit, idx)
        logits = model(ids, mask, types, ramps=[last])[0]
        loss = kd_loss(logits, None, d.fit_labels[idx], 1.0, 0.0)
        for g in opt.param_groups:
            g["lr"] = _lr(step, args.steps, args.lr, cfg.train.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if (step + 1) % 100 == 0:
            log(f"step {step + 1}/{args.steps} loss {loss_avg:.4f} {time.time() - t0:.0f} s")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            with torch.no_grad():
                dl = evaluate_logits(model, d.dev_batch)
            model.train()
            acc = accuracy(dl[-1].argmax(-1), d.dev_labels)
            results.append({"step": step + 1, "dev": acc, "s": time.time() - t0})
            log(f"dev accuracy (float, layer {scfg.layers}) at step {step + 1}: {acc:.4f}")
    (out / "proxy.json").write_text(json.dumps({"config": cfg.to_dict(), "steps": args.steps,
                                                "batch": args.batch, "lr": args.lr,
                                                "threads": args.threads, "results": results},
                                               indent=1))
    torch.save(model.state_dict(), out / "proxy_model.pt")


if __name__ == "__main__":
    main()
