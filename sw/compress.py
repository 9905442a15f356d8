"""Compression ([S4]): pruning schedules and masks, movement scores, embedding pruning.

Pruning granularity follows the matrix engine ([H1], [H2]): it reads one weight vector
``W[k, c0:c0+n]`` per cycle (row ``k`` of the K x cols matrix the engine multiplies by, ``n``
consecutive output columns) and skips it when it is all zero. In ``nn.Linear`` layout
(out x in) that vector is ``weight[c0:c0+n, k]``, so a 1 x n block is ``n`` consecutive output
features of one input feature. ``block=1`` is unstructured pruning.
"""

from dataclasses import dataclass

import torch

from hw.checks import check_count

__all__ = ["cubic_sparsity", "block_scores", "mask_from_scores", "PruneConfig", "Pruner"]


def cubic_sparsity(step, *, start, end, final, initial=0.0):
    """Sparsity at ``step`` of the cubic schedule (Zhu & Gupta 2017, used by movement pruning):
    ``initial`` until ``start``, then ``final + (initial - final) * (1 - t)^3`` with
    ``t = (step - start) / (end - start)``, then ``final`` from ``end`` on."""
    if not 0.0 <= initial <= final < 1.0:
        raise ValueError(f"need 0 <= initial <= final < 1, not initial={initial!r}, "
                         f"final={final!r}")
    if end <= start:
        raise ValueError(f"end must be after start, not start={start!r}, end={end!r}")
    if step <= start:
        return initial
    if step >= end:
        return final
    t = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - t) ** 3


def block_scores(scores, block):
    """Sum ``(out, in)`` scores over 1 x ``block`` blocks ``[c0:c0+block, k]`` → (out/block, in)."""
    out_f, in_f = scores.shape
    if block < 1 or out_f % block:
        raise ValueError(f"block must divide the output features ({out_f}), not {block!r}")
    return scores.reshape(out_f // block, block, in_f).sum(1)


def mask_from_scores(scores, sparsity, block=1):
    """0/1 mask (same shape as ``scores``, out x in) keeping the highest-scoring blocks so that
    ``round(sparsity * n_blocks)`` blocks are zero."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), not {sparsity!r}")
    bs = block_scores(scores, block) if block > 1 else scores
    n_zero = int(round(sparsity * bs.numel()))
    keep = torch.ones(bs.numel(), dtype=scores.dtype, device=scores.device)
    if n_zero:
        # argsort is stable: ties are broken by position, so masks are deterministic.
        order = torch.argsort(bs.flatten(), stable=True)
        keep[order[:n_zero]] = 0
    keep = keep.view_as(bs)
    return keep.repeat_interleave(block, dim=0) if block > 1 else keep


@dataclass
class PruneConfig:
    """What is pruned, how and how far.

    ``method`` is ``magnitude`` (|W|) or ``movement`` (accumulated ``-W * dL/dW``, Sanh et al.
    2020); ``block`` is 1 (unstructured) or the engine's vector width n (1 x n blocks).
    ``encoder`` and ``embedding`` are the final sparsities reached at fraction ``end`` of the
    backbone stage, starting at fraction ``start``.
    """

    method: str = "magnitude"
    block: int = 16
    encoder: float = 0.5
    embedding: float = 0.6
    start: float = 0.1
    end: float = 0.6
    every: int = 25

    def __post_init__(self):
        if self.method not in ("magnitude", "movement"):
            raise ValueError(f"method must be 'magnitude' or 'movement', not {self.method!r}")
        check_count("block", self.block)
        for f in ("encoder", "embedding"):
            v = getattr(self, f)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{f} sparsity must be in [0, 1), not {v!r}")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"need 0 <= start < end <= 1, not start={self.start!r}, "
                             f"end={self.end!r}")
        check_count("every", self.every)


class Pruner:
    """Updates the masks of a :class:`~sw.student.Student` on the cubic schedule."""

    def __init__(self, model, config: PruneConfig, n_steps):
        self.model = model
        self.config = config
        self.n_steps = n_steps
        self.scores = {}
        # Set once the final sparsity is applied; the masks are fixed from then on.
        self.final = torch.zeros((), dtype=torch.bool)
        if config.method == "movement":
            self.scores = {name: torch.zeros_like(m.weight)
                           for name, m in model.prunable().items()}

    def targets(self, step):
        """(encoder sparsity, embedding sparsity) at ``step``."""
        c = self.config
        start, end = c.start * self.n_steps, c.end * self.n_steps
        return (cubic_sparsity(step, start=start, end=end, final=c.encoder),
                cubic_sparsity(step, start=start, end=end, final=c.embedding))

    @torch.no_grad()
    def accumulate(self):
        """After ``backward``: movement scores ``S -= W * dL/dW`` (no-op for magnitude)."""
        for name, m in self.model.prunable().items():
            if name in self.scores and m.weight.grad is not None:
                self.scores[name] -= m.weight * m.weight.grad

    @torch.no_grad()
    def update(self, step, *, force=False):
        """Recompute the masks every ``every`` steps until the final sparsity is reached (at
        the first step at or after ``end``); returns True if it did."""
        c = self.config
        at_end = step >= c.end * self.n_steps
        if not force and (bool(self.final) or (step % c.every and not at_end)):
            return False
        self.final.fill_(at_end)
        enc, emb = self.targets(step)
        for name, m in self.model.prunable().items():
            s = self.scores[name] if c.method == "movement" else m.weight.abs()
            m.mask.copy_(mask_from_scores(s, enc, c.block))
        w = self.model.word.weight
        self.model.word_mask.copy_(mask_from_scores(w.abs(), emb, 1))
        return True

    @torch.no_grad()
    def bake(self):
        """Zero the pruned weights in place (the masks stay, so they remain zero)."""
        for m in self.model.prunable().values():
            m.weight.mul_(m.mask)
        self.model.word.weight.mul_(self.model.word_mask)

    def state(self):
        return {"final": self.final, **{f"scores.{k}": v for k, v in self.scores.items()}}

    def load_state(self, state):
        self.final.copy_(state["final"])
        for k in self.scores:
            self.scores[k].copy_(state[f"scores.{k}"])
