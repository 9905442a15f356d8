"""Generator parameters and fixed constants of the matrix engine ([H1], [F4]).

Plain Python (imports neither Amaranth nor PyTorch): the gateware (:mod:`hw.matmul.engine`),
the driver side (:mod:`sw.matmul_buffers`), the golden model (:mod:`sw.golden.matmul`), the cycle
model (:mod:`sw.perf.matmul`) and the weight image (:class:`sw.image.HwParams`) all read it.
"""

from dataclasses import dataclass

from hw.checks import check_int, is_int
from hw.layouts import DEFAULT_AF, AFFormat, acc_width_for

__all__ = [
    "DIM_BITS", "NNZ_BITS", "COUNTER_BITS", "REQUANT_STAGES", "CHECK_CYCLES", "PRIME_CYCLES",
    "FLUSH_EXTRA", "bias_shift_range", "requant_shift_range", "check_vector_width",
    "MatmulConfig",
]

DIM_BITS = 16
NNZ_BITS = 32
COUNTER_BITS = 32
# Pipeline stages of the drain's requantizers (hw/af_requant.py).
REQUANT_STAGES = 3
# Fixed cycles of a run besides the scanned vectors: one to check the shape, two per row tile
# to prime the mask and value reads, and the flush after the last token (S1, S1b, S2..S4, n
# drain rows, bias and ReLU, the requantizer's pipeline stages, the code register, write).
CHECK_CYCLES = 1
PRIME_CYCLES = 2
FLUSH_EXTRA = 7 + REQUANT_STAGES


def bias_shift_range(fmt: AFFormat = DEFAULT_AF):
    """(smallest, largest) left shift that aligns a bias significand to the accumulator unit.

    Raises ``ValueError`` when the smallest is negative: the bias could then not be added
    exactly and would need a second rounding rule, which the design forbids.
    """
    lo = -2 * fmt.bias_max - fmt.offset + fmt.man_bits
    hi = fmt.exp_max + fmt.bias_max - fmt.offset + fmt.man_bits
    if lo < 0:
        raise ValueError(
            f"offset must be at most M - 2·bias_max = {fmt.man_bits - 2 * fmt.bias_max} so that "
            f"a matmul bias aligns exactly to the accumulator unit, not {fmt.offset}")
    return lo, hi


def requant_shift_range(fmt: AFFormat = DEFAULT_AF):
    """(smallest, largest) requantizer shift ``bias_x + bias_w - bias_out + offset - M`` of an
    accumulator over all bias registers."""
    return (-fmt.bias_max + fmt.offset - fmt.man_bits,
            2 * fmt.bias_max + fmt.offset - fmt.man_bits)


def check_vector_width(n, name="n"):
    """``n`` if it is a legal vector width (VMACs = lanes): a power of two in 2..64."""
    check_int(name, n, lo=2)
    if n & (n - 1) or n > 64:
        raise ValueError(f"{name} must be a power of two in 2..64, not {n}")
    return n


@dataclass(frozen=True)
class MatmulConfig:
    """Generator parameters of the matrix engine; shared by gateware, driver and models.

    Parameters
    ----------
    n : int
        VMACs = lanes = vector width (a power of two, 2..64).
    fmt : AFFormat
        AdaptivFloat format of X, W, bias and Y.
    max_k : int
        Largest inner dimension; sizes the accumulators ([F4]).
    x_depth, y_depth : int
        Words per X / Y bank (each word n codes).
    m_depth : int
        Mask words (n masks of n bits each).
    v_depth : int
        Value words (n codes each).
    """

    n: int = 16
    fmt: AFFormat = DEFAULT_AF
    max_k: int = 1024
    x_depth: int = 512
    y_depth: int = 512
    m_depth: int = 512
    v_depth: int = 4096

    def __post_init__(self):
        check_vector_width(self.n)
        if not isinstance(self.fmt, AFFormat):
            raise TypeError(f"fmt must be an AFFormat, not {self.fmt!r}")
        bias_shift_range(self.fmt)
        check_int("max_k", self.max_k, lo=1)
        if self.max_k % self.n or self.max_k >= 1 << DIM_BITS:
            raise ValueError(
                f"max_k must be a multiple of n={self.n} below 2^{DIM_BITS}, not {self.max_k}")
        for name in ("x_depth", "y_depth", "m_depth", "v_depth"):
            check_int(name, getattr(self, name), lo=1)
        if self.v_depth * self.n >= 1 << (NNZ_BITS - 2):
            raise ValueError(f"v_depth must be below 2^{NNZ_BITS - 2} / n, not {self.v_depth}")

    @property
    def b_depth(self):
        """Bias words: one per column block (cols/n is bounded by the Y and mask buffers)."""
        return max(2, min(self.y_depth, self.m_depth))

    @property
    def log_n(self):
        return self.n.bit_length() - 1

    @property
    def bias_width(self):
        """Signed width of a bias aligned to the accumulator unit."""
        return 1 + self.fmt.sig_bits + self.bias_shift_range[1]

    @property
    def bias_shift_range(self):
        """(smallest, largest) left shift aligning a bias significand to the accumulator unit."""
        return bias_shift_range(self.fmt)

    @property
    def acc_width(self):
        """Accumulator width: products of max_k terms or the aligned bias, plus one for the sum."""
        return max(acc_width_for(self.fmt, self.max_k), self.bias_width) + 1

    @property
    def requant_shift_range(self):
        """Requantizer shifts ``bias_x + bias_w - bias_out + offset - M`` over all registers."""
        return requant_shift_range(self.fmt)

    @classmethod
    def from_params(cls, n, n_bits, exp_bits, offset, bias_bits, max_k, x_depth, y_depth,
                    m_depth, v_depth):
        """The configuration of the flat parameters ``edgebert verilog -p`` sets."""
        return cls(n=n, fmt=AFFormat(n_bits=n_bits, exp_bits=exp_bits, offset=offset,
                                     bias_bits=bias_bits),
                   max_k=max_k, x_depth=x_depth, y_depth=y_depth, m_depth=m_depth,
                   v_depth=v_depth)

    def check_shape(self, rows, k, cols, nnz):
        """Raise ``ValueError`` naming the problem unless the engine can run this shape."""
        n = self.n
        for name, v in (("rows", rows), ("K", k), ("cols", cols)):
            check_int(name, v)
            if v < 1:
                raise ValueError(f"{name} must be positive, not {v}")
            if v % n:
                raise ValueError(
                    f"{name} must be a multiple of n={n} (pad in software), not {v}")
        if k > self.max_k:
            raise ValueError(f"K must be at most max_k={self.max_k}, not {k}")
        if (rows // n) * (k // n) > self.x_depth:
            raise ValueError(
                f"X ({rows}×{k}) does not fit the X buffer: {rows * k} codes, capacity "
                f"{self.x_depth * n * n}")
        if (rows // n) * (cols // n) > self.y_depth:
            raise ValueError(
                f"Y ({rows}×{cols}) does not fit the Y buffer: {rows * cols} codes, capacity "
                f"{self.y_depth * n * n}")
        if (cols // n) * (k // n) > self.m_depth:
            raise ValueError(
                f"the masks of W ({k}×{cols}) do not fit the mask buffer: "
                f"{(cols // n) * (k // n)} words, capacity {self.m_depth}")
        if not is_int(nnz) or nnz < 0 or -(-nnz // n) > self.v_depth:
            raise ValueError(
                f"the {nnz} non-zero codes of W do not fit the value buffer "
                f"(capacity {self.v_depth * n} codes)")
