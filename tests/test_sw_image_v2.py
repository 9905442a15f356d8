"""Version 2 of the weight image: a student with one LayerNorm pair per application of the
shared layer and mean pooling. Written as version 2 (version-1 students stay version 1),
refused when mislabelled, and run by compiler, layout and golden executor command by command
against an independent recomputation."""

import struct
import zlib

import pytest
import torch

import tests.test_sw_program_run as run_tests
from hw.isa import Op
from hw.memmap import MemoryMap
from sw.export import model_from_image
from sw.golden.softmax import softmax
from sw.image import HEADER_BYTES, ImageError, image_bytes, parse_image
from sw.program.compiler import compile_program
from sw.program.executor import GoldenExecutor
from sw.program.frontend import encode_texts
from sw.program.layout import lay_out, memmap_for
from sw.tiny_image import build_tiny_image
from tests.test_sw_program_run import SENTENCES, check_trace, golden_vs_float


@pytest.fixture(scope="module")
def tiny_v2():
    img, _ = build_tiny_image(3, layers=3, ln_per_layer=True, pooling="mean")
    return img, lay_out(img)


def _relabel(data, version):
    out = bytearray(data)
    out[8:10] = struct.pack("<H", version)
    crc = zlib.crc32(bytes(out[:HEADER_BYTES - 4]))
    out[HEADER_BYTES - 4:HEADER_BYTES] = struct.pack("<I", crc)
    return bytes(out)


def test_version_follows_the_student(tiny_v2):
    img, _ = tiny_v2
    data = image_bytes(img)
    assert struct.unpack_from("<H", data, 8)[0] == 2
    back = parse_image(data)
    assert back.version == 2 and image_bytes(back) == data
    c = back.meta["student_config"]
    assert (c["ln_per_layer"], c["pooling"]) == (True, "mean")
    assert back.meta["act_sites"][-1] == "mean"
    for part in ("ln1", "ln2"):
        for i in range(3):
            assert f"{part}.{i}.weight" in back.tensors and f"{part}.{i}.bias" in back.tensors
        assert f"{part}.weight" not in back.tensors
    m = model_from_image(back)
    assert m.config.ln_per_layer and m.config.pooling == "mean"
    # The per-application LayerNorms differ (random in the tiny image), and the model uses them.
    assert not torch.equal(m.ln1[0].weight, m.ln1[1].weight)
    # A student without the new features is still written as version 1, without their keys.
    v1, _ = build_tiny_image(3, layers=3)
    d1 = image_bytes(v1)
    assert struct.unpack_from("<H", d1, 8)[0] == 1
    assert "pooling" not in parse_image(d1).meta["student_config"]


def test_mislabelled_versions_are_refused(tiny_v2):
    img, _ = tiny_v2
    with pytest.raises(ImageError, match="version-1 image whose student uses version-2 features"):
        parse_image(_relabel(image_bytes(img), 1))
    v1, _ = build_tiny_image(3, layers=3)
    with pytest.raises(ImageError, match=r"version-2 image .* does not declare"):
        parse_image(_relabel(image_bytes(v1), 2))


class _MeanOracle(run_tests.Oracle):
    """The recomputation, with mean pooling's softmax: a mask of ones (256 in the softmax
    unit's fixed point) over the sentence's tokens."""

    def expect(self, cmd, rows, segments):
        f = cmd
        if cmd.op is Op.SOFTMAX and self.aux_names[f.mask_addr] == "mask.mean":
            mask = torch.full((f.cols * self.n,), 256, dtype=torch.int64)
            mask[f.keys:] = 0
            x = self.read(f.x_base, f.x_stride, f.rows, f.cols)
            assert not x.any()  # zero scores
            return softmax(x, mask, f.bias_in, f.bias_out, bool(f.renorm))
        return super().expect(cmd, rows, segments)


def test_trace_equals_recomputation_v2(tiny_v2, monkeypatch):
    img, lay = tiny_v2
    monkeypatch.setattr(run_tests, "Oracle", _MeanOracle)
    ex = GoldenExecutor(lay)
    enc, _ = encode_texts(lay, SENTENCES[:3] + SENTENCES[-1:])
    names = set()
    for e in enc:
        prog = compile_program(lay, e.length, early_exit=False)
        r = ex.run(prog.program_bytes(), e.rows[None], e.segments[None], trace=True)
        assert len(r.trace) == len(prog.commands)
        oracle, checked = check_trace(img, lay, prog, r, e.rows, e.segments)
        assert checked == set(Op)
        names |= {oracle.aux_names[prog.commands[t.index].param_addr] for t in r.trace
                  if t.op is Op.LAYERNORM}
        # Mean pooling: one softmax and one P.X per layer, and the pooler reads their output.
        notes = [nt for nt in prog.notes if "mean pooling" in nt]
        assert len(notes) == 2 * 3
    assert names == {"emb_ln", *(f"{p}.{i}" for p in ("ln1", "ln2") for i in range(3))}


