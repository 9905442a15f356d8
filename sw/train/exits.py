"""Early exit and DVFS: the entropy-threshold sweep and choice, the exit-layer predictor, the
DVFS table, and the metrics of a trained student (:func:`finish`)."""

import math

import torch

from sw.student import early_exit, entropy
from sw.train.calibrate import accuracy, evaluate_logits

__all__ = ["sweep_thresholds", "choose_threshold", "exit_predictor", "dvfs_table", "finish"]


def sweep_thresholds(logits, labels, n_points=101):
    """Accuracy and average exit layer for entropy thresholds from 0 to ln(C)."""
    n_labels = logits.shape[-1]
    rows = []
    for thr in torch.linspace(0, math.log(n_labels), n_points).tolist():
        preds, layers = early_exit(logits, thr)
        rows.append({"threshold": thr, "accuracy": accuracy(preds, labels),
                     "avg_layers": float(layers.float().mean())})
    return rows


def choose_threshold(rows, full_accuracy, max_loss_points):
    """The threshold with the fewest average layers whose accuracy is within
    ``max_loss_points`` of ``full_accuracy`` (ties: the smaller threshold)."""
    ok = [r for r in rows if r["accuracy"] >= full_accuracy - max_loss_points / 100 - 1e-12]
    return min(ok, key=lambda r: (r["avg_layers"], r["threshold"]))


def exit_predictor(logits, threshold, n_bins):
    """Exit-layer predictor for DVFS: layer-1 entropy, in ``n_bins`` equal bins over
    [0, ln C], → predicted exit layer (ceil of the mean exit layer of the bin's examples;
    empty bins take the next lower bin's value, never below 1, and the table is made
    non-decreasing in entropy). Returns (bin edges, table, stats)."""
    n_layers, _, n_labels = logits.shape
    h1 = entropy(logits[0])
    _, layers = early_exit(logits, threshold)
    edges = torch.linspace(0, math.log(n_labels), n_bins + 1)
    idx = (torch.bucketize(h1, edges[1:-1], right=True)).clamp(0, n_bins - 1)
    table = []
    for b in range(n_bins):
        sel = layers[idx == b]
        if len(sel):
            table.append(int(math.ceil(float(sel.float().mean()))))
        else:
            table.append(table[-1] if table else 1)
    table = torch.tensor(table).cummax(0).values.clamp(1, n_layers)
    pred = table[idx]
    stats = {"mae_layers": float((pred - layers).abs().float().mean()),
             "under_predicted": float((pred < layers).float().mean())}
    return edges, table, stats


def dvfs_table(predictor, n_layers, mhz, mv):
    """(voltage code, frequency code) per predictor bin: the slowest operating point whose
    frequency still finishes the predicted layers in the time all ``n_layers`` take at the
    highest frequency (the latency target)."""
    f_max = mhz[-1]
    codes = []
    for layers in predictor.tolist():
        need = f_max * layers / n_layers
        k = next(i for i, f in enumerate(mhz) if f >= need - 1e-9)
        codes.append((k, k))
    return codes


@torch.no_grad()
def finish(model, hold, hold_labels, dev_batch, dev_labels, r):
    """Accuracies, the threshold sweep and choice, predictor and DVFS tables, sparsity."""
    n_layers = model.config.layers
    q_w, q_a = model.quant.weights, model.quant.acts
    model.quant.weights = model.quant.acts = False
    dev_float = evaluate_logits(model, dev_batch)
    model.quant.weights, model.quant.acts = q_w, q_a
    hold_logits = evaluate_logits(model, hold)
    dev_logits = evaluate_logits(model, dev_batch)
    hold_full = accuracy(hold_logits[-1].argmax(-1), hold_labels)
    sweep = sweep_thresholds(hold_logits, hold_labels)
    chosen = choose_threshold(sweep, hold_full, r.max_exit_loss)
    thr = chosen["threshold"]
    preds, layers = early_exit(dev_logits, thr)
    edges, table, pstats = exit_predictor(hold_logits, thr, r.predictor_bins)
    dvfs = dvfs_table(table, n_layers, r.dvfs_mhz, r.dvfs_mv)
    return {
        "dev": {
            "accuracy_float": accuracy(dev_float[-1].argmax(-1), dev_labels),
            "accuracy_all_layers": accuracy(dev_logits[-1].argmax(-1), dev_labels),
            "accuracy_per_ramp": [accuracy(x.argmax(-1), dev_labels) for x in dev_logits],
            "accuracy_early_exit": accuracy(preds, dev_labels),
            "avg_layers": float(layers.float().mean()),
            "avg_layers_fraction": float(layers.float().mean()) / n_layers,
            "sweep": sweep_thresholds(dev_logits, dev_labels),
        },
        "holdout": {"accuracy_all_layers": hold_full, "chosen": chosen, "sweep": sweep},
        "threshold": thr,
        "predictor": {"edges": edges.tolist(), "layers": table.tolist(), **pstats},
        "dvfs": {"codes": dvfs, "mhz": list(r.dvfs_mhz), "mv": list(r.dvfs_mv)},
        "calibration": r.calib_method,
        "sparsity": model.sparsity(),
        "spans": model.spans().tolist(),
    }
