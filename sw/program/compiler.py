"""The compiler ([S6]): weight image + sentence length → command program + memory images.

The sequence is padded to a multiple of n (``t_pad``), not to ``max_len``. Per layer, in the
order the student computes (:meth:`sw.student.Student.layer`):

* ``Q``, ``K^T`` (the engine writes K transposed, so K reaches the weight path of Q·K^T as an
  ordinary ``d x keys`` matrix of the activation memory), ``V``;
* per head with a non-zero span: ``S = Q_h · K_h^T`` over the keys the span can reach (a
  multiple of n, with renormalisation the keys past the span never contribute), ``P =
  softmax(S) x mask`` with the count of valid keys (padded keys never contribute), ``ctx_h =
  P · V_h``. A head whose span is zero is skipped: its context columns stay zero (the
  activation memory is zero at start);
* ``W_o``, residual add, LayerNorm, FFN (ReLU), residual add, LayerNorm;
* the off-ramp on the first row tile ([CLS]): pooler (ReLU), classifier, ENTROPY (exit and stop
  when H < threshold), and after layer 1 the DVFS decision.
"""

import math
from dataclasses import dataclass

from hw.isa import Op, command, encode_program
from hw.memmap import MemoryMap
from sw.image import WeightImage
from sw.program.layout import FitError, MemoryLayout, lay_out, ln_name

__all__ = ["Buffer", "Program", "compile_program", "FitError"]


