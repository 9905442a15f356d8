"""Where training runs: the ``--device`` values the commands accept, and a model's device."""

import torch

__all__ = ["resolve_device", "model_device"]


def resolve_device(name):
    """``torch.device`` for a ``--device`` value (``cpu``, ``cuda``, ``cuda:N``), refusing a GPU
    that is not there with a message that says so."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {name!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {name!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this PyTorch sees no CUDA GPU "
                             f"(torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s)")
    return dev


def model_device(model):
    """The device ``model``'s parameters are on."""
    return next(model.parameters()).device
