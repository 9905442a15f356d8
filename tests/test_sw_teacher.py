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
