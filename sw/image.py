"""The weight image ([S5]): the one reader and writer of ``.ebimg`` files.

Layout (all integers little-endian)::

    header   (HEADER_BYTES)   magic, version, hardware and model parameters, section table,
                              tensor-table and metadata locations, file length, CRC-32 of the
                              payload, CRC-32 of the header itself
    tensors  (n x ENTRY_BYTES) name, section, format, AdaptivFloat bias, dtype, shape,
                              offset inside its section, byte length
    metadata (JSON, UTF-8)    model configuration, calibration method, thresholds as floats,
                              recorded metrics; canonical (sorted keys, no spaces)
    sections                  RERAM (embeddings), SRAM (encoder and off-ramp weights),
                              AUX (LayerNorm parameters, span masks, activation biases,
                              thresholds, predictor and DVFS tables, vocabulary)

Every section starts on a 64-byte boundary; padding is zero. Weight matrices are stored in the
matrix engine's bitmask format ([H2], :mod:`sw.sparse`) as three tensors ``NAME.masks``,
``NAME.values`` and ``NAME.offsets``, for the ``K x cols`` matrix the engine multiplies by
(``nn.Linear`` weights transposed). The token table is packed the same way as a
``(V * E / n) x n`` matrix (one vector per n embedding values of a row, rows in order), plus
``word.rowptr``: the index of each row's first packed value, so the embedding unit can gather
any row. The reader refuses truncated, corrupted, wrong-version and wrong-hardware images.
"""

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.checks import check_count
from hw.layouts import DEFAULT_AF, AFFormat
from hw.matmul.config import check_vector_width

__all__ = ["MAGIC", "VERSION", "READ_VERSIONS", "V2_KEYS", "version_for", "SECTIONS", "FORMATS",
           "HwParams", "Tensor", "WeightImage", "write_image", "read_image", "image_bytes",
           "parse_image", "export_hex", "ImageError"]

MAGIC = b"EDGEBERT"
# Version 2 adds students with one LayerNorm pair per application of the shared layer
# (tensors ln1.<i>.*, ln2.<i>.*) and mean pooling (activation site "mean"), declared in
# meta.student_config as ln_per_layer and pooling. An image is written with the lowest version
# that carries its model (version_for), so version-1 images stay byte-identical; the reader
# reads both and refuses a version-1 image that declares version-2 features, or a version-2
# image that does not declare them.
VERSION = 2
READ_VERSIONS = (1, 2)
V2_KEYS = {"ln_per_layer": False, "pooling": "cls"}
SECTIONS = ("reram", "sram", "aux")
# Tensor formats: raw integers, dense AdaptivFloat codes, and the three bitmask parts.
FORMATS = ("raw", "af", "bitmask.masks", "bitmask.values", "bitmask.offsets")
DTYPES = ("u8", "u16", "u32", "i32", "f32")
_NP = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "i32": np.int32, "f32": np.float32}
NO_BIAS = 0xFF
ALIGN = 64
NAME_BYTES = 48

# magic, version, header bytes, entry bytes; hw: n, N, E, offset, bias bits;
# model: vocab rows, tokenizer vocab, E, H, heads, FFN, layers, max len, labels;
# tensors, table offset, meta offset, meta length; 3 x (section offset, length);
# file length, payload CRC.
_HEAD = struct.Struct("<8sHHH" "HBBbB" "IIHHHHHHH" "IIII" "QQQQQQ" "QI")
HEADER_BYTES = _HEAD.size + 4  # + header CRC
_ENTRY = struct.Struct(f"<{NAME_BYTES}sBBBB4IQQ")
ENTRY_BYTES = _ENTRY.size


class ImageError(ValueError):
    """A weight image that cannot be used: truncated, corrupted, wrong version or hardware."""


@dataclass(frozen=True)
class HwParams:
    """Hardware parameters an image is built for: vector width and number format."""

    n: int = 16
    fmt: AFFormat = DEFAULT_AF

    def __post_init__(self):
        # The same rule as the matrix engine's (MatmulConfig), so an image fits an engine.
        check_vector_width(self.n, "vector width n")

    def describe(self):
        f = self.fmt
        return (f"n={self.n}, AdaptivFloat<N={f.n_bits}, E={f.exp_bits}>, offset={f.offset}, "
                f"bias_bits={f.bias_bits}")


@dataclass
class Tensor:
    """One array of the image."""

    section: str
    fmt: str
    array: np.ndarray
    bias: int | None = None

    def __post_init__(self):
        if self.section not in SECTIONS:
            raise ValueError(f"section must be one of {SECTIONS}, not {self.section!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {self.fmt!r}")
        dt = _dtype_name(self.array.dtype)
        if self.array.ndim > 4:
            raise ValueError(f"tensors have at most 4 dimensions, not {self.array.ndim}")
        if self.fmt in ("af", "bitmask.values") and (self.bias is None or dt != "u8"):
            raise ValueError(f"an AdaptivFloat tensor needs a bias and uint8 codes, not bias "
                             f"{self.bias!r} and {dt}")


