import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from sw.cli import main
from sw.train import choose_threshold, dvfs_table, exit_predictor, load_config

POS = ["good", "great", "fine", "lovely", "superb", "charming", "moving", "smart"]
NEG = ["bad", "awful", "dull", "boring", "poor", "weak", "tedious", "stupid"]
FILL = "the a film movie story plot acting is was very quite this that".split()


def make_task(path, n_train=320, n_dev=80, seed=0):
    """A small sentiment task: one polar word among neutral ones decides the label."""
    rng = random.Random(seed)

    def rows(n):
        out = ["sentence\tlabel"]
        for _ in range(n):
            y = rng.randint(0, 1)
            words = rng.sample(FILL, 5)
            words.insert(rng.randint(0, 5), rng.choice(POS if y else NEG))
            out.append(" ".join(words) + f"\t{y}")
        return "\n".join(out) + "\n"

    path.mkdir(parents=True, exist_ok=True)
    (path / "train.tsv").write_text(rows(n_train))
    (path / "dev.tsv").write_text(rows(n_dev))
    return path


TINY = ["student.emb_dim=32", "student.hidden=32", "student.heads=2", "student.ffn=64",
        "student.layers=3", "student.max_len=16", "student.span_ramp=4", "train.epochs=4",
        "train.holdout=64", "train.batch_size=16", "train.lr=3e-3", "train.ramp_epochs=0.5",
        "train.calib_examples=64", "train.train_limit=0", "train.qat_acts_from=0.9",
        "train.augment=0", "train.holdout_min_words=0", "train.hidden_beta=0.0"]


# The tests' tiny students override the width-128 recipe (configs/small.toml), not the default
# one (384 wide, started from a teacher layer).
SMALL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "small.toml"


def sets(items):
    return ["--config", str(SMALL_CONFIG), *(a for item in items for a in ("--set", item))]


@pytest.mark.slow
def test_smoke_train_export_reload_evaluate(tmp_path, capsys):
    data = make_task(tmp_path / "task")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--teacher", "none", "-o", str(run), "-q",
                 "--threads", "1", *sets(TINY)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["sparsity"]["encoder"] >= 0.5 and metrics["sparsity"]["word"] >= 0.6
    assert metrics["dev"]["accuracy_all_layers"] >= 0.9  # the task is easy: it must be learnt
    image = tmp_path / "m.ebimg"
    assert main(["export", str(run / "student.safetensors"), "-o", str(image),
                 "--hex", str(tmp_path / "hex")]) == 0
    assert (tmp_path / "hex" / "reram.hex").is_file()
    capsys.readouterr()
    result = tmp_path / "eval.json"
    assert main(["evaluate", str(image), "--data", str(data), "--backend", "float",
                 "--json", str(result)]) == 0
    res = json.loads(result.read_text())
    # The image reproduces the accuracy that training recorded for the quantized model.
    assert res["accuracy_all_layers"] == metrics["dev"]["accuracy_all_layers"]
    assert res["accuracy_early_exit"] == metrics["dev"]["accuracy_early_exit"]
    assert res["avg_layers"] == metrics["dev"]["avg_layers"]
    assert main(["report", "--metrics", str(run / "metrics.json"), "--image", str(image),
                 "-o", str(tmp_path / "report")]) == 0
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    assert rep["memory"]["image_bytes"] == image.stat().st_size
    assert (tmp_path / "report" / "accuracy_vs_exit_layer.png").stat().st_size > 0


MICRO = [*TINY, "student.layers=2", "train.epochs=1", "train.holdout=32",
         "train.ramp_epochs=0.5", "train.calib_examples=16"]


def micro_task_with_teacher(tmp_path):
    """A 160-example task and a teacher directory whose cached logits are the labels, sharp."""
    data = make_task(tmp_path / "task", n_train=160, n_dev=20)
    labels = torch.tensor([int(r.split("\t")[1]) for r in
                           (data / "train.tsv").read_text().splitlines()[1:]])
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    save_file({"logits": F.one_hot(labels, 2).float() * 4 - 2, "labels": labels},
              teacher / "train_logits.safetensors")
    return data, teacher


