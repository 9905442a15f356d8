"""Tail weight averaging within a run (``train.average_from``, sw/train/average.py)."""

import math

import pytest
import torch
from safetensors.torch import load_file
from test_sw_train import MICRO, micro_task_with_teacher, sets

from sw.cli import main
from sw.train import load_config
from sw.train.average import TailAverage


def test_tail_average_is_the_mean_of_the_tail_steps_and_survives_a_checkpoint():
    torch.manual_seed(0)
    n_steps, frac = 10, 0.55                       # averages steps 6..10 (1-based)
    params = {"a": torch.nn.Parameter(torch.zeros(3, 4, dtype=torch.float64)),
              "b": torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))}
    avg = TailAverage(params, frac, n_steps)
    seen = []
    for step in range(1, n_steps + 1):
        with torch.no_grad():
            for p in params.values():
                p.copy_(torch.randn_like(p))
        if step >= math.ceil(frac * n_steps):
            seen.append({k: p.detach().clone() for k, p in params.items()})
        avg.update(step)
        if step == 7:                              # a checkpoint and a resume mid-tail
            state = {k: v.clone() for k, v in avg.state().items()}
            avg = TailAverage(params, frac, n_steps)
            avg.load_state(state)
    assert len(seen) == 5
    assert avg.apply() == 5
    for k, p in params.items():
        want = torch.stack([s[k] for s in seen]).mean(0)
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-12)


def test_tail_average_from_one_keeps_the_last_weights():
    p = torch.nn.Parameter(torch.zeros(2))
    avg = TailAverage({"p": p}, 1.0, 4)
    for step in range(1, 5):
        with torch.no_grad():
            p.fill_(step)
        avg.update(step)
    assert avg.apply() == 1 and p.tolist() == [4.0, 4.0]


def test_average_from_must_follow_the_pruning_schedule():
    with pytest.raises(ValueError, match=r"average_from \(0.5\) must be at least prune.end"):
        load_config(None, ["train.average_from=0.5", "prune.end=0.6"])
    with pytest.raises(ValueError, match=r"average_from must be in \[0, 1\]"):
        load_config(None, ["train.average_from=1.5"])


@pytest.mark.slow
def test_averaged_run_resumes_bit_exactly_and_keeps_the_masked_mean(tmp_path, monkeypatch):
    """The student's backbone is the masked mean of the tail steps' weights, and a run
    interrupted in the tail resumes (average included) to the same student."""
    data, teacher = micro_task_with_teacher(tmp_path)
    # 40 backbone steps, masks final at step 24, weights averaged over steps 28..40.
    over = [*MICRO, "train.epochs=5", "train.average_from=0.7", "train.ckpt_every=3"]
    args = ["train", "--data", str(data), "--teacher", str(teacher), "-q", "--threads", "1"]
    update = TailAverage.update
    seen = []

    def recording(self, step):
        if step >= self.start:
            seen.append(self.params["ff1.weight"].detach().clone())
        return update(self, step)

    monkeypatch.setattr(TailAverage, "update", recording)
    assert main([*args, "-o", str(tmp_path / "a"), *sets(over)]) == 0
    assert len(seen) == 40 - math.ceil(0.7 * 40) + 1
    a = load_file(tmp_path / "a" / "student.safetensors")
    want = torch.stack(seen).mean(0) * a["ff1.mask"]
    torch.testing.assert_close(a["ff1.weight"], want, rtol=0, atol=1e-6)
    assert not torch.equal(a["ff1.weight"], seen[-1] * a["ff1.mask"])

    def interrupted(self, step):
        if step == 34:
            raise KeyboardInterrupt
        return update(self, step)

    monkeypatch.setattr(TailAverage, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "-o", str(tmp_path / "b"), *sets(over)])
    assert not (tmp_path / "b" / "student.safetensors").exists()
    monkeypatch.setattr(TailAverage, "update", update)
    assert main([*args, "-o", str(tmp_path / "b"), *sets(over)]) == 0
    assert "resumed at stage 1 step 33" in (tmp_path / "b" / "train.log").read_text()
    b = load_file(tmp_path / "b" / "student.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
