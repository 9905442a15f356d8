"""The recipe's driver: :func:`train` prepares the data and the student, runs the two training
stages with checkpoints, calibrates and measures (the stages are described in :mod:`sw.train`)."""

import dataclasses
import json
import math
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch

from sw.compress import Pruner
from sw.device import resolve_device
from sw.student import Student
from sw.teacher import bucketed_order
from sw.tokenizer import Batch, WordPiece, default_model_dir, encode_examples
from sw.train.average import TailAverage
from sw.train.calibrate import calibrate
from sw.train.checkpoint import load_ckpt, load_opt, save_ckpt, save_student
from sw.train.config import TrainConfig
from sw.train.data import (
    gather_states,
    join_augmented,
    join_states,
    pca_init,
    prune_vocab,
    rows,
    split_holdout,
)
from sw.train.exits import finish
from sw.train.fast import set_fast
from sw.train.losses import hidden_loss, kd_loss, layer_loss, state_map, teacher_layer_map

__all__ = ["train"]


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


def weighted_order(lengths, batch_size, n_steps, seed, *, repeat=1, min_tokens=20, mix=0):
    """The training order of ``n_steps`` batches: ``bucketed_order`` over a pass in which each
    example of at least ``min_tokens`` tokens occurs ``repeat`` times (``train.long_repeat``).
    With ``repeat = 1`` it is ``bucketed_order`` over the examples, as before.

    ``mix`` (``train.batch_mix``) shifts the order by that many places, so that each step's
    batch is the last ``batch_size - mix`` examples of one length-sorted batch and the first
    ``mix`` of the next one in the shuffled order (of an unrelated length): the batches that
    every run before commit ff6307d drew by accident (``docs/training.md``)."""
    idx = torch.arange(len(lengths))
    idx = torch.cat([idx, idx[lengths >= min_tokens].repeat(repeat - 1)])
    n_epochs = math.ceil(n_steps * batch_size / len(idx))
    order = idx[bucketed_order(lengths[idx], batch_size, n_epochs, seed)]
    return torch.roll(order, -mix)


def _prepare_data(cfg, model_dir, train_examples, dev_examples, teacher_logits, augmented,
                  teacher_states, augmented_states):
    """The tokenizer, the tokenized training set (held-out slice apart, augmented examples
    joined), held-out and dev sets, the teacher's targets and, for the hidden-state loss, its
    token-state store."""
    r = cfg.train
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
    d = SimpleNamespace()
    d.tok = tok = WordPiece(model_dir, max_len=cfg.student.max_len)
    batch_all, d.labels_all = encode_examples(tok, train_examples)
    d.dev_batch, d.dev_labels = encode_examples(tok, dev_examples)
    g = torch.Generator().manual_seed(r.seed)
    perm = torch.randperm(len(train_examples), generator=g)
    hold_idx, d.fit_idx = split_holdout(train_examples, perm, r.holdout, r.holdout_min_words)

    def subset(idx):
        return Batch(batch_all.input_ids[idx], batch_all.attention_mask[idx],
                     batch_all.token_type_ids[idx], 0)

    d.subset = subset
    d.fit, d.hold = subset(d.fit_idx), subset(hold_idx)
    d.fit_labels, d.hold_labels = d.labels_all[d.fit_idx], d.labels_all[hold_idx]
    d.fit_teacher = teacher_logits[d.fit_idx] if teacher_logits is not None else None
    d.kd_alpha = r.kd_alpha if d.fit_teacher is not None else 0.0
    d.n_orig = len(d.fit_labels)
    if r.augment:
        if augmented is None or d.fit_teacher is None:
            raise ValueError("train.augment needs the teacher's logits and its augmented cache "
                             "(edgebert teacher --augment K)")
        d.fit, d.fit_labels, d.fit_teacher, aug_keep = join_augmented(
            tok, d.fit, d.fit_labels, d.fit_teacher, augmented, d.fit_idx,
            len(train_examples), r.augment)
    d.store = d.store_rows = None
    if r.hidden_beta > 0:
        if teacher_states is None or (r.augment and augmented_states is None):
            raise ValueError("train.hidden_beta needs the teacher's cached token states "
                             "(edgebert teacher --states)")
        states, offsets = teacher_states
        offsets = offsets[:len(train_examples) + 1]
        d.store = join_states((states, offsets), augmented_states if r.augment else None)
        d.store_rows = d.fit_idx if not r.augment else \
            torch.cat([d.fit_idx, len(train_examples) + aug_keep])
        lengths = d.store[1][d.store_rows + 1] - d.store[1][d.store_rows]
        if not torch.equal(lengths, d.fit.attention_mask.sum(1)):
            raise ValueError("the cached teacher states do not match the training sentences' "
                             "tokens (another tokenizer, max_len or training set?)")
    return d


