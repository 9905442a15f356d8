"""Pipeline helpers shared by the special-function units: register cuts, delays, tree reductions.

A *cut* is a function ``cut(signals) -> signals`` that returns registered copies of its
arguments; the kernels of :mod:`hw.sfu_math` take one and call it at each of their stage
boundaries, so the same kernel is combinational (no cut) or pipelined (a cut from
:func:`register_cut`) with the same arithmetic.
"""

from amaranth.hdl import Cat, Const, Signal, Value

__all__ = ["CHUNK", "MUL_CUTS", "register_cut", "delay", "Flight", "tree", "mul"]

# Operand chunk of :func:`mul`: a 17-bit chunk, zero-extended when the other one is signed, is an
# 18-bit operand of the ECP5's MULT18X18D (and fits the iCE40's 16x16 SB_MAC16 in two).
CHUNK = 17
# Cuts of :func:`mul`: the chunk products, then their sum.
MUL_CUTS = 2


def register_cut(m, en=None):
    """A cut that registers its signals every cycle, or only in cycles where ``en`` is high."""
    def cut(signals):
        out = []
        for x in signals:
            x = Value.cast(x)
            name = f"{x.name}_q" if isinstance(x, Signal) else "cut_q"
            out.append(Signal(x.shape(), name=name))
        stmts = [o.eq(x) for o, x in zip(out, signals, strict=True)]
        if en is None:
            m.d.sync += stmts
        else:
            with m.If(en):
                m.d.sync += stmts
        return out
    return cut


def delay(cut, signals, cycles):
    """``signals`` delayed by ``cycles`` applications of ``cut``."""
    for _ in range(cycles):
        signals = cut(signals)
    return signals


class Flight:
    """The valid bits of a pass's pipeline: :meth:`stage` carries a valid bit and its payload
    through ``cut``, and :attr:`any` is high while any stage holds a value (the pass is over
    when it is low). ``first`` is the valid bit of the pass's first stage."""

    def __init__(self, cut, first):
        self._cut = cut
        self._valids = [first]

    def stage(self, valid, signals, cycles=1):
        """``(valid, signals)`` after ``cycles`` stages."""
        for _ in range(cycles):
            valid, *signals = self._cut([valid, *signals])
            self._valids.append(valid)
        return valid, signals

    @property
    def any(self):
        return Cat(*self._valids).any()


def tree(cut, values, op, stages):
    """Reduce ``values`` with the binary ``op`` as a balanced tree, cut into ``stages`` stages.

    The ``ceil(log2 len(values))`` levels are spread evenly over the stages (a stage may hold
    none when there are fewer levels than stages), and each stage ends in ``cut``, so the
    result follows its inputs by exactly ``stages`` cuts whatever the number of values.
    """
    if not values:
        raise ValueError("tree needs at least one value")
    if not isinstance(stages, int) or stages < 1:
        raise ValueError(f"stages must be a positive integer, not {stages!r}")
    levels = (len(values) - 1).bit_length()
    level = 0
    for stage in range(1, stages + 1):
        while level < -(-levels * stage // stages):
            values = [op(values[i], values[i + 1]) if i + 1 < len(values) else values[i]
                      for i in range(0, len(values), 2)]
            level += 1
        values = cut(values)
    (result,) = values
    return result


def mul(cut, a, b):
    """``a * b`` of two values of either signedness, cut after the products of ``CHUNK``-bit
    operand chunks and after their sum (``MUL_CUTS`` cuts), so no carry chain follows a DSP
    block in the same cycle.

    A wide product left to synthesis becomes several DSP blocks whose outputs are added in the
    same cycle; here each chunk product is registered, then the products are packed into rows
    (products whose bits do not overlap are concatenated, no adder) and the rows summed as a
    tree in one stage. The result is exact, of the shape of ``a * b``.
    """
    a, b = Value.cast(a), Value.cast(b)
    shape = (a * b).shape()

    def trunc(x):
        x = x[:shape.width]
        return x.as_signed() if shape.signed else x

    def chunks(x):
        count = max(1, -(-len(x) // CHUNK))
        out = []
        for i in range(count):
            c = x[i * CHUNK:min((i + 1) * CHUNK, len(x))]
            out.append((i * CHUNK, c.as_signed() if x.shape().signed and i == count - 1 else c))
        return out

    terms = sorted(((oa + ob, ca * cb) for oa, ca in chunks(a) for ob, cb in chunks(b)),
                   key=lambda t: t[0])
    products = cut([p for _, p in terms])
    # Rows of non-overlapping products; only a row's top product may be negative (signed).
    rows = []
    for (offset, _), p in zip(terms, products, strict=True):
        for row in rows:
            end, last = row[-1][0] + len(row[-1][1]), row[-1][1]
            if end <= offset and not last.shape().signed:
                row.append((offset, p))
                break
        else:
            rows.append([(offset, p)])
    values = []
    for row in rows:
        parts, at = [], row[0][0]
        for offset, p in row:
            parts += [Const(0, offset - at), p] if offset > at else [p]
            at = offset + len(p)
        v = Cat(*parts)
        values.append(trunc((v.as_signed() if row[-1][1].shape().signed else v) << row[0][0]))
    return tree(cut, values, lambda x, y: trunc(x + y), 1)
