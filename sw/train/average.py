"""Tail weight averaging within one run (``train.average_from``).

The backbone's weights are averaged over every step from ``average_from`` of the backbone
steps to the last (Izmailov et al., 2018, "Averaging Weights Leads to Wider Optima and Better
Generalization", with the run's own decaying learning rate rather than a cyclic one). The
masks are final by then (``average_from >= prune.end``), so the mean keeps the run's sparsity
pattern; the mean replaces the weights before the masks are baked and the off-ramps learn on
it. It costs one add per weight per step and no extra steps: a one-run counterpart of
``edgebert train --soup``.
"""

import math

import torch

__all__ = ["TailAverage"]


class TailAverage:
    """Running mean of ``params`` (a name -> parameter dict) from step ``start`` on."""

    def __init__(self, params, average_from, n_steps):
        self.params = params
        self.start = min(math.ceil(average_from * n_steps), n_steps)
        self.count = 0
        self.mean = {}

    @torch.no_grad()
    def update(self, step):
        """After the optimizer step that ends step ``step`` (1-based): fold the weights in."""
        if step < self.start:
            return
        self.count += 1
        if self.count == 1:
            self.mean = {k: p.detach().clone() for k, p in self.params.items()}
            return
        for k, p in self.params.items():
            self.mean[k].add_(p.detach() - self.mean[k], alpha=1.0 / self.count)

    @torch.no_grad()
    def apply(self):
        """Copy the mean into the weights; returns how many steps it averages."""
        if self.count:
            for k, p in self.params.items():
                p.copy_(self.mean[k])
        return self.count

    def state(self):
        return {"count": torch.tensor(self.count),
                **{f"mean.{k}": v for k, v in self.mean.items()}}

    def load_state(self, state):
        self.count = int(state.get("count", torch.tensor(0)))
        mean = {k[5:]: v for k, v in state.items() if k.startswith("mean.")}
        if self.count and set(mean) != set(self.params):
            raise ValueError("the checkpoint's weight average does not match the model")
        self.mean = {k: v.to(self.params[k].device).clone() for k, v in mean.items()}
