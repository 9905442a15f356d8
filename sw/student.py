"""The EdgeBERT student ([S3]): ALBERT-style encoder with an off-ramp after every layer.

* Factorized embeddings: token, position and segment tables of width E (summed, LayerNorm),
  then one E→H projection. The token table may hold a pruned vocabulary: ``vocab_map`` (a
  buffer) sends every tokenizer id to a row, unknown ones to the ``[UNK]`` row.
* One transformer layer (post-LayerNorm, ReLU FFN by default) applied L times.
* Adaptive attention span per head ([H3]): a learned span ``z``, ramp ``R`` and the mask
  ``m_z(x) = clamp((R + z - x) / R, 0, 1)`` over key position ``x``, applied to the softmax
  output and renormalized.
* An off-ramp (pooler + classifier) after every layer; early exit on the entropy of its logits.

Hardware conventions are used already in training so that the exported codes are the trained
ones: the 1/sqrt(d) attention scale is folded into the query weights, weights (masked by
pruning) and activations are AdaptivFloat fake-quantized ([F1]-[F3]) when quantization is on,
with one bias per weight tensor and one per activation site and layer.
"""

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from hw.checks import check_count
from hw.layouts import DEFAULT_AF, AFFormat
from sw.adaptivfloat import fake_quantize, weight_bias

__all__ = ["StudentConfig", "Student", "ACT_SITES", "EMB_SITES", "POOLINGS", "act_sites",
           "entropy", "early_exit", "MaskedLinear"]

# Activation sites that the accelerator requantizes, inside each layer (one bias per layer)...
ACT_SITES = ("q", "k", "v", "scores", "probs", "ctx", "attn_out", "res1", "ln1", "ffn1",
             "ffn2", "res2", "ln2", "pool", "logits")
# ... and in the embedding stage (one bias each).
EMB_SITES = ("emb_sum", "emb_ln", "emb_proj")
# Mean pooling adds one site after ACT_SITES: the mean of the real tokens' states.
POOLINGS = ("cls", "mean")


def act_sites(config):
    """The per-layer activation sites of a student with ``config``."""
    return ACT_SITES + (("mean",) if config.pooling == "mean" else ())


