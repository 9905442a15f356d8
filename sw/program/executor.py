"""The golden executor ([C2]): runs program *words* with the golden operations only.

It decodes each word with :mod:`hw.isa`, checks it (:mod:`sw.program.checks`) and executes it on
integer codes with :mod:`sw.golden` (exact accumulators, the SFU tables, the one rounding
rule), reading its operands from the memory images of :mod:`sw.program.layout` and from a model
of the activation memory (n x n tiles per word, zero at start). It runs a batch of sentences of
one length at once; a sentence whose ENTROPY raises exit (with ``stop``) leaves the batch.

Speed without giving up exactness: a matmul's lane products and their sums are integers;
with ``|x|, |w| <= V`` (the largest code's integer value ``sig << exp``) every partial sum is
below ``K * V^2``, which :func:`exact_bound` checks to be below 2^53, so a float64 BLAS product
computes it exactly (tested against :func:`sw.golden.matmul.accumulate_matmul`).
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from hw.isa import EMBED_DESC, MATRIX_DESC, SCALAR_BYTES, WORD_BYTES, Op, decode_program
from hw.memformats import MASK_BYTES, TOKEN_ROW_BITS, DvfsBlock, LnBlock
from sw.golden.af import requantize
from sw.golden.dvfs import dvfs_lookup
from sw.golden.embedding import embedding_sum, gather_rows
from sw.golden.entropy import entropy, entropy_exit
from sw.golden.layernorm import af_integer, layernorm
from sw.golden.matmul import align_bias
from sw.golden.residual import residual_add
from sw.golden.softmax import softmax
from sw.program.checks import ProgramError, check_command
from sw.program.layout import MemoryLayout

__all__ = ["GoldenExecutor", "RunResult", "TraceEntry", "exact_bound", "ProgramError"]


def exact_bound(fmt, k):
    """Raise unless a K-term sum of lane products is exact in float64 (below 2^53)."""
    top = int(af_integer(torch.tensor([fmt.code_max >> 1]), fmt)[0])
    if k * top * top >= 1 << 53:
        raise OverflowError(f"a {k}-term product sum of {fmt} codes may reach "
                            f"{k * top * top} > 2^53: not exact in float64")
    return k * top * top


@dataclass
class TraceEntry:
    """What one command wrote: codes of its destination (``(B, rows, cols)``), or for ENTROPY
    the entropies and exit flags, for DVFS the bins and codes; ``sentences`` are the batch
    indices the rows belong to."""

    index: int
    op: Op
    sentences: torch.Tensor
    data: dict


@dataclass
class RunResult:
    """Per sentence (B rows): entropy and logits codes of every layer run (-1 / 0 where not
    run), exit layer (1-based), predicted label, DVFS decision; the trace if asked for."""

    entropy: torch.Tensor
    logits: torch.Tensor
    exit_layer: torch.Tensor
    label: torch.Tensor
    dvfs: torch.Tensor          # (B, 4): bin, predicted exit layer, vcode, fcode (-1: none)
    executed: list              # per sentence, the command indices it executed
    trace: list = field(default_factory=list)


class GoldenExecutor:
    """Executes programs compiled for one :class:`MemoryLayout` (its memory images)."""

    def __init__(self, layout: MemoryLayout):
        self.lay = layout
        self.n = layout.n
        self.fmt = layout.fmt
        self.mm = layout.memmap
        self._lut = af_integer(torch.arange(self.fmt.code_max + 1), self.fmt).to(torch.float64)
        self.aux = layout.images["aux"]
        self._matrices = {}
        self._embed = None

    # -- memories ---------------------------------------------------------------------------
    def _desc_word(self, i):
        img = self.lay.images["desc"]
        if (i + 1) * WORD_BYTES > img.size:
            return None
        return int.from_bytes(img[i * WORD_BYTES:(i + 1) * WORD_BYTES].tobytes(), "little")

    def matrix(self, i):
        """Descriptor ``i`` decoded: fields, dense W codes (K x cols), int values, bias codes,
        masks (cols/n x K); ``None`` if the entry is empty."""
        if i in self._matrices:
            return self._matrices[i]
        word = self._desc_word(i)
        if not word:
            return None
        d = MATRIX_DESC.unpack(word)
        n = self.n
        k, cols = d["k"] * n, d["cols"] * n
        mw = self.mm.word_bytes("wmask")
        raw = self.lay.images["wmask"][d["mask_base"] * mw:(d["mask_base"] + cols * k // n // n)
                                       * mw]
        masks = torch.tensor([(int.from_bytes(raw[j * mw:(j + 1) * mw].tobytes(), "little")
                               >> (t * n)) & ((1 << n) - 1)
                              for j in range(raw.size // mw) for t in range(n)],
                             dtype=torch.int64).reshape(cols // n, k)
        vals = torch.from_numpy(self.lay.images["wval"][d["value_base"] * n:
                                                        d["value_base"] * n + d["nnz"]].copy())
        bits = ((masks.unsqueeze(-1) >> torch.arange(n)) & 1).bool()
        if int(bits.sum()) != d["nnz"]:
            raise ProgramError(f"descriptor {i}: the masks mark {int(bits.sum())} codes, nnz "
                               f"says {d['nnz']}")
        dense = torch.zeros(bits.shape, dtype=torch.uint8)
        dense[bits] = vals
        w = dense.permute(1, 0, 2).reshape(k, cols)
        bias = torch.from_numpy(self.lay.images["wbias"][d["bias_base"] * n:
                                                         d["bias_base"] * n + cols].copy())
        exact_bound(self.fmt, k)
        out = {**d, "K": k, "C": cols, "w": w, "wint": self._lut[w.long()], "bias": bias,
               "masks": masks}
        self._matrices[i] = out
        return out

    def embed_tables(self, i):
        if self._embed is None:
            d = EMBED_DESC.unpack(self._desc_word(i) or 0)
            rr = self.lay.images["reram"]
            c = self.lay.config
            v, e, n = c["vocab_size"], c["emb_dim"], self.n
            mb = max(1, -(-n // 8))
            rowptr = np.frombuffer(rr[d["rowptr_base"]:d["rowptr_base"] + 4 * v].tobytes(), "<u4")
            masks = np.frombuffer(rr[d["mask_base"]:d["mask_base"] + mb * v * e // n].tobytes(),
                                  {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}[mb])
            # The unit reads value i at ReRAM byte (value_base + i) mod the store's size (bytes
            # past the image read as zero): a faulty row pointer or mask never leaves the store.
            store = np.zeros(self.mm.reram_bytes, dtype=np.uint8)
            store[:rr.size] = rr
            values = torch.from_numpy(np.roll(store, -d["value_base"]))
            table = gather_rows(torch.from_numpy(rowptr.astype(np.int64)),
                                torch.from_numpy(masks.astype(np.int64)), values, n, wrap=True)
            pos = torch.from_numpy(rr[d["pos_base"]:d["pos_base"] + c["max_len"] * e].copy())
            seg = torch.from_numpy(rr[d["seg_base"]:d["seg_base"] + c["type_vocab"] * e].copy())
            self._embed = (table, pos.reshape(-1, e), seg.reshape(-1, e))
        return self._embed

    def _scalar(self, word):
        wb = self.mm.word_bytes("aux")
        return int.from_bytes(self.aux[word * wb:word * wb + SCALAR_BYTES].tobytes(), "little")

    def _aux_bytes(self, byte, count):
        return self.aux[byte:byte + count]

    # -- activation memory ------------------------------------------------------------------
    def _index(self, base, stride, rows, cols):
        return base + torch.arange(rows)[:, None] * stride + torch.arange(cols)[None, :]

    def read(self, act, base, stride, rows, cols):
        """``(B, rows*n, cols*n)`` codes of the matrix at ``base`` (rows, cols in tiles)."""
        n = self.n
        t = act[:, self._index(base, stride, rows, cols)]          # (B, rows, cols, n, n)
        return t.permute(0, 1, 3, 2, 4).reshape(act.shape[0], rows * n, cols * n)

    def write(self, act, base, stride, data):
        n = self.n
        b, r, c = data.shape
        t = data.reshape(b, r // n, n, c // n, n).permute(0, 1, 3, 2, 4)
        act[:, self._index(base, stride, r // n, c // n)] = t.to(act.dtype)

    # -- execution --------------------------------------------------------------------------
    def run(self, program_bytes, token_rows, segments=None, *, trace=False):
        """Execute the program on a batch of sentences of one length.

        ``token_rows`` is ``(B, T)``: token-table rows (the host's vocabulary map applied),
        ``segments`` the segment ids (default 0). Returns a :class:`RunResult`.
        """
        cmds = decode_program(bytes(program_bytes))
        token_rows = torch.as_tensor(token_rows, dtype=torch.int64)
        if token_rows.dim() != 2 or token_rows.shape[1] < 1:
            raise ValueError(f"token_rows must be (B, T) with T >= 1, not "
                             f"{tuple(token_rows.shape)}")
        segments = torch.zeros_like(token_rows) if segments is None else \
            torch.as_tensor(segments, dtype=torch.int64)
        c = self.lay.config
        B, layers = token_rows.shape[0], c["layers"]
        tok_words = token_rows | (segments << TOKEN_ROW_BITS)
        act = torch.zeros(B, self.mm.act_words, self.n, self.n, dtype=torch.uint8)
        alive = torch.arange(B)
        res = RunResult(
            entropy=torch.full((B, layers), -1, dtype=torch.int64),
            logits=torch.zeros(B, layers, c["n_labels"], dtype=torch.uint8),
            exit_layer=torch.zeros(B, dtype=torch.int64),
            label=torch.full((B,), -1, dtype=torch.int64),
            dvfs=torch.full((B, 4), -1, dtype=torch.int64),
            executed=[[] for _ in range(B)])
        last_layer = torch.zeros(B, dtype=torch.int64)
        for pc, cmd in enumerate(cmds):
            if len(alive) == 0:
                break
            if cmd.op is Op.END:
                for s in alive.tolist():
                    res.executed[s].append(pc)
                if trace:
                    res.trace.append(TraceEntry(pc, cmd.op, alive.clone(), {}))
                break
            desc = self.matrix(cmd.desc) if cmd.op is Op.MATMUL else None
            check_command(pc, cmd, self.mm, self.fmt, desc)
            for s in alive.tolist():
                res.executed[s].append(pc)
            out = getattr(self, f"_op_{cmd.op.name.lower()}")(
                cmd, act, desc=desc, tok=tok_words[alive], res=res, alive=alive,
                last=last_layer)
            if trace:
                res.trace.append(TraceEntry(pc, cmd.op, alive.clone(), out))
            if cmd.op is Op.ENTROPY and cmd.stop:
                keep = ~out["exit"]
                if not bool(keep.all()):
                    act, alive = act[keep], alive[keep]
        done = res.exit_layer == 0
        res.exit_layer[done] = last_layer[done]
        rows = torch.arange(B)
        idx = (res.exit_layer - 1).clamp(min=0)
        ex = res.logits[rows, idx].long()
        sign = 1 << (self.fmt.n_bits - 1)
        ordinal = torch.where(ex >= sign, -(ex - sign), ex)
        res.label = ordinal.argmax(-1)
        return res

    def _op_embed(self, cmd, act, tok, **_):
        table, pos, seg = self.embed_tables(cmd.desc)
        if cmd.tok_addr != self.lay.symbols["aux"]["tokens"]:
            raise ProgramError(f"EMBED reads tokens at aux word {cmd.tok_addr}; the host wrote "
                               f"them at {self.lay.symbols['aux']['tokens']}")
        t = cmd.tokens
        if tok.shape[1] != t:
            raise ProgramError(f"the program embeds {t} tokens; the sentences have "
                               f"{tok.shape[1]}")
        rows = tok & ((1 << TOKEN_ROW_BITS) - 1)
        segs = tok >> TOKEN_ROW_BITS
        if int(rows.max()) >= table.shape[0] or int(segs.max()) >= seg.shape[0]:
            raise ProgramError("a token row or segment is beyond its table")
        codes = embedding_sum(table[rows], pos[:t].expand(rows.shape[0], -1, -1), seg[segs],
                              cmd.bias_word, cmd.bias_pos, cmd.bias_seg, cmd.bias_out, self.fmt)
        out = torch.zeros(tok.shape[0], cmd.rows * self.n, cmd.cols * self.n, dtype=torch.uint8)
        out[:, :t] = codes
        self.write(act, cmd.dst_base, cmd.dst_stride, out)
        return {"codes": out}

    def _finish_matmul(self, cmd, act, value, bias_w):
        y = requantize(value, cmd.bias_x, bias_w, cmd.bias_out, self.fmt)
        if cmd.transpose:
            y = y.transpose(1, 2)
        self.write(act, cmd.dst_base, cmd.dst_stride, y)
        return {"codes": y}

    def _op_matmul(self, cmd, act, desc, **_):
        x = self.read(act, cmd.x_base, cmd.x_stride, cmd.rows, desc["k"])
        acc = torch.matmul(self._lut[x.long()], desc["wint"]).to(torch.int64)
        value = acc + align_bias(desc["bias"], cmd.bias_x, cmd.bias_w, cmd.bias_b, self.fmt)
        if cmd.relu:
            value = value.clamp(min=0)
        return self._finish_matmul(cmd, act, value, cmd.bias_w)

    def _op_matmul_act(self, cmd, act, **_):
        x = self.read(act, cmd.x_base, cmd.x_stride, cmd.rows, cmd.k)
        w = self.read(act, cmd.w_base, cmd.w_stride, cmd.k, cmd.cols)
        exact_bound(self.fmt, cmd.k * self.n)
        acc = torch.matmul(self._lut[x.long()], self._lut[w.long()]).to(torch.int64)
        return self._finish_matmul(cmd, act, acc, cmd.bias_w)

    def _op_softmax(self, cmd, act, **_):
        x = self.read(act, cmd.x_base, cmd.x_stride, cmd.rows, cmd.cols)
        cols = cmd.cols * self.n
        wb = self.mm.word_bytes("aux")
        raw = self._aux_bytes(cmd.mask_addr * wb, cols * MASK_BYTES)
        mask = torch.from_numpy(np.frombuffer(raw.tobytes(), "<u2").astype(np.int64))
        mask = torch.where(torch.arange(cols) < cmd.keys, mask, 0)
        y = softmax(x, mask, cmd.bias_in, cmd.bias_out, bool(cmd.renorm), self.fmt)
        self.write(act, cmd.dst_base, cmd.dst_stride, y)
        return {"codes": y}

    def _op_layernorm(self, cmd, act, **_):
        x = self.read(act, cmd.x_base, cmd.x_stride, cmd.rows, cmd.cols)
        cols = cmd.cols * self.n
        wb = self.mm.word_bytes("aux")
        blk = LnBlock(cols, self.fmt.bias_max + 1, wb)
        base = cmd.param_addr * wb
        gamma = torch.from_numpy(self._aux_bytes(base + blk.gamma, cols).copy())
        beta = torch.from_numpy(self._aux_bytes(base + blk.beta, cols).copy())
        eps = self._scalar((base + blk.eps_at(cmd.bias_in)) // wb)
        y = layernorm(x, gamma, beta, cmd.bias_in, cmd.bias_gamma, cmd.bias_beta, cmd.bias_out,
                      eps, self.fmt)
        self.write(act, cmd.dst_base, cmd.dst_stride, y)
        return {"codes": y}

    def _op_add(self, cmd, act, **_):
        a = self.read(act, cmd.a_base, cmd.a_stride, cmd.rows, cmd.cols)
        b = self.read(act, cmd.b_base, cmd.b_stride, cmd.rows, cmd.cols)
        y = residual_add(a, b, cmd.bias_a, cmd.bias_b, cmd.bias_out, self.fmt)
        self.write(act, cmd.dst_base, cmd.dst_stride, y)
        return {"codes": y}

    def _op_entropy(self, cmd, act, res, alive, last, **_):
        row = self.read(act, cmd.x_base, 1, 1, 1)[:, 0, :cmd.classes]
        h = entropy(row, cmd.bias_in, self.fmt)
        flag = entropy_exit(h, self._scalar(cmd.thr_addr))
        layer = cmd.layer
        if 1 <= layer <= res.entropy.shape[1]:
            res.entropy[alive, layer - 1] = h
            res.logits[alive, layer - 1] = row[:, :res.logits.shape[2]]
        last[alive] = layer
        if cmd.stop:
            hit = alive[flag]
            res.exit_layer[hit] = layer
        return {"entropy": h, "exit": flag, "logits": row}

    def _op_dvfs(self, cmd, act, res, alive, **_):
        wb = self.mm.word_bytes("aux")
        blk = DvfsBlock(cmd.bins, wb)
        base = cmd.table_addr * wb
        edges = [self._scalar((base + i * wb) // wb) for i in range(cmd.bins - 1)]
        layers = self._aux_bytes(base + blk.layers, cmd.bins).tolist()
        vcodes = self._aux_bytes(base + blk.vcodes, cmd.bins).tolist()
        fcodes = self._aux_bytes(base + blk.fcodes, cmd.bins).tolist()
        out = []
        for s in alive.tolist():
            h = int(res.entropy[s, cmd.layer - 1])
            b, v, f = dvfs_lookup(h, edges, vcodes, fcodes)
            res.dvfs[s] = torch.tensor([b, layers[b], v, f])
            out.append(res.dvfs[s])
        return {"dvfs": torch.stack(out) if out else torch.zeros(0, 4, dtype=torch.int64)}
