"""The EdgeBERT training and compression recipe ([S4]).

Stage 1 (backbone): the embeddings, the shared layer and the last off-ramp learn from the
teacher's cached logits (temperature-softened KL) and the labels, with the adaptive-span
penalty; movement or magnitude pruning (unstructured or 1 x n blocks) follows the cubic
schedule, together with embedding magnitude pruning; AdaptivFloat quantization-aware training
starts with the weights and ends with weights and activations.
Stage 2 (off-ramps): the backbone is frozen and the other off-ramps learn, quantized.
Then: activation-bias calibration, the entropy-threshold sweep, the exit-layer predictor and
the DVFS table, all chosen on a held-out slice of the training set and reported on dev.

Checkpoints are safetensors files holding the model, optimizer, pruning scores and RNG state;
rerunning the same command resumes from the last one and gives the same result.
"""

import dataclasses
import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from hw.checks import check_count
from sw.adaptivfloat import quantize, weight_bias
from sw.compress import PruneConfig, Pruner
from sw.student import ACT_SITES, EMB_SITES, Student, StudentConfig, early_exit, entropy
from sw.teacher import bucketed_order
from sw.tokenizer import WordPiece, default_model_dir

__all__ = ["TrainConfig", "RecipeConfig", "load_config", "train", "evaluate_logits",
           "calibrate", "sweep_thresholds", "exit_predictor", "dvfs_table", "prune_vocab"]

CALIB_METHODS = ("max", "percentile", "mse")
HIDDEN_TARGETS = ("tokens", "mean")


