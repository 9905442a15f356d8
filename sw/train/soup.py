"""A soup of trained students: the element-wise mean of two or more finished runs of the same
recipe (Wortsman et al., ICML 2022, "Model soups"), pruned, calibrated and evaluated again.

The ingredients share the student configuration, the token map, the pruning configuration and
the data split (seed and held-out slice); they differ in what they trained for (``train.epochs``
or ``train.order_seed``; ``train.seed`` also draws the held-out slice, so it must agree). Their
pruned weights are averaged as stored (pruned positions count as zero), the averaged matrices
are pruned again to the ingredients' sparsity in the recipe's blocks by magnitude (a finished
student keeps no movement scores; the masks of two runs of the default recipe agree on about
97 % of the blocks), the activation biases are calibrated again on the recipe's calibration
slice, and the threshold, exit predictor and DVFS tables are chosen again on the held-out
slice. The result is an ordinary ``student.safetensors`` that ``edgebert export`` reads.
"""

import dataclasses
import json
import time
from pathlib import Path

import torch

from sw.compress import mask_from_scores
from sw.tokenizer import default_model_dir
from sw.train.checkpoint import load_student, save_student
from sw.train.config import TrainConfig
from sw.train.loop import _Log, _prepare_data, calibrate_and_finish

# What must be equal across ingredients, by config section: the model, its pruning and the
# data split the calibration, threshold and dev figures depend on.
_SAME_TRAIN_KEYS = ("holdout", "holdout_min_words", "calib_examples", "calib_method",
                    "calib_percentile", "max_exit_loss", "predictor_bins", "dvfs_mhz",
                    "dvfs_mv", "vocab_min_count", "seed", "train_limit")


def _read(path):
    path = Path(path)
    if path.is_dir():
        path = path / "student.safetensors"
    model, metrics = load_student(path)
    if "config" not in metrics:
        raise ValueError(f"{path} carries no training config in its metrics; a soup needs "
                         f"students written by `edgebert train`")
    return path, model, metrics


def _check_same(paths, configs, models):
    first = configs[0]
    for p, c, m in zip(paths[1:], configs[1:], models[1:], strict=True):
        if c["student"] != first["student"] or c["prune"] != first["prune"]:
            raise ValueError(f"{p} has another student or pruning configuration than "
                             f"{paths[0]}; a soup needs runs of the same recipe")
        for k in _SAME_TRAIN_KEYS:
            if c["train"].get(k) != first["train"].get(k):
                raise ValueError(f"{p} has train.{k} = {c['train'].get(k)!r}, {paths[0]} has "
                                 f"{first['train'].get(k)!r}; a soup needs the same data split "
                                 f"and calibration settings")
        if not torch.equal(m.vocab_map, models[0].vocab_map):
            raise ValueError(f"{p} keeps other tokens than {paths[0]} (vocab_map differs)")


@torch.no_grad()
def average_students(models, block):
    """The mean of ``models``' weights, written into the first; pruned again to their
    sparsity in ``block``-wide blocks (the token table row-wise). Returns that model."""
    states = [m.state_dict() for m in models]
    base = models[0]
    prunable = set(base.prunable())
    new = {}
    for k, v in states[0].items():
        if k.endswith("mask") or k.startswith("act_q.") or not v.is_floating_point():
            new[k] = v.clone()
            continue
        owner = k[:-len(".weight")]
        if owner in prunable and k.endswith(".weight"):
            vals = [s[k] * s[owner + ".mask"] for s in states]
        elif k == "word.weight":
            vals = [s[k] * s["word_mask"] for s in states]
        else:
            vals = [s[k] for s in states]
        new[k] = torch.stack(vals).mean(0)
    for name in prunable:
        sparsity = 1.0 - float(states[0][name + ".mask"].mean())
        mask = mask_from_scores(new[name + ".weight"].abs(), sparsity, block)
        new[name + ".mask"] = mask
        new[name + ".weight"] = new[name + ".weight"] * mask
    sparsity = 1.0 - float(states[0]["word_mask"].mean())
    new["word_mask"] = mask_from_scores(new["word.weight"].abs(), sparsity, 1)
    new["word.weight"] = new["word.weight"] * new["word_mask"]
    base.load_state_dict(new)
    return base


def soup_students(ingredients, train_examples, dev_examples, out_dir, *, model_dir=None,
                  echo=False):
    """Average the finished students in ``ingredients`` (directories or ``student.safetensors``
    files), calibrate and evaluate the mean as :func:`~sw.train.train` does, and write
    ``student.safetensors`` and ``metrics.json`` to ``out_dir``; returns the metrics."""
    if len(ingredients) < 2:
        raise ValueError(f"a soup needs at least two trained students, got {len(ingredients)}")
    read = [_read(p) for p in ingredients]
    paths = [p for p, _, _ in read]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ValueError("a soup's ingredients must be different students")
    out_dir = Path(out_dir)
    if any(p.parent.resolve() == out_dir.resolve() for p in paths):
        raise ValueError(f"the soup's output directory {str(out_dir)!r} holds one of its "
                         f"ingredients; choose another")
    models = [m for _, m, _ in read]
    metrics_in = [mt for _, _, mt in read]
    configs = [mt["config"] for mt in metrics_in]
    _check_same(paths, configs, models)
    t_start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / "train.log", echo)
    log(f"soup of {len(paths)} students: {', '.join(map(str, paths))}")
    cfg = TrainConfig.from_dict(configs[0])
    # The calibration slice, held-out slice and dev set only; no teacher targets needed.
    data_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, augment=0,
                                                                  hidden_beta=0.0))
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    d = _prepare_data(data_cfg, model_dir, train_examples, dev_examples, None, None, None,
                      None)
    model = average_students(models, cfg.prune.block)  # quantized, in eval mode (load_student)
    r = cfg.train
    metrics = calibrate_and_finish(model, d, r)
    first = metrics_in[0]
    metrics.update({
        # Training time of the soup = its ingredients' training, summed, plus the mean.
        "train_s": sum(float(mt.get("train_s", 0.0)) for mt in metrics_in)
        + time.time() - t_start,
        "n_train": first.get("n_train"), "n_augmented": first.get("n_augmented"),
        "n_holdout": r.holdout, "n_dev": len(d.dev_labels),
        "vocab_kept": first.get("vocab_kept"),
        "kd": first.get("kd"), "config": configs[0], "device": "cpu",
        "student_config": model.config.to_dict(),
        "soup": [str(p) for p in paths],
        "soup_dev_accuracy": [mt["dev"]["accuracy_all_layers"] for mt in metrics_in],
    })
    save_student(out_dir / "student.safetensors", model, metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    dv = metrics["dev"]
    log(f"soup dev accuracy (quantized, all layers) {dv['accuracy_all_layers']:.4f} "
        f"(ingredients {', '.join(f'{a:.4f}' for a in metrics['soup_dev_accuracy'])}); "
        f"early exit {dv['accuracy_early_exit']:.4f} at {dv['avg_layers']:.2f} layers")
    return metrics