@pytest.mark.slow
def test_distillation_run_is_deterministic(tmp_path):
    data, teacher = micro_task_with_teacher(tmp_path)
    for name in ("a", "b"):
        assert main(["train", "--data", str(data), "--teacher", str(teacher), "-q",
                     "--threads", "1", "-o", str(tmp_path / name), *sets(MICRO)]) == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["kd"] is True
    a = load_file(tmp_path / "a" / "student.safetensors")
    b = load_file(tmp_path / "b" / "student.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_shared_layer_initialised_from_the_teacher(tmp_path, capsys):
    from sw.teacher import Teacher

    data, teacher = micro_task_with_teacher(tmp_path)
    args = ["train", "--data", str(data), "-q", "--threads", "1"]
    over = [*MICRO, "student.hidden=64", "student.heads=2", "student.ffn=128",
            "train.teacher_init_layer=2", "train.teacher_init_examples=24"]
    # Without a fine-tuned teacher the layer comes from the pre-trained checkpoint.
    assert main([*args, "--teacher", "none", "-o", str(tmp_path / "x"), *sets(over)]) == 0
    assert "shared layer from teacher layer 2" in (tmp_path / "x" / "train.log").read_text()
    # An all-MiniLM-L6-v2 teacher (untrained classifier) with the tokenizer the student uses.
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in Teacher().state_dict().items()},
              teacher / "teacher.safetensors")
    assert main([*args, "--teacher", str(teacher), "-o", str(tmp_path / "a"),
                 *sets(over)]) == 0
    log = (tmp_path / "a" / "train.log").read_text()
    assert "shared layer from teacher layer 2" in log and "on 24 sentences" in log
    # all-MiniLM-L6-v2's heads are 32 wide: a student with 16-wide heads cannot take them.
    assert main([*args, "--teacher", str(teacher), "-o", str(tmp_path / "b"),
                 *sets([*over, "student.heads=4"])]) != 0
    assert "teacher heads are 32 wide and the student's 16" in capsys.readouterr().err


def test_teacher_layer_map_and_layer_loss():
    from sw.train.losses import layer_loss, teacher_layer_map

    assert teacher_layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    assert teacher_layer_map(3, 6) == [2, 4, 6]
    assert teacher_layer_map(4, 2) == [1, 1, 2, 2]
    valid = torch.tensor([[True, False]])
    teacher = [torch.zeros(1, 2, 1), torch.ones(1, 2, 1), torch.full((1, 2, 1), 3.0)]
    hidden = [torch.tensor([[[1.0], [100.0]]]), torch.tensor([[[1.0], [-5.0]]])]
    # application 0 against layer 1 (error 0), application 1 against layer 2 (error 2^2);
    # padding does not count
    assert layer_loss(hidden, teacher, valid, [1, 2]).item() == 2.0


@pytest.mark.slow
def test_per_application_states_are_held_to_the_teacher_layers(tmp_path, capsys):
    from sw.teacher import Teacher

    data, teacher = micro_task_with_teacher(tmp_path)
    args = ["train", "--data", str(data), "-q", "--threads", "1"]
    over = [*MICRO, "train.layer_beta=1.0", "train.epochs=10"]   # 100 steps: 2 log lines
    # Without a fine-tuned teacher there is nothing to compute the states with.
    for t in ("none", str(teacher)):
        assert main([*args, "--teacher", t, "-o", str(tmp_path / "x"), *sets(over)]) != 0
        assert "train.layer_beta needs the fine-tuned teacher" in capsys.readouterr().err
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in Teacher().state_dict().items()},
              teacher / "teacher.safetensors")
    # A student narrower than the teacher (32 against 384) has no map to its states.
    assert main([*args, "--teacher", str(teacher), "-o", str(tmp_path / "y"), *sets(over)]) != 0
    assert "the teacher is 384 wide, the student 32" in capsys.readouterr().err
    wide = [*over, "student.hidden=384", "student.heads=12"]
    assert main([*args, "--teacher", str(teacher), "-o", str(tmp_path / "a"), *sets(wide)]) == 0
    log = (tmp_path / "a" / "train.log").read_text()
    assert "per-application states held to teacher layers [3, 6]" in log
    # The logged loss is a running average (0.98 per step): 0.98 -> 0.80 over 100 steps here.
    losses = [float(line.split(" layers ")[1].split()[0]) for line in log.splitlines()
              if " layers " in line and "backbone" in line]
    assert len(losses) >= 2 and losses[-1] < 0.9 * losses[0], losses


def test_gather_states_pads_each_row():
    from sw.train.data import gather_states as _gather_states
    from sw.train.data import join_states as _join_states

    states = torch.arange(12.0).view(6, 2).half()
    offsets = torch.tensor([0, 2, 3, 6])  # rows of 2, 1 and 3 tokens
    aug = (torch.full((2, 2), -1.0).half(), torch.tensor([0, 2]))
    store = _join_states((states, offsets), aug)
    got, valid = _gather_states(store, torch.tensor([2, 0, 3]), 3)
    assert valid.tolist() == [[True] * 3, [True, True, False], [True, True, False]]
    assert got[0].tolist() == [[6, 7], [8, 9], [10, 11]]
    assert got[1, :2].tolist() == [[0, 1], [2, 3]] and got[2, :2].tolist() == [[-1, -1]] * 2


