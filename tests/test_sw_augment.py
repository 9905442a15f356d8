import json

import pytest
import torch
from safetensors.torch import save_file

from sw.augment import MASK, augment, neighbour_table
from sw.cli import main
from sw.data import Example
from sw.tokenizer import WordPiece, default_model_dir
from sw.train.data import join_augmented as _join_augmented
from tests.test_sw_train import MICRO, micro_task_with_teacher, sets

EXAMPLES = [Example("a truly terrific and funny movie", 1),
            Example("boring , dull and far too long", 0),
            Example("bad", 0)]


def test_neighbours_come_from_the_teacher_embeddings():
    table = neighbour_table(EXAMPLES + [Example("fantastic hilarious film excellent tedious "
                                                "great amusing awful", 1)],
                            default_model_dir(), k=2)
    # Whole words only, and never the word itself.
    assert all(w not in nb and len(nb) == 2 for w, nb in table.items())
    assert "," not in table
    assert set(table["terrific"]) <= {"fantastic", "excellent", "great"}
    assert "hilarious" in table["funny"] or "amusing" in table["funny"]


def test_augment_is_deterministic_and_never_repeats_the_source():
    nb = {"terrific": ["fantastic"], "funny": ["hilarious"], "movie": ["film"]}
    a, src, part = augment(EXAMPLES, 4, nb, seed=3)
    b, src_b, _ = augment(EXAMPLES, 4, nb, seed=3)
    assert a == b and src == src_b and part == [-1] * len(a)  # no concatenation by default
    assert len(a) <= 4 * len(EXAMPLES) and sorted(src) == src
    for e, s in zip(a, src, strict=True):
        assert e.text_a != EXAMPLES[s].text_a and e.label == EXAMPLES[s].label
        assert e.text_a.replace(MASK, "").strip()
    # Every word replaced where it has a neighbour, kept otherwise; no n-grams.
    full, _, _ = augment(EXAMPLES[:1], 1, nb, p_mask=0.0, p_replace=1.0, p_ngram=0.0)
    assert full[0].text_a == "a truly fantastic and hilarious film"
    masked, _, _ = augment(EXAMPLES[:1], 1, nb, p_mask=0.5, p_replace=0.0, p_ngram=0.0, seed=1)
    words = masked[0].text_a.split()
    assert len(words) == 6 and MASK in words
    assert all(w == MASK or w == o for w, o in zip(words, EXAMPLES[0].text_a.split(),
                                                   strict=True))


def test_concatenation_appends_another_example_after_a_connective():
    from sw.augment import CONNECTIVES

    out, src, part = augment(EXAMPLES, 3, {}, p_mask=0.0, p_replace=0.0, p_ngram=0.0,
                             p_concat=1.0, seed=2)
    assert len(out) == 3 * len(EXAMPLES)
    for e, s, j in zip(out, src, part, strict=True):
        assert j != s and 0 <= j < len(EXAMPLES) and e.label == EXAMPLES[s].label
        head, tail = EXAMPLES[s].text_a, EXAMPLES[j].text_a
        assert e.text_a.startswith(head + " ") and e.text_a.endswith(" " + tail)
        middle = e.text_a[len(head):len(e.text_a) - len(tail)].strip()
        assert middle in CONNECTIVES
    assert len(set(part)) > 1


def test_augment_refuses_bad_settings():
    with pytest.raises(ValueError, match=r"p_concat must be in \[0, 1\]"):
        augment(EXAMPLES, 1, {}, p_concat=-0.1)
    with pytest.raises(ValueError, match="copies must be a non-negative integer"):
        augment(EXAMPLES, -1, {})
    with pytest.raises(ValueError, match=r"p_ngram must be in \[0, 1\]"):
        augment(EXAMPLES, 1, {}, p_ngram=1.5)
    with pytest.raises(ValueError, match="p_mask \\+ p_replace must be at most 1"):
        augment(EXAMPLES, 1, {}, p_mask=0.6, p_replace=0.6)


def test_join_leaves_out_held_out_sources_and_caps_copies():
    tok = WordPiece(max_len=16)
    train = [Example(f"word{i}", i % 2) for i in range(4)]
    fit_idx = torch.tensor([0, 2, 3])  # example 1 is held out
    batch = tok.encode([train[i].text_a for i in fit_idx])
    aug = [Example(f"aug {s} {j}", 0) for s in range(4) for j in range(3)]
    source = torch.tensor([s for s in range(4) for _ in range(3)])
    logits = torch.randn(len(aug), 2)
    labels, teacher = torch.tensor([0, 0, 1]), torch.zeros(3, 2)
    joined, y, t, keep = _join_augmented(tok, batch, labels, teacher, (aug, logits, source),
                                         fit_idx, len(train), 2)
    kept = [j for j in range(len(aug)) if source[j] != 1 and j % 3 < 2]
    assert keep.tolist() == kept
    # an appended partner that is held out (example 1) keeps its sentence out too
    partner = torch.full_like(source, -1)
    partner[0] = 1
    partner[3] = 2
    *_, keep = _join_augmented(tok, batch, labels, teacher, (aug, logits, source, partner),
                               fit_idx, len(train), 2)
    # sentence 0 is dropped; its source's third augmentation (2) takes the freed place
    assert keep.tolist() == sorted([j for j in kept if j != 0] + [2])
    assert len(joined) == 3 + len(kept) == len(y) == len(t)
    assert torch.equal(t[3:], logits[kept]) and torch.equal(y[3:], logits[kept].argmax(1))
    assert torch.equal(joined.input_ids[3:], tok.encode([aug[j].text_a for j in kept]).input_ids)


@pytest.mark.slow
def test_train_with_augmented_cache(tmp_path, capsys):
    data, teacher = micro_task_with_teacher(tmp_path)
    assert main(["train", "--data", str(data), "--teacher", str(teacher), "-q", "--threads",
                 "1", "-o", str(tmp_path / "x"), *sets([*MICRO, "train.augment=1"])]) != 0
    assert "run 'edgebert teacher --augment K' first" in capsys.readouterr().err
    rows = ["sentence\tlabel"] + [f"the film {i}\t{i % 2}" for i in range(200)]
    (teacher / "augment.tsv").write_text("\n".join(rows) + "\n")
    source = torch.arange(200) % 160
    save_file({"logits": torch.randn(200, 2), "source": source},
              teacher / "augment_logits.safetensors")
    assert main(["train", "--data", str(data), "--teacher", str(teacher), "-q", "--threads", "1",
                 "-o", str(tmp_path / "a"), *sets([*MICRO, "train.augment=1"])]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    # One augmented example per source that is not held out (sources 0..159, 32 held out).
    assert m["n_train"] == 128 and m["n_augmented"] == 128


def test_holdout_can_be_drawn_from_long_examples():
    from sw.train.data import split_holdout as _split_holdout

    ex = [Example(" ".join(["w"] * (i % 5 + 1)), 0) for i in range(50)]
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    hold, fit = _split_holdout(ex, perm, 6, 4)
    assert all(len(ex[i].text_a.split()) >= 4 for i in hold.tolist())
    assert sorted(hold.tolist() + fit.tolist()) == list(range(50))
    hold0, fit0 = _split_holdout(ex, perm, 6, 0)
    assert torch.equal(hold0, perm[:6]) and torch.equal(fit0, perm[6:])
    with pytest.raises(ValueError, match="only 20 training examples have at least 4 words"):
        _split_holdout(ex, perm, 21, 4)
