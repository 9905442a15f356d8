"""Teacher ([S2]): all-MiniLM-L6-v2 (or any local BERT-family checkpoint) fine-tuned on the task.

The encoder is loaded offline with ``transformers`` from a checkpoint directory; the classifier
reads the mean of the token states (the pooling all-MiniLM-L6-v2 was trained with, and it has no
trained pooler). Fine-tuning checkpoints to safetensors every few hundred steps and resumes from
the last one; its logits on the training set are cached for distillation.
"""

import json
import math
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sw.device import model_device, resolve_device
from sw.tokenizer import WordPiece, default_model_dir, encode_examples

__all__ = ["Teacher", "bucketed_order", "fine_tune", "predict_logits", "predict_states",
           "load_teacher", "cached_logits", "cache_states", "cached_states", "soup"]


class Teacher(nn.Module):
    """BERT encoder + mean pooling + dropout + linear classifier."""

    def __init__(self, model_dir=None, *, n_labels=2, dropout=0.1):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModel

        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{str(model_dir)!r} is not a checkpoint directory "
                                    f"(no config.json)")
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self.model_dir = model_dir
        self.encoder = AutoModel.from_pretrained(model_dir, config=config, local_files_only=True,
                                                 add_pooling_layer=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, n_labels)

    def states(self, input_ids, attention_mask, token_type_ids=None):
        """The encoder's last-layer token states ``(B, T, hidden)``."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state

    def head(self, h, attention_mask):
        """Logits from last-layer states ``h``: mean over real tokens, dropout, classifier."""
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return self.classifier(self.dropout(pooled))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.head(self.states(input_ids, attention_mask, token_type_ids), attention_mask)


def _trim(ids, mask, types, device=None):
    """Drop the all-padding tail of a batch (dynamic padding: the same result, faster), and
    move it to ``device`` (when given)."""
    n = int(mask.sum(1).max())
    out = ids[:, :n], mask[:, :n], types[:, :n]
    return out if device is None else tuple(t.to(device) for t in out)


@torch.no_grad()
def predict_logits(model, batch, *, batch_size=256, progress=None):
    """Logits of ``model`` for a tokenized :class:`~sw.tokenizer.Batch`, in eval mode."""
    model.eval()
    dev = model_device(model)
    out = []
    # Sorting by length keeps padding small; the result is put back in the original order.
    order = torch.argsort(batch.attention_mask.sum(1))
    for s in range(0, len(batch), batch_size):
        idx = order[s:s + batch_size]
        ids, mask, types = _trim(batch.input_ids[idx], batch.attention_mask[idx],
                                 batch.token_type_ids[idx], dev)
        out.append(model(ids, mask, types).float().cpu())
        if progress is not None:
            progress.update(len(idx))
    logits = torch.empty(len(batch), out[0].shape[1])
    logits[order] = torch.cat(out)
    return logits


@torch.no_grad()
def predict_states(model, batch, *, batch_size=256, progress=None, with_logits=False):
    """The teacher's last-layer token states on a tokenized batch, packed without padding:
    ``(states, offsets)``, where example ``i``'s tokens (the first ``offsets[i + 1] -
    offsets[i]`` positions, its attention mask) are ``states[offsets[i]:offsets[i + 1]]``,
    stored as float16 (halves the cache; the student's target needs no more precision).
    ``with_logits=True`` returns ``(states, offsets, logits)`` from the same pass, the logits
    identical to :func:`predict_logits`' (same batches, computed from the float32 states)."""
    model.eval()
    lengths = batch.attention_mask.sum(1)
    pos = torch.arange(batch.attention_mask.shape[1])
    if not torch.equal(batch.attention_mask.bool(), pos[None, :] < lengths[:, None]):
        raise ValueError("predict_states needs right-padded batches (attention mask a prefix)")
    offsets = torch.zeros(len(batch) + 1, dtype=torch.int64)
    offsets[1:] = lengths.cumsum(0)
    states = logits = None
    dev = model_device(model)
    order = torch.argsort(lengths)
    for s in range(0, len(batch), batch_size):
        idx = order[s:s + batch_size]
        ids, mask, types = _trim(batch.input_ids[idx], batch.attention_mask[idx],
                                 batch.token_type_ids[idx], dev)
        h32 = model.states(ids, mask, types)
        h = h32.half().cpu()
        if states is None:
            states = torch.empty(int(offsets[-1]), h.shape[-1], dtype=torch.float16)
        for j, i in enumerate(idx.tolist()):
            states[offsets[i]:offsets[i + 1]] = h[j, :offsets[i + 1] - offsets[i]]
        if with_logits:
            z = model.head(h32, mask).float().cpu()
            if logits is None:
                logits = torch.empty(len(batch), z.shape[1])
            logits[idx] = z
        if progress is not None:
            progress.update(len(idx))
    return (states, offsets, logits) if with_logits else (states, offsets)


def bucketed_order(lengths, batch_size, n_epochs, seed, *, bucket=64):
    """Example order for ``n_epochs`` epochs in which each consecutive ``batch_size`` slice
    holds examples of similar length (less padding), while batches come in random order.

    Each epoch is shuffled, cut into chunks of ``bucket`` batches, sorted by length inside a
    chunk and split into batches; then the batches are shuffled.

    An epoch of N examples, N not a multiple of ``batch_size``, is filled up to one with the
    first examples of its own shuffle (they occur twice in that epoch): every slice
    ``order[k * batch_size:(k + 1) * batch_size]`` is then one whole batch. Without the fill
    the epoch's short batch shifted every later slice across two batches of other lengths: on
    the SST-2 student recipe 22 padded tokens per sentence instead of 16, a quarter more work
    per step (``docs/training.md``, "Whole batches").
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    chunk = batch_size * bucket
    n = len(lengths)
    fill = -n % batch_size
    for _ in range(n_epochs):
        perm = torch.randperm(n, generator=g)
        if fill:
            perm = torch.cat([perm, perm.repeat(-(-fill // n))[:fill]])
        batches = []
        for s in range(0, len(perm), chunk):
            part = perm[s:s + chunk]
            part = part[torch.argsort(lengths[part], stable=True)]
            batches += list(torch.split(part, batch_size))
        out += [batches[i] for i in torch.randperm(len(batches), generator=g)]
    return torch.cat(out)


def fine_tune(train, dev, out_dir, *, model_dir=None, max_len=64, epochs=1.0, batch_size=32,
              lr=1e-4, warmup=0.06, weight_decay=0.01, seed=0, ckpt_every=100,
              freeze_word_embeddings=True, logits_limit=None, stop_at=None, init_from=None,
              device="cpu", log=print):
    """Fine-tune the teacher, checkpointing to ``out_dir`` and resuming from it.

    ``stop_at`` ends training after that many steps (of the schedule for ``epochs``): a way to
    cut a run short from its last checkpoint when time runs out. ``init_from`` starts from the
    weights of an earlier fine-tuning (its output directory), e.g. for a further epoch at a
    lower learning rate.
    ``freeze_word_embeddings`` keeps the 30k x 384 token table fixed: it saves a third of the
    optimizer work on a CPU and barely changes accuracy on a single task.
    ``device`` is where it trains (``cpu`` or a CUDA GPU); the outputs are the same files.
    Writes ``teacher.safetensors`` (final weights), ``teacher.json`` (dev accuracy, settings)
    and ``train_logits.safetensors`` (logits on ``train``, in its order, or on its first
    ``logits_limit`` examples) for distillation.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tok = WordPiece(model_dir, max_len=max_len)
    model = Teacher(model_dir, n_labels=max(e.label for e in train) + 1)
    if init_from is not None:
        model.load_state_dict(load_file(Path(init_from) / "teacher.safetensors"))
        log(f"starting from the fine-tuned teacher in {init_from}")
    device = resolve_device(device)
    model.to(device)
    batch, labels = encode_examples(tok, train)
    labels_dev = labels.to(device)
    n_steps = math.ceil(epochs * len(train) / batch_size)
    perm = bucketed_order(batch.attention_mask.sum(1), batch_size,
                          math.ceil(n_steps * batch_size / len(train)), seed)

    if freeze_word_embeddings:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    no_decay = [p for p in params if p.ndim < 2]
    decay = [p for p in params if p.ndim >= 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    n_warm = max(1, int(warmup * n_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / n_warm, max(0.0, (n_steps - s) / (n_steps - n_warm))))

    step = 0
    ckpt = out_dir / "teacher_ckpt.safetensors"
    if ckpt.is_file():
        state = load_file(ckpt)
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        opt_state = torch.load(out_dir / "teacher_opt.pt", weights_only=True,
                               map_location=device)
        opt.load_state_dict(opt_state["opt"])
        sched.load_state_dict(opt_state["sched"])
        step = opt_state["step"]
        log(f"resumed from step {step}")

    model.train()
    t0 = time.time()
    bar = tqdm(total=n_steps, initial=step, desc="teacher", mininterval=10)
    loss_avg = None
    end = n_steps if stop_at is None else min(stop_at, n_steps)
    while step < end:
        idx = perm[step * batch_size:(step + 1) * batch_size]
        ids, mask, types = _trim(batch.input_ids[idx], batch.attention_mask[idx],
                                 batch.token_type_ids[idx], device)
        loss = nn.functional.cross_entropy(model(ids, mask, types), labels_dev[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if step % 50 == 0:
            log(f"step {step}/{n_steps} loss {loss_avg:.4f} {time.time() - t0:.0f}s")
        if step % ckpt_every == 0 or step == end:
            save_file({f"model.{k}": v.cpu().contiguous()
                       for k, v in model.state_dict().items()}, ckpt)
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(), "step": step},
                       out_dir / "teacher_opt.pt")
    bar.close()

    meta = {"dev_accuracy": None, "logits_limit": logits_limit, "n_dev": len(dev),
            "n_train": len(train), "steps": n_steps, "epochs": epochs, "steps_run": step,
            "batch_size": batch_size, "lr": lr, "max_len": max_len, "seed": seed,
            "model_dir": str(tok.model_dir), "train_s": time.time() - t0,
            "init_from": None if init_from is None else str(init_from),
            "freeze_word_embeddings": freeze_word_embeddings, "device": str(device)}
    return _finish(model, tok, batch, labels, dev, out_dir, meta, logits_limit, log)


def _finish(model, tok, batch, labels, dev, out_dir, meta, logits_limit, log):
    """Evaluate on ``dev``, write ``teacher.safetensors`` and ``teacher.json`` (``meta`` plus the
    dev accuracy) and cache the logits on the (first ``logits_limit``) training examples."""
    from tqdm import tqdm

    from sw.tokenizer import Batch

    dev_batch, dev_labels = encode_examples(tok, dev)
    dev_logits = predict_logits(model, dev_batch)
    acc = float((dev_logits.argmax(1) == dev_labels).float().mean())
    log(f"teacher dev accuracy {acc:.4f}")
    save_file({k: v.cpu().contiguous() for k, v in model.state_dict().items()},
              out_dir / "teacher.safetensors")
    meta = {**meta, "dev_accuracy": acc,
            "dev_correct": int((dev_logits.argmax(1) == dev_labels).sum())}
    (out_dir / "teacher.json").write_text(json.dumps(meta, indent=2))
    n = len(batch) if logits_limit is None else min(logits_limit, len(batch))
    bar = tqdm(total=n, desc="teacher logits", mininterval=10)
    head = Batch(batch.input_ids[:n], batch.attention_mask[:n], batch.token_type_ids[:n], 0)
    logits = predict_logits(model, head, progress=bar)
    bar.close()
    save_file({"logits": logits, "labels": labels[:n]}, out_dir / "train_logits.safetensors")
    (out_dir / "train_states.safetensors").unlink(missing_ok=True)  # of an earlier teacher
    log(f"cached logits for the first {n} training examples")
    return meta


def soup(ingredients, train, dev, out_dir, *, model_dir=None, max_len=64, logits_limit=None,
         device="cpu", log=print):
    """A uniform model soup (Wortsman et al., ICML 2022): the element-wise mean of the weights
    of several teachers fine-tuned from the same checkpoint (e.g. the same recipe with different
    seeds), evaluated and cached exactly like a fine-tuned teacher.

    Fine-tunings of one pre-trained model stay in one basin of the loss, so their mean is a
    single model (no cost at inference, unlike an ensemble) that is usually at least as accurate
    as its ingredients. ``ingredients`` are :func:`fine_tune` output directories; they must
    have the same tensors (names and shapes) and come from the same checkpoint.
    """
    out_dir = Path(out_dir)
    ingredients = [Path(d) for d in ingredients]
    if len(ingredients) < 2:
        raise ValueError(f"a soup needs at least two fine-tuned teachers, got {len(ingredients)}")
    if len(set(d.resolve() for d in ingredients)) != len(ingredients):
        raise ValueError("a soup's ingredients must be different directories")
    if out_dir.resolve() in {d.resolve() for d in ingredients}:
        raise ValueError(f"the soup's output directory {str(out_dir)!r} is one of its "
                         f"ingredients; choose another")
    states, metas = [], []
    for d in ingredients:
        f = d / "teacher.safetensors"
        if not f.is_file():
            raise FileNotFoundError(f"{str(d)!r} holds no fine-tuned teacher "
                                    f"(no teacher.safetensors)")
        states.append(load_file(f))
        j = d / "teacher.json"
        metas.append(json.loads(j.read_text()) if j.is_file() else {})
    first = states[0]
    for d, st in zip(ingredients[1:], states[1:], strict=True):
        if st.keys() != first.keys():
            diff = sorted(st.keys() ^ first.keys())
            raise ValueError(f"{str(d)!r} has other tensors than {str(ingredients[0])!r} "
                             f"(e.g. {diff[0]}): not the same architecture")
        for k, v in st.items():
            if v.shape != first[k].shape:
                raise ValueError(f"{str(d)!r}: {k} has shape {tuple(v.shape)}, "
                                 f"{str(ingredients[0])!r} {tuple(first[k].shape)}")
    sources = {m.get("model_dir") for m in metas} - {None}
    if len(sources) > 1:
        raise ValueError(f"the ingredients were fine-tuned from different checkpoints "
                         f"({', '.join(sorted(sources))}); a soup needs one")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = WordPiece(model_dir, max_len=max_len)
    model = Teacher(model_dir, n_labels=first["classifier.weight"].shape[0])
    mean = {k: (sum(st[k].double() for st in states) / len(states)).to(first[k].dtype)
            for k in first}
    model.load_state_dict(mean)
    model.to(resolve_device(device)).eval()
    log(f"soup of {len(ingredients)} teachers: {', '.join(map(str, ingredients))}")
    batch, labels = encode_examples(tok, train)
    meta = {"soup": [str(d) for d in ingredients],
            "soup_dev_accuracy": [m.get("dev_accuracy") for m in metas],
            "logits_limit": logits_limit, "n_dev": len(dev), "n_train": len(train),
            "max_len": max_len, "model_dir": str(tok.model_dir)}
    return _finish(model, tok, batch, labels, dev, out_dir, meta, logits_limit, log)


def load_teacher(out_dir, model_dir=None, device="cpu"):
    """The fine-tuned teacher saved by :func:`fine_tune` in ``out_dir``, on ``device``."""
    state = load_file(Path(out_dir) / "teacher.safetensors")
    model = Teacher(model_dir, n_labels=state["classifier.weight"].shape[0])
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()


def cache_augmented(out_dir, train, copies, *, model_dir=None, max_len=64, seed=0, concat=0.0,
                    states=False, progress=True, device="cpu", log=print):
    """Augment ``train`` (:func:`sw.augment.augment`, ``copies`` per example) and cache the
    fine-tuned teacher's logits on the new sentences: ``augment.tsv`` (GLUE format, the label
    column holds the teacher's prediction) and ``augment_logits.safetensors`` (``logits``,
    ``source``: the index of each sentence's training example; ``partner``: the example
    appended to it, with probability ``concat``, or -1). With ``states=True`` the same teacher
    pass also writes their token states (``augment_states.safetensors``, as
    :func:`cache_states`); otherwise a stale states cache of the previous augmentations is
    removed."""
    from tqdm import tqdm

    from sw.augment import augment, neighbour_table

    out_dir = Path(out_dir)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    neighbours = neighbour_table(train, model_dir)
    examples, source, partner = augment(train, copies, neighbours, seed=seed, p_concat=concat)
    log(f"augmented {len(train)} training examples into {len(examples)} new ones")
    model = load_teacher(out_dir, model_dir, device)
    batch, _ = encode_examples(WordPiece(model_dir, max_len=max_len), examples)
    what = "logits and states" if states else "logits"
    bar = tqdm(total=len(examples), desc=f"teacher {what} (augmented)", mininterval=10,
               disable=not progress)
    if states:
        h, offsets, logits = predict_states(model, batch, progress=bar, with_logits=True)
    else:
        logits = predict_logits(model, batch, progress=bar)
    bar.close()
    preds = logits.argmax(1).tolist()
    pair = examples[0].text_b is not None
    with (out_dir / "augment.tsv").open("w", encoding="utf-8") as f:
        f.write("sentence1\tsentence2\tlabel\n" if pair else "sentence\tlabel\n")
        for e, y in zip(examples, preds, strict=True):
            f.write(f"{e.text_a}\t{e.text_b}\t{y}\n" if pair else f"{e.text_a}\t{y}\n")
    save_file({"logits": logits, "source": torch.tensor(source, dtype=torch.int64),
               "partner": torch.tensor(partner, dtype=torch.int64)},
              out_dir / "augment_logits.safetensors",
              metadata={"copies": str(copies), "concat": str(concat)})
    states_path = out_dir / "augment_states.safetensors"
    states_path.unlink(missing_ok=True)
    log(f"cached teacher logits for {len(examples)} augmented examples")
    if states:
        _save_states(states_path, h, offsets, max_len, len(examples), "augment", log)
    return len(examples)


def cached_augmented(out_dir):
    """(examples, logits, source, partner) cached by :func:`cache_augmented` in ``out_dir``
    (``partner`` is all -1 for caches written before concatenation existed)."""
    from sw.data import load_tsv

    out_dir = Path(out_dir)
    path = out_dir / "augment_logits.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no augmented teacher logits at {str(path)!r}: run "
                                f"'edgebert teacher --augment K' first")
    d = load_file(path)
    examples = load_tsv(out_dir / "augment.tsv")
    if len(examples) != len(d["logits"]):
        raise ValueError(f"{out_dir}: augment.tsv has {len(examples)} examples but the cache "
                         f"has logits for {len(d['logits'])}")
    partner = d.get("partner", torch.full_like(d["source"], -1))
    return examples, d["logits"], d["source"], partner


def cached_logits(out_dir, n_expected):
    """Cached teacher logits on the first ``n_expected`` training examples (the cache may
    cover more); refuses a cache that covers fewer."""
    path = Path(out_dir) / "train_logits.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no cached teacher logits at {str(path)!r}: run the teacher "
                                f"fine-tuning first")
    d = load_file(path)
    if d["logits"].shape[0] < n_expected:
        raise ValueError(f"cached teacher logits cover {d['logits'].shape[0]} examples, "
                         f"fewer than the {n_expected} of this training set: use "
                         f"train.train_limit or cache more")
    return d["logits"][:n_expected], d["labels"][:n_expected]