@dataclass
class RecipeConfig:
    """Optimisation and recipe settings (the ``[train]`` section of a config file)."""

    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    ramp_lr: float = 1e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    epochs: float = 3.0
    ramp_epochs: float = 0.5
    kd_temperature: float = 2.0
    kd_alpha: float = 0.9
    span_lambda: float = 0.02
    qat_weights_from: float = 0.6
    qat_acts_from: float = 0.92
    holdout: int = 1000
    holdout_min_words: int = 0
    train_limit: int = 0
    augment: int = 0
    hidden_beta: float = 0.0
    hidden_target: str = "tokens"
    vocab_min_count: int = 1
    pca_init: bool = True
    teacher_init_layer: int = 0
    teacher_init_examples: int = 512
    ckpt_every: int = 200
    calib_examples: int = 512
    calib_method: str = "mse"
    calib_percentile: float = 99.99
    max_exit_loss: float = 1.0
    predictor_bins: int = 16
    dvfs_mhz: list = field(default_factory=lambda: [250, 500, 750, 1000])
    dvfs_mv: list = field(default_factory=lambda: [500, 600, 700, 800])

    def __post_init__(self):
        if self.calib_method not in CALIB_METHODS:
            raise ValueError(f"calib_method must be one of {CALIB_METHODS}, "
                             f"not {self.calib_method!r}")
        check_count("holdout_min_words", self.holdout_min_words, lo=0)
        if self.hidden_target not in HIDDEN_TARGETS:
            raise ValueError(f"hidden_target must be one of {HIDDEN_TARGETS}, "
                             f"not {self.hidden_target!r}")
        if self.hidden_beta < 0:
            raise ValueError(f"hidden_beta must be >= 0, not {self.hidden_beta!r}")
        if not isinstance(self.teacher_init_layer, int) or self.teacher_init_layer < 0:
            raise ValueError(f"teacher_init_layer must be 0 (off) or a teacher layer (1-based), "
                             f"not {self.teacher_init_layer!r}")
        check_count("augment", self.augment, lo=0)
        for f in ("batch_size", "holdout", "calib_examples", "predictor_bins", "ckpt_every",
                  "teacher_init_examples"):
            check_count(f, getattr(self, f))
        if self.epochs <= 0 or self.ramp_epochs < 0:
            raise ValueError(f"epochs must be > 0 and ramp_epochs >= 0, not {self.epochs!r}, "
                             f"{self.ramp_epochs!r}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise ValueError(f"kd_alpha must be in [0, 1], not {self.kd_alpha!r}")
        if not 0.0 <= self.qat_weights_from <= self.qat_acts_from <= 1.0:
            raise ValueError("need 0 <= qat_weights_from <= qat_acts_from <= 1")
        if len(self.dvfs_mhz) != len(self.dvfs_mv) or not self.dvfs_mhz:
            raise ValueError("dvfs_mhz and dvfs_mv must be non-empty lists of equal length")
        if sorted(self.dvfs_mhz) != list(self.dvfs_mhz):
            raise ValueError(f"dvfs_mhz must be ascending, not {self.dvfs_mhz!r}")


@dataclass
class TrainConfig:
    """Everything a run needs: ``[student]``, ``[prune]`` and ``[train]`` sections."""

    student: StudentConfig = field(default_factory=StudentConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    train: RecipeConfig = field(default_factory=RecipeConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        sections = {"student": StudentConfig, "prune": PruneConfig, "train": RecipeConfig}
        unknown = set(d) - set(sections)
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        out = {}
        for name, kind in sections.items():
            sec = dict(d.get(name, {}))
            known = {f.name for f in dataclasses.fields(kind)}
            bad = set(sec) - known
            if bad:
                raise ValueError(f"unknown keys in [{name}]: {sorted(bad)}")
            out[name] = kind(**sec)
        return cls(**out)


def _parse_value(text):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path=None, overrides=()):
    """Defaults, then the TOML file ``path``, then ``section.key=value`` overrides."""
    d = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        d = tomllib.loads(path.read_text())
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"override must look like section.key=value, not {item!r}")
        d.setdefault(section, {})[name] = _parse_value(value.strip())
    return TrainConfig.from_dict(d)


# -- data ------------------------------------------------------------------------------------
def _encode(tok, examples):
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples[0].text_b is not None else None
    return tok.encode(a, b), torch.tensor([e.label for e in examples])


def _rows(batch, idx):
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


def _pca_init(model, kept, model_dir):
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


def _split_holdout(examples, perm, n_hold, min_words):
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


def _join_augmented(tok, fit, labels, teacher, augmented, fit_idx, n_train, per_example):
    """``fit`` plus at most ``per_example`` augmented examples of each of its sources (none
    with held-out text: neither the source nor the appended partner may be held out)."""
    from sw.tokenizer import Batch

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
    aug, _ = _encode(tok, [examples[j] for j in keep])
    keep = torch.tensor(keep)
    joined = Batch(torch.cat([fit.input_ids, aug.input_ids]),
                   torch.cat([fit.attention_mask, aug.attention_mask]),
                   torch.cat([fit.token_type_ids, aug.token_type_ids]), 0)
    return (joined, torch.cat([labels, logits[keep].argmax(1)]),
            torch.cat([teacher, logits[keep].to(teacher.dtype)]), keep)


def _join_states(train_states, aug_states):
    """One packed store of teacher token states: the training examples', then the augmented
    ones' (rows ``n_train + j``)."""
    states, offsets = train_states
    if aug_states is None:
        return states, offsets
    a_states, a_offsets = aug_states
    return (torch.cat([states, a_states]),
            torch.cat([offsets, offsets[-1] + a_offsets[1:]]))


def _gather_states(store, rows, t):
    """Teacher token states of store rows ``rows``, padded to ``t`` tokens: ``(B, t, H)``
    float32 and the ``(B, t)`` mask of real tokens."""
    states, offsets = store
    start = offsets[rows]
    n = offsets[rows + 1] - start
    pos = torch.arange(t)
    valid = pos[None, :] < n[:, None]
    idx = (start[:, None] + pos[None, :]).clamp(max=len(states) - 1)
    return states[idx].float(), valid


def _hidden_loss(x, target, valid, proj, kind):
    """Mean squared error between the projected student states ``proj(x)`` and the teacher's,
    over real tokens ("tokens") or between their means over real tokens ("mean")."""
    y = proj(x)
    if kind == "mean":
        m = valid.unsqueeze(-1).to(y.dtype)
        count = m.sum(1).clamp(min=1)
        return F.mse_loss((y * m).sum(1) / count, (target * m).sum(1) / count)
    return F.mse_loss(y[valid], target[valid])


# -- losses and evaluation ---------------------------------------------------------------------
def _kd_loss(logits, teacher, labels, temperature, alpha):
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels)."""
    loss = 0.0
    if alpha > 0:
        t = temperature
        kl = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher / t, -1),
                      reduction="batchmean", log_target=True)
        loss = alpha * t * t * kl
    if alpha < 1:
        loss = loss + (1 - alpha) * F.cross_entropy(logits, labels)
    return loss


@torch.no_grad()
def evaluate_logits(model, batch, *, batch_size=256):
    """``(L, N, C)`` off-ramp logits of ``model`` (eval mode) for a tokenized batch."""
    was = model.training
    model.eval()
    order = torch.argsort(batch.attention_mask.sum(1))
    out = []
    for s in range(0, len(batch), batch_size):
        idx = order[s:s + batch_size]
        out.append(model(*_rows(batch, idx)))
    model.train(was)
    cat = torch.cat(out, dim=1)
    logits = torch.empty_like(cat)
    logits[:, order] = cat
    return logits


def _accuracy(preds, labels):
    return float((preds == labels).float().mean())


# -- calibration, threshold, predictor, DVFS -----------------------------------------------------
@torch.no_grad()
def calibrate(model, batch, *, method="mse", percentile=99.99, batch_size=128):
    """Choose every activation bias from ``batch`` by ``method`` ([F3]) and fix it in the
    model. ``max`` applies the weight rule to the largest magnitude, ``percentile`` to the
    given percentile of magnitudes, ``mse`` picks the bias with the least squared error on the
    sampled magnitudes (ties: the larger bias, which saturates less)."""
    if method not in CALIB_METHODS:
        raise ValueError(f"method must be one of {CALIB_METHODS}, not {method!r}")
    aq = model.act_q
    fmt = model.quant.fmt
    acts = model.quant.acts
    model.quant.acts = False
    aq.collect = {}
    try:
        evaluate_logits(model, batch, batch_size=batch_size)
        samples = {k: torch.cat(v).double() for k, v in aq.collect.items()}
    finally:
        aq.collect = None
        model.quant.acts = acts
    for (site, layer), v in samples.items():
        if method == "max":
            b = weight_bias(v.max().reshape(1), fmt)
        elif method == "percentile":
            b = weight_bias(torch.quantile(v.float(), percentile / 100).reshape(1), fmt)
        else:
            errs = [float(((quantize(v, b, fmt) - v) ** 2).mean())
                    for b in range(fmt.bias_max + 1)]
            best = min(errs)
            b = max(i for i, e in enumerate(errs) if e == best)
        if layer is None:
            aq.emb_bias[EMB_SITES.index(site)] = b
        else:
            aq.layer_bias[ACT_SITES.index(site), layer] = b
    return method


def sweep_thresholds(logits, labels, n_points=101):
    """Accuracy and average exit layer for entropy thresholds from 0 to ln(C)."""
    n_labels = logits.shape[-1]
    rows = []
    for thr in torch.linspace(0, math.log(n_labels), n_points).tolist():
        preds, layers = early_exit(logits, thr)
        rows.append({"threshold": thr, "accuracy": _accuracy(preds, labels),
                     "avg_layers": float(layers.float().mean())})
    return rows


def choose_threshold(rows, full_accuracy, max_loss_points):
    """The threshold with the fewest average layers whose accuracy is within
    ``max_loss_points`` of ``full_accuracy`` (ties: the smaller threshold)."""
    ok = [r for r in rows if r["accuracy"] >= full_accuracy - max_loss_points / 100 - 1e-12]
    return min(ok, key=lambda r: (r["avg_layers"], r["threshold"]))


def exit_predictor(logits, threshold, n_bins):
    """Exit-layer predictor for DVFS: layer-1 entropy, in ``n_bins`` equal bins over
    [0, ln C], → predicted exit layer (ceil of the mean exit layer of the bin's examples;
    empty bins take the next lower bin's value, never below 1, and the table is made
    non-decreasing in entropy). Returns (bin edges, table, stats)."""
    n_layers, _, n_labels = logits.shape
    h1 = entropy(logits[0])
    _, layers = early_exit(logits, threshold)
    edges = torch.linspace(0, math.log(n_labels), n_bins + 1)
    idx = (torch.bucketize(h1, edges[1:-1], right=True)).clamp(0, n_bins - 1)
    table = []
    for b in range(n_bins):
        sel = layers[idx == b]
        if len(sel):
            table.append(int(math.ceil(float(sel.float().mean()))))
        else:
            table.append(table[-1] if table else 1)
    table = torch.tensor(table).cummax(0).values.clamp(1, n_layers)
    pred = table[idx]
    stats = {"mae_layers": float((pred - layers).abs().float().mean()),
             "under_predicted": float((pred < layers).float().mean())}
    return edges, table, stats


def dvfs_table(predictor, n_layers, mhz, mv):
    """(voltage code, frequency code) per predictor bin: the slowest operating point whose
    frequency still finishes the predicted layers in the time all ``n_layers`` take at the
    highest frequency (the latency target)."""
    f_max = mhz[-1]
    codes = []
    for layers in predictor.tolist():
        need = f_max * layers / n_layers
        k = next(i for i, f in enumerate(mhz) if f >= need - 1e-9)
        codes.append((k, k))
    return codes


# -- checkpoints ---------------------------------------------------------------------------------
def _save_ckpt(path, model, opt, pruner, proj, meta):
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    if proj is not None:
        tensors.update({f"hproj.{k}": v.contiguous() for k, v in proj.state_dict().items()})
    tensors.update({f"pruner.{k}": v.contiguous() for k, v in pruner.state().items()})
    if opt is not None:
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).contiguous()
    tensors["rng"] = torch.get_rng_state()
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, tmp, metadata={"meta": json.dumps(meta)})
    tmp.replace(path)


def _load_ckpt(path):
    with safe_open(path, "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    return load_file(path), meta


def _load_opt(opt, tensors):
    sd = opt.state_dict()
    state = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


# -- the recipe ------------------------------------------------------------------------------------
class _Log:
    def __init__(self, path, echo):
        self.path = path
        self.echo = echo

    def __call__(self, msg):
        with self.path.open("a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        if self.echo:
            print(msg, flush=True)


def _lr(step, n_steps, peak, warmup):
    n_warm = max(1, int(warmup * n_steps))
    if step < n_warm:
        return peak * (step + 1) / n_warm
    return peak * max(0.0, (n_steps - step) / max(1, n_steps - n_warm))


def train(cfg: TrainConfig, train_examples, dev_examples, out_dir, *, teacher_logits=None,
          augmented=None, teacher_states=None, augmented_states=None, model_dir=None,
          teacher_dir=None, echo=False, progress=True):
    """Run the whole recipe; returns the metrics dict (also written to ``metrics.json``).

    ``teacher_logits`` are the teacher's logits on ``train_examples`` (same order) or ``None``
    for training on labels alone. ``augmented`` is ``(examples, teacher logits, source index,
    partner index)`` (:func:`sw.teacher.cached_augmented`): with ``train.augment = K``, up to K
    of them per training example join the backbone's training set, except those made from
    held-out examples; their targets are the teacher's logits (and its prediction as the label).
    ``teacher_states`` and ``augmented_states`` are the teacher's packed last-layer token
    states (:func:`sw.teacher.cached_states`) on the training and augmented examples, needed
    when ``train.hidden_beta > 0``: the backbone then also learns to predict them from its last
    layer through a linear map (TinyBERT's hidden-state loss; the map is not exported).
    ``teacher_dir`` holds the fine-tuned teacher (:func:`sw.teacher.fine_tune`), needed when
    ``train.teacher_init_layer > 0`` (:func:`sw.teacher_init.init_from_teacher`).
    Writes ``student.safetensors`` (final, with its config) to
    ``out_dir`` and resumes from ``ckpt.safetensors`` there if present.
    """
    from tqdm import tqdm

    t_start = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / "train.log", echo)
    r = cfg.train
    torch.manual_seed(r.seed)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()

    if r.train_limit:
        train_examples = train_examples[:r.train_limit]
        if teacher_logits is not None:
            teacher_logits = teacher_logits[:r.train_limit]
    if teacher_logits is not None and len(teacher_logits) != len(train_examples):
        raise ValueError(f"teacher logits cover {len(teacher_logits)} examples, not the "
                         f"{len(train_examples)} training examples")
    if r.holdout >= len(train_examples):
        raise ValueError(f"holdout ({r.holdout}) must be smaller than the training set "
                         f"({len(train_examples)})")
    tok = WordPiece(model_dir, max_len=cfg.student.max_len)
    batch_all, labels_all = _encode(tok, train_examples)
    dev_batch, dev_labels = _encode(tok, dev_examples)
    g = torch.Generator().manual_seed(r.seed)
    perm = torch.randperm(len(train_examples), generator=g)
    hold_idx, fit_idx = _split_holdout(train_examples, perm, r.holdout, r.holdout_min_words)

    def subset(idx):
        from sw.tokenizer import Batch
        return Batch(batch_all.input_ids[idx], batch_all.attention_mask[idx],
                     batch_all.token_type_ids[idx], 0)

    fit, hold = subset(fit_idx), subset(hold_idx)
    fit_labels, hold_labels = labels_all[fit_idx], labels_all[hold_idx]
    fit_teacher = teacher_logits[fit_idx] if teacher_logits is not None else None
    kd_alpha = r.kd_alpha if fit_teacher is not None else 0.0
    n_orig = len(fit_labels)
    if r.augment:
        if augmented is None or fit_teacher is None:
            raise ValueError("train.augment needs the teacher's logits and its augmented cache "
                             "(edgebert teacher --augment K)")
        fit, fit_labels, fit_teacher, aug_keep = _join_augmented(
            tok, fit, fit_labels, fit_teacher, augmented, fit_idx, len(train_examples),
            r.augment)
    store = None
    if r.hidden_beta > 0:
        if teacher_states is None or (r.augment and augmented_states is None):
            raise ValueError("train.hidden_beta needs the teacher's cached token states "
                             "(edgebert teacher --states)")
        states, offsets = teacher_states
        offsets = offsets[:len(train_examples) + 1]
        store = _join_states((states, offsets), augmented_states if r.augment else None)
        store_rows = fit_idx if not r.augment else \
            torch.cat([fit_idx, len(train_examples) + aug_keep])
        lengths = store[1][store_rows + 1] - store[1][store_rows]
        if not torch.equal(lengths, fit.attention_mask.sum(1)):
            raise ValueError("the cached teacher states do not match the training sentences' "
                             "tokens (another tokenizer, max_len or training set?)")

    kept, vmap = prune_vocab(tok, fit, r.vocab_min_count)
    scfg = dataclasses.replace(cfg.student, vocab_size=len(kept), tokenizer_vocab=tok.vocab_size,
                               unk_id=tok.unk_id,
                               n_labels=max(int(labels_all.max()) + 1, cfg.student.n_labels))
    model = Student(scfg)
    model.vocab_map.copy_(vmap)
    if r.pca_init:
        _pca_init(model, kept, model_dir)
    if r.teacher_init_layer:
        if teacher_dir is None:
            raise ValueError("train.teacher_init_layer needs the fine-tuned teacher's directory "
                             "(edgebert train --teacher DIR)")
        from sw.teacher import load_teacher
        from sw.teacher_init import init_from_teacher
        from sw.tokenizer import Batch

        n = min(r.teacher_init_examples, len(fit_labels))
        ids, mask, types = _rows(fit, torch.arange(n))
        info = init_from_teacher(model, load_teacher(teacher_dir, model_dir),
                                 Batch(ids, mask, types, 0), r.teacher_init_layer)
        log(f"shared layer from teacher layer {info['layer']} (heads {info['heads']}; basis "
            f"keeps {info['kept_energy']:.1%} of the energy; relative error on {n} sentences: "
            f"embedding {info['rel_err_embed']:.3f}, layer {info['rel_err_layer']:.3f})")
    log(f"student: vocab {len(kept)} of {tok.vocab_size}, {n_orig} training "
        f"(+{len(fit_labels) - n_orig} augmented) and "
        f"{len(hold_labels)} held-out examples, {len(dev_labels)} dev; KD alpha {kd_alpha}")

    n1 = math.ceil(r.epochs * len(fit_labels) / r.batch_size)
    n2 = math.ceil(r.ramp_epochs * len(fit_labels) / r.batch_size) if scfg.layers > 1 else 0
    lengths = fit.attention_mask.sum(1)
    order1 = bucketed_order(lengths, r.batch_size,
                            math.ceil(n1 * r.batch_size / len(lengths)), r.seed)
    order2 = bucketed_order(lengths, r.batch_size,
                            max(1, math.ceil(n2 * r.batch_size / len(lengths))), r.seed + 1)
    pruner = Pruner(model, cfg.prune, n1)

    backbone = [p for n, p in model.named_parameters()
                if not n.startswith(("pooler.", "classifier."))]
    backbone += [*model.pooler[-1].parameters(), *model.classifier[-1].parameters()]
    proj = None
    if store is not None:
        proj = torch.nn.Linear(scfg.hidden, store[0].shape[1])
        backbone += list(proj.parameters())
    ramps = [p for i in range(scfg.layers - 1)
             for p in (*model.pooler[i].parameters(), *model.classifier[i].parameters())]

    def make_opt(params, stage):
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}],
                                 lr=r.lr if stage == 1 else r.ramp_lr)

    stage, step = 1, 0
    opt = make_opt(backbone, 1)
    ckpt = out_dir / "ckpt.safetensors"
    cfg_dict = cfg.to_dict()
    elapsed_before = 0.0
    if ckpt.is_file():
        tensors, meta = _load_ckpt(ckpt)
        if meta["config"] != cfg_dict:
            raise ValueError(f"{ckpt} was written with another configuration; remove it or "
                             f"use another output directory")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if proj is not None:
            proj.load_state_dict({k[6:]: v for k, v in tensors.items()
                                  if k.startswith("hproj.")})
        pruner.load_state({k[7:]: v for k, v in tensors.items() if k.startswith("pruner.")})
        stage, step = meta["stage"], meta["step"]
        elapsed_before = meta.get("elapsed_s", 0.0)
        if stage == 2:
            opt = make_opt(ramps, 2)
        if stage < 3:
            _load_opt(opt, tensors)
        torch.set_rng_state(tensors["rng"])
        log(f"resumed at stage {stage} step {step}")

    def save(stage, step):
        _save_ckpt(ckpt, model, opt if stage < 3 else None, pruner, proj,
                   {"config": cfg_dict, "stage": stage, "step": step,
                    "elapsed_s": elapsed_before + time.time() - t_start})

    model.train()
    model.act_q.observe = True
    if stage == 1:
        bar = tqdm(total=n1, initial=step, desc="backbone", disable=not progress,
                   mininterval=5)
        loss_avg = h_avg = None
        while step < n1:
            frac = step / n1
            model.quant.weights = frac >= r.qat_weights_from
            model.quant.acts = frac >= r.qat_acts_from
            pruner.update(step)
            idx = order1[step * r.batch_size:(step + 1) * r.batch_size]
            ids, mask, types = _rows(fit, idx)
            t_logits = fit_teacher[idx] if fit_teacher is not None else None
            if store is None:
                logits = model(ids, mask, types, ramps=[scfg.layers - 1])[0]
                loss = _kd_loss(logits, t_logits, fit_labels[idx], r.kd_temperature, kd_alpha)
            else:
                logits, hidden = model(ids, mask, types, ramps=[scfg.layers - 1],
                                       return_hidden=True)
                loss = _kd_loss(logits[0], t_logits, fit_labels[idx], r.kd_temperature,
                                kd_alpha)
                target, valid = _gather_states(store, store_rows[idx], ids.shape[1])
                h_loss = _hidden_loss(hidden[-1], target, valid, proj, r.hidden_target)
                loss = loss + r.hidden_beta * h_loss
                h_avg = h_loss.item() if h_avg is None else 0.98 * h_avg + 0.02 * h_loss.item()
            loss = loss + r.span_lambda * model.span_loss()
            for grp in opt.param_groups:
                grp["lr"] = _lr(step, n1, r.lr, r.warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            pruner.accumulate()
            torch.nn.utils.clip_grad_norm_(backbone, 1.0)
            opt.step()
            step += 1
            bar.update(1)
            loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
            if step % 50 == 0 or step == n1:
                sp = model.sparsity()
                hid = "" if h_avg is None else f" hidden {h_avg:.4f}"
                log(f"backbone {step}/{n1} loss {loss_avg:.4f}{hid} encoder sparsity "
                    f"{sp['encoder']:.3f} word {sp['word']:.3f} qat w={model.quant.weights} "
                    f"a={model.quant.acts} spans {model.spans().tolist()}")
            if step % r.ckpt_every == 0 and step < n1:
                save(1, step)
        bar.close()
        # The masks are those of the schedule's last update (the final sparsity, kept through
        # the quantization-aware steps after it); baking zeroes what they remove.
        pruner.bake()
        stage, step = 2, 0
        opt = make_opt(ramps, 2)
        save(2, 0)

    model.quant.weights = model.quant.acts = True
    if stage == 2:
        for p in backbone:
            p.requires_grad_(False)
        bar = tqdm(total=n2, initial=step, desc="off-ramps", disable=not progress,
                   mininterval=5)
        while step < n2:
            idx = order2[step * r.batch_size:(step + 1) * r.batch_size]
            ids, mask, types = _rows(fit, idx)
            model.eval()  # the frozen backbone runs without dropout
            with torch.no_grad():
                _, hidden = model(ids, mask, types, ramps=[scfg.layers - 1],
                                  return_hidden=True)
            model.train()
            t_logits = fit_teacher[idx] if fit_teacher is not None else None
            loss = sum(_kd_loss(model.ramp(hidden[i], i), t_logits, fit_labels[idx],
                                r.kd_temperature, kd_alpha) for i in range(scfg.layers - 1))
            for grp in opt.param_groups:
                grp["lr"] = _lr(step, n2, r.ramp_lr, r.warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ramps, 1.0)
            opt.step()
            step += 1
            bar.update(1)
            if step % 50 == 0 or step == n2:
                log(f"off-ramps {step}/{n2} loss {loss.item():.4f}")
            if step % r.ckpt_every == 0 and step < n2:
                save(2, step)
        bar.close()
        for p in backbone:
            p.requires_grad_(True)
        stage, step = 3, 0
        save(3, 0)

    model.act_q.observe = False
    model.eval()
    train_s = elapsed_before + time.time() - t_start
    log(f"training done in {train_s:.0f} s; calibrating ({r.calib_method})")
    calib_idx = torch.arange(min(r.calib_examples, n_orig))
    calibrate(model, subset(fit_idx[calib_idx]), method=r.calib_method,
              percentile=r.calib_percentile)

    metrics = finish(model, hold, hold_labels, dev_batch, dev_labels, r)
    metrics.update({"train_s": train_s, "n_train": n_orig,
                    "n_augmented": len(fit_labels) - n_orig, "n_holdout": r.holdout,
                    "n_dev": len(dev_labels), "vocab_kept": len(kept),
                    "kd": fit_teacher is not None, "config": cfg_dict,
                    "student_config": scfg.to_dict()})
    save_student(out_dir / "student.safetensors", model, metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(f"dev accuracy (quantized, all layers) {metrics['dev']['accuracy_all_layers']:.4f}; "
        f"early exit {metrics['dev']['accuracy_early_exit']:.4f} at "
        f"{metrics['dev']['avg_layers']:.2f} layers")
    return metrics


@torch.no_grad()
def finish(model, hold, hold_labels, dev_batch, dev_labels, r):
    """Accuracies, the threshold sweep and choice, predictor and DVFS tables, sparsity."""
    n_layers = model.config.layers
    q_w, q_a = model.quant.weights, model.quant.acts
    model.quant.weights = model.quant.acts = False
    dev_float = evaluate_logits(model, dev_batch)
    model.quant.weights, model.quant.acts = q_w, q_a
    hold_logits = evaluate_logits(model, hold)
    dev_logits = evaluate_logits(model, dev_batch)
    hold_full = _accuracy(hold_logits[-1].argmax(-1), hold_labels)
    sweep = sweep_thresholds(hold_logits, hold_labels)
    chosen = choose_threshold(sweep, hold_full, r.max_exit_loss)
    thr = chosen["threshold"]
    preds, layers = early_exit(dev_logits, thr)
    edges, table, pstats = exit_predictor(hold_logits, thr, r.predictor_bins)
    dvfs = dvfs_table(table, n_layers, r.dvfs_mhz, r.dvfs_mv)
    return {
        "dev": {
            "accuracy_float": _accuracy(dev_float[-1].argmax(-1), dev_labels),
            "accuracy_all_layers": _accuracy(dev_logits[-1].argmax(-1), dev_labels),
            "accuracy_per_ramp": [_accuracy(x.argmax(-1), dev_labels) for x in dev_logits],
            "accuracy_early_exit": _accuracy(preds, dev_labels),
            "avg_layers": float(layers.float().mean()),
            "avg_layers_fraction": float(layers.float().mean()) / n_layers,
            "sweep": sweep_thresholds(dev_logits, dev_labels),
        },
        "holdout": {"accuracy_all_layers": hold_full, "chosen": chosen, "sweep": sweep},
        "threshold": thr,
        "predictor": {"edges": edges.tolist(), "layers": table.tolist(), **pstats},
        "dvfs": {"codes": dvfs, "mhz": list(r.dvfs_mhz), "mv": list(r.dvfs_mv)},
        "calibration": r.calib_method,
        "sparsity": model.sparsity(),
        "spans": model.spans().tolist(),
    }


def save_student(path, model, metrics):
    """The trained student with its config and results (what ``edgebert export`` reads)."""
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"student_config": json.dumps(model.config.to_dict()),
            "metrics": json.dumps(metrics)}
    save_file(tensors, path, metadata=meta)


def load_student(path):
    """(model in eval mode with weight and activation quantization on, metrics)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student checkpoint {str(path)!r} does not exist")
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "student_config" not in meta:
        raise ValueError(f"{path} is not a student checkpoint (no student_config)")
    model = Student(StudentConfig.from_dict(json.loads(meta["student_config"])))
    model.load_state_dict(load_file(path))
    model.quant.weights = model.quant.acts = True
    return model.eval(), json.loads(meta.get("metrics", "{}"))
