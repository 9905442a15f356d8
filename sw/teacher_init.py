"""Initialise the student's shared layer from one layer of the fine-tuned teacher.

The student (H = 128, 4 heads of 32, FFN 512) is narrower than all-MiniLM-L6-v2 (H = 384, 12
heads of 32, FFN 1,536), but its heads are as wide, so a teacher layer can be cut down to it:

* a basis ``P`` (384 x H, orthonormal columns): the top-H principal directions (uncentred) of
  the teacher's states at the input of the chosen layer, over the real tokens of a sample of
  training sentences; the student's hidden state stands for ``P^T x``;
* the ``heads`` teacher heads whose output (``ctx_h W_o[:, h]^T``) carries the most energy on the
  sample, their query, key and value rows taken with inputs projected on ``P``, and ``W_o``'s
  columns for them with outputs projected on ``P``;
* the ``ffn`` FFN units with the largest mean ``|act(x W1_j + b1_j)| * ||W2[:, j]||`` likewise;
* the LayerNorms and the embedding projection fitted by least squares on the sample: each
  LayerNorm coordinate-wise (the student normalises over H coordinates, the teacher over 384),
  the projection from the student's (PCA-initialised) embeddings to ``P^T`` of the layer's input.

The teacher's GELU becomes the student's activation (ReLU by default) as it is: the FFN is an
initialisation, and training adapts it. The layer is computed here from its weights, and
``layer_states`` checks that computation against the teacher's own forward pass.
"""

import math

import torch
from torch.nn import functional as F

__all__ = ["init_from_teacher", "layer_states"]


def _bert(teacher):
    enc = teacher.encoder
    return enc, enc.encoder.layer


def _lin(m):
    return m.weight.detach().float(), m.bias.detach().float()


@torch.no_grad()
def layer_states(teacher, batch, layer):
    """Inputs of teacher layer ``layer`` (0-based) on ``batch`` and the layer's intermediate
    values, computed from its weights: dict with ``x`` (B, T, D) input, ``ctx`` (B, heads, T,
    d) per-head context, ``a`` the post-attention LayerNorm output, ``inter`` the activated FFN
    units, ``out`` the layer output (equal to the teacher's next hidden state)."""
    enc, layers = _bert(teacher)
    n_layers = len(layers)
    if not 0 <= layer < n_layers:
        raise ValueError(f"teacher layer must be in 1..{n_layers}, not {layer + 1}")
    hs = enc(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
             token_type_ids=batch.token_type_ids, output_hidden_states=True).hidden_states
    x = hs[layer].float()
    lay = layers[layer]
    att = lay.attention.self
    nh, d = att.num_attention_heads, att.attention_head_size
    bsz, t, _ = x.shape
    (wq, bq), (wk, bk), (wv, bv) = _lin(att.query), _lin(att.key), _lin(att.value)

    def heads(y):
        return y.view(bsz, t, nh, d).transpose(1, 2)

    q, k, v = heads(x @ wq.T + bq), heads(x @ wk.T + bk), heads(x @ wv.T + bv)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    s = s.masked_fill(~batch.attention_mask.bool()[:, None, None, :], float("-inf"))
    ctx = torch.softmax(s, -1) @ v
    wo, bo = _lin(lay.attention.output.dense)
    ln1 = lay.attention.output.LayerNorm
    a = F.layer_norm(x + ctx.transpose(1, 2).reshape(bsz, t, nh * d) @ wo.T + bo,
                     ln1.normalized_shape, ln1.weight.float(), ln1.bias.float(), ln1.eps)
    w1, b1 = _lin(lay.intermediate.dense)
    inter = lay.intermediate.intermediate_act_fn(a @ w1.T + b1)
    w2, b2 = _lin(lay.output.dense)
    ln2 = lay.output.LayerNorm
    out = F.layer_norm(a + inter @ w2.T + b2, ln2.normalized_shape, ln2.weight.float(),
                       ln2.bias.float(), ln2.eps)
    return {"x": x, "ctx": ctx, "a": a, "inter": inter, "out": out,
            "next": hs[layer + 1].float()}


def _fit_ln(ln, z, target):
    """Coordinate-wise least squares: ``target_j ≈ g_j * norm(z)_j + b_j``."""
    u = F.layer_norm(z, z.shape[-1:], eps=ln.eps)
    um, tm = u.mean(0), target.mean(0)
    var = ((u - um) ** 2).mean(0).clamp(min=1e-6)
    g = ((u - um) * (target - tm)).mean(0) / var
    ln.weight.copy_(g)
    ln.bias.copy_(tm - g * um)


def _fit_linear(lin, inp, target):
    """Least squares ``target ≈ inp W^T + b`` into ``lin`` (which multiplies by ``lin.scale``)."""
    ones = torch.ones(inp.shape[0], 1)
    sol = torch.linalg.lstsq(torch.cat([inp, ones], 1), target).solution
    lin.weight.copy_(sol[:-1].T / lin.scale)
    lin.bias.copy_(sol[-1] / lin.scale)


