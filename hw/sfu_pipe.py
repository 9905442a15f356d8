"""Pipeline helpers shared by the special-function units: register cuts, delays, tree reductions.

A *cut* is a function ``cut(signals) -> signals`` that returns registered copies of its
arguments; the kernels of :mod:`hw.sfu_math` take one and call it at each of their stage
boundaries, so the same kernel is combinational (no cut) or pipelined (a cut from
:func:`register_cut`) with the same arithmetic.
"""

from amaranth.hdl import Signal, Value

__all__ = ["register_cut", "delay", "tree"]


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