def _dtype_name(dtype):
    for k, v in _NP.items():
        if np.dtype(v) == dtype:
            return k
    raise ValueError(f"tensor dtype must be one of {DTYPES}, not {dtype}")


def version_for(student_config):
    """The lowest format version that carries a student with config dict ``student_config``."""
    c = student_config or {}
    return 2 if any(c.get(k, v) != v for k, v in V2_KEYS.items()) else 1


def _check_version(version, meta, what):
    c = meta.get("student_config")
    if c is None:
        return
    if version == 1 and version_for(c) != 1:
        raise ImageError(f"{what} is a version-1 image whose student uses version-2 features "
                         f"({ {k: c[k] for k in V2_KEYS if k in c} }); it cannot be read safely")
    if version >= 2 and any(k not in c for k in V2_KEYS):
        raise ImageError(f"{what} is a version-{version} image whose student configuration does "
                         f"not declare {sorted(k for k in V2_KEYS if k not in c)}")


@dataclass
class WeightImage:
    """Parsed contents: hardware and model parameters, tensors (in file order), metadata.
    ``version`` is the format version it is written with (:func:`version_for` the student)."""

    hw: HwParams
    model: dict
    tensors: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    version: int = 1

    def add(self, name, section, fmt, array, bias=None):
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} is already in the image")
        if not name.isascii() or not 0 < len(name.encode()) <= NAME_BYTES:
            raise ValueError(f"tensor name must be 1..{NAME_BYTES} ASCII bytes, not {name!r}")
        self.tensors[name] = Tensor(section, fmt, np.ascontiguousarray(array), bias)

    def __getitem__(self, name):
        if name not in self.tensors:
            raise KeyError(f"the image has no tensor {name!r}")
        return self.tensors[name]

    def section_bytes(self):
        """Bytes per section (padding included)."""
        layout = _layout(self)
        return {s: layout[s][1] for s in SECTIONS}


_MODEL_KEYS = ("vocab_size", "tokenizer_vocab", "emb_dim", "hidden", "heads", "ffn", "layers",
               "max_len", "n_labels")


def _pad(n):
    return -n % ALIGN


def _layout(img):
    """Offsets of every tensor inside its section, and each section's padded length."""
    offs = {}
    out = {}
    for s in SECTIONS:
        pos = 0
        for name, t in img.tensors.items():
            if t.section == s:
                offs[name] = pos
                pos += t.array.nbytes + _pad(t.array.nbytes)
        out[s] = (None, pos)
    return {**out, "tensors": offs}


def image_bytes(img: WeightImage) -> bytes:
    """Serialize ``img``; the same image always gives the same bytes."""
    for k in _MODEL_KEYS:
        v = img.model.get(k)
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"model parameter {k} must be a non-negative integer, not {v!r}")
    layout = _layout(img)
    table = bytearray()
    for name, t in img.tensors.items():
        shape = list(t.array.shape) + [0] * (4 - t.array.ndim)
        table += _ENTRY.pack(name.encode(), SECTIONS.index(t.section), FORMATS.index(t.fmt),
                             NO_BIAS if t.bias is None else t.bias,
                             DTYPES.index(_dtype_name(t.array.dtype)) | (t.array.ndim << 4),
                             *shape, layout["tensors"][name], t.array.nbytes)
    meta = json.dumps(img.meta, sort_keys=True, separators=(",", ":")).encode()
    table_off = HEADER_BYTES
    meta_off = table_off + len(table)
    pos = meta_off + len(meta)
    pos += _pad(pos)
    sections = []
    body = bytearray(table) + meta + bytes(_pad(meta_off + len(meta)))
    for s in SECTIONS:
        length = layout[s][1]
        sections += [pos, length]
        for t in img.tensors.values():
            if t.section == s:
                raw = t.array.astype(t.array.dtype.newbyteorder("<"), copy=False).tobytes()
                body += raw + bytes(_pad(len(raw)))
        pos += length
    f = img.hw.fmt
    m = img.model
    if img.version not in READ_VERSIONS:
        raise ValueError(f"image version must be one of {READ_VERSIONS}, not {img.version!r}")
    _check_version(img.version, img.meta, "the image")
    head = _HEAD.pack(MAGIC, img.version, HEADER_BYTES, ENTRY_BYTES,
                      img.hw.n, f.n_bits, f.exp_bits, f.offset, f.bias_bits,
                      *(m[k] for k in _MODEL_KEYS),
                      len(img.tensors), table_off, meta_off, len(meta), *sections,
                      HEADER_BYTES + len(body), zlib.crc32(body))
    return head + struct.pack("<I", zlib.crc32(head)) + bytes(body)


def write_image(img: WeightImage, path):
    """Write ``img`` to ``path``; returns the number of bytes."""
    data = image_bytes(img)
    Path(path).write_bytes(data)
    return len(data)


