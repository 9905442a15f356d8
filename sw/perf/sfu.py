"""Cycle model of the special function units ([P1]), checked against the RTL in tests/test_rtl_*.

All figures are for a row of ``beats`` input beats (``n`` elements each) with no stalls. The
row period is the number of cycles from a row's first accepted input beat to the next row's
first accepted input beat when input and output never stall; it is also the number of cycles
from the first input beat to the last output beat, inclusive.
"""

from hw.checks import check_count

__all__ = ["softmax_cycles", "layernorm_cycles", "entropy_cycles", "residual_cycles",
           "SOFTMAX_OVERHEAD", "LAYERNORM_OVERHEAD", "ENTROPY_OVERHEAD", "RESIDUAL_LATENCY"]

# Softmax: load pass (beats), sum pass reads (beats + 1 to leave), wait (10 cycles: the sum pass
# drains, its sum and reciprocal settle while the output pass's first reads are under way),
# output pass (beats + 19: read, codes, fixed point, -d, two for u, four for 2^-u, e, two for
# e mask, two for the product with r1, three in the requantizer; + 1 output register); for
# n <= 4 lanes (see softmax_cycles).
SOFTMAX_OVERHEAD = 30
# LayerNorm: load pass (beats), scale (15 cycles: the pass-1 pipeline drains, D and its inverse
# square root settle while the first reads of pass 2 are under way), output pass (beats + 14
# pipeline stages: read, codes, integers, L x, L x - S1, two for the product with r1, z, two
# for gamma z, y, three in the requantizer; + 1 output register).
LAYERNORM_OVERHEAD = 30
# Entropy: load pass (beats), sum pass (beats + 15 pipeline stages: read, codes, fixed point,
# -d, two for u, four for 2^-u, e, two for the term, two adder-tree stages; + 1 to leave), result
# (12 cycles: the reciprocal's 9 stages, two for the product with T, the shift; the last loads
# the result register), result transfer; for n <= 4 lanes (see entropy_cycles).
ENTROPY_OVERHEAD = 29
# Residual add: sum register, three requantizer stages, output register (hw.residual.LATENCY).
RESIDUAL_LATENCY = 5


def _max_wait(n):
    """Cycles the second pass waits for the beat's maximum over ``n`` lanes: its tree has one
    pipeline stage per compare level (``ceil(log2 n)``), at least two, and the pass is timed for
    two (n = 8: 1, n = 16: 2)."""
    check_count("n", n)
    return max(0, (n - 1).bit_length() - 2)


def softmax_cycles(beats, n):
    """Row period of :class:`hw.softmax.Softmax` with ``n`` lanes: three passes plus a fixed
    overhead, plus the sum pass's wait for the beat's maximum (n = 8: +1, n = 16: +2)."""
    return 3 * check_count("beats", beats) + SOFTMAX_OVERHEAD + _max_wait(n)


def layernorm_cycles(beats):
    """Row period of :class:`hw.layernorm.LayerNorm`: load pass, variance and inverse square
    root, output pass."""
    return 2 * check_count("beats", beats) + LAYERNORM_OVERHEAD


def entropy_cycles(beats, n):
    """Row period of :class:`hw.entropy.EntropyExit` with ``n`` lanes: load pass, sum pass, one
    result cycle.

    The beat's maximum takes one pipeline stage per compare level (``ceil(log2 n)``), at least
    two; the sum pass waits one cycle for each level past the second (n = 8: +1, n = 16: +2).
    """
    return 2 * check_count("beats", beats) + ENTROPY_OVERHEAD + _max_wait(n)


def residual_cycles(beats):
    """Cycles from the first input beat to the last output beat of :class:`hw.residual.ResidualAdd`
    (a stream with no row structure: one beat per cycle after RESIDUAL_LATENCY cycles)."""
    return check_count("beats", beats) + RESIDUAL_LATENCY
