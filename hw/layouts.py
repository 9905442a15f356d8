"""Bit formats shared by gateware, golden model, testbenches and the weight image.

Everything that more than one side of the project must agree on bit for bit lives here: the
AdaptivFloat format ([F1] in DESIGN.md), the fixed-point format of the special function units
([F5]), and the accumulator sizing rule ([F4]). This module imports neither PyTorch nor (but
for :func:`af_code_layout`) Amaranth, so that gateware, models and configurations share it.
"""

from dataclasses import dataclass

from hw.checks import check_int

# Lane products wider than this leave too little room in a 63-bit golden accumulator.
MAX_PRODUCT_BITS = 48

__all__ = [
    "MAX_PRODUCT_BITS", "AFFormat", "FixedFormat", "DEFAULT_AF", "af_code_layout", "acc_width_for",
]


@dataclass(frozen=True)
class AFFormat:
    """AdaptivFloat⟨N, E⟩ with a per-tensor bias register ([F1]).

    A code is ``sign[N-1] exp[N-2:M] man[M-1:0]`` with ``M = N - 1 - E``. Its value is
    ``(-1)^sign * 2^(exp + b + offset) * (1 + man / 2^M)`` where ``b`` is the tensor's bias
    register (``bias_bits`` wide, unsigned). The codes with ``exp == 0 and man == 0`` are zero
    (encoders only ever write the positive one); there are no denormals.

    Parameters
    ----------
    n_bits : int
        Total code width N (3..16).
    exp_bits : int
        Exponent width E; at least 1, and at most N - 2 so that one mantissa bit remains.
    offset : int
        Exponent offset added to every exponent (default -10).
    bias_bits : int
        Width of the per-tensor bias register (default 3, bias 0..7).
    """

    n_bits: int = 8
    exp_bits: int = 3
    offset: int = -10
    bias_bits: int = 3

    def __post_init__(self):
        check_int("n_bits", self.n_bits, lo=3, hi=16)
        check_int("exp_bits", self.exp_bits, lo=1)
        if self.exp_bits > self.n_bits - 2:
            raise ValueError(
                f"exp_bits must be at most n_bits - 2 = {self.n_bits - 2} so that the mantissa "
                f"has at least one bit, not {self.exp_bits}")
        check_int("offset", self.offset, lo=-64, hi=64)
        check_int("bias_bits", self.bias_bits, lo=1, hi=6)
        if self.product_bits > MAX_PRODUCT_BITS:
            raise ValueError(
                f"n_bits={self.n_bits}, exp_bits={self.exp_bits} give {self.product_bits}-bit lane "
                f"products; at most {MAX_PRODUCT_BITS} are supported (so that accumulators of "
                f"2^14 products fit 64-bit golden integers): use fewer exponent bits")

    @property
    def man_bits(self):
        """Mantissa width M = N - 1 - E."""
        return self.n_bits - 1 - self.exp_bits

    @property
    def exp_max(self):
        """Largest exponent field value, 2^E - 1."""
        return (1 << self.exp_bits) - 1

    @property
    def bias_max(self):
        """Largest bias register value, 2^bias_bits - 1."""
        return (1 << self.bias_bits) - 1

    @property
    def sig_bits(self):
        """Significand width M + 1 (the hidden one included)."""
        return self.man_bits + 1

    @property
    def code_max(self):
        """Largest code value, 2^N - 1."""
        return (1 << self.n_bits) - 1

    @property
    def product_bits(self):
        """Width of a signed lane product ([F4]): sign + 2(M+1) significand bits + 2(2^E - 1)."""
        return 1 + 2 * self.sig_bits + 2 * self.exp_max

    def check_bias(self, bias, name="bias"):
        """Raise a clear error unless ``bias`` is a legal bias register value."""
        check_int(name, bias)
        if not 0 <= bias <= self.bias_max:
            raise ValueError(
                f"{name} must be in the bias register range 0..{self.bias_max}, not {bias}")
        return bias

    def scale_exponent(self, bias):
        """Power of two of one significand unit of a code with this bias: b + offset - M."""
        return bias + self.offset - self.man_bits

    def max_value(self, bias):
        """Largest representable magnitude for ``bias``."""
        sig_max = (1 << self.sig_bits) - 1
        return sig_max * 2.0 ** (self.exp_max + self.scale_exponent(bias))

    def min_value(self, bias):
        """Smallest non-zero magnitude for ``bias`` (exp = 0, man = 1)."""
        return ((1 << self.man_bits) + 1) * 2.0 ** self.scale_exponent(bias)


DEFAULT_AF = AFFormat()


def af_code_layout(fmt: AFFormat):
    """Amaranth struct layout of one code, LSB first: ``man``, ``exp``, ``sign``."""
    from amaranth.lib import data  # here only: the rest of the module is plain Python

    return data.StructLayout({"man": fmt.man_bits, "exp": fmt.exp_bits, "sign": 1})


def acc_width_for(fmt: AFFormat, max_inner_dim: int):
    """Smallest signed accumulator width that cannot overflow summing ``max_inner_dim`` products.

    Each product magnitude is below ``2^(product_bits - 1)``; a sum of K of them is below
    ``K * 2^(product_bits - 1)``, which needs ``ceil(log2 K)`` more bits.
    """
    check_int("max_inner_dim", max_inner_dim, lo=1)
    return fmt.product_bits + (max_inner_dim - 1).bit_length()


@dataclass(frozen=True)
class FixedFormat:
    """Signed two's-complement fixed point: ``width`` bits, ``frac_bits`` fractional ([F5])."""

    width: int = 32
    frac_bits: int = 16

    def __post_init__(self):
        check_int("width", self.width, lo=2, hi=64)
        check_int("frac_bits", self.frac_bits, lo=0)
        if self.frac_bits >= self.width:
            raise ValueError(
                f"frac_bits must be less than width ({self.width}), not {self.frac_bits}")

    @property
    def min_int(self):
        return -(1 << (self.width - 1))

    @property
    def max_int(self):
        return (1 << (self.width - 1)) - 1

    def check_holds(self, fmt: AFFormat):
        """Raise unless every value of ``fmt`` (any bias) converts to this format exactly."""
        need_frac = -fmt.scale_exponent(0)
        if self.frac_bits < need_frac:
            raise ValueError(
                f"frac_bits must be at least {need_frac} to hold the smallest step of {fmt} "
                f"exactly, not {self.frac_bits}")
        # Largest magnitude in fixed-point units: sig_max << (exp_max + scale(bias_max) + F).
        top = fmt.sig_bits + fmt.exp_max + fmt.scale_exponent(fmt.bias_max) + self.frac_bits
        if top > self.width - 1:
            raise ValueError(
                f"width must be at least {top + 1} to hold the largest value of {fmt} with "
                f"{self.frac_bits} fractional bits, not {self.width}")
        return self