def parse_image(data: bytes, *, hw: HwParams | None = None, what="image") -> WeightImage:
    """Parse and check image bytes; with ``hw``, refuse an image built for other hardware."""
    if len(data) < HEADER_BYTES:
        raise ImageError(f"{what} is truncated: {len(data)} bytes, shorter than the "
                         f"{HEADER_BYTES}-byte header")
    if data[:8] != MAGIC:
        raise ImageError(f"{what} is not an EdgeBERT weight image (magic {data[:8]!r}, "
                         f"expected {MAGIC!r})")
    version = struct.unpack_from("<H", data, 8)[0]
    if version not in READ_VERSIONS:
        raise ImageError(f"{what} has format version {version}; this reader reads versions "
                         f"{', '.join(map(str, READ_VERSIONS))} only")
    head = data[:_HEAD.size]
    (crc_head,) = struct.unpack_from("<I", data, _HEAD.size)
    if zlib.crc32(head) != crc_head:
        raise ImageError(f"{what} is corrupted: header checksum mismatch")
    v = _HEAD.unpack(head)
    (_, _, header_bytes, entry_bytes, n, n_bits, exp_bits, offset, bias_bits) = v[:9]
    model = dict(zip(_MODEL_KEYS, v[9:18], strict=True))
    n_tensors, table_off, meta_off, meta_len = v[18:22]
    sec = {s: (v[22 + 2 * i], v[23 + 2 * i]) for i, s in enumerate(SECTIONS)}
    file_len, crc_body = v[28], v[29]
    if header_bytes != HEADER_BYTES or entry_bytes != ENTRY_BYTES:
        raise ImageError(f"{what} has header/entry sizes {header_bytes}/{entry_bytes}, "
                         f"expected {HEADER_BYTES}/{ENTRY_BYTES}")
    if len(data) < file_len:
        raise ImageError(f"{what} is truncated: {len(data)} bytes of {file_len}")
    if len(data) > file_len:
        raise ImageError(f"{what} has {len(data) - file_len} unexpected trailing bytes")
    if zlib.crc32(data[HEADER_BYTES:]) != crc_body:
        raise ImageError(f"{what} is corrupted: payload checksum mismatch")
    try:
        fmt = AFFormat(n_bits=n_bits, exp_bits=exp_bits, offset=offset, bias_bits=bias_bits)
        img_hw = HwParams(n=n, fmt=fmt)
    except ValueError as e:
        raise ImageError(f"{what} has invalid hardware parameters: {e}") from None
    if hw is not None and hw != img_hw:
        raise ImageError(f"{what} was built for other hardware ({img_hw.describe()}); this "
                         f"hardware has {hw.describe()}")
    meta = json.loads(data[meta_off:meta_off + meta_len].decode())
    _check_version(version, meta, what)
    img = WeightImage(img_hw, model, meta=meta, version=version)
    for i in range(n_tensors):
        (name, s, f, bias, dt, *rest) = _ENTRY.unpack_from(data, table_off + i * ENTRY_BYTES)
        shape4, off, nbytes = rest[:4], rest[4], rest[5]
        name = name.rstrip(b"\0").decode("ascii")
        ndim, dtype = dt >> 4, DTYPES[dt & 15]
        shape = tuple(shape4[:ndim])
        start = sec[SECTIONS[s]][0] + off
        if off + nbytes > sec[SECTIONS[s]][1]:
            raise ImageError(f"{what}: tensor {name!r} lies outside its section")
        arr = np.frombuffer(data, dtype=np.dtype(_NP[dtype]).newbyteorder("<"),
                            count=nbytes // np.dtype(_NP[dtype]).itemsize, offset=start)
        img.add(name, SECTIONS[s], FORMATS[f], arr.astype(_NP[dtype]).reshape(shape),
                None if bias == NO_BIAS else bias)
    return img


def read_image(path, *, hw: HwParams | None = None) -> WeightImage:
    """Read and check the image at ``path`` (see :func:`parse_image`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight image {str(path)!r} does not exist")
    return parse_image(path.read_bytes(), hw=hw, what=f"weight image {str(path)!r}")


def export_hex(img: WeightImage, out_dir, *, word_bytes=16):
    """``$readmemh`` files, one per section (``reram.hex``, ``sram.hex``, ``aux.hex``), with
    ``word_bytes`` bytes per line (little-endian: byte 0 of a word is its lowest byte), and
    ``memory_map.json`` giving every tensor's section, byte address and length."""
    check_count("word_bytes", word_bytes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = _layout(img)
    mmap = {}
    for s in SECTIONS:
        buf = bytearray()
        for name, t in img.tensors.items():
            if t.section == s:
                mmap[name] = {"section": s, "address": len(buf), "bytes": t.array.nbytes,
                              "format": t.fmt, "bias": t.bias, "shape": list(t.array.shape),
                              "dtype": _dtype_name(t.array.dtype)}
                raw = t.array.astype(t.array.dtype.newbyteorder("<"), copy=False).tobytes()
                buf += raw + bytes(_pad(len(raw)))
        assert len(buf) == layout[s][1]
        buf += bytes(-len(buf) % word_bytes)
        lines = [bytes(reversed(buf[i:i + word_bytes])).hex()
                 for i in range(0, len(buf), word_bytes)]
        (out_dir / f"{s}.hex").write_text("\n".join(lines) + ("\n" if lines else ""))
    (out_dir / "memory_map.json").write_text(json.dumps(
        {"word_bytes": word_bytes, "tensors": mmap}, indent=1))
    return mmap
