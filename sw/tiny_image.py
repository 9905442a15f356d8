"""A tiny weight image for tests: n = 4, a 40-row vocabulary, random but deterministic weights.

:func:`build_tiny_image` builds a student the size of a few registers (E = 8, H = 16, two heads
of 8, FFN 32, ``layers`` layers, 16 tokens), fills it with random weights from a fixed seed,
quantizes and calibrates it on :data:`TINY_SENTENCES`, and writes it with
:func:`sw.export.build_image` for ``HwParams(n=4)``. It exercises what the accelerator must
handle without training anything:

* a pruned vocabulary: the tokenizer ids of :data:`TINY_SENTENCES` plus the special tokens are
  kept, every other id maps to the ``[UNK]`` row;
* zero-vector skipping: about a quarter of the 1 x n weight vectors (n consecutive output
  features of one input feature) of every encoder matrix are pruned;
* head skipping: head ``skip_head`` has span zero (its span fraction is very negative), so the
  compiler leaves its commands out;
* weights large enough (``init_std``) that activations use the whole AdaptivFloat range
  rather than a few codes near zero.

The threshold, predictor and DVFS table are placeholders (``threshold`` is a parameter); tests
that need a particular exit layer choose the threshold after measuring the entropies. Builds
in well under a second; the RTL testbenches load the same image.
"""

import math

import torch

from sw.export import build_image
from sw.image import HwParams, WeightImage
from sw.student import Student, StudentConfig
from sw.tokenizer import WordPiece
from sw.train import calibrate

__all__ = ["TINY_SENTENCES", "TINY_N", "build_tiny_image"]

TINY_N = 4
# The kept vocabulary and the calibration set.
TINY_SENTENCES = (
    "a gorgeous , witty film .",
    "the plot is dull and the acting is bad .",
    "it is not a good movie .",
    "one of the best films of the year , moving and funny .",
    "i hated every minute of it .",
    "a small story told with great warmth .",
)
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def _kept_ids(tok, sentences):
    ids = {tok._special(s) for s in _SPECIALS}
    batch = tok.encode(list(sentences), pad_to="longest")
    ids.update(batch.input_ids[batch.attention_mask.bool()].tolist())
    return torch.tensor(sorted(ids))


def _block_prune(lin, n, frac, gen):
    """Zero ``frac`` of the 1 x n vectors ``weight[c0:c0+n, k]`` (the engine skips them)."""
    out_f, in_f = lin.weight.shape
    if out_f % n:
        return
    keep = (torch.rand(out_f // n, in_f, generator=gen) >= frac).float()
    lin.mask.copy_(keep.repeat_interleave(n, dim=0))


@torch.no_grad()
def build_tiny_image(seed=0, *, layers=2, threshold=0.3, init_std=0.5, prune=0.25,
                     skip_head=1, span_frac=0.5, bins=4, ln_per_layer=False,
                     pooling="cls") -> tuple[WeightImage, dict]:
    """Build the tiny image. Returns ``(image, info)``.

    Parameters
    ----------
    seed : int
        Seed of every random weight (the same seed gives the same image bytes).
    layers : int
        Transformer layers (each with its off-ramp).
    threshold : float
        Entropy exit threshold in nats (0 .. ln 2).
    init_std : float
        Standard deviation of the random weights and embeddings.
    prune : float
        Fraction of 1 x n weight vectors pruned in each encoder matrix.
    skip_head : int or None
        The head whose span is zero (``None``: every head attends).
    span_frac : float
        Span of the other heads as a fraction of ``max_len``.
    bins : int
        DVFS / exit-predictor bins.
    ln_per_layer, pooling :
        The student's version-2 features (:class:`~sw.student.StudentConfig`); with the
        defaults the image is a version-1 image, byte for byte as before.

    ``info`` holds the model (quantized, calibrated, eval mode), the tokenizer, the kept
    tokenizer ids and the calibration batch.
    """
    tok = WordPiece(max_len=16)
    kept = _kept_ids(tok, TINY_SENTENCES)
    c = StudentConfig(vocab_size=len(kept), emb_dim=8, hidden=16, heads=2, ffn=32, layers=layers,
                      max_len=16, span_ramp=4, tokenizer_vocab=tok.vocab_size, unk_id=tok.unk_id,
                      dropout=0.0, ln_per_layer=ln_per_layer, pooling=pooling)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Student(c)
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=gen) * init_std)
    for ln in model.layer_norms().values():
        ln.weight.copy_(1.0 + 0.25 * torch.randn(ln.weight.shape, generator=gen))
        ln.bias.copy_(0.25 * torch.randn(ln.bias.shape, generator=gen))
    for lin in model.prunable().values():
        _block_prune(lin, TINY_N, prune, gen)
    spans = torch.full((c.heads,), float(span_frac))
    if skip_head is not None:
        spans[skip_head] = -10.0
    model.span_frac.copy_(spans)
    vmap = torch.full((c.tokenizer_vocab,), int((kept == tok.unk_id).nonzero()[0, 0]))
    vmap[kept] = torch.arange(len(kept))
    model.vocab_map.copy_(vmap)

    model.quant.weights = True
    batch = tok.encode(list(TINY_SENTENCES), pad_to="longest")
    method = calibrate(model, batch)
    model.quant.acts = True
    model.eval()

    edges = torch.linspace(0, math.log(2), bins + 1).tolist()
    mhz, mv = [250, 500, 750, 1000], [500, 600, 700, 800]
    predicted = [min(layers, 1 + b * layers // bins) for b in range(bins)]
    codes = [(min(3, b), min(3, b)) for b in range(bins)]
    metrics = {
        "threshold": threshold,
        "predictor": {"edges": edges, "layers": predicted},
        "dvfs": {"codes": codes, "mhz": mhz, "mv": mv},
        "dev": {"accuracy_all_layers": 0.0, "accuracy_early_exit": 0.0,
                "avg_layers": float(layers), "accuracy_float": 0.0},
        "calibration": method,
        "sparsity": model.sparsity(),
    }
    img = build_image(model, metrics, hw=HwParams(n=TINY_N))
    return img, {"model": model, "tokenizer": tok, "kept_ids": kept, "batch": batch,
                 "metrics": metrics}
