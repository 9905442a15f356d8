import pytest
import torch

from sw.compress import PruneConfig, Pruner, block_scores, cubic_sparsity, mask_from_scores
from sw.student import Student, StudentConfig


def test_cubic_schedule():
    kw = dict(start=10, end=110, final=0.8)
    assert cubic_sparsity(0, **kw) == 0.0
    assert cubic_sparsity(10, **kw) == 0.0
    # Halfway: 0.8 * (1 - 0.5^3) = 0.7
    assert cubic_sparsity(60, **kw) == pytest.approx(0.7)
    assert cubic_sparsity(110, **kw) == 0.8
    assert cubic_sparsity(500, **kw) == 0.8
    with pytest.raises(ValueError, match="end must be after start"):
        cubic_sparsity(0, start=5, end=5, final=0.5)


def test_unstructured_mask_keeps_largest():
    s = torch.tensor([[0.1, -5.0, 3.0], [0.2, 0.0, -1.0]]).abs()
    m = mask_from_scores(s, 0.5)
    assert m.tolist() == [[0, 1, 1], [0, 0, 1]]


def test_block_mask_follows_engine_vectors():
    torch.manual_seed(0)
    w = torch.randn(32, 8)  # nn.Linear layout: 32 outputs x 8 inputs
    m = mask_from_scores(w.abs(), 0.5, block=16)
    # A block is 16 consecutive outputs of one input: weight[c0:c0+16, k].
    blocks = m.reshape(2, 16, 8)
    assert bool(((blocks == 0).all(1) | (blocks == 1).all(1)).all())
    assert int((blocks[:, 0, :] == 0).sum()) == 8
    kept_scores = block_scores(w.abs(), 16)[blocks[:, 0, :] == 1]
    dropped = block_scores(w.abs(), 16)[blocks[:, 0, :] == 0]
    assert kept_scores.min() >= dropped.max()
    with pytest.raises(ValueError, match="block must divide the output features"):
        mask_from_scores(w.abs(), 0.5, block=5)


def test_pruner_reaches_targets_and_bakes():
    m = Student(StudentConfig(vocab_size=50, tokenizer_vocab=50, unk_id=1, emb_dim=16,
                              hidden=32, heads=2, ffn=64, layers=2, max_len=8, span_ramp=4))
    p = Pruner(m, PruneConfig(method="movement", encoder=0.5, embedding=0.75), n_steps=100)
    assert p.update(0) and m.sparsity()["encoder"] == 0.0
    assert not p.update(13)  # between updates
    for x in m.prunable().values():
        x.weight.grad = torch.randn_like(x.weight)
    p.accumulate()
    # end = 0.6 of 100 steps: step 61 is the first at or after it, not a multiple of 25.
    assert p.update(61)
    assert not p.update(75)  # masks are fixed once the final sparsity is reached
    p.bake()
    sp = m.sparsity()
    assert sp["encoder"] == 0.5 and sp["word"] == 0.75
    assert float((m.wq.weight == 0).float().mean()) == 0.5


def test_config_is_checked():
    with pytest.raises(ValueError, match="method must be 'magnitude' or 'movement'"):
        PruneConfig(method="random")
    with pytest.raises(ValueError, match="encoder sparsity must be in"):
        PruneConfig(encoder=1.0)
