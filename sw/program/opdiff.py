"""Golden executor vs the float fake-quant student, op by op.

For every command a sentence executed, the golden trace gives the command's inputs (codes) and
output (codes). :func:`op_differences` recomputes each output the way the float student does
(float32 ``F.linear``, ``torch.softmax`` with the AdaptivFloat span mask, ``F.layer_norm`` with
a float epsilon, float entropy against a float threshold) *from the same golden inputs*,
quantizes it with the same output bias, and counts how many codes differ, and by how many
AdaptivFloat steps. Errors do not accumulate across commands here, so each opcode's share of
the golden-vs-float difference is isolated.
"""

from collections import defaultdict

import numpy as np
import torch
from torch.nn import functional as F

from hw.isa import Op
from hw.memformats import LnBlock
from sw.adaptivfloat import decode, encode
from sw.golden.sfu_check import ordinal_distance
from sw.program.executor import GoldenExecutor
from sw.student import entropy as float_entropy

__all__ = ["op_differences"]


class _Replay:
    """Activation memory replayed from the trace: each command's destination is written back."""

    def __init__(self, ex: GoldenExecutor, batch):
        self.ex = ex
        self.act = torch.zeros(batch, ex.mm.act_words, ex.n, ex.n, dtype=torch.uint8)

    def read(self, base, stride, rows, cols):
        return self.ex.read(self.act, base, stride, rows, cols)


def _float_output(ex, img, cmd, rep, tok_rows, float_mask):
    fmt = ex.fmt
    n = ex.n

    def dec(codes, bias):
        return decode(codes.long(), bias, fmt)

    if cmd.op is Op.MATMUL:
        d = ex.matrix(cmd.desc)
        x = dec(rep.read(cmd.x_base, cmd.x_stride, cmd.rows, d["k"]), cmd.bias_x)
        y = F.linear(x, dec(d["w"], cmd.bias_w).T, dec(d["bias"], cmd.bias_b))
        y = F.relu(y) if cmd.relu else y
        y = encode(y, cmd.bias_out, fmt)
        return y.transpose(1, 2) if cmd.transpose else y
    if cmd.op is Op.MATMUL_ACT:
        x = dec(rep.read(cmd.x_base, cmd.x_stride, cmd.rows, cmd.k), cmd.bias_x)
        w = dec(rep.read(cmd.w_base, cmd.w_stride, cmd.k, cmd.cols), cmd.bias_w)
        return encode(x @ w, cmd.bias_out, fmt)
    if cmd.op is Op.SOFTMAX:
        s = dec(rep.read(cmd.x_base, cmd.x_stride, cmd.rows, cmd.cols), cmd.bias_in)
        cols = s.shape[-1]
        name = next(k for k, v in ex.lay.symbols["aux"].items()
                    if k.startswith("mask.") and v == cmd.mask_addr)
        # A head's span mask, or mean pooling's mask of ones ("mask.mean").
        mask = torch.ones(cols) if name == "mask.mean" else \
            float_mask[int(name.split(".")[1]), :cols]
        s = s.masked_fill(torch.arange(cols) >= cmd.keys, float("-inf"))
        p = torch.softmax(s, dim=-1) * mask
        if cmd.renorm:
            p = p / p.sum(-1, keepdim=True).clamp(min=1e-6)
        return encode(p, cmd.bias_out, fmt)
    if cmd.op is Op.LAYERNORM:
        x = dec(rep.read(cmd.x_base, cmd.x_stride, cmd.rows, cmd.cols), cmd.bias_in)
        cols = x.shape[-1]
        wb = ex.mm.word_bytes("aux")
        blk = LnBlock(cols, fmt.bias_max + 1, wb)
        base = cmd.param_addr * wb
        g = torch.from_numpy(ex.aux[base + blk.gamma:base + blk.gamma + cols].copy())
        b = torch.from_numpy(ex.aux[base + blk.beta:base + blk.beta + cols].copy())
        y = F.layer_norm(x, (cols,), dec(g, cmd.bias_gamma), dec(b, cmd.bias_beta),
                         ex.lay.config["ln_eps"])
        return encode(y, cmd.bias_out, fmt)
    if cmd.op is Op.ADD:
        a = dec(rep.read(cmd.a_base, cmd.a_stride, cmd.rows, cmd.cols), cmd.bias_a)
        b = dec(rep.read(cmd.b_base, cmd.b_stride, cmd.rows, cmd.cols), cmd.bias_b)
        return encode(a + b, cmd.bias_out, fmt)
    if cmd.op is Op.EMBED:
        table, pos, seg = ex.embed_tables(cmd.desc)
        t = cmd.tokens
        y = (dec(table[tok_rows], cmd.bias_word) + dec(pos[:t], cmd.bias_pos)
             + dec(seg[torch.zeros_like(tok_rows)], cmd.bias_seg))
        out = torch.zeros(tok_rows.shape[0], cmd.rows * n, cmd.cols * n, dtype=torch.uint8)
        out[:, :t] = encode(y, cmd.bias_out, fmt)
        return out
    return None


