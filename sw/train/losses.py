"""Training losses: distillation from the teacher's logits and its hidden states."""

from torch.nn import functional as F

__all__ = ["kd_loss", "hidden_loss"]


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


def hidden_loss(x, target, valid, proj, kind):
    """Mean squared error between the projected student states ``proj(x)`` and the teacher's,
    over real tokens ("tokens") or between their means over real tokens ("mean")."""
    y = proj(x)
    if kind == "mean":
        m = valid.unsqueeze(-1).to(y.dtype)
        count = m.sum(1).clamp(min=1)
        return F.mse_loss((y * m).sum(1) / count, (target * m).sum(1) / count)
    return F.mse_loss(y[valid], target[valid])
