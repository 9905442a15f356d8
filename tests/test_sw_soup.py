"""``edgebert train --soup``: the mean of finished students, pruned, calibrated, exported."""

import json

import pytest
import torch
from safetensors.torch import load_file

from sw.cli import main
from sw.compress import block_scores
from tests.test_sw_train import MICRO, make_task, sets


def _run(data, out, *extra):
    assert main(["train", "--data", str(data), "--teacher", "none", "-q", "--threads", "1",
                 "-o", str(out), *sets([*MICRO, *extra])]) == 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("soup")
    data = make_task(tmp / "task", n_train=160, n_dev=40)
    _run(data, tmp / "a")
    _run(data, tmp / "b", "train.epochs=1.5")
    return tmp, data


@pytest.mark.slow
def test_soup_averages_prunes_again_and_exports(two_runs, capsys):
    tmp, data = two_runs
    out = tmp / "soup"
    assert main(["train", "--soup", str(tmp / "a"), str(tmp / "b"), "--data", str(data),
                 "-o", str(out), "-q", "--threads", "1"]) == 0
    assert "soup dev accuracy" in capsys.readouterr().out
    a = load_file(tmp / "a" / "student.safetensors")
    b = load_file(tmp / "b" / "student.safetensors")
    s = load_file(out / "student.safetensors")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soup"] == [str(tmp / n / "student.safetensors") for n in "ab"]
    ma = json.loads((tmp / "a" / "metrics.json").read_text())
    mb = json.loads((tmp / "b" / "metrics.json").read_text())
    assert metrics["soup_dev_accuracy"] == [ma["dev"]["accuracy_all_layers"],
                                            mb["dev"]["accuracy_all_layers"]]
    assert metrics["train_s"] >= ma["train_s"] + mb["train_s"]
    block = 16
    for name in ("wq", "wk", "wv", "wo", "ff1", "ff2"):
        w, m = f"{name}.weight", f"{name}.mask"
        mean = (a[w] * a[m] + b[w] * b[m]) / 2
        mask = s[f"{name}.mask"]
        # Same sparsity as the ingredients, in 1 x 16 blocks, the strongest blocks of the mean.
        assert mask.mean() == a[f"{name}.mask"].mean()
        kept = block_scores(mask, block) > 0
        assert torch.all(block_scores(mask, block)[kept] == block)
        scores = block_scores(mean.abs(), block)
        assert scores[kept].min() >= scores[~kept].max()
        assert torch.equal(s[f"{name}.weight"], mean * mask)
    word = (a["word.weight"] * a["word_mask"] + b["word.weight"] * b["word_mask"]) / 2
    assert s["word_mask"].mean() == a["word_mask"].mean()
    assert torch.equal(s["word.weight"], word * s["word_mask"])
    assert torch.equal(s["emb_ln.weight"], (a["emb_ln.weight"] + b["emb_ln.weight"]) / 2)
    assert torch.equal(s["span_frac"], (a["span_frac"] + b["span_frac"]) / 2)
    assert torch.equal(s["vocab_map"], a["vocab_map"])
    # An ordinary student: it exports, and the image gives the accuracy the soup recorded.
    image = tmp / "soup.ebimg"
    assert main(["export", str(out / "student.safetensors"), "-o", str(image)]) == 0
    result = tmp / "eval.json"
    assert main(["evaluate", str(image), "--data", str(data), "--backend", "float",
                 "--json", str(result)]) == 0
    res = json.loads(result.read_text())
    assert res["accuracy_all_layers"] == metrics["dev"]["accuracy_all_layers"]
    assert res["avg_layers"] == metrics["dev"]["avg_layers"]


