"""Small combinational helpers of the matrix engine: word slicing and an "at least k" count."""

from amaranth.hdl import Const

__all__ = ["split", "at_least"]


def split(word, count, width):
    """The ``count`` fields of ``width`` bits of ``word``, field ``t`` at bit ``t·width``."""
    return [word[t * width:(t + 1) * width] for t in range(count)]


def at_least(bits, k):
    """1 when ``k`` or more of ``bits`` are set: a balanced tree of plain logic, no adder."""

    def tree(lo, hi):  # [at least 1, .., at least k] of bits[lo:hi]
        if hi - lo == 1:
            return [bits[lo]] + [Const(0)] * (k - 1)
        mid = (lo + hi) // 2
        a, b = [Const(1), *tree(lo, mid)], [Const(1), *tree(mid, hi)]
        out = []
        for i in range(1, k + 1):
            term = Const(0)
            for j in range(i + 1):
                term = term | (a[j] & b[i - j])
            out.append(term)
        return out

    return tree(0, len(bits))[k - 1]
