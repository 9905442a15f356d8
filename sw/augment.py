"""Task-specific data augmentation for distillation ([S4]), after Tang et al. (2019,
"Distilling task-specific knowledge from BERT into simple neural networks") and TinyBERT.

A small student trained from scratch learns far more from the teacher than from the 67k SST-2
labels alone, so the teacher labels extra sentences made from the training set. Each augmented
sentence applies, word by word, one of:

* masking (probability ``p_mask``): the word becomes ``[MASK]``;
* replacement (``p_replace``): the word becomes one of its ``k`` nearest neighbours (cosine) in
  the teacher's input-embedding table, among the whole words of the training vocabulary. This
  stands in for Tang et al.'s part-of-speech-guided replacement without a tagger: embedding
  neighbours are mostly words of the same class ("terrific" → "fantastic", "wonderful");

then, with probability ``p_ngram`` and only for single-sentence tasks, keeps a random n-gram
(n in 1..5) of the result. Otherwise, with probability ``p_concat`` (single sentences only), it
appends another random training example, itself masked and replaced the same way, after a
connective ("but", ", and", ";", ...). SST-2's training set is mostly short phrases while its
dev and test sets are whole review sentences that often join two judgements; the joined
sentences give the student long, mixed inputs labelled by the teacher. Duplicates of the source
are drawn again (a few tries) and dropped. The teacher's logits, not the source's label, are the
targets of the augmented sentences.
"""

import random
from pathlib import Path

import torch
from safetensors import safe_open

from hw.checks import check_count
from sw.data import Example

__all__ = ["neighbour_table", "augment"]

MASK = "[MASK]"
# Ways in which SST's review sentences join two clauses ("" : plain juxtaposition).
CONNECTIVES = (",", "and", "but", ", but", ", and", ";", "--", ".", "", "though", "while")


def _words(text):
    return text.split()


def neighbour_table(examples, model_dir, *, k=8, vocab=None):
    """Nearest neighbours of every whole word of ``examples`` that is one WordPiece token:
    ``{word: [k neighbours]}`` by cosine similarity of the teacher's input embeddings
    (``model_dir``: a BERT-family checkpoint with ``model.safetensors``)."""
    from sw.tokenizer import WordPiece

    model_dir = Path(model_dir)
    tok = WordPiece(model_dir)._tok
    seen = sorted({w for e in examples for t in (e.text_a, e.text_b) if t for w in _words(t)})
    words, ids = [], []
    for w in seen:
        i = tok.token_to_id(w)
        if i is not None and w.isalpha():
            words.append(w)
            ids.append(i)
    if len(words) < 2:
        raise ValueError(f"need at least 2 distinct whole words for neighbours, "
                         f"not {len(words)}")
    k = min(k, len(words) - 1)  # a tiny vocabulary has fewer than k other words
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        key = next(n for n in f.keys() if n.endswith("embeddings.word_embeddings.weight"))
        emb = f.get_tensor(key).float()[torch.tensor(ids)]
    emb = torch.nn.functional.normalize(emb, dim=1)
    table = {}
    for s in range(0, len(words), 2048):
        sim = emb[s:s + 2048] @ emb.T
        sim[torch.arange(sim.shape[0]), torch.arange(s, s + sim.shape[0])] = -2.0
        top = sim.topk(k, dim=1).indices
        for r, row in enumerate(top.tolist()):
            table[words[s + r]] = [words[j] for j in row]
    return table


def _augment_text(words, rng, neighbours, p_mask, p_replace):
    out = []
    for w in words:
        u = rng.random()
        if u < p_mask:
            out.append(MASK)
        elif u < p_mask + p_replace and w in neighbours:
            out.append(rng.choice(neighbours[w]))
        else:
            out.append(w)
    return out


def augment(examples, copies, neighbours, *, seed=0, p_mask=0.1, p_replace=0.1, p_ngram=0.25,
            p_concat=0.0, tries=10):
    """``copies`` augmented examples per example (fewer where no new sentence comes out).

    Returns ``(augmented, source, partner)``: the new :class:`~sw.data.Example` list (labels
    copied from the source; distillation uses the teacher's logits instead), the index of each
    one's source example and of the example appended to it (-1: none), so that a held-out
    slice's text can be kept out of training.
    """
    check_count("copies", copies, lo=0)
    for name, p in (("p_mask", p_mask), ("p_replace", p_replace), ("p_ngram", p_ngram),
                    ("p_concat", p_concat)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], not {p!r}")
    if p_mask + p_replace > 1.0:
        raise ValueError(f"p_mask + p_replace must be at most 1, not {p_mask + p_replace}")
    rng = random.Random(seed)
    out, source, partner = [], [], []
    for i, e in enumerate(examples):
        seen = {(e.text_a, e.text_b)}
        for _ in range(copies):
            for _ in range(tries):
                a = _augment_text(_words(e.text_a), rng, neighbours, p_mask, p_replace)
                b, j = None, -1
                if e.text_b is not None:
                    b = " ".join(_augment_text(_words(e.text_b), rng, neighbours, p_mask,
                                               p_replace))
                elif len(a) > 1 and rng.random() < p_ngram:
                    n = rng.randint(1, min(5, len(a)))
                    s = rng.randint(0, len(a) - n)
                    a = a[s:s + n]
                elif len(examples) > 1 and rng.random() < p_concat:
                    j = rng.randrange(len(examples) - 1)
                    j += j >= i  # another example
                    tail = _augment_text(_words(examples[j].text_a), rng, neighbours, p_mask,
                                         p_replace)
                    a = a + _words(rng.choice(CONNECTIVES)) + tail
                a = " ".join(a)
                if (a, b) not in seen and a.replace(MASK, "").strip() \
                        and (b is None or b.replace(MASK, "").strip()):
                    seen.add((a, b))
                    out.append(Example(a, e.label, b))
                    source.append(i)
                    partner.append(j)
                    break
    return out, source, partner
