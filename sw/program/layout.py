"""Memory images of a weight image ([C3]): what the host loads into the accelerator once.

:func:`lay_out` places every tensor of a weight image in the memories of
:class:`hw.memmap.MemoryMap`: the token table, position and segment tables in the ReRAM store;
every weight matrix in the weight memories (masks, packed values, bias) with a descriptor;
LayerNorm blocks, span masks, the exit threshold and the DVFS table in the aux memory. It
refuses an image that does not fit, naming the memory and by how much. The result does not
depend on the sentence; :func:`sw.program.compiler.compile_program` adds the program.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from hw.isa import EMBED_DESC, MATRIX_DESC, SCALAR_BYTES, WORD_BYTES
from hw.memformats import MASK_BYTES, DvfsBlock, LnBlock, MaskBlock
from hw.memmap import MemoryMap
from hw.sfu_tables import LN_FRAC
from sw.adaptivfloat import decode
from sw.golden.layernorm import eps_units
from sw.golden.softmax import MASK_ONE
from sw.image import ImageError, WeightImage

__all__ = ["MemoryLayout", "lay_out", "FitError", "MATRIX_ORDER", "ln_names", "ln_name",
           "memmap_for"]


class FitError(ValueError):
    """A model or sentence that does not fit a memory of the accelerator."""


def MATRIX_ORDER(layers):
    """Names of the weight matrices in descriptor order."""
    return ["emb_proj", "wq", "wk", "wv", "wo", "ff1", "ff2",
            *(f"{p}.{i}" for i in range(layers) for p in ("pooler", "classifier"))]


class _Region:
    """Bump allocator over one memory, in words; remembers what it placed where."""

    def __init__(self, name, memmap):
        self.name = name
        self.word_bytes = memmap.word_bytes(name)
        self.depth = memmap.depth(name)
        self.buf = bytearray()
        self.symbols = {}

    def put(self, symbol, data):
        """Place ``data`` (bytes) at the next word boundary; returns the word address."""
        addr = len(self.buf) // self.word_bytes
        self.buf += bytes(data)
        self.buf += bytes(-len(self.buf) % self.word_bytes)
        self.symbols[symbol] = addr
        return addr

    @property
    def words(self):
        return len(self.buf) // self.word_bytes

    def check(self, what="the model"):
        if self.words > self.depth:
            raise FitError(
                f"{what} does not fit the {self.name} memory: it needs {self.words} words of "
                f"{self.word_bytes} bytes, the memory has {self.depth} (short by "
                f"{self.words - self.depth} words, {(self.words - self.depth) * self.word_bytes}"
                f" bytes)")

    def image(self):
        return np.frombuffer(bytes(self.buf), dtype=np.uint8).copy()


@dataclass
class MemoryLayout:
    """Memory images (uint8 arrays, the used prefix of each memory) and symbol addresses."""

    memmap: MemoryMap
    config: dict
    fmt: object
    images: dict
    symbols: dict
    desc_index: dict
    biases: dict = field(default_factory=dict)
    act_bias: dict = field(default_factory=dict)
    vocab_rows: torch.Tensor | None = None
    span: list = field(default_factory=list)
    dvfs_bins: int = 0

    @property
    def n(self):
        return self.memmap.n


def _mask_word_bytes(masks, n):
    """Mask words of one matrix: word ``cb*(K/n) + j`` holds the n masks of ``k = j*n + t`` at
    bits ``t*n`` (the matrix engine's mask buffer)."""
    blocks, k = masks.shape
    flat = masks.astype(np.uint64).reshape(blocks * (k // n), n)
    out = bytearray()
    nbytes = max(1, n * n // 8)
    for row in flat.tolist():
        word = 0
        for t, m in enumerate(row):
            word |= int(m) << (t * n)
        out += word.to_bytes(nbytes, "little")
    return bytes(out)


def _ceil_to(v, n):
    return -(-v // n) * n


def _u32(values):
    return np.asarray(values, dtype="<u4").tobytes()


def _scalar_words(values, word_bytes):
    """One scalar per aux word."""
    out = bytearray()
    for v in values:
        out += int(v).to_bytes(SCALAR_BYTES, "little") + bytes(word_bytes - SCALAR_BYTES)
    return bytes(out)


def ln_names(c):
    """LayerNorm blocks of a student config: ``emb_ln``, then ``ln1``/``ln2`` (shared) or
    ``ln1.<i>``/``ln2.<i>`` per application (``ln_per_layer``)."""
    if not c.get("ln_per_layer", False):
        return ["emb_ln", "ln1", "ln2"]
    return ["emb_ln", *(f"{p}.{i}" for p in ("ln1", "ln2") for i in range(c["layers"]))]


def ln_name(c, part, i):
    """The LayerNorm block that application ``i`` uses for ``part`` (``ln1``/``ln2``)."""
    return f"{part}.{i}" if c.get("ln_per_layer", False) else part


def _check_model(img, n):
    c = img.meta.get("student_config")
    if c is None:
        raise ImageError("the image has no student configuration (meta.student_config)")
    if c["act"] != "relu":
        raise ImageError(f"the accelerator's FFN activation is ReLU; this image's student uses "
                         f"{c['act']!r}")
    if c["pooler_act"] != "relu":
        raise ImageError(f"the accelerator's pooler activation is ReLU; this image's student uses"
                         f" {c['pooler_act']!r}")
    head_dim = c["hidden"] // c["heads"]
    for name, v in (("emb_dim", c["emb_dim"]), ("hidden", c["hidden"]), ("ffn", c["ffn"]),
                    ("head size", head_dim)):
        if v % n:
            raise ImageError(f"{name} ({v}) must be a multiple of the vector width n = {n}")
    return c


_SIZED = ("desc", "wmask", "wval", "wbias", "act", "aux", "prog")


def _pow2(v):
    return 1 << max(0, (v - 1).bit_length())


def memmap_for(img: WeightImage) -> MemoryMap:
    """The memory map an image runs on: the default ``MemoryMap(n)`` when the image and a
    ``max_len`` sentence fit it, else the default with every on-chip memory the image
    overflows (descriptors, weight masks, values and biases, activations, aux, program)
    deepened to the next power of two of what the image and a ``max_len`` sentence need. The
    ReRAM store is never resized: its size is the eNVM budget (a FitError says by how much)."""
    from sw.program.compiler import compile_program

    n = img.hw.n
    default = MemoryMap(n=n)
    c = _check_model(img, n)
    try:
        compile_program(_place(img, default), c["max_len"], early_exit=False)
        return default
    except FitError:
        pass
    big = dataclasses.replace(default, desc_words=1 << 12, wmask_words=1 << 20,
                              wval_words=1 << 20, wbias_words=1 << 16, act_words=1 << 16,
                              aux_words=1 << 16, prog_words=1 << 16)
    lay = _place(img, big)
    prog = compile_program(lay, c["max_len"], early_exit=False)
    need = {m: -(-lay.images[m].size // big.word_bytes(m)) for m in _SIZED
            if m in lay.images}
    need["act"] = max(b.base + (b.rows // n) * b.stride for b in prog.buffers.values())
    need["prog"] = len(prog.commands)
    return dataclasses.replace(default, **{
        f"{m}_words": max(getattr(default, f"{m}_words"), _pow2(need[m])) for m in _SIZED})


def lay_out(img: WeightImage, memmap: MemoryMap | None = None) -> MemoryLayout:
    """Place a weight image in the accelerator's memories (see the module docstring); without
    ``memmap``, in :func:`memmap_for` the image."""
    return _place(img, memmap_for(img) if memmap is None else memmap)


def _place(img: WeightImage, memmap: MemoryMap) -> MemoryLayout:
    n = img.hw.n
    if memmap.n != n:
        raise ImageError(f"the image was built for vector width n = {n}; this accelerator has "
                         f"n = {memmap.n}")
    c = _check_model(img, n)
    fmt = img.hw.fmt
    regions = {m: _Region(m, memmap) for m in ("reram", "desc", "wmask", "wval", "wbias", "aux")}
    desc_index = {}
    descs = regions["desc"]

    # Weight memories and matrix descriptors.
    for name in MATRIX_ORDER(c["layers"]):
        shp = img.meta["linears"][name]
        masks = img[f"{name}.masks"].array
        values = img[f"{name}.values"].array
        bias = img[f"{name}.bias"].array
        k, cols = shp["in"], shp["cols"]
        if k % n or cols % n:
            raise ImageError(f"matrix {name} is {k} x {cols}; both must be multiples of n = {n}")
        entry = MATRIX_DESC.pack({
            "mask_base": regions["wmask"].put(name, _mask_word_bytes(masks, n)),
            "value_base": regions["wval"].put(name, values.tobytes()),
            "bias_base": regions["wbias"].put(name, bias.tobytes()),
            "k": k // n, "cols": cols // n, "nnz": int(values.size)})
        desc_index[name] = descs.put(name, entry.to_bytes(WORD_BYTES, "little"))

    # MATMUL_ACT operands (Q.K^T, P.V): the sequencer copies the activation matrix w into
    # "act.values" as dense vectors and runs the engine with the all-ones masks of
    # "act.ones" and the zero bias of "act.zero". Sized for the largest w of the image at
    # max_len: d x max_len (K^T_h) or max_len x d (V_h), d the head size.
    d_head = c["hidden"] // c["heads"]
    w_words = (d_head // n) * _ceil_to(c["max_len"], n) // n
    if c.get("pooling", "cls") == "mean":  # mean pooling: P.X over max_len x hidden
        w_words = max(w_words, (c["hidden"] // n) * _ceil_to(c["max_len"], n) // n)
    ones = ((1 << (n * n)) - 1).to_bytes(max(1, n * n // 8), "little")
    regions["wmask"].put("act.ones", ones * w_words)
    regions["wval"].put("act.values", bytes(w_words * n * n))
    regions["wbias"].put("act.zero", bytes(max(d_head, _ceil_to(c["max_len"], n))))

    # ReRAM: token table (row pointers, masks, values), position and segment tables.
    rr = regions["reram"]
    mdt = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}[max(1, -(-n // 8))]
    parts = {
        "rowptr_base": rr.put("word.rowptr", _u32(img["word.rowptr"].array)),
        "mask_base": rr.put("word.masks", img["word.masks"].array.astype(mdt).tobytes()),
        "value_base": rr.put("word.values", img["word.values"].array.tobytes()),
        "pos_base": rr.put("pos", img["pos"].array.tobytes()),
        "seg_base": rr.put("seg", img["seg"].array.tobytes())}
    wb = rr.word_bytes
    entry = EMBED_DESC.pack({k: v * wb for k, v in parts.items()})
    desc_index["embed"] = descs.put("embed", entry.to_bytes(WORD_BYTES, "little"))

    # Aux: LayerNorm blocks, span masks, threshold, DVFS table.
    aux = regions["aux"]
    awb = aux.word_bytes
    for name, cols in ((nm, c["emb_dim"] if nm == "emb_ln" else c["hidden"])
                       for nm in ln_names(c)):
        blk = LnBlock(cols, fmt.bias_max + 1, awb)
        data = bytearray(blk.words * awb)
        g, b = img[f"{name}.weight"].array, img[f"{name}.bias"].array
        data[blk.gamma:blk.gamma + cols] = g.tobytes()
        data[blk.beta:blk.beta + cols] = b.tobytes()
        eps = [eps_units(c["ln_eps"], bi, fmt) for bi in range(fmt.bias_max + 1)]
        data[blk.eps:] = _scalar_words(eps, awb)
        aux.put(name, data)
    # The span masks the student was trained with are AdaptivFloat codes (image "span_mask");
    # the softmax unit takes them in fixed point, rounded to nearest (ties to even).
    sm = img["span_mask"]
    mask_fx = torch.round(decode(torch.from_numpy(sm.array.astype(np.int64)), sm.bias, fmt,
                                 dtype=torch.float64) * MASK_ONE).to(torch.int64)
    spans = []
    for h in range(c["heads"]):
        m = mask_fx[h]
        spans.append(int((m > 0).sum()))
        blk = MaskBlock(c["max_len"], awb)
        data = bytearray(blk.words * awb)
        data[:c["max_len"] * MASK_BYTES] = m.numpy().astype("<u2").tobytes()
        aux.put(f"mask.{h}", data)
    if c.get("pooling", "cls") == "mean":
        # Mean pooling's softmax of zero scores over the real tokens: a mask of ones.
        blk = MaskBlock(c["max_len"], awb)
        data = bytearray(blk.words * awb)
        data[:c["max_len"] * MASK_BYTES] = np.full(c["max_len"], MASK_ONE, "<u2").tobytes()
        aux.put("mask.mean", data)
    if img.meta.get("fixed_frac_bits") != LN_FRAC:
        raise ImageError(f"the image stores thresholds with {img.meta.get('fixed_frac_bits')} "
                         f"fractional bits; the entropy unit uses {LN_FRAC}")
    aux.put("threshold", _scalar_words(img["exit.threshold"].array[:1], awb))
    edges = img["predictor.edges"].array[1:-1]
    layers = img["predictor.layers"].array
    codes = np.asarray(img["dvfs.codes"].array).reshape(len(layers), 2)
    blk = DvfsBlock(len(layers), awb)
    data = bytearray(blk.words * awb)
    data[:blk.layers] = _scalar_words(edges, awb)
    data[blk.layers:blk.layers + len(layers)] = layers.astype(np.uint8).tobytes()
    data[blk.vcodes:blk.vcodes + len(layers)] = codes[:, 0].astype(np.uint8).tobytes()
    data[blk.fcodes:blk.fcodes + len(layers)] = codes[:, 1].astype(np.uint8).tobytes()
    aux.put("dvfs", data)
    aux.put("tokens", bytes(c["max_len"] * awb))

    for r in regions.values():
        r.check()
    sites = img.meta["act_sites"]
    act = img["act_bias"].array.reshape(len(sites), c["layers"])
    act_bias = {s: [int(v) for v in act[i]] for i, s in enumerate(sites)}
    act_bias.update({s: int(v) for s, v in zip(img.meta["emb_sites"], img["emb_act_bias"].array,
                                                strict=True)})
    biases = {name: t.bias for name, t in img.tensors.items() if t.bias is not None}
    ids = torch.from_numpy(img["vocab.ids"].array.astype(np.int64))
    unk_row = int((ids == c["unk_id"]).nonzero()[0, 0])
    vrows = torch.full((c["tokenizer_vocab"],), unk_row, dtype=torch.int64)
    vrows[ids] = torch.arange(len(ids))
    return MemoryLayout(
        memmap=memmap, config=c, fmt=fmt,
        images={m: r.image() for m, r in regions.items()},
        symbols={m: dict(r.symbols) for m, r in regions.items()},
        desc_index=desc_index, biases=biases, act_bias=act_bias, vocab_rows=vrows,
        span=spans, dvfs_bins=len(layers))
