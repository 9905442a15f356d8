import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from hw.layouts import AFFormat
from sw.adaptivfloat import encode
from sw.compress import PruneConfig, Pruner
from sw.export import build_image, model_from_image
from sw.image import (
    HEADER_BYTES,
    HwParams,
    ImageError,
    export_hex,
    image_bytes,
    parse_image,
    read_image,
    write_image,
)
from sw.student import Student, StudentConfig
from sw.tokenizer import Batch
from sw.train import calibrate, evaluate_logits


def tiny_batch(n=24, t=8, vocab=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, t), generator=g)
    lengths = torch.randint(3, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).long()
    return Batch(ids * mask, mask, torch.zeros_like(ids), 0)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    cfg = StudentConfig(vocab_size=50, tokenizer_vocab=60, unk_id=1, emb_dim=16, hidden=32,
                        heads=2, ffn=64, layers=3, max_len=8, span_ramp=4)
    m = Student(cfg)
    vmap = torch.full((60,), 1)
    vmap[:50] = torch.arange(50)
    m.vocab_map.copy_(vmap)
    with torch.no_grad():
        m.span_frac.copy_(torch.tensor([3.0, 6.5]) / 8)
    p = Pruner(m, PruneConfig(block=16, encoder=0.5, embedding=0.6), 10)
    p.update(10, force=True)
    p.bake()
    m.quant.weights = m.quant.acts = True
    m.eval()
    calibrate(m, tiny_batch(), method="mse")
    metrics = {"threshold": 0.25, "calibration": "mse",
               "predictor": {"edges": [0.0, 0.3, 0.6931], "layers": [1, 3]},
               "dvfs": {"codes": [[0, 0], [1, 1]], "mhz": [500, 1000], "mv": [600, 800]},
               "dev": {"accuracy_all_layers": 0.5, "accuracy_early_exit": 0.5,
                       "avg_layers": 2.0, "accuracy_float": 0.5},
               "sparsity": m.sparsity()}
    return m, build_image(m, metrics)


def test_round_trip_is_byte_identical(trained, tmp_path):
    _, img = trained
    data = image_bytes(img)
    size = write_image(img, tmp_path / "a.ebimg")
    assert size == len(data)
    back = read_image(tmp_path / "a.ebimg", hw=HwParams())
    write_image(back, tmp_path / "b.ebimg")
    assert (tmp_path / "b.ebimg").read_bytes() == data
    assert back.meta == img.meta and back.model == img.model
    for name, t in img.tensors.items():
        assert np.array_equal(back[name].array, t.array) and back[name].bias == t.bias


def test_rebuilt_model_computes_like_the_trained_one(trained):
    m, img = trained
    rebuilt = model_from_image(parse_image(image_bytes(img)))
    batch = tiny_batch(seed=3)
    assert torch.equal(evaluate_logits(rebuilt, batch), evaluate_logits(m, batch))


def test_weights_are_engine_layout_codes(trained):
    m, img = trained
    from sw.export import _packed

    codes = _packed(img, "wq", 32, 32)  # K x cols = in x out
    w = (m.wq.weight * m.wq.mask / 4.0).T  # 1/sqrt(16) folded into the query weights
    assert torch.equal(codes, encode(w, img["wq.values"].bias))
    # 1 x 16 block pruning shows up as all-zero vectors, which the engine skips.
    assert int((img["wq.masks"].array == 0).sum()) == 32 * 2 // 2


def test_bad_images_are_refused(trained):
    _, img = trained
    data = image_bytes(img)
    with pytest.raises(ImageError, match=f"truncated: {len(data) - 1} bytes of {len(data)}"):
        parse_image(data[:-1])
    with pytest.raises(ImageError, match="truncated: 10 bytes, shorter than the"):
        parse_image(data[:10])
    with pytest.raises(ImageError, match="trailing bytes"):
        parse_image(data + b"\0")
    bad = bytearray(data)
    bad[-5] ^= 0x10
    with pytest.raises(ImageError, match="corrupted: payload checksum mismatch"):
        parse_image(bytes(bad))
    bad = bytearray(data)
    bad[20] ^= 1
    with pytest.raises(ImageError, match="corrupted: header checksum mismatch"):
        parse_image(bytes(bad))
    with pytest.raises(ImageError, match="not an EdgeBERT weight image"):
        parse_image(b"PK\x03\x04" + data[4:])
    def relabel(version):
        out = bytearray(data)
        out[8:10] = struct.pack("<H", version)
        out[HEADER_BYTES - 4:HEADER_BYTES] = struct.pack(
            "<I", zlib.crc32(bytes(out[:HEADER_BYTES - 4])))
        return bytes(out)

    with pytest.raises(ImageError, match="format version 3; this reader reads versions 1, 2"):
        parse_image(relabel(3))
    # A version-1 image relabelled 2 lacks the version-2 declarations: refused, not misread.
    with pytest.raises(ImageError, match=r"version-2 image .* does not declare \['ln_per_layer'"):
        parse_image(relabel(2))
    with pytest.raises(ImageError,
                       match=r"built for other hardware \(n=16, .*this hardware has n=8"):
        parse_image(data, hw=HwParams(n=8))
    with pytest.raises(ImageError, match="other hardware"):
        parse_image(data, hw=HwParams(fmt=AFFormat(offset=-9)))


def test_hex_export_matches_sections(trained, tmp_path):
    _, img = trained
    mmap = export_hex(img, tmp_path, word_bytes=4)
    data = image_bytes(img)
    v = struct.unpack_from("<QQQQQQ", data, 8 + 6 + 6 + 4 + 14 + 4 + 16)
    for i, s in enumerate(("reram", "sram", "aux")):
        words = (tmp_path / f"{s}.hex").read_text().split()
        raw = b"".join(bytes.fromhex(w)[::-1] for w in words)
        off, length = v[2 * i], v[2 * i + 1]
        assert raw[:length] == data[off:off + length]
    e = mmap["wq.values"]
    raw = b"".join(bytes.fromhex(w)[::-1] for w in (tmp_path / "sram.hex").read_text().split())
    assert raw[e["address"]:e["address"] + e["bytes"]] == img["wq.values"].array.tobytes()


def test_committed_tiny_image_is_the_builders_output(tmp_path):
    """sw/assets/tiny3.ebimg (the README's quick RTL run) is build_tiny_image(9, layers=3)."""
    from sw.image import write_image
    from sw.tiny_image import build_tiny_image

    img, _ = build_tiny_image(9, layers=3)
    write_image(img, tmp_path / "tiny3.ebimg")
    committed = Path(__file__).resolve().parent.parent / "sw" / "assets" / "tiny3.ebimg"
    assert committed.read_bytes() == (tmp_path / "tiny3.ebimg").read_bytes()
