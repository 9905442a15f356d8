import json
import random

import pytest
import torch

from sw.data import Example
from sw.teacher import (
    Teacher,
    bucketed_order,
    cache_augmented,
    cache_states,
    cached_augmented,
    cached_logits,
    cached_states,
    fine_tune,
    load_teacher,
    predict_logits,
    predict_states,
    soup,
)
from sw.tokenizer import WordPiece


def examples(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.randint(0, 1)
        out.append(Example(f"the film is {'good' if y else 'bad'}", y))
    return out


@pytest.mark.slow
def test_fine_tune_caches_logits_and_resumes(tiny_bert, tmp_path):
    train, dev = examples(64, 0), examples(16, 1)
    meta = fine_tune(train, dev, tmp_path, model_dir=tiny_bert, max_len=8, epochs=6,
                     batch_size=8, lr=3e-3, ckpt_every=10, log=lambda m: None,
                     logits_limit=40)
    assert meta["dev_accuracy"] == 1.0  # label is one word: learnable in 48 steps
    assert json.loads((tmp_path / "teacher.json").read_text())["steps"] == 48
    logits, labels = cached_logits(tmp_path, 40)
    assert logits.shape == (40, 2)
    assert labels.tolist() == [e.label for e in train[:40]]
    assert (logits.argmax(1) == labels).float().mean() == 1.0
    with pytest.raises(ValueError, match="cover 40 examples, fewer than the 64"):
        cached_logits(tmp_path, 64)
    model = load_teacher(tmp_path, tiny_bert)
    assert isinstance(model, Teacher)
    # Augmented sentences: labelled with the fine-tuned teacher's own logits.
    n = cache_augmented(tmp_path, train, 2, model_dir=tiny_bert, max_len=8, progress=False,
                        log=lambda m: None)
    aug, aug_logits, source, partner = cached_augmented(tmp_path)
    assert torch.equal(partner, torch.full_like(source, -1))  # no --concat
    assert len(aug) == n == len(source) and 0 < n <= 128
    assert all(0 <= s < 64 and aug[i].text_a != train[s].text_a
               for i, s in enumerate(source.tolist()))
    want = predict_logits(model, WordPiece(tiny_bert, max_len=8).encode([e.text_a for e in aug]))
    assert torch.allclose(aug_logits, want, atol=1e-5)
    assert [e.label for e in aug] == want.argmax(1).tolist()


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tune_freezes_the_token_table_only_when_asked(tiny_bert, tmp_path, freeze):
    from safetensors.torch import load_file

    train = examples(16, 0)
    fresh = Teacher(tiny_bert, n_labels=2).encoder.embeddings.word_embeddings.weight
    meta = fine_tune(train, train[:4], tmp_path, model_dir=tiny_bert, max_len=8, epochs=1,
                     batch_size=8, lr=1e-2, log=lambda m: None, logits_limit=4,
                     freeze_word_embeddings=freeze)
    assert meta["freeze_word_embeddings"] is freeze
    tuned = load_file(tmp_path / "teacher.safetensors")
    table = tuned["encoder.embeddings.word_embeddings.weight"]
    assert torch.equal(table, fresh) is freeze
    # The rest of the encoder trains either way.
    pos = tuned["encoder.embeddings.position_embeddings.weight"]
    assert not torch.equal(
        pos, Teacher(tiny_bert, n_labels=2).encoder.embeddings.position_embeddings.weight)


def test_predict_states_packs_each_sentence_unpadded(tiny_bert):
    tok = WordPiece(tiny_bert, max_len=8)
    model = Teacher(tiny_bert).eval()
    ex = [Example(t, 0) for t in ("good", "the film is very good", "bad film", "the")]
    batch = tok.encode([e.text_a for e in ex])
    states, offsets = predict_states(model, batch, batch_size=3)
    lengths = batch.attention_mask.sum(1)
    assert offsets.tolist() == [0, *lengths.cumsum(0).tolist()]
    assert states.dtype == torch.float16 and states.shape == (int(lengths.sum()), 16)
    for i in range(len(ex)):
        n = int(lengths[i])
        with torch.no_grad():  # each sentence alone, no padding at all
            alone = model.states(batch.input_ids[i:i + 1, :n], batch.attention_mask[i:i + 1, :n],
                                 batch.token_type_ids[i:i + 1, :n])[0]
        # float16 storage: relative error at most 2^-11 (plus float32 noise of the batching)
        got = states[offsets[i]:offsets[i + 1]].float()
        assert torch.all((got - alone).abs() <= alone.abs() * 2.0 ** -11 + 1e-5)
    left = batch.attention_mask.flip(1)
    from sw.tokenizer import Batch
    with pytest.raises(ValueError, match="right-padded"):
        predict_states(model, Batch(batch.input_ids, left, batch.token_type_ids, 0))


@pytest.mark.slow
def test_cache_states_covers_train_and_augmented(tiny_bert, tmp_path):
    train, dev = examples(24, 0), examples(8, 1)
    fine_tune(train, dev, tmp_path, model_dir=tiny_bert, max_len=8, epochs=1, batch_size=8,
              log=lambda m: None)
    cache_augmented(tmp_path, train, 2, model_dir=tiny_bert, max_len=8, progress=False,
                    log=lambda m: None)
    assert cache_states(tmp_path, train, model_dir=tiny_bert, max_len=8, progress=False,
                        log=lambda m: None) == 24 + 48
    tok = WordPiece(tiny_bert, max_len=8)
    for name, ex in (("train", train), ("augment", cached_augmented(tmp_path)[0])):
        states, offsets = cached_states(tmp_path, name, len(ex))
        lengths = tok.encode([e.text_a for e in ex]).attention_mask.sum(1)
        assert torch.equal(offsets[1:] - offsets[:-1], lengths)
        assert states.shape[0] == int(offsets[-1])
    states, offsets = cached_states(tmp_path, "train", 10)
    assert len(offsets) == 11 and states.shape[0] == int(offsets[-1])
    with pytest.raises(ValueError, match="covers 24 examples, fewer than the 25"):
        cached_states(tmp_path, "train", 25)
    with pytest.raises(FileNotFoundError, match="edgebert teacher --states"):
        cached_states(tmp_path / "none", "train", 1)
    # One teacher pass for logits and states (edgebert teacher --augment K --states) writes
    # exactly what the two passes above wrote.
    two_pass = cached_augmented(tmp_path)[1], cached_states(tmp_path, "augment", 48)
    cache_augmented(tmp_path, train, 2, model_dir=tiny_bert, max_len=8, progress=False,
                    log=lambda m: None)
    assert not (tmp_path / "augment_states.safetensors").exists()  # stale cache removed
    cache_augmented(tmp_path, train, 2, model_dir=tiny_bert, max_len=8, states=True,
                    progress=False, log=lambda m: None)
    one_pass = cached_augmented(tmp_path)[1], cached_states(tmp_path, "augment", 48)
    assert torch.equal(one_pass[0], two_pass[0])
    assert all(torch.equal(a, b) for a, b in zip(one_pass[1], two_pass[1], strict=True))


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Teacher(tmp_path)
    with pytest.raises(FileNotFoundError, match="run the teacher fine-tuning first"):
        cached_logits(tmp_path, 3)


def test_bucketed_order_is_a_permutation_of_similar_lengths():
    lengths = torch.tensor([5, 1, 9, 3, 7, 2, 8, 4] * 4)
    order = bucketed_order(lengths, 4, 2, seed=0, bucket=2)
    assert sorted(order[:32].tolist()) == list(range(32))
    assert sorted(order[32:].tolist()) == list(range(32))
    assert torch.equal(order, bucketed_order(lengths, 4, 2, seed=0, bucket=2))
    # With one bucket per epoch, every batch holds 4 examples of one length (each length
    # occurs exactly 4 times).
    batches = lengths[bucketed_order(lengths, 4, 1, seed=1, bucket=8)].view(-1, 4)
    assert torch.equal(batches.max(1).values, batches.min(1).values)
    assert sorted(batches[:, 0].tolist()) == sorted(set(lengths.tolist()))


def test_bucketed_order_keeps_whole_batches_when_the_epoch_is_not_a_multiple():
    # 1,000 examples, batches of 32: each epoch ends in a short batch of 8 unless it is filled.
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 65, (1000,), generator=g)
    order = bucketed_order(lengths, 32, 3, seed=2, bucket=8)
    assert len(order) == 3 * 1024                     # 32 batches per epoch, all full
    for e in range(3):
        epoch = order[e * 1024:(e + 1) * 1024]
        assert set(epoch.tolist()) == set(range(1000))  # every example, 24 of them twice
    batches = lengths[order].view(-1, 32)
    # Every slice is one batch sorted by length inside its chunk, not two halves of batches.
    assert bool((batches.diff(dim=1) >= 0).all())
    # Padding: whole batches of 256 sorted examples leave about 4 tokens per sentence here;
    # slices across two batches (the short batch not filled) left 9.4.
    pad = (batches.max(1).values.unsqueeze(1) - batches).float().mean()
    assert pad < 5.0, pad