@dataclass
class StudentConfig:
    """Sizes of the student. The defaults fit the accelerator (H and FFN multiples of n = 16,
    head size 32) and keep one sentence of 64 tokens small enough to simulate in RTL."""

    vocab_size: int = 30522
    emb_dim: int = 128
    hidden: int = 128
    heads: int = 4
    ffn: int = 512
    layers: int = 6
    max_len: int = 64
    n_labels: int = 2
    type_vocab: int = 2
    act: str = "relu"
    pooler_act: str = "relu"
    dropout: float = 0.1
    ln_eps: float = 1e-5
    span_ramp: int = 16
    span_renorm: bool = True
    tokenizer_vocab: int = 30522
    unk_id: int = 100
    # One pair of LayerNorms per application of the shared layer (a few thousand aux values)
    # instead of one pair for all; "mean" pools the mean of the real tokens' states into the
    # off-ramps instead of the [CLS] state.
    ln_per_layer: bool = False
    pooling: str = "cls"

    def __post_init__(self):
        for f in ("vocab_size", "emb_dim", "hidden", "heads", "ffn", "layers", "max_len",
                  "n_labels", "type_vocab", "span_ramp", "tokenizer_vocab"):
            check_count(f, getattr(self, f))
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads "
                             f"({self.heads})")
        if self.act not in ("relu", "gelu"):
            raise ValueError(f"act must be 'relu' or 'gelu', not {self.act!r}")
        if self.pooler_act not in ("relu", "tanh"):
            raise ValueError(f"pooler_act must be 'relu' or 'tanh', not {self.pooler_act!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")
        if self.span_ramp > self.max_len:
            raise ValueError(f"span_ramp must be at most max_len ({self.max_len}), "
                             f"not {self.span_ramp}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if not isinstance(self.ln_per_layer, bool):
            raise ValueError(f"ln_per_layer must be true or false, not {self.ln_per_layer!r}")
        if not 0 <= self.unk_id < self.tokenizer_vocab:
            raise ValueError(f"unk_id must be a tokenizer id, not {self.unk_id!r}")

    @property
    def head_dim(self):
        return self.hidden // self.heads

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown student config keys: {sorted(unknown)}")
        return cls(**d)


class _MaskSTE(torch.autograd.Function):
    """``w * mask`` forward, gradient passed to every weight (pruned ones may regrow)."""

    @staticmethod
    def forward(ctx, w, mask):
        return w * mask

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Quant:
    """Quantization state shared by the modules of one student."""

    def __init__(self, fmt: AFFormat = DEFAULT_AF):
        self.fmt = fmt
        self.weights = False
        self.acts = False
        # Tensor name -> bias; tensors not named here get the weight rule [F3]. An image
        # fixes every bias so that reloaded weights quantize to exactly their codes.
        self.fixed = {}
        # Quantized weights by name during one forward pass: the shared layer is applied L
        # times with the same weights, which need quantizing only once (L times faster QAT).
        self.cache = None

    def q(self, x, name):
        """``x`` fake-quantized with the bias of tensor ``name`` (when weights are quantized)."""
        if not self.weights:
            return x
        if self.cache is not None and name in self.cache:
            return self.cache[name]
        b = self.fixed.get(name)
        out = fake_quantize(x, weight_bias(x, self.fmt) if b is None else b, self.fmt)
        if self.cache is not None:
            self.cache[name] = out
        return out

    def bias_of(self, x, name):
        """The bias that tensor ``name`` with values ``x`` is stored with."""
        b = self.fixed.get(name)
        return weight_bias(x, self.fmt) if b is None else b


class MaskedLinear(nn.Linear):
    """``nn.Linear`` with a pruning mask, an optional fixed scale folded into weight and bias,
    and AdaptivFloat fake quantization of both when quantization is on. ``mm_dtype`` (a
    training-time setting, :func:`sw.train.fast.set_fast`; ``None``: float32) is the dtype of the
    product, widened back to float32."""

    mm_dtype = None

    def __init__(self, d_in, d_out, quant, name, *, scale=1.0):
        super().__init__(d_in, d_out)
        self.register_buffer("mask", torch.ones(d_out, d_in))
        self.quant = quant
        self.qname = name
        self.scale = scale

    def effective_weight(self):
        w = _MaskSTE.apply(self.weight, self.mask) * self.scale
        return self.quant.q(w, f"{self.qname}.weight")

    def effective_bias(self):
        return self.quant.q(self.bias * self.scale, f"{self.qname}.bias")

    def forward(self, x):
        w, b = self.effective_weight(), self.effective_bias()
        if self.mm_dtype is None:
            return F.linear(x, w, b)
        return F.linear(x.to(self.mm_dtype), w.to(self.mm_dtype)).to(x.dtype) + b


def _sample_abs(x, n=4096):
    """A deterministic sample of ``|x|`` for calibration: an even stride plus the maximum."""
    flat = x.detach().abs().flatten()
    step = max(1, flat.numel() // n)
    return torch.cat([flat[::step], flat.max().reshape(1)])


class _ActQuant(nn.Module):
    """Activation sites: running max (for QAT) and calibrated biases, one per site and layer."""

    def __init__(self, quant, n_layers, sites=ACT_SITES):
        super().__init__()
        self.quant = quant
        self.register_buffer("layer_max", torch.zeros(len(sites), n_layers))
        self.register_buffer("emb_max", torch.zeros(len(EMB_SITES)))
        self.register_buffer("layer_bias", torch.full((len(sites), n_layers), -1,
                                                      dtype=torch.int64))
        self.register_buffer("emb_bias", torch.full((len(EMB_SITES),), -1, dtype=torch.int64))
        self.observe = False
        self.collect = None
        self.site_index = {s: i for i, s in enumerate(sites)}
        self.emb_index = {s: i for i, s in enumerate(EMB_SITES)}

    def bias(self, site, layer):
        """The bias layer-site ``site`` quantizes with now (calibrated, else the running max's)."""
        i = self.site_index[site]
        b = int(self.layer_bias[i, layer])
        return b if b >= 0 else weight_bias(self.layer_max[i, layer].reshape(1), self.quant.fmt)

    def forward(self, x, site, layer=None):
        if layer is None:
            i, peak, bias = self.emb_index[site], self.emb_max, self.emb_bias
            key = (i,)
        else:
            i, peak, bias = self.site_index[site], self.layer_max, self.layer_bias
            key = (i, layer)
        if self.observe:
            # Exponential moving average of the batch maximum (the first one sets it).
            m = x.detach().abs().max()
            peak[key] = torch.where(peak[key] > 0, 0.9 * peak[key] + 0.1 * m, m)
        if self.collect is not None:
            self.collect.setdefault((site, layer), []).append(_sample_abs(x))
        if not self.quant.acts:
            return x
        b = int(bias[key])
        if b < 0:  # not calibrated yet: the bias that the running maximum gives
            b = weight_bias(peak[key].reshape(1), self.quant.fmt)
        return fake_quantize(x, b, self.quant.fmt)


def entropy(logits):
    """Entropy (natural log) of softmax(logits) along the last dimension, as [H5] computes it."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class Student(nn.Module):
    def __init__(self, config: StudentConfig, *, fmt: AFFormat = DEFAULT_AF):
        super().__init__()
        c = self.config = config
        self.quant = Quant(fmt)
        q = self.quant
        self.word = nn.Embedding(c.vocab_size, c.emb_dim)
        self.register_buffer("word_mask", torch.ones(c.vocab_size, c.emb_dim))
        self.pos = nn.Embedding(c.max_len, c.emb_dim)
        self.seg = nn.Embedding(c.type_vocab, c.emb_dim)
        self.emb_ln = nn.LayerNorm(c.emb_dim, eps=c.ln_eps)
        self.emb_proj = MaskedLinear(c.emb_dim, c.hidden, q, "emb_proj")
        # The 1/sqrt(d) attention scale lives in the query weights, as exported ([H3]).
        self.wq = MaskedLinear(c.hidden, c.hidden, q, "wq", scale=1.0 / math.sqrt(c.head_dim))
        self.wk = MaskedLinear(c.hidden, c.hidden, q, "wk")
        self.wv = MaskedLinear(c.hidden, c.hidden, q, "wv")
        self.wo = MaskedLinear(c.hidden, c.hidden, q, "wo")
        # Parameter order as before (tiny images draw their random weights in this order).
        # ln_per_layer: one LayerNorm per application, names ln1.<i>, ln2.<i> (image likewise).
        self.ln1 = self._lns(c)
        self.ff1 = MaskedLinear(c.hidden, c.ffn, q, "ff1")
        self.ff2 = MaskedLinear(c.ffn, c.hidden, q, "ff2")
        self.ln2 = self._lns(c)
        # Span per head as a fraction of max_len (z = frac * max_len), so that the optimizer's
        # step size means the same for spans as for weights (Sukhbaatar et al. 2019).
        self.span_frac = nn.Parameter(torch.ones(c.heads))
        self.pooler = nn.ModuleList(MaskedLinear(c.hidden, c.hidden, q, f"pooler.{i}")
                                    for i in range(c.layers))
        self.classifier = nn.ModuleList(MaskedLinear(c.hidden, c.n_labels, q, f"classifier.{i}")
                                        for i in range(c.layers))
        self.act_q = _ActQuant(q, c.layers, act_sites(c))
        self.drop = nn.Dropout(c.dropout)
        # Tokenizer id -> row of the (possibly pruned) token table.
        vmap = torch.arange(c.tokenizer_vocab) if c.vocab_size == c.tokenizer_vocab else \
            torch.full((c.tokenizer_vocab,), c.unk_id)
        self.register_buffer("vocab_map", vmap)
        self.apply(self._init)

    @staticmethod
    def _lns(c):
        if c.ln_per_layer:
            return nn.ModuleList(nn.LayerNorm(c.hidden, eps=c.ln_eps) for _ in range(c.layers))
        return nn.LayerNorm(c.hidden, eps=c.ln_eps)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    # -- quantization and pruning views ---------------------------------------------------
    def prunable(self):
        """Encoder weight matrices that are pruned, by name (``nn.Linear`` layout out x in)."""
        return {"wq": self.wq, "wk": self.wk, "wv": self.wv, "wo": self.wo,
                "ff1": self.ff1, "ff2": self.ff2}

    def linears(self):
        """Every weight matrix that the matrix engine multiplies by, by name."""
        d = {"emb_proj": self.emb_proj, **self.prunable()}
        for i in range(self.config.layers):
            d[f"pooler.{i}"] = self.pooler[i]
            d[f"classifier.{i}"] = self.classifier[i]
        return d

    def layer_norms(self):
        """Every LayerNorm by name: ``emb_ln``, then ``ln1``/``ln2`` (shared) or
        ``ln1.<i>``/``ln2.<i>`` (one per application, ``ln_per_layer``)."""
        if not self.config.ln_per_layer:
            return {"emb_ln": self.emb_ln, "ln1": self.ln1, "ln2": self.ln2}
        d = {"emb_ln": self.emb_ln}
        for part in ("ln1", "ln2"):
            d.update({f"{part}.{i}": m for i, m in enumerate(getattr(self, part))})
        return d

    def ln_name(self, part, i):
        """The name of LayerNorm ``part`` (``ln1``/``ln2``) used by application ``i``."""
        return f"{part}.{i}" if self.config.ln_per_layer else part

    def word_rows(self, rows):
        """Rows of the masked (and quantized) token table; only the gathered rows are
        quantized, with the bias of the whole table."""
        w = _MaskSTE.apply(self.word.weight, self.word_mask)
        x = F.embedding(rows, w)
        if self.quant.weights:
            x = fake_quantize(x, self.quant.bias_of(w, "word"), self.quant.fmt)
        return x

    def _table(self, name):
        return self.quant.q(getattr(self, name).weight, name)

    def _ln(self, name, x):
        ln = self.emb_ln if name == "emb_ln" else self.layer_norms()[name]
        g = self.quant.q(ln.weight, f"{name}.weight")
        b = self.quant.q(ln.bias, f"{name}.bias")
        return F.layer_norm(x, ln.normalized_shape, g, b, ln.eps)

    def span_z(self):
        """Learned span z per head in tokens, within [-R, max_len] (-R: head off)."""
        c = self.config
        return (self.span_frac * c.max_len).clamp(-c.span_ramp, c.max_len)

    def span_mask(self, length=None):
        """``(heads, length)`` soft span mask m_z(x) = clamp((R + z - x) / R, 0, 1)."""
        c = self.config
        length = c.max_len if length is None else length
        x = torch.arange(length, dtype=torch.float32, device=self.span_frac.device)
        z = self.span_z().unsqueeze(1)
        m = ((c.span_ramp + z - x) / c.span_ramp).clamp(0, 1)
        # The mask is stored as AdaptivFloat codes in the aux buffer: use those values.
        return self.quant.q(m, "span_mask")

    # -- forward ---------------------------------------------------------------------------
    def embed(self, input_ids, token_type_ids=None):
        c, a = self.config, self.act_q
        rows = self.vocab_map[input_ids]
        t = input_ids.shape[1]
        if t > c.max_len:
            raise ValueError(f"sequence length must be at most max_len = {c.max_len}, not {t}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_rows(rows) + self._table("pos")[:t] \
            + F.embedding(token_type_ids, self._table("seg"))
        x = a(x, "emb_sum")
        x = a(self._ln("emb_ln", x), "emb_ln")
        return a(self.emb_proj(self.drop(x)), "emb_proj")

    def layer(self, x, key_mask, i, want_probs=False):
        """Layer ``i`` (the shared weights) on hidden states ``x`` (B, T, H)."""
        c, a = self.config, self.act_q
        bsz, t, _ = x.shape

        def heads(y):
            return y.view(bsz, t, c.heads, c.head_dim).transpose(1, 2)

        q = heads(a(self.wq(x), "q", i))
        k = heads(a(self.wk(x), "k", i))
        v = heads(a(self.wv(x), "v", i))
        s = a(q @ k.transpose(-1, -2), "scores", i)
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        p = torch.softmax(s, dim=-1) * self.span_mask(t)[None, :, None, :]
        if c.span_renorm:
            p = p / p.sum(-1, keepdim=True).clamp(min=1e-6)
        p = a(p, "probs", i)
        ctx = (self.drop(p) @ v).transpose(1, 2).reshape(bsz, t, c.hidden)
        ctx = a(ctx, "ctx", i)
        h = a(self.wo(ctx), "attn_out", i)
        x = a(x + self.drop(h), "res1", i)
        x = a(self._ln(self.ln_name("ln1", i), x), "ln1", i)
        f = self.ff1(x)
        f = F.relu(f) if c.act == "relu" else F.gelu(f)
        f = a(f, "ffn1", i)
        f = a(self.ff2(self.drop(f)), "ffn2", i)
        x = a(x + self.drop(f), "res2", i)
        x = a(self._ln(self.ln_name("ln2", i), x), "ln2", i)
        return (x, p) if want_probs else (x, None)

    def ramp(self, x, i, key_mask=None):
        """Off-ramp ``i``: pooler on the ``[CLS]`` state (or the mean of the real tokens'
        states, ``pooling = "mean"``: needs ``key_mask``), then the classifier."""
        a = self.act_q
        if self.config.pooling == "mean":
            if key_mask is None:
                raise ValueError("mean pooling needs the key mask of the real tokens")
            # In hardware: P = softmax of zero scores over the real tokens (1/T each, as the
            # "probs" site's codes), then P.X (sw.program.compiler).
            m = key_mask.unsqueeze(-1).to(x.dtype)
            w = 1.0 / m.sum(1, keepdim=True).clamp(min=1)
            if self.quant.acts:
                w = fake_quantize(w, a.bias("probs", i), self.quant.fmt)
            x0 = a((x * m * w).sum(1), "mean", i)
        else:
            x0 = x[:, 0]
        h = self.pooler[i](self.drop(x0))
        h = torch.relu(h) if self.config.pooler_act == "relu" else torch.tanh(h)
        h = a(h, "pool", i)
        return a(self.classifier[i](self.drop(h)), "logits", i)

    def forward(self, input_ids, attention_mask, token_type_ids=None, *, ramps=None,
                return_hidden=False):
        """Logits of every off-ramp, ``(L, B, n_labels)`` (layers ``ramps`` only if given).

        The layers after the last requested ramp are not run.
        """
        c = self.config
        ramps = range(c.layers) if ramps is None else sorted(ramps)
        self.quant.cache = {}
        try:
            return self._forward(input_ids, attention_mask, token_type_ids, ramps, return_hidden)
        finally:
            self.quant.cache = None

    def _forward(self, input_ids, attention_mask, token_type_ids, ramps, return_hidden):
        x = self.embed(input_ids, token_type_ids)
        key_mask = attention_mask.bool()
        out, hidden = [], []
        last = max(ramps)
        want = set(ramps)
        for i in range(last + 1):
            x, _ = self.layer(x, key_mask, i)
            hidden.append(x)
            if i in want:
                out.append(self.ramp(x, i, key_mask))
        logits = torch.stack(out)
        return (logits, hidden) if return_hidden else logits

    # -- compression statistics --------------------------------------------------------------
    def span_loss(self):
        """Mean attended span over heads, as a fraction of ``max_len`` (the span penalty)."""
        c = self.config
        return (self.span_z() + c.span_ramp).clamp(min=0).mean() / c.max_len

    def spans(self):
        """Integer span per head: keys with a non-zero mask (0 means the head is skipped)."""
        return (self.span_mask() > 0).sum(1)

    @torch.no_grad()
    def sparsity(self):
        """Fraction of zero weights (after masking) per pruned tensor, encoder and embeddings."""
        out = {}
        zeros = total = 0
        for name, m in self.prunable().items():
            w = m.weight * m.mask
            out[name] = float((w == 0).float().mean())
            zeros += int((w == 0).sum())
            total += w.numel()
        out["encoder"] = zeros / total
        out["word"] = float((self.word.weight * self.word_mask == 0).float().mean())
        return out


def early_exit(logits, threshold):
    """Early-exit decision on ``(L, B, C)`` ramp logits: exit at the first layer whose entropy
    is below ``threshold`` (or at the last layer). Returns (predictions, exit layer 1-based)."""
    h = entropy(logits)
    below = h < threshold
    below[-1] = True
    exit_idx = below.float().argmax(0)
    preds = logits.argmax(-1).gather(0, exit_idx[None]).squeeze(0)
    return preds, exit_idx + 1