def _to_device(d, device):
    """Move the training tensors (batch, labels, teacher logits and states) to ``device``; the
    held-out and dev batches stay where they are (evaluation moves each batch)."""
    if device.type == "cpu":
        return
    d.fit = Batch(d.fit.input_ids.to(device), d.fit.attention_mask.to(device),
                  d.fit.token_type_ids.to(device), 0)
    d.fit_labels = d.fit_labels.to(device)
    if d.fit_teacher is not None:
        d.fit_teacher = d.fit_teacher.to(device)
    if d.store is not None:
        d.store = tuple(t.to(device) for t in d.store)
        d.store_rows = d.store_rows.to(device)


def _make_student(cfg, d, model_dir, teacher_dir, log):
    """The student over the vocabulary the training set uses, initialised as configured."""
    r, tok = cfg.train, d.tok
    kept, vmap = prune_vocab(tok, d.fit, r.vocab_min_count)
    scfg = dataclasses.replace(cfg.student, vocab_size=len(kept), tokenizer_vocab=tok.vocab_size,
                               unk_id=tok.unk_id,
                               n_labels=max(int(d.labels_all.max()) + 1, cfg.student.n_labels))
    model = Student(scfg)
    model.vocab_map.copy_(vmap)
    if r.pca_init:
        pca_init(model, kept, model_dir)
    if r.teacher_init_layer:
        from sw.teacher import Teacher, load_teacher
        from sw.teacher_init import init_from_teacher

        # The fine-tuned teacher when there is one, else the pre-trained checkpoint.
        teacher = load_teacher(teacher_dir, model_dir) if teacher_dir is not None else \
            Teacher(model_dir).eval()
        n = min(r.teacher_init_examples, len(d.fit_labels))
        ids, mask, types = rows(d.fit, torch.arange(n))
        info = init_from_teacher(model, teacher,
                                 Batch(ids, mask, types, 0), r.teacher_init_layer)
        log(f"shared layer from teacher layer {info['layer']} (heads {info['heads']}; basis "
            f"keeps {info['kept_energy']:.1%} of the energy; relative error on {n} sentences: "
            f"embedding {info['rel_err_embed']:.3f}, layer {info['rel_err_layer']:.3f})")
    if r.init_from:
        state = torch.load(r.init_from, map_location="cpu", weights_only=True)
        if state["word.weight"].shape != model.word.weight.shape:
            raise ValueError(f"{r.init_from} has a token table of shape "
                             f"{tuple(state['word.weight'].shape)}, this student "
                             f"{tuple(model.word.weight.shape)} (another config or training set?)")
        model.load_state_dict(state)
        log(f"student weights from {r.init_from}")
    log(f"student: vocab {len(kept)} of {tok.vocab_size}, {d.n_orig} training "
        f"(+{len(d.fit_labels) - d.n_orig} augmented) and "
        f"{len(d.hold_labels)} held-out examples, {len(d.dev_labels)} dev; KD alpha {d.kd_alpha}")
    return model, scfg, kept


def _layer_teacher(r, scfg, teacher_dir, model_dir, log, device):
    """``(teacher, layer map)`` for the per-application state loss (``train.layer_beta``), or
    ``(None, None)``: the fine-tuned teacher, frozen, as wide as the student."""
    if r.layer_beta <= 0:
        return None, None
    if teacher_dir is None or not (Path(teacher_dir) / "teacher.safetensors").is_file():
        raise ValueError(f"train.layer_beta needs the fine-tuned teacher (--teacher DIR holding "
                         f"teacher.safetensors from edgebert teacher), not {teacher_dir}")
    from sw.teacher import load_teacher

    teacher = load_teacher(teacher_dir, model_dir, device)
    tc = teacher.encoder.config
    if tc.hidden_size != scfg.hidden:
        raise ValueError(f"train.layer_beta holds the student's states to the teacher's without "
                         f"a map: the teacher is {tc.hidden_size} wide, the student "
                         f"{scfg.hidden}")
    for p in teacher.parameters():
        p.requires_grad_(False)
    layer_map = teacher_layer_map(scfg.layers, tc.num_hidden_layers)
    log(f"per-application states held to teacher layers {layer_map} (weight {r.layer_beta})")
    return teacher, layer_map


