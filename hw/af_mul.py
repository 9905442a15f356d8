"""AdaptivFloat multiplier lane ([F4]): the exact product of two codes, biases not applied."""

from amaranth.hdl import Cat, Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat
from hw.registry import register_block

__all__ = ["AFMulLane", "af_fields"]


def af_fields(fmt, code):
    """(sign, exp, significand) of an AdaptivFloat code value; the significand of zero is 0."""
    m = fmt.man_bits
    man, exp, sign = code[:m], code[m:m + fmt.exp_bits], code[fmt.n_bits - 1]
    nonzero = (exp != 0) | (man != 0)
    return sign, exp, Cat(man, nonzero)


class AFMulLane(wiring.Component):
    """One multiplier lane: ``product = ±sig_a·sig_b << (exp_a + exp_b)``, combinational.

    The real product is ``product · 2^(scale(bias_a) + scale(bias_b))``; the biases are applied
    only at requantization ([F4]). Matches :func:`sw.golden.af.lane_product` bit for bit.

    Parameters
    ----------
    fmt : AFFormat
        The AdaptivFloat format of both operands.

    Attributes
    ----------
    a : Signal(fmt.n_bits), in
        First operand code.
    b : Signal(fmt.n_bits), in
        Second operand code.
    product : Signal(signed(fmt.product_bits)), out
        Exact signed product.
    """

    def __init__(self, *, fmt: AFFormat = DEFAULT_AF):
        with checked_construction(self):
            if not isinstance(fmt, AFFormat):
                raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
        self._fmt = fmt
        super().__init__({
            "a": In(fmt.n_bits),
            "b": In(fmt.n_bits),
            "product": Out(signed(fmt.product_bits)),
        })

    @property
    def fmt(self):
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        sa, ea, ga = af_fields(fmt, self.a)
        sb, eb, gb = af_fields(fmt, self.b)
        mag = ((ga * gb) << (ea + eb))[:fmt.product_bits - 1]
        m.d.comb += self.product.eq(Mux(sa ^ sb, -mag, mag))
        return m


def _selfcheck(**params):
    import torch

    from hw.selfcheck import run_comb
    from sw.golden.af import lane_product

    fmt = AFFormat(**params)
    g = torch.Generator().manual_seed(1)
    codes = torch.arange(fmt.code_max + 1)
    edge = torch.cartesian_prod(codes, codes)
    if len(edge) > 4096:
        edge = edge[torch.randperm(len(edge), generator=g)[:4096]]
    a, b = edge[:, 0], edge[:, 1]
    expected = lane_product(a, b, fmt)
    n = run_comb(AFMulLane(fmt=fmt), {"a": a, "b": b}, {"product": expected})
    return f"{n} products equal the golden lane_product"


register_block(
    "af_mul", "AdaptivFloat multiplier lane (exact product, combinational)",
    build=lambda **p: AFMulLane(fmt=AFFormat(**p)), selfcheck=_selfcheck,
    params={"n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3},
)