def _valid(dist, cmd, tokens, n):
    """Only the elements that belong to real tokens: padded rows (and, for K^T, padded columns)
    are computed but never influence a real token; the off-ramp reads row 0 only."""
    if cmd.op is Op.MATMUL and cmd.transpose:
        return dist[:, :, :tokens]
    if dist.shape[1] == n and cmd.op is Op.MATMUL and cmd.rows == 1:
        return dist[:, :1]
    return dist[:, :tokens]


def op_differences(img, layout, texts, *, early_exit=True):
    """Per opcode: codes compared, codes that differ, largest difference in AdaptivFloat steps;
    and for ENTROPY, exit decisions compared and flipped. One batch per sentence length."""
    from sw.program.compiler import compile_program
    from sw.program.frontend import encode_texts

    ex = GoldenExecutor(layout)
    t = img["span_mask"]
    float_mask = decode(torch.from_numpy(t.array.astype(np.int64)), t.bias, img.hw.fmt)
    thr = float(img.meta["threshold"])
    enc, _ = encode_texts(layout, texts)
    groups = defaultdict(list)
    for i, e in enumerate(enc):
        groups[e.length].append(i)
    stats = defaultdict(lambda: {"codes": 0, "differ": 0, "max_steps": 0})
    for length, idx in sorted(groups.items()):
        prog = compile_program(layout, length, early_exit=early_exit)
        rows = torch.stack([enc[i].rows for i in idx])
        res = ex.run(prog.program_bytes(), rows, trace=True)
        rep = _Replay(ex, len(idx))
        for entry in res.trace:
            cmd = prog.commands[entry.index]
            sel = entry.sentences
            sub = _Replay(ex, len(sel))
            sub.act = rep.act[sel]
            if cmd.op is Op.ENTROPY:
                logits = decode(entry.data["logits"].long(), cmd.bias_in, ex.fmt)
                flip = (float_entropy(logits) < thr) != entry.data["exit"]
                st = stats["ENTROPY (exit decision)"]
                st["codes"] += len(sel)
                st["differ"] += int(flip.sum())
            else:
                ref = _float_output(ex, img, cmd, sub, rows[sel], float_mask)
                if ref is not None:
                    got = entry.data["codes"]
                    dist = ordinal_distance(got.long(), ref.long(), ex.fmt)
                    dist = _valid(dist, cmd, length, ex.n)
                    st = stats[cmd.op.name]
                    st["codes"] += dist.numel()
                    st["differ"] += int((dist != 0).sum())
                    st["max_steps"] = max(st["max_steps"], int(dist.max()))
            if "codes" in entry.data:
                full = rep.act[sel]
                ex.write(full, cmd.dst_base, cmd.dst_stride, entry.data["codes"])
                rep.act[sel] = full
    return {k: {**v, "rate": v["differ"] / v["codes"] if v["codes"] else 0.0}
            for k, v in stats.items()}