def test_hidden_loss_ignores_padding_and_pools():
    from sw.train.losses import hidden_loss as _hidden_loss

    proj = torch.nn.Identity()
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    valid = torch.tensor([[True, True, False]])
    target = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [0.0, 0.0]]])
    # tokens: errors 0, 0, 0, 2 over 4 values -> 1; the padded position does not count
    assert _hidden_loss(x, target, valid, proj, "tokens").item() == 1.0
    # mean: means (2, 3) vs (2, 4) -> (0 + 1) / 2
    assert _hidden_loss(x, target, valid, proj, "mean").item() == 0.5
    with pytest.raises(ValueError, match="hidden_target must be one of"):
        load_config(None, ["train.hidden_target=cls"])


def test_corpus_norm_weighs_every_token_the_same_however_the_batches_are_cut():
    from sw.train.losses import hidden_loss as _hidden_loss

    proj = torch.nn.Identity()
    # Two batches of two sentences: short ones (1 token, error 4 per value) and long ones
    # (3 tokens, error 0 per value); 8 tokens in all, 2 per sentence on average.
    x = torch.zeros(2, 2, 3, 1)
    target = torch.zeros(2, 2, 3, 1)
    target[0, :, 0] = 2.0
    valid = torch.zeros(2, 2, 3, dtype=torch.bool)
    valid[0, :, 0] = True
    valid[1] = True
    per_token = 4.0 * 2 / 8              # the mean over all 8 tokens: 1.0
    by_batch = [_hidden_loss(x[i], target[i], valid[i], proj, "tokens") for i in (0, 1)]
    assert [v.item() for v in by_batch] == [4.0, 0.0]    # "batch": each batch's own mean
    by_corpus = [_hidden_loss(x[i], target[i], valid[i], proj, "tokens", tokens=2 * 2.0)
                 for i in (0, 1)]
    assert [v.item() for v in by_corpus] == [2.0, 0.0]
    # Averaged over the batches, "corpus" is the per-token mean; "batch" weighs the short
    # sentences' tokens 3 times as much as the long ones'.
    assert sum(by_corpus).item() / 2 == per_token
    assert sum(by_batch).item() / 2 == 2 * per_token
    with pytest.raises(ValueError, match="kind 'tokens' only"):
        _hidden_loss(x[0], target[0], valid[0], proj, "mean", tokens=4.0)
    assert load_config(None, ["train.hidden_norm=corpus"]).train.hidden_norm == "corpus"
    assert load_config(None, []).train.hidden_norm == "batch"
    with pytest.raises(ValueError, match="hidden_norm must be one of"):
        load_config(None, ["train.hidden_norm=tokens"])
    with pytest.raises(ValueError, match="needs hidden_target"):
        load_config(None, ["train.hidden_norm=corpus", "train.hidden_target=mean"])


