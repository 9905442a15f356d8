"""The AdaptivFloat cores side by side in one design, for their cocotb tests.

Multiplier lanes, requantizer lanes and AF→fixed lanes share one Verilog module so that each
simulator builds once for all three test files (a Verilator build takes about a minute on two
cores). The requantizer is built with the pipeline depth of the registered block
(:data:`hw.af_requant.DEFAULT_STAGES`), which the blocks that use it share, and tested clocked
with random stalls (see :mod:`sim.tb_lanes`); its combinational form (``stages=0``) is checked
in the Amaranth simulator (``tests/test_hw_af_requant.py``).

Ports: ``mul_a``, ``mul_b``, ``mul_product``, ``requant_value``, ``requant_shift``,
``requant_en``, ``requant_code``, ``fixed_code``, ``fixed_bias``, ``fixed_fixed`` (see
:mod:`sim.lanes`), plus ``clk`` and ``rst``.
"""

from hw.af_fixed import AFToFixed
from hw.af_mul import AFMulLane
from hw.af_requant import DEFAULT_STAGES, AFRequantCore
from hw.layouts import DEFAULT_AF, FixedFormat
from sim.lanes import LaneGroup, Lanes

__all__ = ["NAME", "REQUANT_IN_WIDTH", "requant_shift_range", "af_units"]

NAME = "af_units"
# A 40-bit accumulator holds 2^15 default-format products (acc_width_for).
REQUANT_IN_WIDTH = 40


def requant_shift_range(fmt):
    """Shifts a matmul accumulator needs: bias_a + bias_b - bias_out + offset - M."""
    return (-fmt.bias_max + fmt.offset - fmt.man_bits,
            2 * fmt.bias_max + fmt.offset - fmt.man_bits)


def af_units(*, fmt=DEFAULT_AF, fixed=FixedFormat(), lanes=32):
    lo, hi = requant_shift_range(fmt)
    return LaneGroup(parts={
        "mul": Lanes(make=lambda: AFMulLane(fmt=fmt), lanes=lanes),
        "requant": Lanes(make=lambda: AFRequantCore(fmt=fmt, in_width=REQUANT_IN_WIDTH,
                                                    shift_min=lo, shift_max=hi,
                                                    stages=DEFAULT_STAGES), lanes=lanes),
        "fixed": Lanes(make=lambda: AFToFixed(fmt=fmt, fixed=fixed), lanes=lanes),
    })