@torch.no_grad()
def init_from_teacher(student, teacher, batch, layer):
    """Set ``student``'s shared layer, its LayerNorms and embedding projection from teacher
    layer ``layer`` (1-based), using the real tokens of ``batch`` (a tokenizer batch of
    training sentences). Returns a summary dict (chosen heads, the energy ``P`` keeps, and the
    relative errors of the initialised student's first layer against ``P^T`` of the teacher's
    layer output on the sample)."""
    c = student.config
    st = layer_states(teacher, batch, layer - 1)
    nh, d = st["ctx"].shape[1], st["ctx"].shape[-1]
    if d != c.head_dim:
        raise ValueError(f"teacher heads are {d} wide and the student's {c.head_dim}: "
                         "a teacher layer can only initialise a student with equal head width")
    if c.heads > nh or c.ffn > st["inter"].shape[-1] or c.hidden > st["x"].shape[-1]:
        raise ValueError(f"the student (hidden {c.hidden}, {c.heads} heads, FFN {c.ffn}) is "
                         f"larger than the teacher layer (hidden {st['x'].shape[-1]}, {nh} "
                         f"heads, FFN {st['inter'].shape[-1]})")
    real = batch.attention_mask.bool()
    x = st["x"][real]                                     # (N, D) real tokens
    whole = (c.hidden, c.heads, c.ffn) == (x.shape[-1], nh, st["inter"].shape[-1])
    if whole:  # the layer taken whole: no basis, every head and unit
        p = torch.eye(c.hidden)
        kept_energy = 1.0
    else:
        _, sv, vh = torch.linalg.svd(x, full_matrices=False)
        p = vh[:c.hidden].T                               # (D, H)
        kept_energy = float((sv[:c.hidden] ** 2).sum() / (sv ** 2).sum())

    lay = _bert(teacher)[1][layer - 1]
    att = lay.attention.self
    (wq, bq), (wk, bk), (wv, bv) = _lin(att.query), _lin(att.key), _lin(att.value)
    wo, bo = _lin(lay.attention.output.dense)
    w1, b1 = _lin(lay.intermediate.dense)
    w2, b2 = _lin(lay.output.dense)

    ctx = st["ctx"].transpose(1, 2)[real]                # (N, heads, d)
    energy = torch.stack([((ctx[:, h] @ wo[:, h * d:(h + 1) * d].T) ** 2).sum(1).mean()
                          for h in range(nh)])
    chosen = energy.argsort(descending=True)[:c.heads].sort().values
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in chosen.tolist()])
    unit_score = st["inter"][real].abs().mean(0) * w2.norm(dim=0)
    units = unit_score.argsort(descending=True)[:c.ffn].sort().values
    if whole:
        chosen, units = torch.arange(nh), torch.arange(c.ffn)
    ln_names = {part: [student.ln_name(part, i) for i in range(c.layers)]
                for part in ("ln1", "ln2")}
    lns = student.layer_norms()

    for lin, w, b in ((student.wq, wq, bq), (student.wk, wk, bk), (student.wv, wv, bv)):
        # Student scale: wq carries 1/sqrt(d) (the teacher divides the scores by it too).
        lin.weight.copy_(w[rows] @ p)
        lin.bias.copy_(b[rows])
    student.wo.weight.copy_(p.T @ wo[:, rows])
    student.wo.bias.copy_(p.T @ bo)
    student.ff1.weight.copy_(w1[units] @ p)
    student.ff1.bias.copy_(b1[units])
    student.ff2.weight.copy_(p.T @ w2[:, units])
    student.ff2.bias.copy_(p.T @ b2)

    # Embedding projection: the student's embedding LayerNorm output -> P^T x.
    was = student.training
    student.eval()
    try:
        e = F.layer_norm(student.word_rows(student.vocab_map[batch.input_ids])
                         + student.pos.weight[:batch.input_ids.shape[1]]
                         + F.embedding(batch.token_type_ids, student.seg.weight),
                         (c.emb_dim,), student.emb_ln.weight, student.emb_ln.bias,
                         student.emb_ln.eps)[real]
        _fit_linear(student.emb_proj, e, x @ p)
        # LayerNorms: the student's pre-norm sums against P^T of the teacher's norms.
        xs = x @ p
        ctx_s = ctx[:, chosen].reshape(len(xs), c.hidden)
        res1 = xs + ctx_s @ student.wo.weight.T + student.wo.bias
        t_ln = {"ln1": lay.attention.output.LayerNorm, "ln2": lay.output.LayerNorm}
        if whole:  # the teacher's own LayerNorms, in every application
            for part, names in ln_names.items():
                for name in dict.fromkeys(names):
                    lns[name].weight.copy_(t_ln[part].weight.float())
                    lns[name].bias.copy_(t_ln[part].bias.float())
        ln1 = lns[ln_names["ln1"][0]]
        if not whole:
            _fit_ln(ln1, res1, st["a"][real] @ p)
            for name in ln_names["ln1"][1:]:
                lns[name].load_state_dict(ln1.state_dict())
        a_s = F.layer_norm(res1, (c.hidden,), ln1.weight, ln1.bias, ln1.eps)
        f = a_s @ student.ff1.weight.T + student.ff1.bias
        f = F.relu(f) if c.act == "relu" else F.gelu(f)
        res2 = a_s + f @ student.ff2.weight.T + student.ff2.bias
        if not whole:
            ln2 = lns[ln_names["ln2"][0]]
            _fit_ln(ln2, res2, st["out"][real] @ p)
            for name in ln_names["ln2"][1:]:
                lns[name].load_state_dict(ln2.state_dict())
        # How well the initialised student's first layer tracks the teacher's, on the sample.
        h0 = student.embed(batch.input_ids, batch.token_type_ids)
        h1, _ = student.layer(h0, real, 0)
    finally:
        student.train(was)
    target0, target1 = x @ p, st["out"][real] @ p

    def rel(y, want):
        return float((y - want).norm() / want.norm())

    return {"layer": layer, "heads": chosen.tolist(), "kept_energy": kept_energy,
            "rel_err_embed": rel(h0[real], target0), "rel_err_layer": rel(h1[real], target1)}