def cache_states(out_dir, train, *, model_dir=None, max_len=64, progress=True, device="cpu",
                 log=print):
    """Cache the fine-tuned teacher's last-layer token states (:func:`predict_states`) on the
    training set (``train_states.safetensors``) and, when ``out_dir`` holds an augmented cache,
    on the augmented sentences (``augment_states.safetensors``), for hidden-state distillation
    (``train.hidden_beta``); a file already there is kept. Returns the number of examples
    cached."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    model = load_teacher(out_dir, model_dir, device)
    tok = WordPiece(model_dir, max_len=max_len)
    sets = [("train", train)]
    if (out_dir / "augment_logits.safetensors").is_file():
        sets.append(("augment", cached_augmented(out_dir)[0]))
    total = 0
    for name, examples in sets:
        path = out_dir / f"{name}_states.safetensors"
        if path.is_file():
            log(f"keeping the cached teacher states in {path}")
            continue
        batch, _ = encode_examples(tok, examples)
        bar = tqdm(total=len(examples), desc=f"teacher states ({name})", mininterval=10,
                   disable=not progress)
        states, offsets = predict_states(model, batch, progress=bar)
        bar.close()
        _save_states(path, states, offsets, max_len, len(examples), name, log)
        total += len(examples)
    return total


def _save_states(path, states, offsets, max_len, n, name, log):
    save_file({"states": states, "offsets": offsets}, path, metadata={"max_len": str(max_len)})
    log(f"cached teacher token states for {n} {name} examples "
        f"({states.shape[0]} tokens x {states.shape[1]})")


def cached_states(out_dir, name, n_expected):
    """``(states, offsets)`` cached by :func:`cache_states` for ``name`` ("train" or "augment"),
    for the first ``n_expected`` examples; refuses a cache that covers fewer."""
    path = Path(out_dir) / f"{name}_states.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no cached teacher states at {str(path)!r}: run "
                                f"'edgebert teacher --states' first")
    d = load_file(path)
    states, offsets = d["states"], d["offsets"]
    if len(offsets) - 1 < n_expected:
        raise ValueError(f"{path} covers {len(offsets) - 1} examples, fewer than the "
                         f"{n_expected} needed")
    offsets = offsets[:n_expected + 1]
    return states[:int(offsets[-1])], offsets