def _backbone_stage(s, d, r, step, progress, log):
    """Stage 1 from ``step``: the backbone learns with pruning and quantization-aware steps."""
    from tqdm import tqdm

    model, scfg, opt, pruner = s.model, s.scfg, s.opt, s.pruner
    bar = tqdm(total=s.n1, initial=step, desc="backbone", disable=not progress, mininterval=5)
    loss_avg = h_avg = l_avg = None
    t_mark, step_mark = time.time(), step
    while step < s.n1:
        frac = step / s.n1
        model.quant.weights = frac >= r.qat_weights_from
        model.quant.acts = frac >= r.qat_acts_from
        pruner.update(step)
        idx = s.order1[step * r.batch_size:(step + 1) * r.batch_size]
        ids, mask, types = rows(d.fit, idx)
        t_logits = d.fit_teacher[idx] if d.fit_teacher is not None else None
        if d.store is None and s.layer_teacher is None:
            logits = model(ids, mask, types, ramps=[scfg.layers - 1])[0]
            loss = kd_loss(logits, t_logits, d.fit_labels[idx], r.kd_temperature, d.kd_alpha)
        else:
            logits, hidden = model(ids, mask, types, ramps=[scfg.layers - 1],
                                   return_hidden=True)
            loss = kd_loss(logits[0], t_logits, d.fit_labels[idx], r.kd_temperature,
                           d.kd_alpha)
            if d.store is not None:
                target, valid = gather_states(d.store, d.store_rows[idx], ids.shape[1])
                h_loss = hidden_loss(hidden[-1], target, valid, s.proj, r.hidden_target,
                                     s.hidden_tokens)
                loss = loss + r.hidden_beta * h_loss
                h_avg = h_loss.item() if h_avg is None else 0.98 * h_avg + 0.02 * h_loss.item()
            if s.layer_teacher is not None:
                with torch.no_grad():
                    t_hidden = s.layer_teacher.encoder(
                        input_ids=ids, attention_mask=mask, token_type_ids=types,
                        output_hidden_states=True).hidden_states
                l_loss = layer_loss(hidden, t_hidden, mask.bool(), s.layer_map)
                loss = loss + r.layer_beta * l_loss
                l_avg = l_loss.item() if l_avg is None else 0.98 * l_avg + 0.02 * l_loss.item()
        loss = loss + r.span_lambda * model.span_loss()
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, s.n1, r.lr, r.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        pruner.accumulate()
        torch.nn.utils.clip_grad_norm_(s.backbone, 1.0)
        opt.step()
        step += 1
        s.average.update(step)
        bar.update(1)
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if step % 50 == 0 or step == s.n1:
            sp = model.sparsity()
            hid = "" if h_avg is None else f" hidden {h_avg:.4f}"
            hid += "" if l_avg is None else f" layers {l_avg:.4f}"
            per_step = (time.time() - t_mark) / (step - step_mark)
            t_mark, step_mark = time.time(), step
            log(f"backbone {step}/{s.n1} loss {loss_avg:.4f}{hid} encoder sparsity "
                f"{sp['encoder']:.3f} word {sp['word']:.3f} qat w={model.quant.weights} "
                f"a={model.quant.acts} spans {model.spans().tolist()} {per_step:.3f} s/step")
        if step % r.ckpt_every == 0 and step < s.n1:
            s.save(1, step)
    bar.close()
    n_avg = s.average.apply()
    if n_avg > 1:
        log(f"backbone weights: their mean over the last {n_avg} steps (train.average_from "
            f"{r.average_from})")
    # The masks are those of the schedule's last update (the final sparsity, kept through
    # the quantization-aware steps after it); baking zeroes what they remove.
    pruner.bake()