def test_golden_vs_float_v2(tiny_v2):
    img, _ = tiny_v2
    within, rel, agree = golden_vs_float(img, SENTENCES)
    assert within[0] >= run_tests.LAYER1_WITHIN, within
    assert max(rel) < run_tests.REL_RMS, rel
    assert agree >= run_tests.LABELS_EQUAL, agree


def test_memmap_for_keeps_the_default_when_the_image_fits(tiny_v2):
    img, _ = tiny_v2
    assert memmap_for(img) == MemoryMap(n=img.hw.n)


def _wide_image():
    """A random, calibrated student wider than the default memories hold (H = 64, FFN 512 at
    n = 4: 91k weights against 65,536 value bytes), mean-pooled, one LayerNorm per layer."""
    import math

    from sw.export import build_image
    from sw.image import HwParams
    from sw.student import Student, StudentConfig
    from sw.tiny_image import TINY_SENTENCES
    from sw.tokenizer import WordPiece
    from sw.train import calibrate

    tok = WordPiece(max_len=16)
    batch = tok.encode(list(TINY_SENTENCES), pad_to="longest")
    kept = torch.unique(torch.cat([batch.input_ids.flatten(), torch.tensor([tok.unk_id])]))
    c = StudentConfig(vocab_size=len(kept), emb_dim=16, hidden=64, heads=2, ffn=512, layers=2,
                      max_len=16, span_ramp=4, tokenizer_vocab=tok.vocab_size,
                      unk_id=tok.unk_id, dropout=0.0, ln_per_layer=True, pooling="mean")
    torch.manual_seed(0)
    m = Student(c)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
        for ln in m.layer_norms().values():
            ln.weight.fill_(1.0)
        vmap = torch.full((c.tokenizer_vocab,), int((kept == tok.unk_id).nonzero()[0, 0]))
        vmap[kept] = torch.arange(len(kept))
        m.vocab_map.copy_(vmap)
    m.quant.weights = True
    method = calibrate(m, batch)
    m.quant.acts = True
    m.eval()
    metrics = {"threshold": 0.3, "predictor": {"edges": torch.linspace(0, math.log(2), 3).tolist(),
                                               "layers": [1, 2]},
               "dvfs": {"codes": [(0, 0), (3, 3)], "mhz": [250, 500, 750, 1000],
                        "mv": [500, 600, 700, 800]},
               "dev": {"accuracy_all_layers": 0.0, "accuracy_early_exit": 0.0,
                       "avg_layers": 2.0, "accuracy_float": 0.0},
               "calibration": method, "sparsity": m.sparsity()}
    return build_image(m, metrics, hw=HwParams(n=4)), m, tok


def test_memmap_for_deepens_what_the_image_overflows():
    from sw.program.layout import FitError

    img, model, tok = _wide_image()
    default = MemoryMap(n=4)
    with pytest.raises(FitError, match="does not fit the wmask memory"):
        lay_out(img, default)
    mm = memmap_for(img)
    # 64x64 x 4 + 64x512 x 2 + pooler 64x64 x 2 + emb_proj 16x64 codes (dense): n = 4 per word.
    need_values = (4 * 64 * 64 + 2 * 64 * 512 + 2 * 64 * 64 + 16 * 64) // 4
    assert mm.wval_words >= need_values and mm.wval_words & (mm.wval_words - 1) == 0
    assert mm.wval_words < 2 * (need_values + 1024)     # the next power of two, not more
    # A mask word holds n masks of n codes: at least need_values / n words.
    assert mm.wmask_words >= need_values // 4 > default.wmask_words
    assert (mm.reram_bytes, mm.desc_words) == (default.reram_bytes, default.desc_words)
    lay = lay_out(img)
    assert lay.memmap == mm
    # The whole program runs, and its labels are the float student's on these sentences.
    from sw.tiny_image import TINY_SENTENCES

    enc, _ = encode_texts(lay, list(TINY_SENTENCES))
    ex = GoldenExecutor(lay)
    agree = 0
    for e in enc:
        prog = compile_program(lay, e.length, early_exit=False)
        r = ex.run(prog.program_bytes(), e.rows[None], e.segments[None])
        ids = torch.tensor([e.ids])
        with torch.no_grad():
            logits = model_from_image(img)(ids, torch.ones_like(ids), e.segments[None])
        agree += int(int(logits[-1].argmax(-1)) == int(r.label[0]))
    assert agree == len(enc)
