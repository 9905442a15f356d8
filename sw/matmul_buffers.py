"""Buffer images and register values for one matrix-engine run (the software driver side).

Turns X codes, W (dense codes or :class:`~sw.sparse.PackedWeights`, packed with THE packer
:func:`sw.sparse.pack_bitmask`) and bias codes into the words the engine's buffers hold (layouts
in :mod:`hw.matmul`), and Y words back into codes. Every input is checked here with a clear error
before anything reaches the hardware.
"""

from dataclasses import dataclass

import torch

from hw.matmul.config import MatmulConfig
from sw.adaptivfloat import check_codes
from sw.sparse import PackedWeights, pack_bitmask

__all__ = ["MatmulJob", "make_job", "y_requests", "y_from_words"]


def _word(codes, width):
    """Pack a sequence of small ints, element ``t`` at bit ``t·width``."""
    value = 0
    for t, c in enumerate(codes):
        value |= int(c) << (t * width)
    return value


@dataclass(frozen=True)
class MatmulJob:
    """Everything the engine needs for one run.

    ``x_words`` are ``(bank, addr, word)``, the other ``*_words`` ``(addr, word)``; ``regs``
    holds the values of the engine's shape, nnz, bias and relu ports.
    """

    config: MatmulConfig
    packed: PackedWeights
    x_words: list
    m_words: list
    v_words: list
    b_words: list
    regs: dict

    @property
    def rows(self):
        return self.regs["rows"]

    @property
    def cols(self):
        return self.regs["cols"]


def make_job(config: MatmulConfig, x, w, bias, *, bias_x, bias_w, bias_b, bias_out,
             relu=False):
    """Check the operands and build the buffer images of ``Y = act(X·W + bias)``."""
    if not isinstance(config, MatmulConfig):
        raise TypeError(f"config must be a MatmulConfig, not {config!r}")
    fmt, n = config.fmt, config.n
    for name, b in (("bias_x", bias_x), ("bias_w", bias_w), ("bias_b", bias_b),
                    ("bias_out", bias_out)):
        fmt.check_bias(b, name)
    if not isinstance(relu, bool):
        raise TypeError(f"relu must be a bool, not {relu!r}")
    check_codes(x, fmt, "X codes")
    if x.dim() != 2:
        raise ValueError(f"X codes must be 2-D (rows × K), not {x.dim()}-D")
    if isinstance(w, PackedWeights):
        if w.n != n:
            raise ValueError(f"W was packed with vector width {w.n}; the engine needs n={n}")
        packed = w
    else:
        packed = pack_bitmask(w, n, fmt)
    rows, k = x.shape
    if packed.rows != k:
        raise ValueError(f"inner dimensions must agree: X is {rows}×{k}, W is "
                         f"{packed.rows}×{packed.cols}")
    cols = packed.cols
    check_codes(bias, fmt, "bias codes")
    if bias.dim() != 1 or bias.shape[0] != cols:
        raise ValueError(f"bias must be a vector of {cols} codes, not shape {tuple(bias.shape)}")
    config.check_shape(rows, k, cols, packed.nnz)

    nb = fmt.n_bits
    kw = k // n
    xc = x.to(torch.int64)
    x_words = [(r % n, (r // n) * kw + j, _word(xc[r, j * n:(j + 1) * n].tolist(), nb))
               for r in range(rows) for j in range(kw)]
    masks = packed.masks.to(torch.int64)  # (cols/n, K)
    m_words = [(cb * kw + j, _word(masks[cb, j * n:(j + 1) * n].tolist(), n))
               for cb in range(cols // n) for j in range(kw)]
    vals = packed.values.to(torch.int64).tolist()
    v_words = [(a, _word(vals[a * n:(a + 1) * n], nb)) for a in range(-(-len(vals) // n))]
    bc = bias.to(torch.int64)
    b_words = [(cb, _word(bc[cb * n:(cb + 1) * n].tolist(), nb)) for cb in range(cols // n)]
    regs = dict(rows=rows, k=k, cols=cols, nnz=packed.nnz, bias_x=bias_x, bias_w=bias_w,
                bias_b=bias_b, bias_out=bias_out, relu=int(relu))
    return MatmulJob(config, packed, x_words, m_words, v_words, b_words, regs)


def y_requests(config: MatmulConfig, rows, cols):
    """``(bank, addr)`` of every Y word, row-major (row r, column block cb)."""
    n = config.n
    return [(r % n, (r // n) * (cols // n) + cb) for r in range(rows) for cb in range(cols // n)]


def y_from_words(config: MatmulConfig, rows, cols, words):
    """Y words in :func:`y_requests` order → (rows × cols) int64 codes."""
    n, nb = config.n, config.fmt.n_bits
    words = list(words)
    if len(words) != rows * (cols // n):
        raise ValueError(f"expected {rows * (cols // n)} Y words, got {len(words)}")
    mask = (1 << nb) - 1
    flat = [(int(wd) >> (t * nb)) & mask for wd in words for t in range(n)]
    return torch.tensor(flat, dtype=torch.int64).reshape(rows, cols)