def _ramp_stage(s, d, r, step, progress, log):
    """Stage 2 from ``step``: the frozen backbone's other off-ramps learn, quantized."""
    from tqdm import tqdm

    model, opt = s.model, s.opt
    for p in s.backbone:
        p.requires_grad_(False)
    bar = tqdm(total=s.n2, initial=step, desc="off-ramps", disable=not progress, mininterval=5)
    while step < s.n2:
        idx = s.order2[step * r.batch_size:(step + 1) * r.batch_size]
        ids, mask, types = rows(d.fit, idx)
        model.eval()  # the frozen backbone runs without dropout
        with torch.no_grad():
            _, hidden = model(ids, mask, types, ramps=[s.scfg.layers - 1], return_hidden=True)
        model.train()
        t_logits = d.fit_teacher[idx] if d.fit_teacher is not None else None
        loss = sum(kd_loss(model.ramp(hidden[i], i, mask.bool()), t_logits, d.fit_labels[idx],
                           r.kd_temperature, d.kd_alpha) for i in range(s.scfg.layers - 1))
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, s.n2, r.ramp_lr, r.warmup)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s.ramps, 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == s.n2:
            log(f"off-ramps {step}/{s.n2} loss {loss.item():.4f}")
        if step % r.ckpt_every == 0 and step < s.n2:
            s.save(2, step)
    bar.close()
    for p in s.backbone:
        p.requires_grad_(True)


def calibrate_and_finish(model, d, r):
    """The end of a run (and of a soup): calibrate the activation biases on the recipe's
    calibration slice of ``d`` (from :func:`_prepare_data`), then the accuracies and tables
    (:func:`~sw.train.exits.finish`)."""
    calib_idx = torch.arange(min(r.calib_examples, d.n_orig))
    calibrate(model, d.subset(d.fit_idx[calib_idx]), method=r.calib_method,
              percentile=r.calib_percentile)
    return finish(model, d.hold, d.hold_labels, d.dev_batch, d.dev_labels, r)


