"""Random operands for matrix-engine tests and benchmarks (shared by the Amaranth tests, the
cocotb testbench and ``edgebert bench matmul``)."""

import torch

from hw.layouts import DEFAULT_AF

__all__ = ["KINDS", "random_codes", "random_weights", "random_case"]

# Weight densities the engine is verified at: dense, 50 % unstructured, 50 % in 1×n blocks
# (whole vectors W[k, c0:c0+n] zero), 10 % non-zero unstructured.
KINDS = ("dense", "unstructured50", "block50", "density10")


def random_codes(g, *shape, fmt=DEFAULT_AF):
    """Uniform random codes, negative zero replaced by zero (the packer refuses it)."""
    c = torch.randint(0, fmt.code_max + 1, shape, generator=g)
    return torch.where(c == 1 << (fmt.n_bits - 1), 0, c)


def random_weights(g, k, cols, n, kind, fmt=DEFAULT_AF):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    w = random_codes(g, k, cols, fmt=fmt)
    if kind == "unstructured50":
        w[torch.rand(w.shape, generator=g) < 0.5] = 0
    elif kind == "block50":
        w[torch.rand(k, cols // n, generator=g).repeat_interleave(n, 1) < 0.5] = 0
    elif kind == "density10":
        w[torch.rand(w.shape, generator=g) < 0.9] = 0
    return w


def random_case(seed, rows, k, cols, n, kind, fmt=DEFAULT_AF):
    """(x, w, bias, regs) with random codes, bias registers and ReLU flag."""
    g = torch.Generator().manual_seed(seed)
    x = random_codes(g, rows, k, fmt=fmt)
    w = random_weights(g, k, cols, n, kind, fmt)
    bias = random_codes(g, cols, fmt=fmt)
    bx, bw, bb, bo = (int(v) for v in torch.randint(0, fmt.bias_max + 1, (4,), generator=g))
    relu = bool(torch.randint(0, 2, (1,), generator=g))
    return x, w, bias, dict(bias_x=bx, bias_w=bw, bias_b=bb, bias_out=bo, relu=relu)
