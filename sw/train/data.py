"""Training data: tokenized batches, the held-out split, the vocabulary the student keeps, its
PCA-initialised embeddings, and the teacher's augmented examples and token states joined in."""

from pathlib import Path

import torch
from safetensors import safe_open

from sw.tokenizer import Batch, encode_examples

__all__ = ["rows", "prune_vocab", "pca_init", "split_holdout", "join_augmented", "join_states",
           "gather_states"]


def rows(batch, idx):
    """(ids, mask, types) of rows ``idx`` of ``batch``, cut to their longest sentence."""
    mask = batch.attention_mask[idx]
    n = int(mask.sum(1).max())
    return batch.input_ids[idx, :n], mask[:, :n], batch.token_type_ids[idx, :n]


def prune_vocab(tok, batch, min_count):
    """Tokenizer ids kept in the student's token table: the special tokens and every id seen
    at least ``min_count`` times in ``batch``. Returns (kept ids ascending, vocab_map)."""
    counts = torch.bincount(batch.input_ids[batch.attention_mask.bool()],
                            minlength=tok.vocab_size)
    keep = counts >= min_count
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        keep[tok._special(special)] = True
    kept = keep.nonzero().flatten()
    vmap = torch.full((tok.vocab_size,), -1, dtype=torch.int64)
    vmap[kept] = torch.arange(len(kept))
    vmap[vmap < 0] = vmap[tok.unk_id]
    return kept, vmap


def pca_init(model, kept, model_dir):
    """Token, position and segment tables from the top-E principal directions of the
    teacher's (all-MiniLM-L6-v2's) input embeddings, restricted to the kept vocabulary."""
    path = Path(model_dir) / "model.safetensors"
    with safe_open(path, "pt") as f:
        keys = set(f.keys())

        def get(name):
            for k in (name, f"bert.{name}"):
                if k in keys:
                    return f.get_tensor(k).float()
            raise ValueError(f"{path} has no tensor {name!r}")

        word = get("embeddings.word_embeddings.weight")[kept]
        pos = get("embeddings.position_embeddings.weight")
        seg = get("embeddings.token_type_embeddings.weight")
    c = model.config
    mean = word.mean(0)
    _, _, v = torch.linalg.svd(word - mean, full_matrices=False)
    proj = v[:c.emb_dim].T
    with torch.no_grad():
        model.word.weight.copy_((word - mean) @ proj)
        model.pos.weight.copy_(pos[:c.max_len] @ proj)
        model.seg.weight.copy_(seg[:c.type_vocab] @ proj)


def split_holdout(examples, perm, n_hold, min_words):
    """(held-out, training) indices: the first ``n_hold`` of ``perm`` with at least
    ``min_words`` words (so that the slice can resemble full-sentence dev sets), the rest."""
    words = torch.tensor([len(e.text_a.split()) + len((e.text_b or "").split())
                          for e in examples])
    cand = perm[words[perm] >= min_words]
    if len(cand) < n_hold:
        raise ValueError(f"only {len(cand)} training examples have at least {min_words} words, "
                         f"fewer than holdout = {n_hold}")
    held = torch.zeros(len(examples), dtype=torch.bool)
    held[cand[:n_hold]] = True
    return cand[:n_hold], perm[~held[perm]]


def join_augmented(tok, fit, labels, teacher, augmented, fit_idx, n_train, per_example):
    """``fit`` plus at most ``per_example`` augmented examples of each of its sources (none
    with held-out text: neither the source nor the appended partner may be held out)."""
    examples, logits, source = augmented[:3]
    partner = augmented[3] if len(augmented) > 3 else torch.full_like(source, -1)
    if not len(examples) == len(logits) == len(source) == len(partner):
        raise ValueError("augmented examples, logits, sources and partners differ in length")
    in_fit = torch.zeros(max(n_train, int(source.max()) + 1, int(partner.max()) + 1),
                         dtype=torch.bool)
    in_fit[fit_idx] = True
    count = torch.zeros_like(in_fit, dtype=torch.int64)
    keep = []
    for j, (s, p) in enumerate(zip(source.tolist(), partner.tolist(), strict=True)):
        if s < n_train and in_fit[s] and count[s] < per_example and p < n_train \
                and (p < 0 or in_fit[p]):
            keep.append(j)
            count[s] += 1
    if not keep:
        raise ValueError("the augmented cache has no example made from this training set")
    aug, _ = encode_examples(tok, [examples[j] for j in keep])
    keep = torch.tensor(keep)
    joined = Batch(torch.cat([fit.input_ids, aug.input_ids]),
                   torch.cat([fit.attention_mask, aug.attention_mask]),
                   torch.cat([fit.token_type_ids, aug.token_type_ids]), 0)
    return (joined, torch.cat([labels, logits[keep].argmax(1)]),
            torch.cat([teacher, logits[keep].to(teacher.dtype)]), keep)


def join_states(train_states, aug_states):
    """One packed store of teacher token states: the training examples', then the augmented
    ones' (rows ``n_train + j``)."""
    states, offsets = train_states
    if aug_states is None:
        return states, offsets
    a_states, a_offsets = aug_states
    return (torch.cat([states, a_states]),
            torch.cat([offsets, offsets[-1] + a_offsets[1:]]))


def gather_states(store, rows, t):
    """Teacher token states of store rows ``rows``, padded to ``t`` tokens: ``(B, t, H)``
    float32 and the ``(B, t)`` mask of real tokens."""
    states, offsets = store
    start = offsets[rows]
    n = offsets[rows + 1] - start
    pos = torch.arange(t, device=offsets.device)
    valid = pos[None, :] < n[:, None]
    idx = (start[:, None] + pos[None, :]).clamp(max=len(states) - 1)
    return states[idx].float(), valid
