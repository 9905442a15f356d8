"""Evaluation of a student on a tokenized batch, and the calibration of its activation biases."""

import torch

from sw.adaptivfloat import quantize, weight_bias
from sw.device import model_device
from sw.student import EMB_SITES
from sw.train.config import CALIB_METHODS
from sw.train.data import rows

__all__ = ["evaluate_logits", "accuracy", "calibrate"]


@torch.no_grad()
def evaluate_logits(model, batch, *, batch_size=256):
    """``(L, N, C)`` off-ramp logits of ``model`` (eval mode) for a tokenized batch, on the CPU
    (each batch runs where the model is)."""
    was = model.training
    model.eval()
    device = model_device(model)
    order = torch.argsort(batch.attention_mask.sum(1))
    out = []
    for s in range(0, len(batch), batch_size):
        idx = order[s:s + batch_size]
        out.append(model(*(t.to(device) for t in rows(batch, idx))).cpu())
    model.train(was)
    cat = torch.cat(out, dim=1)
    logits = torch.empty_like(cat)
    logits[:, order] = cat
    return logits


def accuracy(preds, labels):
    """Fraction of ``preds`` equal to ``labels``."""
    return float((preds == labels).float().mean())


@torch.no_grad()
def calibrate(model, batch, *, method="mse", percentile=99.99, batch_size=128):
    """Choose every activation bias from ``batch`` by ``method`` ([F3]) and fix it in the
    model. ``max`` applies the weight rule to the largest magnitude, ``percentile`` to the
    given percentile of magnitudes, ``mse`` picks the bias with the least squared error on the
    sampled magnitudes (ties: the larger bias, which saturates less)."""
    if method not in CALIB_METHODS:
        raise ValueError(f"method must be one of {CALIB_METHODS}, not {method!r}")
    aq = model.act_q
    fmt = model.quant.fmt
    acts = model.quant.acts
    model.quant.acts = False
    aq.collect = {}
    try:
        evaluate_logits(model, batch, batch_size=batch_size)
        samples = {k: torch.cat(v).double() for k, v in aq.collect.items()}
    finally:
        aq.collect = None
        model.quant.acts = acts
    for (site, layer), v in samples.items():
        if method == "max":
            b = weight_bias(v.max().reshape(1), fmt)
        elif method == "percentile":
            b = weight_bias(torch.quantile(v.float(), percentile / 100).reshape(1), fmt)
        else:
            errs = [float(((quantize(v, b, fmt) - v) ** 2).mean())
                    for b in range(fmt.bias_max + 1)]
            best = min(errs)
            b = max(i for i, e in enumerate(errs) if e == best)
        if layer is None:
            aq.emb_bias[EMB_SITES.index(site)] = b
        else:
            aq.layer_bias[aq.site_index[site], layer] = b
    return method