def _ingredient(d, tiny_bert, seed, meta=None):
    """A teacher directory as fine_tune leaves it (random weights, seeded)."""
    from safetensors.torch import save_file

    d.mkdir()
    torch.manual_seed(seed)
    state = Teacher(tiny_bert, n_labels=2).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, d / "teacher.safetensors")
    (d / "teacher.json").write_text(json.dumps(meta or {"dev_accuracy": 0.5,
                                                        "model_dir": str(tiny_bert)}))
    return state


def test_soup_is_the_mean_of_its_ingredients_and_is_cached_like_a_teacher(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    train, dev = examples(12, 0), examples(8, 1)
    a = _ingredient(tmp_path / "a", tiny_bert, 1)
    b = _ingredient(tmp_path / "b", tiny_bert, 2)
    c = _ingredient(tmp_path / "c", tiny_bert, 3)
    meta = soup([tmp_path / "a", tmp_path / "b", tmp_path / "c"], train, dev, tmp_path / "s",
                model_dir=tiny_bert, max_len=8, log=lambda m: None)
    got = load_file(tmp_path / "s" / "teacher.safetensors")
    assert got.keys() == a.keys()
    for k in a:
        want = torch.stack([a[k], b[k], c[k]]).double().mean(0).float()
        assert torch.allclose(got[k], want, rtol=0, atol=1e-7), k
    assert not torch.equal(got["classifier.weight"], a["classifier.weight"])
    # Evaluated and cached exactly as a fine-tuned teacher would be.
    model = load_teacher(tmp_path / "s", tiny_bert)
    tok = WordPiece(tiny_bert, max_len=8)
    dev_pred = predict_logits(model, tok.encode([e.text_a for e in dev])).argmax(1)
    acc = float((dev_pred == torch.tensor([e.label for e in dev])).float().mean())
    on_disk = json.loads((tmp_path / "s" / "teacher.json").read_text())
    assert on_disk["dev_accuracy"] == meta["dev_accuracy"] == acc
    assert on_disk["dev_correct"] == round(acc * len(dev))
    assert on_disk["soup"] == [str(tmp_path / x) for x in "abc"]
    assert on_disk["soup_dev_accuracy"] == [0.5, 0.5, 0.5]
    logits, labels = cached_logits(tmp_path / "s", 12)
    want = predict_logits(model, tok.encode([e.text_a for e in train]))
    assert torch.allclose(logits, want, atol=1e-6)
    assert labels.tolist() == [e.label for e in train]


def test_soup_refuses_what_is_not_one_architecture_from_one_checkpoint(tiny_bert, tmp_path):
    from safetensors.torch import save_file

    train, dev = examples(4, 0), examples(4, 1)
    kw = dict(model_dir=tiny_bert, max_len=8, log=lambda m: None)
    a = _ingredient(tmp_path / "a", tiny_bert, 1)
    with pytest.raises(ValueError, match="at least two"):
        soup([tmp_path / "a"], train, dev, tmp_path / "s", **kw)
    with pytest.raises(ValueError, match="different directories"):
        soup([tmp_path / "a", tmp_path / "a"], train, dev, tmp_path / "s", **kw)
    _ingredient(tmp_path / "b", tiny_bert, 2)
    with pytest.raises(ValueError, match="is one of its ingredients"):
        soup([tmp_path / "a", tmp_path / "b"], train, dev, tmp_path / "b", **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no teacher.safetensors"):
        soup([tmp_path / "a", tmp_path / "empty"], train, dev, tmp_path / "s", **kw)
    (tmp_path / "wide").mkdir()
    save_file({**a, "classifier.weight": torch.zeros(3, 16)},
              tmp_path / "wide" / "teacher.safetensors")
    with pytest.raises(ValueError, match=r"classifier.weight has shape \(3, 16\)"):
        soup([tmp_path / "a", tmp_path / "wide"], train, dev, tmp_path / "s", **kw)
    (tmp_path / "more").mkdir()
    save_file({**a, "extra": torch.zeros(1)}, tmp_path / "more" / "teacher.safetensors")
    with pytest.raises(ValueError, match="other tensors.*extra"):
        soup([tmp_path / "a", tmp_path / "more"], train, dev, tmp_path / "s", **kw)
    _ingredient(tmp_path / "other", tiny_bert, 3, {"model_dir": "/elsewhere"})
    with pytest.raises(ValueError, match="different checkpoints"):
        soup([tmp_path / "a", tmp_path / "other"], train, dev, tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists()  # nothing written on refusal


def test_teacher_command_makes_a_soup_and_refuses_training_options(tiny_bert, tmp_path, capsys):
    from sw.cli import main

    task = tmp_path / "task"
    task.mkdir()
    rows = "".join(f"{e.text_a}\t{e.label}\n" for e in examples(10, 0))
    for split in ("train", "dev"):
        (task / f"{split}.tsv").write_text("sentence\tlabel\n" + rows)
    for name, seed in (("a", 1), ("b", 2)):
        _ingredient(tmp_path / name, tiny_bert, seed)
    args = ["teacher", "--data", str(task), "--model-dir", str(tiny_bert), "--max-len", "8",
            "--threads", "1", "--soup", str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(SystemExit, match="--init-from cannot be combined with --soup"):
        main([*args, "-o", str(tmp_path / "s"), "--init-from", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="--soup: .*is one of its ingredients"):
        main([*args, "-o", str(tmp_path / "a")])
    assert main([*args, "-o", str(tmp_path / "s")]) == 0
    assert "soup of 2 teachers: dev accuracy" in capsys.readouterr().out
    meta = json.loads((tmp_path / "s" / "teacher.json").read_text())
    assert len(meta["soup"]) == 2 and meta["n_train"] == 10
    assert cached_logits(tmp_path / "s", 10)[0].shape == (10, 2)
