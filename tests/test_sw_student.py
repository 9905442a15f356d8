import math

import pytest
import torch

from sw.adaptivfloat import decode, encode, weight_bias
from sw.student import Student, StudentConfig, early_exit, entropy


def tiny(**kw):
    cfg = dict(vocab_size=40, tokenizer_vocab=40, unk_id=1, emb_dim=16, hidden=32, heads=2,
               ffn=64, layers=3, max_len=8, span_ramp=4)
    cfg.update(kw)
    return Student(StudentConfig(**cfg))


def test_shapes_and_ramps():
    torch.manual_seed(0)
    m = tiny().eval()
    ids = torch.randint(0, 40, (5, 6))
    mask = torch.ones_like(ids)
    out = m(ids, mask)
    assert out.shape == (3, 5, 2)
    # Asking for the first ramp only runs one layer and gives the same logits.
    assert torch.equal(m(ids, mask, ramps=[0])[0], out[0])
    with pytest.raises(ValueError, match="sequence length must be at most max_len = 8, not 9"):
        m(torch.zeros(1, 9, dtype=torch.int64), torch.ones(1, 9))


def test_padding_does_not_change_real_tokens():
    torch.manual_seed(1)
    m = tiny().eval()
    ids = torch.tensor([[2, 5, 7, 3]])
    short = m(ids, torch.ones_like(ids))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.int64)], 1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    assert torch.allclose(m(padded, mask), short, atol=1e-6)


def test_span_mask_formula():
    m = tiny()
    with torch.no_grad():
        m.span_frac.copy_(torch.tensor([2.0, -4.0]) / 8)
    mask = m.span_mask()
    r = 4
    expect = [[min(max((r + 2 - x) / r, 0), 1) for x in range(8)], [0.0] * 8]
    assert mask.tolist() == expect
    assert m.spans().tolist() == [6, 0]  # keys 0..5; the second head is skipped


def test_quantized_weights_lie_on_the_adaptivfloat_grid():
    torch.manual_seed(2)
    m = tiny()
    m.quant.weights = True
    w = m.wq.effective_weight().detach()
    raw = m.wq.weight.detach() / math.sqrt(16)
    b = weight_bias(raw)
    assert torch.equal(w, decode(encode(raw, b), b))
    m.quant.fixed["wq.weight"] = b + 1
    assert torch.equal(m.wq.effective_weight().detach(), decode(encode(raw, b + 1), b + 1))


def test_activation_quantization_uses_calibrated_bias():
    m = tiny()
    m.quant.acts = True
    m.act_q.layer_bias[0, 0] = 3
    x = torch.linspace(-2, 2, 50)
    assert torch.equal(m.act_q(x, "q", 0), decode(encode(x, 3), 3))


def test_entropy_and_early_exit():
    logits = torch.tensor([
        [[5.0, -5.0], [0.0, 0.0], [0.1, 0.0]],   # layer 1
        [[0.0, 3.0], [4.0, -4.0], [0.0, 0.1]],   # layer 2
        [[0.0, 9.0], [-9.0, 9.0], [0.0, 0.2]],   # layer 3
    ])
    assert entropy(torch.tensor([[0.0, 0.0]])).item() == pytest.approx(math.log(2))
    preds, layers = early_exit(logits, 0.1)
    assert layers.tolist() == [1, 2, 3]
    assert preds.tolist() == [0, 0, 1]
    preds, layers = early_exit(logits, 0.0)
    assert layers.tolist() == [3, 3, 3]


def test_config_checks():
    with pytest.raises(ValueError, match=r"hidden \(30\) must be a multiple of heads \(4\)"):
        StudentConfig(hidden=30)
    with pytest.raises(ValueError, match="act must be 'relu' or 'gelu', not 'tanh'"):
        StudentConfig(act="tanh")
    with pytest.raises(ValueError, match="span_ramp must be at most max_len"):
        StudentConfig(max_len=8, span_ramp=9)
    with pytest.raises(ValueError, match="unknown student config keys"):
        StudentConfig.from_dict({"hiden": 3})


def test_weights_quantized_once_per_forward_give_the_same_result():
    """The forward pass quantizes each shared weight once for all L layers (a cache); the
    result and the gradients must equal those of quantizing at every use, layer by layer."""
    torch.manual_seed(4)
    m = tiny().eval()
    m.quant.weights = m.quant.acts = True
    m.act_q.observe = True
    ids = torch.randint(0, 40, (3, 6))
    mask = torch.ones_like(ids)
    m(ids, mask)  # running maxima for the activation biases
    m.act_q.observe = False
    got = m(ids, mask)
    got.sum().backward()
    grad = m.ff1.weight.grad.clone()
    m.zero_grad()
    assert m.quant.cache is None
    x = m.embed(ids)
    want = []
    for i in range(3):
        x, _ = m.layer(x, mask.bool(), i)
        want.append(m.ramp(x, i))
    want = torch.stack(want)
    want.sum().backward()
    assert torch.equal(got, want)
    assert torch.equal(m.ff1.weight.grad, grad)
