"""Training losses: distillation from the teacher's logits and its hidden states."""

import torch
from torch.nn import functional as F

__all__ = ["kd_loss", "hidden_loss", "state_map", "teacher_layer_map", "layer_loss"]


def kd_loss(logits, teacher, labels, temperature, alpha):
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels)."""
    loss = 0.0
    if alpha > 0:
        t = temperature
        kl = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher / t, -1),
                      reduction="batchmean", log_target=True)
        loss = alpha * t * t * kl
    if alpha < 1:
        loss = loss + (1 - alpha) * F.cross_entropy(logits, labels)
    return loss


def hidden_loss(x, target, valid, proj, kind, tokens=None):
    """Mean squared error between the projected student states ``proj(x)`` and the teacher's,
    over real tokens ("tokens") or between their means over real tokens ("mean").

    ``tokens`` (kind "tokens" only): divide the summed squared error by this many tokens (times
    the width) instead of the batch's own real tokens, e.g. the batch size times the training
    set's mean sentence length, so that every token of the training set weighs the same
    whichever batch it is in."""
    y = proj(x)
    if kind == "mean":
        if tokens is not None:
            raise ValueError("hidden_loss: tokens applies to kind 'tokens' only")
        m = valid.unsqueeze(-1).to(y.dtype)
        count = m.sum(1).clamp(min=1)
        return F.mse_loss((y * m).sum(1) / count, (target * m).sum(1) / count)
    if tokens is not None:
        return F.mse_loss(y[valid], target[valid], reduction="sum") / (tokens * y.shape[-1])
    return F.mse_loss(y[valid], target[valid])


def state_map(hidden, width, from_teacher):
    """The linear map from the student's last states (``hidden`` wide) to the teacher's
    (``width``) for the hidden-state loss. A student whose shared layer was taken from a
    teacher layer at the teacher's width has its states in the teacher's basis: its map
    starts as the identity; otherwise at PyTorch's random initialisation."""
    proj = torch.nn.Linear(hidden, width)
    if from_teacher and hidden == width:
        with torch.no_grad():
            proj.weight.copy_(torch.eye(hidden))
            proj.bias.zero_()
    return proj


def teacher_layer_map(student_layers, teacher_layers):
    """For each student application i, the teacher layer (1-based, the index into the
    teacher's ``hidden_states``, whose 0 is the embedding output) its states are held to:
    round((i + 1) * teacher_layers / student_layers), the uniform map of TinyBERT; with equal
    depths application i meets teacher layer i + 1."""
    return [max(1, round((i + 1) * teacher_layers / student_layers))
            for i in range(student_layers)]


def layer_loss(hidden, teacher_hidden, valid, layer_map):
    """Mean over the student's applications of the squared error between application i's
    token states ``hidden[i]`` and the teacher's ``teacher_hidden[layer_map[i]]`` over real
    tokens (``valid``); equal widths, no learned map."""
    return sum(F.mse_loss(h[valid], teacher_hidden[j][valid])
               for h, j in zip(hidden, layer_map, strict=True)) / len(layer_map)
