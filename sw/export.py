"""A trained student ⇄ its weight image ([S5]).

:func:`build_image` turns a calibrated :class:`~sw.student.Student` into a
:class:`~sw.image.WeightImage` (codes exactly as the quantized model uses them);
:func:`model_from_image` rebuilds a student whose quantized forward pass uses exactly the
image's codes, so accuracy measured on it is the accuracy of the image.
"""

import hashlib
import math

import numpy as np
import torch

from sw.adaptivfloat import decode, encode
from sw.image import V2_KEYS, HwParams, WeightImage, version_for
from sw.sparse import PackedWeights, pack_bitmask, unpack_bitmask
from sw.student import EMB_SITES, Student, StudentConfig, act_sites
from sw.tokenizer import default_model_dir

__all__ = ["build_image", "model_from_image", "FIXED_FRAC_BITS", "vocab_digest"]

# Entropy thresholds and predictor bin edges are stored as unsigned fixed point.
FIXED_FRAC_BITS = 16


def vocab_digest(model_dir=None):
    """SHA-256 of the tokenizer vocabulary the image's token ids refer to."""
    d = default_model_dir() if model_dir is None else model_dir
    path = d / "vocab.txt"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _mask_dtype(n):
    if n <= 8:
        return np.uint8
    if n <= 16:
        return np.uint16
    if n <= 32:
        return np.uint32
    raise ValueError(f"vector width n must be at most 32 for the image, not {n}")


def _add_packed(img, name, section, codes, bias, n):
    p = pack_bitmask(codes, n, img.hw.fmt)
    img.add(f"{name}.masks", section, "bitmask.masks", p.masks.numpy().astype(_mask_dtype(n)))
    img.add(f"{name}.values", section, "bitmask.values", p.values.numpy(), bias)
    img.add(f"{name}.offsets", section, "bitmask.offsets", p.offsets.numpy().astype(np.uint32))
    return p


def _packed(img, name, rows, cols):
    masks = torch.from_numpy(img[f"{name}.masks"].array.astype(np.int64))
    return unpack_bitmask(PackedWeights(
        n=img.hw.n, rows=rows, cols=cols, masks=masks,
        values=torch.from_numpy(img[f"{name}.values"].array.copy()),
        offsets=torch.from_numpy(img[f"{name}.offsets"].array.astype(np.int64))))


def _fixed(x):
    return np.array([round(v * (1 << FIXED_FRAC_BITS)) for v in x], dtype=np.uint32)


def _config_meta(c, version):
    """The student config as the image records it: version-1 images (no version-2 feature
    used) leave the version-2 keys out, as version-1 writers did."""
    d = c.to_dict()
    if version == 1:
        for k in V2_KEYS:
            d.pop(k)
    return d