@pytest.mark.slow
def test_soup_refuses_what_it_cannot_average(two_runs, tmp_path):
    tmp, data = two_runs

    def soup(*args):
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", str(data), "-q", "--threads", "1", *args])
        return str(e.value)

    assert "at least two" in soup("--soup", str(tmp / "a"), "-o", str(tmp_path / "s"))
    assert "different students" in soup("--soup", str(tmp / "a"), str(tmp / "a"),
                                        "-o", str(tmp_path / "s"))
    assert "holds one of its ingredients" in soup("--soup", str(tmp / "a"), str(tmp / "b"),
                                                  "-o", str(tmp / "a"))
    assert "does not exist" in soup("--soup", str(tmp / "a"), str(tmp_path / "nothing"),
                                    "-o", str(tmp_path / "s"))
    assert "drop --set" in soup("--soup", str(tmp / "a"), str(tmp / "b"), "--set",
                                "train.epochs=2", "-o", str(tmp_path / "s"))
    wide = tmp_path / "wide"
    _run(data, wide, "student.ffn=128")
    assert "another student or pruning configuration" in soup(
        "--soup", str(tmp / "a"), str(wide), "-o", str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_order_seed_changes_the_order_alone_and_makes_a_soup_ingredient(two_runs, tmp_path):
    tmp, data = two_runs
    a = load_file(tmp / "a" / "student.safetensors")
    _run(data, tmp_path / "a0", "train.order_seed=0")          # -1 means the seed: 0 here
    a0 = load_file(tmp_path / "a0" / "student.safetensors")
    assert all(torch.equal(a[k], a0[k]) for k in a)
    _run(data, tmp_path / "c", "train.order_seed=1")
    c = load_file(tmp_path / "c" / "student.safetensors")
    assert torch.equal(a["vocab_map"], c["vocab_map"])
    assert not torch.equal(a["ff1.weight"], c["ff1.weight"])
    soup = ["train", "--data", str(data), "-q", "--threads", "1", "--soup"]
    assert main([*soup, str(tmp / "a"), str(tmp_path / "c"), "-o", str(tmp_path / "s")]) == 0
    _run(data, tmp_path / "d", "train.seed=1")                 # another held-out slice
    with pytest.raises(SystemExit, match="train.seed = 1"):
        main([*soup, str(tmp / "a"), str(tmp_path / "d"), "-o", str(tmp_path / "s2")])


@pytest.mark.slow
def test_ingredients_train_side_by_side_and_make_their_soup(two_runs, tmp_path, capsys):
    tmp, data = two_runs
    out = tmp_path / "par"
    # Two one-thread worker processes, order seeds 0 and 1, then their soup in `out`.
    assert main(["train", "--data", str(data), "--teacher", "none", "-q", "--threads", "2",
                 "--ingredients", "2", "-o", str(out), *sets(MICRO)]) == 0
    printed = capsys.readouterr().out
    assert "train.order_seed [0, 1]" in printed and "soup dev accuracy" in printed
    i0 = load_file(out / "ingredient0" / "student.safetensors")
    i1 = load_file(out / "ingredient1" / "student.safetensors")
    a = load_file(tmp / "a" / "student.safetensors")
    # The first ingredient is the recipe's own run, bit for bit, though run in another process.
    assert all(torch.equal(a[k], i0[k]) for k in a)
    assert torch.equal(i0["vocab_map"], i1["vocab_map"])
    assert not torch.equal(i0["ff1.weight"], i1["ff1.weight"])
    m1 = json.loads((out / "ingredient1" / "metrics.json").read_text())
    assert m1["config"]["train"]["order_seed"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["soup"] == [str(out / f"ingredient{i}" / "student.safetensors")
                               for i in range(2)]
    # The soup is the one `--soup` makes of the same two students.
    again = tmp_path / "again"
    assert main(["train", "--soup", str(out / "ingredient0"), str(out / "ingredient1"),
                 "--data", str(data), "-o", str(again), "-q", "--threads", "1"]) == 0
    s, s2 = load_file(out / "student.safetensors"), load_file(again / "student.safetensors")
    assert s.keys() == s2.keys() and all(torch.equal(s[k], s2[k]) for k in s)


@pytest.mark.slow
def test_ingredients_report_failed_workers_and_bad_counts(tmp_path):
    data = make_task(tmp_path / "task", n_train=40, n_dev=10)
    base = ["train", "--data", str(data), "-q", "--threads", "1", "-o", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match="at least 1, not 0"):
        main([*base, "--teacher", "none", "--ingredients", "0", *sets(MICRO)])
    with pytest.raises(SystemExit, match="drop --ingredients"):
        main([*base, "--ingredients", "2", "--soup", str(tmp_path / "x"), str(tmp_path / "y")])
    # Every worker fails (no such teacher): the error names each one and shows its output.
    with pytest.raises(SystemExit) as e:
        main([*base, "--teacher", str(tmp_path / "nowhere"), "--ingredients", "2",
              *sets(MICRO)])
    msg = str(e.value)
    assert "2 of 2 ingredients failed" in msg
    assert "ingredient0 (exit status" in msg and "ingredient1 (exit status" in msg
    assert "nowhere" in msg
    assert not (tmp_path / "o" / "student.safetensors").exists()


def test_ingredient_progress_is_read_from_the_run_log(tmp_path):
    import io
    import re

    from tqdm import tqdm

    from sw.train.config import TrainConfig
    from sw.train.parallel import _progress, _update, order_seeds

    log = tmp_path / "train.log"
    assert _progress(log) is None
    log.write_text("22:40:12 resumed at stage 1 step 5000\n"
                   "22:42:41 backbone 5050/7120 loss 0.3060 hidden 0.1593 encoder sparsity\n")
    assert _progress(log) == ("backbone", 5050, 7120)
    with log.open("a") as f:
        f.write("23:08:12 off-ramps 250/310 loss 0.7213\n")
    assert _progress(log) == ("off-ramps", 250, 310)
    cfg = TrainConfig.from_dict({"train": {"seed": 3}}).train
    assert order_seeds(cfg, 3) == [3, 4, 5]
    cfg = TrainConfig.from_dict({"train": {"seed": 3, "order_seed": 7}}).train
    assert order_seeds(cfg, 2) == [7, 8]
    # The bars' rates count only the steps seen since a stage was first seen.
    d = tmp_path / "ingredient0"
    d.mkdir()
    log.rename(d / "train.log")
    shown = io.StringIO()
    bar = tqdm(total=1, desc="ingredient0", file=shown)
    _update([bar], [d])
    assert (bar.desc, bar.total, bar.initial, bar.n) == ("ingredient0 off-ramps: ", 310, 250, 250)
    # The new stage is never drawn with n still 0 against initial 250: no negative rate.
    assert not re.search(r"[<,] ?-\d", shown.getvalue()), shown.getvalue()
    with (d / "train.log").open("a") as f:
        f.write("23:08:40 off-ramps 300/310 loss 0.7001\n")
    _update([bar], [d])          # the same stage: counted on, not reset
    assert (bar.total, bar.initial, bar.n) == (310, 250, 300)