def test_long_repeat_puts_long_examples_in_more_often_at_the_same_step_count():
    from sw.teacher import bucketed_order
    from sw.train.loop import weighted_order

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 41, (1000,), generator=g)      # 3..40 tokens
    long = lengths >= 20
    # repeat = 1 is the plain bucketed order, so runs without the setting are unchanged.
    assert torch.equal(weighted_order(lengths, 32, 100, 5),
                       bucketed_order(lengths, 32, math.ceil(100 * 32 / 1000), 5))
    order = weighted_order(lengths, 32, 100, 5, repeat=3, min_tokens=20)
    n_pass = 1000 + 2 * int(long.sum())
    pass_len = -(-n_pass // 32) * 32                          # filled up to whole batches
    assert len(order) == math.ceil(100 * 32 / n_pass) * pass_len >= 100 * 32
    counts = torch.bincount(order[:pass_len], minlength=1000)  # one pass, with its fill
    extra = counts - torch.where(long, 3, 1)
    assert int(extra.min()) == 0 and int(extra.sum()) == pass_len - n_pass
    # Still whole length-sorted batches: each slice of 32 is one batch of similar lengths.
    batches = lengths[order].view(-1, 32)
    assert bool((batches.diff(dim=1) >= 0).all())
    # Long examples make up 3 times their share of the examples drawn.
    share = long[order].float().mean().item()
    expect = 3 * long.float().mean().item() / (n_pass / 1000)
    assert abs(share - expect) < 0.01, (share, expect)
    assert load_config(None, ["train.long_repeat=3"]).train.long_repeat == 3
    with pytest.raises(ValueError, match="long_repeat must be a positive integer"):
        load_config(None, ["train.long_repeat=0"])
    with pytest.raises(ValueError, match="long_min_tokens must be a positive integer"):
        load_config(None, ["train.long_min_tokens=2.5"])


def test_batch_mix_makes_each_batch_straddle_two_length_sorted_batches():
    from sw.train.loop import weighted_order

    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, 41, (1000,), generator=g)
    whole = weighted_order(lengths, 32, 100, 5)
    mixed = weighted_order(lengths, 32, 100, 5, mix=9)
    # The same examples, as often: only how they are cut into batches changes.
    assert torch.equal(mixed.sort().values, whole.sort().values)
    w, m = whole.view(-1, 32), mixed.view(-1, 32)
    for k in range(len(m) - 1):
        # 23 from the end of one whole batch, 9 from the start of the next in the order.
        assert torch.equal(m[k], torch.cat([w[k][9:], w[k + 1][:9]]))
    # Each part is sorted by length, the batch as a whole is not: it mixes two lengths, so it
    # carries more padding than whole batches (what the runs before the fix trained on).
    first, second = lengths[m[:, :23]], lengths[m[:, 23:]]
    assert bool((first.diff(dim=1) >= 0).all()) and bool((second.diff(dim=1) >= 0).all())
    assert not bool((lengths[m].diff(dim=1) >= 0).all())

    def padding(batches):
        lens = lengths[batches]
        return (lens.max(dim=1).values[:, None] - lens).float().mean().item()

    assert padding(m) > 2 * padding(w)
    assert load_config(None, ["train.batch_mix=9"]).train.batch_mix == 9
    with pytest.raises(ValueError, match="batch_mix must be smaller than batch_size"):
        load_config(None, ["train.batch_size=32", "train.batch_mix=32"])
    with pytest.raises(ValueError, match="batch_mix must be a non-negative integer"):
        load_config(None, ["train.batch_mix=-1"])


def test_state_map_starts_as_the_identity_for_a_teacher_width_student():
    from sw.train.losses import state_map

    x = torch.randn(3, 5, 8)
    assert torch.equal(state_map(8, 8, True)(x), x)
    # Another width, or a student not started from a teacher layer: a learned random map.
    assert not torch.equal(state_map(8, 8, False)(x), x)
    assert state_map(8, 12, True)(x).shape == (3, 5, 12)


def micro_states(data, teacher, width=8):
    """Teacher token states for the micro task that carry its label: +1 or -1 per position."""
    from sw.tokenizer import WordPiece

    rows = (data / "train.tsv").read_text().splitlines()[1:]
    batch = WordPiece(max_len=16).encode([r.split("\t")[0] for r in rows])
    lengths = batch.attention_mask.sum(1)
    sign = torch.tensor([2.0 * int(r.split("\t")[1]) - 1 for r in rows])
    states = torch.repeat_interleave(sign, lengths)[:, None].expand(-1, width).half()
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    save_file({"states": states.contiguous(), "offsets": offsets},
              teacher / "train_states.safetensors")
    return lengths