@torch.no_grad()
def build_image(model: Student, metrics: dict, *, hw: HwParams | None = None):
    """The weight image of a trained, calibrated student (``metrics`` from training)."""
    hw = HwParams(fmt=model.quant.fmt) if hw is None else hw
    if hw.fmt != model.quant.fmt:
        raise ValueError(f"the model is quantized as {model.quant.fmt}, not {hw.fmt}")
    c = model.config
    n, fmt, q = hw.n, hw.fmt, model.quant
    if c.emb_dim % n:
        raise ValueError(f"emb_dim ({c.emb_dim}) must be a multiple of n ({n}) for the image")
    if (model.act_q.layer_bias < 0).any() or (model.act_q.emb_bias < 0).any():
        raise ValueError("the model's activation biases are not calibrated yet")
    img = WeightImage(hw, {k: getattr(c, k) for k in (
        "vocab_size", "tokenizer_vocab", "emb_dim", "hidden", "heads", "ffn", "layers",
        "max_len", "n_labels")})
    img.version = version_for(c.to_dict())
    biases = {}

    def codes_of(x, name):
        b = q.bias_of(x, name)
        biases[name] = b
        return encode(x.float(), b, fmt), b

    # ReRAM: token table (bitmask, gatherable by row), position and segment tables.
    word = model.word.weight * model.word_mask
    wc, wb = codes_of(word, "word")
    p = _add_packed(img, "word", "reram", wc.reshape(-1, n), wb, n)
    per_row = torch.tensor([bin(int(m)).count("1") for m in p.masks.flatten()])
    per_row = per_row.reshape(c.vocab_size, c.emb_dim // n).sum(1)
    rowptr = torch.cat([torch.zeros(1, dtype=torch.int64), per_row.cumsum(0)[:-1]])
    img.add("word.rowptr", "reram", "raw", rowptr.numpy().astype(np.uint32))
    for name in ("pos", "seg"):
        codes, b = codes_of(getattr(model, name).weight, name)
        img.add(name, "reram", "af", codes.numpy(), b)

    # SRAM: every matrix the engine multiplies by, as K x cols (cols padded to n).
    shapes = {}
    for name, lin in model.linears().items():
        w = lin.weight * lin.mask * lin.scale
        out_f, in_f = w.shape
        cols = math.ceil(out_f / n) * n
        codes, b = codes_of(w, f"{name}.weight")
        codes_t = torch.zeros(in_f, cols, dtype=torch.uint8)
        codes_t[:, :out_f] = codes.T
        _add_packed(img, name, "sram", codes_t, b, n)
        bc, bb = codes_of(lin.bias * lin.scale, f"{name}.bias")
        bcodes = torch.zeros(cols, dtype=torch.uint8)
        bcodes[:out_f] = bc
        img.add(f"{name}.bias", "sram", "af", bcodes.numpy(), bb)
        shapes[name] = {"in": in_f, "out": out_f, "cols": cols}

    # Aux: LayerNorm parameters, span masks, activation biases, tables.
    for name, ln in model.layer_norms().items():
        for part in ("weight", "bias"):
            codes, b = codes_of(getattr(ln, part), f"{name}.{part}")
            img.add(f"{name}.{part}", "aux", "af", codes.numpy(), b)
    q_w = q.weights
    q.weights = False
    span = model.span_mask()
    q.weights = q_w
    codes, b = codes_of(span, "span_mask")
    img.add("span_mask", "aux", "af", codes.numpy(), b)
    img.add("span_frac", "aux", "raw", model.span_frac.numpy().astype(np.float32))
    img.add("spans", "aux", "raw", model.spans().numpy().astype(np.uint16))
    img.add("act_bias", "aux", "raw", model.act_q.layer_bias.numpy().astype(np.uint8))
    img.add("emb_act_bias", "aux", "raw", model.act_q.emb_bias.numpy().astype(np.uint8))
    # The tokenizer id of each row; dropped ids share the [UNK] row, which lists unk_id.
    vmap = model.vocab_map
    ids = torch.arange(c.tokenizer_vocab)
    owner = ids[(vmap != vmap[c.unk_id]) | (ids == c.unk_id)]
    if len(owner) != c.vocab_size or len(set(vmap[owner].tolist())) != c.vocab_size:
        raise ValueError("vocab_map must map one kept tokenizer id to each token-table row")
    rows_to_ids = torch.empty(c.vocab_size, dtype=torch.int64)
    rows_to_ids[vmap[owner]] = owner
    img.add("vocab.ids", "aux", "raw", rows_to_ids.numpy().astype(np.uint32))
    thr = float(metrics["threshold"])
    img.add("exit.threshold", "aux", "raw", _fixed([thr]))
    pred = metrics["predictor"]
    img.add("predictor.edges", "aux", "raw", _fixed(pred["edges"]))
    img.add("predictor.layers", "aux", "raw", np.array(pred["layers"], dtype=np.uint8))
    img.add("dvfs.codes", "aux", "raw", np.array(metrics["dvfs"]["codes"], dtype=np.uint8))

    dev = metrics["dev"]
    img.meta = {
        "student_config": _config_meta(c, img.version),
        "linears": shapes,
        "biases": biases,
        "act_sites": list(act_sites(c)),
        "emb_sites": list(EMB_SITES),
        "calibration": metrics["calibration"],
        "attention_scale_folded": True,
        "fixed_frac_bits": FIXED_FRAC_BITS,
        "threshold": thr,
        "dvfs": {"mhz": metrics["dvfs"]["mhz"], "mv": metrics["dvfs"]["mv"]},
        "vocab_sha256": vocab_digest(),
        "metrics": {
            "dev_accuracy_all_layers": dev["accuracy_all_layers"],
            "dev_accuracy_early_exit": dev["accuracy_early_exit"],
            "dev_avg_layers": dev["avg_layers"],
            "dev_accuracy_float": dev["accuracy_float"],
            "n_dev": metrics.get("n_dev"),
            "sparsity": metrics["sparsity"],
        },
    }
    return img


@torch.no_grad()
def model_from_image(img: WeightImage) -> Student:
    """A student (eval mode, quantized) computing with exactly the image's codes."""
    c = StudentConfig.from_dict(img.meta["student_config"])
    fmt, n = img.hw.fmt, img.hw.n
    model = Student(c, fmt=fmt)
    q = model.quant
    q.fixed = dict(img.meta["biases"])
    wv = img["word.values"]
    codes = _packed(img, "word", c.vocab_size * c.emb_dim // n, n).reshape(c.vocab_size, -1)
    model.word.weight.copy_(decode(codes, wv.bias, fmt))
    model.word_mask.copy_((codes != 0).float())
    for name in ("pos", "seg"):
        t = img[name]
        getattr(model, name).weight.copy_(decode(torch.from_numpy(t.array.copy()), t.bias, fmt))
    for name, lin in model.linears().items():
        s = img.meta["linears"][name]
        codes = _packed(img, name, s["in"], s["cols"])[:, :s["out"]].T
        lin.weight.copy_(decode(codes, img[f"{name}.values"].bias, fmt) / lin.scale)
        lin.mask.copy_((codes != 0).float())
        bt = img[f"{name}.bias"]
        lin.bias.copy_(decode(torch.from_numpy(bt.array[:s["out"]].copy()), bt.bias, fmt)
                       / lin.scale)
    for name, ln in model.layer_norms().items():
        for part in ("weight", "bias"):
            t = img[f"{name}.{part}"]
            getattr(ln, part).copy_(decode(torch.from_numpy(t.array.copy()), t.bias, fmt))
    model.span_frac.copy_(torch.from_numpy(img["span_frac"].array.copy()))
    model.act_q.layer_bias.copy_(torch.from_numpy(img["act_bias"].array.astype(np.int64)))
    model.act_q.emb_bias.copy_(torch.from_numpy(img["emb_act_bias"].array.astype(np.int64)))
    ids = torch.from_numpy(img["vocab.ids"].array.astype(np.int64))
    vmap = torch.full((c.tokenizer_vocab,), int((ids == c.unk_id).nonzero()[0, 0]))
    vmap[ids] = torch.arange(c.vocab_size)
    model.vocab_map.copy_(vmap)
    q.weights = q.acts = True
    return model.eval()
