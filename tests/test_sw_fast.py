"""The fast training step (``train.fast``, sw/train/fast.py): bfloat16 products, 16-bit
dropout draws, fused AdamW; evaluation stays float32."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_sw_train import MICRO, micro_task_with_teacher, sets
from torch.nn import functional as F

from sw.adaptivfloat import fake_quantize
from sw.cli import main
from sw.student import MaskedLinear, Quant, Student, StudentConfig
from sw.train import load_config
from sw.train.fast import FastDropout, set_fast


def test_fast_dropout_drops_at_the_rate_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = FastDropout(0.1).train()
    x = torch.ones(1000, 1000)
    y = drop(x)
    kept = y != 0
    rate = 1 - kept.double().mean().item()
    # 10^6 Bernoulli(0.1) draws: standard deviation 3e-4; the rate is 6554 / 65536.
    assert abs(rate - 6554 / 65536) < 2e-3
    assert torch.all(y[kept] == 65536 / (65536 - 6554))       # inverted dropout's scale
    assert abs(y.double().mean().item() - 1.0) < 3e-3
    # Both halves of each 32-bit draw are used: neighbours are not the same decision.
    pairs = kept.flatten().view(-1, 2)
    assert (pairs[:, 0] != pairs[:, 1]).double().mean().item() > 0.15
    assert torch.equal(drop.eval()(x), x) and torch.equal(FastDropout(0.0).train()(x), x)
    odd = torch.ones(3, 5, 7)                                   # an odd element count
    assert drop.train()(odd).shape == odd.shape
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        FastDropout(1.0)


def test_bf16_product_is_the_rounded_operands_product_and_af8_codes_are_exact():
    torch.manual_seed(0)
    lin = MaskedLinear(64, 48, Quant(), "ff1")
    x = torch.randn(5, 64)
    exact = lin(x)
    lin.mm_dtype = torch.bfloat16
    got = lin(x)
    prod = F.linear(x.bfloat16().float(), lin.weight.bfloat16().float())
    # float32 accumulation of exact bf16 products, one rounding to bf16 (8 significant bits,
    # half an ulp: 2^-8 relative), then the float32 bias.
    assert torch.all((got - (prod + lin.bias)).abs() <= prod.abs() * 2.0 ** -8 + 1e-6)
    assert not torch.equal(got, exact)
    # AdaptivFloat-8 weight codes have at most 4 significant bits: bfloat16 holds them exactly.
    w = fake_quantize(torch.randn(256, 256) * 0.05)
    assert torch.equal(w.bfloat16().float(), w)


def test_set_fast_swaps_modules_only_and_back_to_exact_float32():
    torch.manual_seed(0)
    m = Student(StudentConfig(vocab_size=200, tokenizer_vocab=200, layers=2)).eval()
    ids = torch.randint(0, 200, (3, 9))
    mask = torch.ones_like(ids)
    before = m(ids, mask)
    keys = m.state_dict().keys()
    set_fast(m, True)
    assert isinstance(m.drop, FastDropout) and not m.drop.training
    assert all(lin.mm_dtype == torch.bfloat16 for lin in m.linears().values())
    assert m.state_dict().keys() == keys
    assert not torch.equal(m(ids, mask), before)
    set_fast(m, False)
    assert isinstance(m.drop, torch.nn.Dropout)
    assert torch.equal(m(ids, mask), before)
    # products="float32": the dropout draws change, the products stay exact.
    set_fast(m, True, products="float32")
    assert isinstance(m.drop, FastDropout)
    assert all(lin.mm_dtype is None for lin in m.linears().values())
    assert torch.equal(m(ids, mask), before)
    with pytest.raises(ValueError, match="products must be"):
        set_fast(m, True, products="float16")


def test_fast_must_be_a_boolean_and_its_products_named():
    assert load_config(None, ["train.fast=true"]).train.fast is True
    with pytest.raises(ValueError, match="fast must be true or false"):
        load_config(None, ["train.fast=1"])
    assert load_config(None, ["train.fast_products=float32"]).train.fast_products == "float32"
    with pytest.raises(ValueError, match="fast_products must be"):
        load_config(None, ["train.fast_products=fp16"])


@pytest.mark.slow
def test_fast_run_learns_resumes_bit_exactly_and_reports_float32(tmp_path, monkeypatch):
    """A fast run is another student than the float32 one, learns the task, resumes from a
    checkpoint to the same student, and is evaluated with float32 products."""
    data, teacher = micro_task_with_teacher(tmp_path)
    over = [*MICRO, "train.epochs=10", "train.ckpt_every=5"]
    args = ["train", "--data", str(data), "--teacher", str(teacher), "-q", "--threads", "1"]
    assert main([*args, "-o", str(tmp_path / "exact"), *sets(over)]) == 0
    assert main([*args, "-o", str(tmp_path / "a"), *sets([*over, "train.fast=true"])]) == 0
    a = load_file(tmp_path / "a" / "student.safetensors")
    exact = load_file(tmp_path / "exact" / "student.safetensors")
    assert not torch.equal(a["ff1.weight"], exact["ff1.weight"])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["config"]["train"]["fast"] is True
    assert metrics["dev"]["accuracy_all_layers"] >= 0.8       # the micro task is easy

    import sw.train.loop as loop

    finish = loop.calibrate_and_finish
    seen = []

    def checking(model, d, r):                      # evaluation runs with float32 products
        seen.append([lin.mm_dtype for lin in model.linears().values()])
        assert not isinstance(model.drop, FastDropout)
        return finish(model, d, r)

    calls = {"n": 0}
    real = FastDropout.forward

    def interrupting(self, x):
        calls["n"] += 1
        if calls["n"] == 7 * 20:                     # in the backbone, after a checkpoint
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(loop, "calibrate_and_finish", checking)
    monkeypatch.setattr(FastDropout, "forward", interrupting)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "-o", str(tmp_path / "b"), *sets([*over, "train.fast=true"])])
    monkeypatch.setattr(FastDropout, "forward", real)
    assert main([*args, "-o", str(tmp_path / "b"), *sets([*over, "train.fast=true"])]) == 0
    assert "resumed at stage 1 step" in (tmp_path / "b" / "train.log").read_text()
    b = load_file(tmp_path / "b" / "student.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert seen == [[None] * len(seen[0])]


def test_bench_step_prints_both_steps_side_by_side(tmp_path):
    out = tmp_path / "step.json"
    res = subprocess.run([sys.executable, "-m", "sw.cli", "bench", "step", "--vocab", "500",
                          "--tokens", "8", "--steps", "1", "--repeat", "1", "--threads", "2",
                          "--processes", "2", "--json", str(out)],
                         capture_output=True, text=True, check=True)
    rows = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [r["phase"] for r in rows] == ["float", "weights_af8", "weights_and_acts_af8",
                                          "schedule_mean", "side_by_side"]
    steps, side = rows[:4], rows[4]
    assert all(r["float32_ms"] > 0 and r["fast_ms"] > 0 and r["fast_float32_ms"] > 0
               for r in steps)
    for r in steps:     # the ratio of the unrounded times; the printed ones are rounded to 0.05
        lo = (r["float32_ms"] - 0.05) / (r["fast_ms"] + 0.05) - 0.005
        hi = (r["float32_ms"] + 0.05) / (r["fast_ms"] - 0.05) + 0.005
        assert lo <= r["speedup"] <= hi
    assert abs(sum(r["share_of_steps"] for r in steps[:3]) - 1.0) < 1e-9
    # Two one-thread processes against one two-thread process: steps per second, both counted.
    assert side["processes"] == 2 and side["threads_each"] == 1
    assert side["one_process_ms"] > 0 and side["per_process_ms"] > 0
    lo = 2 * (side["one_process_ms"] - 0.05) / (side["per_process_ms"] + 0.05) - 0.005
    hi = 2 * (side["one_process_ms"] + 0.05) / (side["per_process_ms"] - 0.05) + 0.005
    assert lo <= side["throughput_ratio"] <= hi
    assert json.loads(out.read_text()) == rows
    bad = subprocess.run([sys.executable, "-m", "sw.cli", "bench", "step", "--processes", "0"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--processes must be at least 1, not 0" in bad.stderr
