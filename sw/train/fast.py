"""The faster CPU training step (``train.fast = true``): the same recipe, cheaper arithmetic.

Measured on this project's 2-core AMD EPYC (AVX-512 with BF16 dot products), one step of the
default 384-wide student spends about half its time in the linear layers' matrix products
(float32 at the cores' peak, about 200 GFLOP/s), a sixth drawing dropout masks
(``bernoulli_``, one 32-bit draw per element) and a tenth in AdamW's per-tensor loop. The fast
step changes exactly those three, nothing the image sees:

* **bfloat16 products** in every :class:`~sw.student.MaskedLinear`: input, (masked,
  fake-quantized) weight and bias are rounded to bfloat16 for the product, which accumulates in
  float32 (oneDNN), and the result is widened back to float32. Master weights, optimizer state,
  fake quantizers, LayerNorms, softmax, attention products and losses stay float32. The
  AdaptivFloat-8 weight codes (at most 4 significant bits) are exact in bfloat16 (8 bits).
* **Dropout masks from 16-bit random integers** (:class:`FastDropout`): one 32-bit draw gives
  two elements' keep decisions, the drop rate rounded to a multiple of 1/65,536. The draws come
  from PyTorch's global generator, which checkpoints hold, so an interrupted run still resumes
  to the same student.
* **Fused AdamW** (``torch.optim.AdamW(fused=True)``), the same update in one kernel.

Calibration, the threshold sweep and every reported accuracy run with the exact float32
products (:func:`set_fast` off), as the golden executor's codes are defined. A fast run is not a
bit-identical copy of the float32 one, and not as good: in two runs of the default recipe it
learnt the training set as well (the same loss) but lost 1.4 points on SST-2 dev
(docs/training.md); it is for trying ideas quickly.
"""

import torch
from torch import nn

from sw.student import MaskedLinear

__all__ = ["FastDropout", "set_fast"]


class FastDropout(nn.Module):
    """Inverted dropout with keep decisions from 16-bit uniform integers (see module doc)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {p!r}")
        self.p = p
        # keep when the 16-bit value u (0..65535) is >= cut: P(drop) = cut / 65536.
        self.cut = round(p * 65536)

    def forward(self, x):
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        bits = torch.randint(-2**31, 2**31 - 1, ((n + 1) // 2,), dtype=torch.int32,
                             device=x.device)
        # int16 in [-32768, 32767]: u = v + 32768 >= cut  <=>  v >= cut - 32768
        keep = bits.view(torch.int16)[:n].view(x.shape) >= (self.cut - 32768)
        return x * keep * (65536.0 / (65536 - self.cut))


def set_fast(model, on: bool, products: str = "bfloat16"):
    """Switch ``model`` (a :class:`~sw.student.Student`) to the fast step or back to the exact
    float32 one. ``products="float32"`` keeps the linear products in float32 (only the dropout
    draws change). Only modules are swapped; the state dict is the same either way."""
    if products not in ("bfloat16", "float32"):
        raise ValueError(f"products must be 'bfloat16' or 'float32', not {products!r}")
    dtype = torch.bfloat16 if on and products == "bfloat16" else None
    for m in model.modules():
        if isinstance(m, MaskedLinear):
            m.mm_dtype = dtype
    p = model.config.dropout
    model.drop = FastDropout(p) if on else nn.Dropout(p)
    model.drop.train(model.training)