@pytest.mark.slow
def test_hidden_state_distillation_learns_the_teacher_states(tmp_path, capsys, monkeypatch):
    data, teacher = micro_task_with_teacher(tmp_path)
    args = ["train", "--data", str(data), "--teacher", str(teacher), "-q", "--threads", "1"]
    over = [*MICRO, "train.epochs=13", "train.hidden_beta=1.0"]  # 104 steps: 2 log lines
    assert main([*args, "-o", str(tmp_path / "x"), *sets(over)]) != 0
    assert "edgebert teacher --states" in capsys.readouterr().err
    micro_states(data, teacher)
    assert main([*args, "-o", str(tmp_path / "a"), *sets(over)]) == 0
    hidden = [float(line.split(" hidden ")[1].split()[0])
              for line in (tmp_path / "a" / "train.log").read_text().splitlines()
              if " hidden " in line]
    assert len(hidden) >= 2 and hidden[-1] < 0.5 * hidden[0], hidden
    ckpt = load_file(tmp_path / "a" / "ckpt.safetensors")
    assert ckpt["hproj.weight"].shape == (8, 32)
    assert not any(k.startswith("hproj") for k in load_file(tmp_path / "a" /
                                                             "student.safetensors"))
    # hidden_norm = "corpus": every batch's loss is divided by one token count, the batch size
    # times the mean real tokens of a training sentence, and the run learns the states too.
    from sw.train import loop

    seen, real = [], loop.hidden_loss
    monkeypatch.setattr(loop, "hidden_loss", lambda *a: seen.append(a[5]) or real(*a))
    assert main([*args, "-o", str(tmp_path / "c"),
                 *sets([*over, "train.hidden_norm=corpus"])]) == 0
    from sw.tokenizer import WordPiece

    rows = (data / "train.tsv").read_text().splitlines()[1:]
    lengths = WordPiece(max_len=16).encode([r.split("\t")[0] for r in rows]).attention_mask.sum(1)
    assert len(seen) == 104 and len(set(seen)) == 1, set(seen)
    batch = int(dict(o.split("=") for o in MICRO)["train.batch_size"])
    assert batch * lengths.min() <= seen[0] <= batch * lengths.max(), (seen[0], lengths)
    hidden = [float(line.split(" hidden ")[1].split()[0])
              for line in (tmp_path / "c" / "train.log").read_text().splitlines()
              if " hidden " in line]
    assert hidden[-1] < 0.5 * hidden[0], hidden
    # states of other sentences (here: one token short each) are refused, not misaligned
    d = load_file(teacher / "train_states.safetensors")
    lengths = d["offsets"][1:] - d["offsets"][:-1] - 1
    save_file({"states": d["states"][:int(lengths.sum())].contiguous(),
               "offsets": torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])},
              teacher / "train_states.safetensors")
    assert main([*args, "-o", str(tmp_path / "b"), *sets(over)]) != 0
    assert "do not match the training sentences' tokens" in capsys.readouterr().err


def test_config_file_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[student]\nhidden = 64\nheads = 2\n[prune]\nmethod = "movement"\n')
    cfg = load_config(p, ["train.lr=0.5", "prune.block=1", "student.act=gelu"])
    assert (cfg.student.hidden, cfg.student.heads, cfg.student.act) == (64, 2, "gelu")
    assert (cfg.prune.method, cfg.prune.block, cfg.train.lr) == ("movement", 1, 0.5)
    with pytest.raises(ValueError, match="override must look like section.key=value"):
        load_config(None, ["lr=3"])
    with pytest.raises(ValueError, match=r"unknown keys in \[train\]: \['lrr'\]"):
        load_config(None, ["train.lrr=3"])
    with pytest.raises(ValueError, match="calib_method must be one of"):
        load_config(None, ["train.calib_method=median"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_threshold_choice_predictor_and_dvfs():
    rows = [{"threshold": 0.0, "accuracy": 0.90, "avg_layers": 6.0},
            {"threshold": 0.1, "accuracy": 0.895, "avg_layers": 4.0},
            {"threshold": 0.2, "accuracy": 0.885, "avg_layers": 3.0},
            {"threshold": 0.3, "accuracy": 0.80, "avg_layers": 1.5}]
    assert choose_threshold(rows, 0.90, 1.0)["threshold"] == 0.1
    assert choose_threshold(rows, 0.90, 2.0)["threshold"] == 0.2
    # Two examples: confident at layer 1 (exits there), unsure until layer 3.
    logits = torch.tensor([[[6.0, -6.0], [0.0, 0.0]],
                           [[6.0, -6.0], [0.1, 0.0]],
                           [[6.0, -6.0], [8.0, -8.0]]])
    edges, table, stats = exit_predictor(logits, 0.1, 4)
    assert edges[-1].item() == pytest.approx(math.log(2))
    assert table.tolist() == [1, 1, 1, 3]
    assert stats["mae_layers"] == 0.0
    assert dvfs_table(torch.tensor([1, 2, 3]), 3, [250, 500, 750, 1000], [5, 6, 7, 8]) == \
        [(1, 1), (2, 2), (3, 3)]


def test_device_option_names_what_is_wrong(tmp_path):
    from sw.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("tpu", "gpu0", "cuda:x"):
        with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
            resolve_device(bad)
    data = make_task(tmp_path / "task", n_train=160, n_dev=20)
    n_gpus = torch.cuda.device_count()
    missing = "cuda" if n_gpus == 0 else f"cuda:{n_gpus}"
    with pytest.raises(ValueError, match="no CUDA GPU" if n_gpus == 0 else "only"):
        resolve_device(missing)
    for cmd in (["train", "--teacher", "none", "-o", str(tmp_path / "run")],
                ["teacher", "-o", str(tmp_path / "teacher")]):
        with pytest.raises(SystemExit, match=f"edgebert {cmd[0]}: --device"):
            main([*cmd, "--data", str(data), "--device", missing])
    assert not (tmp_path / "run").exists()
