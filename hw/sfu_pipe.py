"""Pipeline helpers shared by the special-function units: register cuts, delays, tree reductions.

A *cut* is a function ``cut(signals) -> signals`` that returns registered copies of its
arguments; the kernels of :mod:`hw.sfu_math` take one and call it at each of their stage
boundaries, so the same kernel is combinational (no cut) or pipelined (a cut from
:func:`register_cut`) with the same arithmetic.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, ResetSignal, Signal, Value, signed

from hw.checks import check_count

__all__ = ["CHUNK", "MUL_CUTS", "DSP_TARGETS", "MAX_TREE_MIN_STAGES", "dsp_target",
           "register_cut", "delay", "Flight", "tree", "max_tree_stages", "mul"]

# Operand chunk of :func:`mul`: a 17-bit chunk, zero-extended when the other one is signed, is an
# 18-bit operand of the ECP5's MULT18X18D (and fits the iCE40's 16x16 SB_MAC16 in two).
CHUNK = 17
# Cuts of :func:`mul`: the chunk products, then their sum.
MUL_CUTS = 2
# A beat's maximum (softmax, entropy unit) takes one stage per compare level (each compare drives
# a wide multiplexer select, too slow twice in one cycle at 100 MHz), and at least two: the units'
# second pass is timed so that its first value reaches the subtraction just as the maximum of a
# two-stage tree is final, so each level past the second delays that pass by one cycle.
MAX_TREE_MIN_STAGES = 2


# DSP primitives the cuts can register chunk products in (see :func:`register_cut`).
DSP_TARGETS = ("ecp5",)


def dsp_target(platform, unit=None):
    """The DSP primitive for ``platform``: ``"ecp5"`` on an Amaranth ECP5 platform (unless it
    sets ``edgebert_dsp = False``, as ``edgebert synth --no-dsp`` does, or lists ``unit`` in
    ``edgebert_lut_units``, as ``edgebert synth --lut-unit UNIT`` does), else ``None``.

    Without a platform (``edgebert verilog``, the simulations) the Verilog stays generic.
    """
    if platform is None or not getattr(platform, "edgebert_dsp", True):
        return None
    if unit is not None and unit in getattr(platform, "edgebert_lut_units", ()):
        return None
    return "ecp5" if getattr(platform, "family", None) == "ecp5" else None


def _is_shift(value):
    """Whether ``value`` is a constant 0 or power of two: a product by it needs no multiplier.

    Yosys maps any other product to a DSP block, a product by a constant too, so those are
    instantiated like the others."""
    try:
        v = Const.cast(value).value
    except TypeError:
        return False
    return v & (v - 1) == 0 if v >= 0 else False


def _mult18x18d(m, a, b, en):
    """``a * b`` registered in the output register of an ECP5 MULT18X18D (clock enable ``en``,
    synchronous reset from the domain's reset, if it has one, like a fabric register of the same
    cut).

    Both operands go in as signed 18-bit values (an unsigned operand of up to 17 bits is
    zero-extended), so the 36-bit product is exact; the result has the shape of ``a * b``.
    ``sim/models/MULT18X18D.v`` models the configuration used here for the simulations.
    """
    shape = (a * b).shape()
    for x in (a, b):
        if len(x) > (18 if x.shape().signed else 17):
            raise ValueError(f"a MULT18X18D operand holds 18 signed or 17 unsigned bits, not "
                             f"{x.shape()}")
    a18, b18 = Signal(signed(18), name="dsp_a"), Signal(signed(18), name="dsp_b")
    p = Signal(signed(36), name="dsp_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    ports = {f"i_A{i}": a18[i] for i in range(18)}
    ports |= {f"i_B{i}": b18[i] for i in range(18)}
    ports |= {f"i_C{i}": Const(0, 1) for i in range(18)}
    ports |= {f"o_P{i}": p[i] for i in range(36)}
    m.submodules += Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="NONE", p_REG_INPUTB_CLK="NONE", p_REG_INPUTC_CLK="NONE",
        p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0",
        p_REG_OUTPUT_RST="RST0", p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC",
        p_MULT_BYPASS="DISABLED", p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",
        p_HIGHSPEED_CLK="NONE",
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1), i_CLK0=ClockSignal(), i_RST0=ResetSignal(allow_reset_less=True),
        i_CE0=Const(1, 1) if en is None else en,
        **ports)
    q = Signal(shape, name="dsp_q")
    m.d.comb += q.eq(p[:shape.width].as_signed() if shape.signed else p[:shape.width])
    return q


def register_cut(m, en=None, dsp=None):
    """A cut that registers its signals every cycle, or only in cycles where ``en`` is high.

    Its ``products(pairs)`` returns the registered products ``a * b`` of ``(a, b)`` pairs, one
    cut after them (what :func:`mul` uses for its chunk products). With ``dsp = "ecp5"`` (see
    :func:`dsp_target`) each product is registered in its MULT18X18D's own output register
    instead of a fabric register, so no routing follows the DSP block before the register; the
    timing is the same, the values too.
    """
    if dsp is not None and dsp not in DSP_TARGETS:
        raise ValueError(f"dsp must be one of {', '.join(DSP_TARGETS)} or None, not {dsp!r}")

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

    def products(pairs):
        pairs = [(Value.cast(a), Value.cast(b)) for a, b in pairs]
        generic = [i for i, (a, b) in enumerate(pairs)
                   if dsp is None or _is_shift(a) or _is_shift(b)]
        out = dict(zip(generic, cut([pairs[i][0] * pairs[i][1] for i in generic]), strict=True))
        for i, (a, b) in enumerate(pairs):
            if i not in out:
                out[i] = _mult18x18d(m, a, b, en)
        return [out[i] for i in range(len(pairs))]

    cut.products = products
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
    check_count("stages", stages)
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


def max_tree_stages(n):
    """Pipeline stages of the beat's maximum over ``n`` lanes (a :func:`tree` of compare and
    select): one per compare level, ``ceil(log2 n)``, at least ``MAX_TREE_MIN_STAGES``."""
    return max(MAX_TREE_MIN_STAGES, (n - 1).bit_length())


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

    terms = sorted(((oa + ob, (ca, cb)) for oa, ca in chunks(a) for ob, cb in chunks(b)),
                   key=lambda t: t[0])
    pairs = [pair for _, pair in terms]
    # A cut from register_cut registers the products in the DSP blocks where it can.
    if hasattr(cut, "products"):
        products = cut.products(pairs)
    else:
        products = cut([x * y for x, y in pairs])
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