@dataclass(frozen=True)
class Buffer:
    """A matrix in the activation memory: ``rows x cols`` codes at word ``base``, ``stride``
    words between row tiles (see :mod:`hw.isa`)."""

    name: str
    base: int
    stride: int
    rows: int
    cols: int

    def view(self, n, r0=0, c0=0, rows=None, cols=None, name=None):
        """A sub-matrix (offsets and sizes multiples of n)."""
        rows = self.rows - r0 if rows is None else rows
        cols = self.cols - c0 if cols is None else cols
        return Buffer(name or self.name, self.base + (r0 // n) * self.stride + c0 // n,
                      self.stride, rows, cols)

    def words(self, n):
        """Activation words this matrix occupies."""
        return {self.base + rt * self.stride + ct
                for rt in range(self.rows // n) for ct in range(self.cols // n)}


@dataclass
class Program:
    """A compiled program: commands (with a note and the buffer each one writes), the memory
    layout it runs on, the activation buffers and the sentence length it was compiled for."""

    commands: list
    notes: list
    writes: list
    layout: MemoryLayout
    buffers: dict
    tokens: int
    t_pad: int
    early_exit: bool

    @property
    def n(self):
        return self.layout.n

    def program_bytes(self):
        return encode_program(self.commands)

    def buffer_at(self, base):
        """The activation buffer whose first word is ``base`` (for reports)."""
        for b in self.buffers.values():
            if b.base == base:
                return b
        return None


def _ceil(x, n):
    return math.ceil(x / n) * n


class _Builder:
    def __init__(self, layout: MemoryLayout, t_pad):
        self.lay = layout
        self.n = layout.n
        self.t_pad = t_pad
        self.cmds, self.notes, self.writes = [], [], []
        self.buffers = {}
        self.next_word = 0

    def alloc(self, name, rows, cols):
        n = self.n
        b = Buffer(name, self.next_word, cols // n, rows, cols)
        self.next_word += (rows // n) * (cols // n)
        self.buffers[name] = b
        return b

    def emit(self, note, writes, op, **fields):
        self.cmds.append(command(op, **fields))
        self.notes.append(note)
        self.writes.append(writes)

    def mat(self, prefix, b: Buffer):
        return {f"{prefix}_base": b.base, f"{prefix}_stride": b.stride}


def compile_program(source, tokens, *, memmap: MemoryMap | None = None,
                    early_exit=True) -> Program:
    """Compile a program for a sentence of ``tokens`` tokens ([CLS] and [SEP] included).

    ``source`` is a :class:`~sw.image.WeightImage` or a :class:`MemoryLayout` already laid out
    (:func:`sw.program.layout.lay_out`; reuse it when compiling many lengths). With
    ``early_exit`` off, ENTROPY commands compute H and the exit flag but never stop.
    """
    lay = lay_out(source, memmap) if isinstance(source, WeightImage) else source
    c, n = lay.config, lay.n
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= c["max_len"]:
        raise ValueError(f"a sentence has 1..{c['max_len']} tokens (max_len), not {tokens!r}")
    t_pad = _ceil(tokens, n)
    e_dim, hid, ffn, heads = c["emb_dim"], c["hidden"], c["ffn"], c["heads"]
    d = hid // heads
    labels = c["n_labels"]
    if labels > 255:
        raise ValueError(f"the entropy unit takes at most 255 classes, not {labels}")
    bi = lay.biases
    ab = lay.act_bias
    sym = lay.symbols["aux"]
    renorm = bool(c["span_renorm"])
    keys = [0 if s == 0 else (min(t_pad, _ceil(s, n)) if renorm else t_pad) for s in lay.span]
    kmax = max([k for k in keys if k] or [n])

    b = _Builder(lay, t_pad)
    emb = b.alloc("emb", t_pad, e_dim)
    emb_ln = b.alloc("emb_ln", t_pad, e_dim)
    x = b.alloc("x", t_pad, hid)
    q = b.alloc("q", t_pad, hid)
    kt = b.alloc("kT", hid, t_pad)
    v = b.alloc("v", t_pad, hid)
    s_buf = b.alloc("scores", t_pad, kmax)
    p_buf = b.alloc("probs", t_pad, kmax)
    ctx = b.alloc("ctx", t_pad, hid)
    att = b.alloc("attn_out", t_pad, hid)
    r1 = b.alloc("res1", t_pad, hid)
    l1 = b.alloc("ln1", t_pad, hid)
    f1 = b.alloc("ffn1", t_pad, ffn)
    f2 = b.alloc("ffn2", t_pad, hid)
    r2 = b.alloc("res2", t_pad, hid)
    mean = c.get("pooling", "cls") == "mean"
    if mean:  # P = softmax(zeros) over the real tokens, then P.X: the mean of the states
        zeros = b.alloc("zeros", n, t_pad)    # never written: the act memory starts at zero
        p_mean = b.alloc("p_mean", n, t_pad)
        x_mean = b.alloc("mean", n, hid)
    pool = b.alloc("pool", n, hid)
    logits = b.alloc("logits", n, _ceil(labels, n))
    need = b.next_word
    if need > lay.memmap.act_words:
        raise FitError(
            f"a {tokens}-token sentence does not fit the act memory: it needs {need} words of "
            f"{lay.memmap.word_bytes('act')} bytes, the memory has {lay.memmap.act_words} (short"
            f" by {need - lay.memmap.act_words} words)")

    def matmul(note, src, dst, name, out_bias, rows, bias_x, relu=False, transpose=False):
        b.emit(note, dst.name, Op.MATMUL, **b.mat("x", src), **b.mat("dst", dst),
               rows=rows // n, desc=lay.desc_index[name], bias_x=bias_x,
               bias_w=bi[f"{name}.values"], bias_b=bi[f"{name}.bias"], bias_out=out_bias,
               relu=int(relu), transpose=int(transpose))

    def layernorm(note, src, dst, name, bias_in, bias_out):
        b.emit(note, dst.name, Op.LAYERNORM, **b.mat("x", src), **b.mat("dst", dst),
               rows=src.rows // n, cols=src.cols // n, param_addr=sym[name], bias_in=bias_in,
               bias_gamma=bi[f"{name}.weight"], bias_beta=bi[f"{name}.bias"], bias_out=bias_out)

    def add(note, a, a_bias, bb, b_bias, dst, out_bias):
        b.emit(note, dst.name, Op.ADD, **b.mat("a", a), **b.mat("b", bb), **b.mat("dst", dst),
               rows=a.rows // n, cols=a.cols // n, bias_a=a_bias, bias_b=b_bias,
               bias_out=out_bias)

    b.emit("embedding: token + position + segment rows", emb.name, Op.EMBED, **b.mat("dst", emb),
           rows=t_pad // n, cols=e_dim // n, tokens=tokens, tok_addr=sym["tokens"],
           desc=lay.desc_index["embed"], bias_word=bi["word.values"], bias_pos=bi["pos"],
           bias_seg=bi["seg"], bias_out=ab["emb_sum"])
    layernorm("embedding LayerNorm", emb, emb_ln, "emb_ln", ab["emb_sum"], ab["emb_ln"])
    matmul("embedding projection E -> H", emb_ln, x, "emb_proj", ab["emb_proj"], t_pad,
           ab["emb_ln"])
    x_bias = ab["emb_proj"]
    for i in range(c["layers"]):
        L = f"L{i + 1}"

        def site(name, i=i):
            return ab[name][i]

        matmul(f"{L} Q", x, q, "wq", site("q"), t_pad, x_bias)
        matmul(f"{L} K (written transposed)", x, kt, "wk", site("k"), t_pad, x_bias,
               transpose=True)
        matmul(f"{L} V", x, v, "wv", site("v"), t_pad, x_bias)
        for h in range(heads):
            if not keys[h]:
                continue
            kk = keys[h]
            qh = q.view(n, c0=h * d, cols=d)
            kh = kt.view(n, r0=h * d, rows=d, cols=kk)
            sh = s_buf.view(n, cols=kk)
            ph = p_buf.view(n, cols=kk)
            vh = v.view(n, c0=h * d, cols=d, rows=kk)
            ch = ctx.view(n, c0=h * d, cols=d)
            b.emit(f"{L} head {h}: S = Q.K^T ({kk} keys)", s_buf.name, Op.MATMUL_ACT,
                   **b.mat("x", qh), **b.mat("w", kh), **b.mat("dst", sh), rows=t_pad // n,
                   k=d // n, cols=kk // n, bias_x=site("q"), bias_w=site("k"),
                   bias_out=site("scores"), transpose=0)
            b.emit(f"{L} head {h}: P = softmax(S) x span mask", p_buf.name, Op.SOFTMAX,
                   **b.mat("x", sh), **b.mat("dst", ph), rows=t_pad // n, cols=kk // n,
                   keys=min(tokens, kk), mask_addr=sym[f"mask.{h}"], bias_in=site("scores"),
                   bias_out=site("probs"), renorm=int(renorm))
            b.emit(f"{L} head {h}: ctx = P.V", ctx.name, Op.MATMUL_ACT, **b.mat("x", ph),
                   **b.mat("w", vh), **b.mat("dst", ch), rows=t_pad // n, k=kk // n,
                   cols=d // n, bias_x=site("probs"), bias_w=site("v"), bias_out=site("ctx"),
                   transpose=0)
        matmul(f"{L} attention output", ctx, att, "wo", site("attn_out"), t_pad, site("ctx"))
        add(f"{L} residual 1", x, x_bias, att, site("attn_out"), r1, site("res1"))
        layernorm(f"{L} LayerNorm 1", r1, l1, ln_name(c, "ln1", i), site("res1"), site("ln1"))
        matmul(f"{L} FFN 1 (ReLU)", l1, f1, "ff1", site("ffn1"), t_pad, site("ln1"), relu=True)
        matmul(f"{L} FFN 2", f1, f2, "ff2", site("ffn2"), t_pad, site("ffn1"))
        add(f"{L} residual 2", l1, site("ln1"), f2, site("ffn2"), r2, site("res2"))
        layernorm(f"{L} LayerNorm 2", r2, x, ln_name(c, "ln2", i), site("res2"), site("ln2"))
        x_bias = site("ln2")
        if mean:
            b.emit(f"{L} mean pooling: P = softmax(0) over the {tokens} tokens", p_mean.name,
                   Op.SOFTMAX, **b.mat("x", zeros), **b.mat("dst", p_mean), rows=1,
                   cols=t_pad // n, keys=tokens, mask_addr=sym["mask.mean"], bias_in=x_bias,
                   bias_out=site("probs"), renorm=1)
            b.emit(f"{L} mean pooling: P.X", x_mean.name, Op.MATMUL_ACT, **b.mat("x", p_mean),
                   **b.mat("w", x), **b.mat("dst", x_mean), rows=1, k=t_pad // n,
                   cols=hid // n, bias_x=site("probs"), bias_w=x_bias, bias_out=site("mean"),
                   transpose=0)
            matmul(f"{L} off-ramp pooler (mean, ReLU)", x_mean, pool, f"pooler.{i}",
                   site("pool"), n, site("mean"), relu=True)
        else:
            matmul(f"{L} off-ramp pooler ([CLS] tile, ReLU)", x.view(n, rows=n), pool,
                   f"pooler.{i}", site("pool"), n, x_bias, relu=True)
        matmul(f"{L} off-ramp classifier", pool, logits, f"classifier.{i}", site("logits"), n,
               site("pool"))
        b.emit(f"{L} entropy and exit", None, Op.ENTROPY, x_base=logits.base, classes=labels,
               bias_in=site("logits"), thr_addr=sym["threshold"], layer=i + 1,
               stop=int(early_exit))
        if i == 0:
            b.emit("DVFS: layer-1 entropy -> predicted exit layer -> V, f", None, Op.DVFS,
                   layer=1, table_addr=sym["dvfs"], bins=lay.dvfs_bins)
    b.emit("end", None, Op.END)
    if len(b.cmds) > lay.memmap.prog_words:
        raise FitError(
            f"the program does not fit the prog memory: {len(b.cmds)} commands, the memory has "
            f"{lay.memmap.prog_words} (short by {len(b.cmds) - lay.memmap.prog_words})")
    return Program(commands=b.cmds, notes=b.notes, writes=b.writes, layout=lay,
                   buffers=b.buffers, tokens=tokens, t_pad=t_pad, early_exit=early_exit)
