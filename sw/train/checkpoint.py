"""Checkpoints: resumable training state, and the trained student ``edgebert export`` reads."""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sw.student import Student, StudentConfig

__all__ = ["save_ckpt", "load_ckpt", "load_opt", "save_student", "load_student"]


def save_ckpt(path, model, opt, pruner, proj, meta, average=None):
    """Model, hidden-state map, pruning scores, weight average, optimizer and RNG state,
    written atomically."""
    tensors = {f"model.{k}": v.cpu().contiguous() for k, v in model.state_dict().items()}
    if proj is not None:
        tensors.update({f"hproj.{k}": v.cpu().contiguous()
                        for k, v in proj.state_dict().items()})
    tensors.update({f"pruner.{k}": v.cpu().contiguous() for k, v in pruner.state().items()})
    if average is not None:
        tensors.update({f"average.{k}": v.cpu().contiguous()
                        for k, v in average.state().items()})
    if opt is not None:
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).cpu().contiguous()
    tensors["rng"] = torch.get_rng_state()
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, tmp, metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def load_ckpt(path):
    """(tensors, metadata) of a checkpoint written by :func:`save_ckpt`."""
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return load_file(path), meta


def load_opt(opt, tensors):
    """Restore ``opt``'s state from checkpoint ``tensors``."""
    sd = opt.state_dict()
    state = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_student(path, model, metrics):
    """The trained student with its config and results (what ``edgebert export`` reads)."""
    tensors = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"student_config": json.dumps(model.config.to_dict()),
            "metrics": json.dumps(metrics)}
    save_file(tensors, path, metadata=meta)


def load_student(path):
    """(model in eval mode with weight and activation quantization on, metrics)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student checkpoint {str(path)!r} does not exist")
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "student_config" not in meta:
        raise ValueError(f"{path} is not a student checkpoint (no student_config)")
    model = Student(StudentConfig.from_dict(json.loads(meta["student_config"])))
    model.load_state_dict(load_file(path))
    model.quant.weights = model.quant.acts = True
    return model.eval(), json.loads(meta.get("metrics", "{}"))
