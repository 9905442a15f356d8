"""Skeleton of the row units (softmax, LayerNorm, entropy): what the three have in common.

A row unit loads a row of beats from its input stream into a row buffer (``LOAD``), waits for
its pipelines with a countdown (``SETTLE``, ``WAIT``, ``NORM``, ``FINISH``), makes passes over
the buffer and, in its output pass (``OUT``), streams the results out through the output
register. It refuses an illegal row size with its ``error`` port and says ``busy`` while a row
is in flight. :class:`RowUnit` adds the ``busy`` and ``error`` ports and the lanes' conversion
to fixed point; :class:`RowControl` holds the row buffer and its beat counter and builds the
shared states. Each unit keeps its own datapath and its own summing pass.
"""

from amaranth.hdl import Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hw.af_fixed import AFToFixed
from hw.sfu_common import LaneUnit

__all__ = ["RowUnit", "RowControl"]


class RowUnit(LaneUnit, wiring.Component):
    """A row unit's component: ``ports`` plus ``busy`` and ``error`` (both ``Out(1)``).

    The subclass sets ``_fmt``, ``_n`` (and ``_fixed`` if it converts to fixed point) and
    ``_max_beats``, the row buffer's depth, before calling ``super().__init__(ports)``.
    """

    def __init__(self, ports):
        super().__init__({**ports, "busy": Out(1), "error": Out(1)})

    def fixed_lanes(self, m, name, codes):
        """Each code of ``codes`` (bias ``bias_in``) exactly in fixed point ([F5]), one
        combinational :class:`~hw.af_fixed.AFToFixed` per lane (submodules ``name0``...)."""
        out = []
        for lane, code in enumerate(codes):
            conv = AFToFixed(fmt=self._fmt, fixed=self._fixed)
            m.submodules[f"{name}{lane}"] = conv
            m.d.comb += [conv.code.eq(code), conv.bias.eq(self.bias_in)]
            out.append(conv.fixed)
        return out


class RowControl:
    """The row buffer, the beat counter and the states every row unit has.

    Parameters
    ----------
    m : Module
    unit : RowUnit
    data : Value
        What a loaded beat writes into the row buffer (one word per beat).
    read_en : Value
        Read enable of the buffer's read port (address: the counter).
    size, limit : Value, int
        The row's size port and its largest legal value: ``error`` is ``size`` 0 or above it.

    Attributes
    ----------
    wr, rd : the row buffer's write and read ports (submodule ``row``).
    count : Signal, beat counter of the current pass (the buffer's address).
    taken : Signal, an input beat is taken this cycle.
    """

    def __init__(self, m, unit, *, data, read_en, size, limit):
        self._m, self._unit = m, unit
        mem = Memory(shape=len(data), depth=unit._max_beats, init=[])
        m.submodules.row = mem
        self.wr = mem.write_port()
        self.rd = mem.read_port()
        self.count = Signal(range(unit._max_beats + 1))
        self.taken = Signal()
        m.d.comb += [
            self.wr.addr.eq(self.count),
            self.wr.data.eq(data),
            self.rd.addr.eq(self.count),
            self.rd.en.eq(read_en),
            unit.error.eq((size == 0) | (size > limit)),
        ]

    def load_state(self, last, then, *, comb=(), on_last=()):
        """``LOAD``: take beats into the buffer while ``error`` is low; after the ``last`` one,
        restart the counter, apply ``on_last`` and go to state ``then``. ``comb`` holds in
        the state besides."""
        m, unit, count = self._m, self._unit, self.count
        with m.State("LOAD"):
            m.d.comb += [unit.i.ready.eq(~unit.error), self.taken.eq(unit.i.valid & ~unit.error),
                         *comb]
            with m.If(self.taken):
                m.d.comb += self.wr.en.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(last):
                    m.d.sync += [count.eq(0), *on_last]
                    m.next = then

    def wait_state(self, name, wait, then, *, comb=(), sync=(), on_done=()):
        """State ``name``: busy while ``wait`` counts down to 1, then ``on_done`` and state
        ``then``. ``comb`` and ``sync`` hold in the state besides."""
        m = self._m
        with m.State(name):
            m.d.comb += [self._unit.busy.eq(1), *comb]
            m.d.sync += [*sync, wait.eq(wait - 1)]
            with m.If(wait == 1):
                m.d.sync += list(on_done)
                m.next = then

    def output_state(self, length, en, valid_a, valid_out, codes, in_flight):
        """``OUT``: the output pass, stalled as a whole with the output stream (``en``). Reads
        ``length`` beats (``valid_a``: a read was issued), loads the output register with
        ``codes`` and ``valid_out`` and returns to ``LOAD`` when nothing is left in flight."""
        m, unit, count = self._m, self._unit, self.count
        with m.State("OUT"):
            m.d.comb += [unit.busy.eq(1), en.eq(~unit.o.valid | unit.o.ready)]
            with m.If(en):
                m.d.sync += [valid_a.eq(count != length), unit.o.valid.eq(valid_out)]
                for j, code in enumerate(codes):
                    m.d.sync += unit.o.payload[j].eq(code)
                with m.If(count != length):
                    m.d.sync += count.eq(count + 1)
                with m.Elif(~in_flight):
                    m.d.sync += count.eq(0)
                    m.next = "LOAD"