def train(cfg: TrainConfig, train_examples, dev_examples, out_dir, *, teacher_logits=None,
          augmented=None, teacher_states=None, augmented_states=None, model_dir=None,
          teacher_dir=None, echo=False, progress=True, device="cpu"):
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
    ``train.teacher_init_layer > 0`` (:func:`sw.teacher_init.init_from_teacher`) or
    ``train.layer_beta > 0`` (each application's token states held to a teacher layer's,
    which the teacher computes on every batch).
    ``device`` (``cpu``, ``cuda``, ``cuda:N``) is where the student trains, calibrates and is
    evaluated; the saved student is the same kind of file either way. On a GPU, dropout draws
    from the GPU's generator, which checkpoints do not hold: a resumed GPU run is not
    bit-identical to an uninterrupted one (a resumed CPU run is).
    Writes ``student.safetensors`` (final, with its config) to
    ``out_dir`` and resumes from ``ckpt.safetensors`` there if present.
    """
    t_start = time.time()
    device = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(out_dir / "train.log", echo)
    r = cfg.train
    torch.manual_seed(r.seed)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    d = _prepare_data(cfg, model_dir, train_examples, dev_examples, teacher_logits, augmented,
                      teacher_states, augmented_states)
    model, scfg, kept = _make_student(cfg, d, model_dir, teacher_dir, log)
    model.to(device)
    set_fast(model, r.fast, products=r.fast_products)
    _to_device(d, device)
    if device.type != "cpu":
        log(f"training on {device} ({torch.cuda.get_device_name(device)})")

    s = SimpleNamespace(model=model, scfg=scfg)
    s.n1 = math.ceil(r.epochs * len(d.fit_labels) / r.batch_size)
    s.n2 = math.ceil(r.ramp_epochs * len(d.fit_labels) / r.batch_size) if scfg.layers > 1 else 0
    lengths = d.fit.attention_mask.sum(1).cpu()
    s.hidden_tokens = (r.batch_size * lengths.double().mean().item()
                       if r.hidden_norm == "corpus" else None)
    order_seed = r.seed if r.order_seed < 0 else r.order_seed
    order = partial(weighted_order, lengths, r.batch_size, repeat=r.long_repeat,
                    min_tokens=r.long_min_tokens, mix=r.batch_mix)
    s.order1, s.order2 = order(s.n1, order_seed), order(max(1, s.n2), order_seed + 1)
    s.pruner = Pruner(model, cfg.prune, s.n1)

    s.backbone = [p for n, p in model.named_parameters()
                  if not n.startswith(("pooler.", "classifier."))]
    s.backbone += [*model.pooler[-1].parameters(), *model.classifier[-1].parameters()]
    s.proj = None
    if d.store is not None:
        s.proj = state_map(scfg.hidden, d.store[0].shape[1],
                           bool(r.teacher_init_layer)).to(device)
        s.backbone += list(s.proj.parameters())
    in_backbone = {id(p) for p in s.backbone}
    s.average = TailAverage({n: p for n, p in model.named_parameters() if id(p) in in_backbone},
                            r.average_from, s.n1)
    s.layer_teacher, s.layer_map = _layer_teacher(r, scfg, teacher_dir, model_dir, log, device)
    s.ramps = [p for i in range(scfg.layers - 1)
               for p in (*model.pooler[i].parameters(), *model.classifier[i].parameters())]

    def make_opt(params, stage):
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}],
                                 lr=r.lr if stage == 1 else r.ramp_lr, fused=r.fast or None)

    stage, step = 1, 0
    s.opt = make_opt(s.backbone, 1)
    ckpt = out_dir / "ckpt.safetensors"
    cfg_dict = cfg.to_dict()
    elapsed_before = 0.0
    if ckpt.is_file():
        tensors, meta = load_ckpt(ckpt)
        if meta["config"] != cfg_dict:
            raise ValueError(f"{ckpt} was written with another configuration; remove it or "
                             f"use another output directory")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if s.proj is not None:
            s.proj.load_state_dict({k[6:]: v for k, v in tensors.items()
                                    if k.startswith("hproj.")})
        s.pruner.load_state({k[7:]: v for k, v in tensors.items() if k.startswith("pruner.")})
        if meta["stage"] == 1:
            s.average.load_state({k[8:]: v for k, v in tensors.items()
                                  if k.startswith("average.")})
        stage, step = meta["stage"], meta["step"]
        elapsed_before = meta.get("elapsed_s", 0.0)
        if stage == 2:
            s.opt = make_opt(s.ramps, 2)
        if stage < 3:
            load_opt(s.opt, tensors)
        torch.set_rng_state(tensors["rng"])
        log(f"resumed at stage {stage} step {step}")

    def save(stage, step):
        save_ckpt(ckpt, model, s.opt if stage < 3 else None, s.pruner, s.proj,
                  {"config": cfg_dict, "stage": stage, "step": step,
                   "elapsed_s": elapsed_before + time.time() - t_start},
                  s.average if stage == 1 else None)

    s.save = save
    model.train()
    model.act_q.observe = True
    if stage == 1:
        _backbone_stage(s, d, r, step, progress, log)
        stage, step = 2, 0
        s.opt = make_opt(s.ramps, 2)
        save(2, 0)

    model.quant.weights = model.quant.acts = True
    if stage == 2:
        _ramp_stage(s, d, r, step, progress, log)
        stage, step = 3, 0
        save(3, 0)

    model.act_q.observe = False
    model.eval()
    set_fast(model, False)  # calibration and every reported figure: the exact float32 products
    train_s = elapsed_before + time.time() - t_start
    log(f"training done in {train_s:.0f} s; calibrating ({r.calib_method})")
    metrics = calibrate_and_finish(model, d, r)
    metrics.update({"train_s": train_s, "n_train": d.n_orig,
                    "n_augmented": len(d.fit_labels) - d.n_orig, "n_holdout": r.holdout,
                    "n_dev": len(d.dev_labels), "vocab_kept": len(kept),
                    "kd": d.fit_teacher is not None, "config": cfg_dict,
                    "device": str(device),
                    "student_config": scfg.to_dict()})
    save_student(out_dir / "student.safetensors", model, metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log(f"dev accuracy (quantized, all layers) {metrics['dev']['accuracy_all_layers']:.4f}; "
        f"early exit {metrics['dev']['accuracy_early_exit']:.4f} at "
        f"{metrics['dev']['avg_layers']:.2f} layers")
    return metrics
