"""DVFS controller ([H6]): entropy bins → (voltage code, frequency code), programmable table.

The layer-1 entropy (from :class:`hw.entropy.EntropyExit`, ``LN_FRAC`` fractional bits) selects
a bin by comparison with ``bins - 1`` programmable edges: ``bin = #{i : h >= edge[i]}``; the
bin's (voltage code, frequency code) pair drives the ``vcode``/``fcode`` ports and the status.
Bit-exact to :func:`sw.golden.dvfs.dvfs_lookup`; the table comes from :func:`sw.dvfs.build_table`.
"""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.checks import check_int, checked_construction
from hw.registry import register_block
from hw.sfu_tables import H_BITS

__all__ = ["DvfsController", "status_layout"]


def status_layout(bins, vcode_bits, fcode_bits):
    """Status word: the decision is ``valid`` once an entropy arrived; ``updates`` counts them."""
    return data.StructLayout({"valid": 1, "bin": range(bins), "vcode": vcode_bits,
                              "fcode": fcode_bits, "updates": 16})


class DvfsController(wiring.Component):
    """Programmable entropy-bin table driving the voltage and frequency codes.

    Parameters
    ----------
    bins : int
        Number of bins (2 .. 64).
    vcode_bits, fcode_bits : int
        Widths of the voltage and frequency codes (1 .. 16).

    Attributes
    ----------
    h : stream, in
        Entropy (``H_BITS`` wide, ``LN_FRAC`` fractional bits); always ready.
    table_we : Signal(1), in
        Write ``table_edge``, ``table_vcode``, ``table_fcode`` into entry ``table_addr``.
    active : Signal(range(bins + 1)), in
        Bins in use (1 .. bins; default ``bins``): only the first ``active - 1`` edges count.
    table_addr : Signal(range(bins)), in
        Entry to write; the edge of entry ``i`` is the lower bound of bin ``i + 1`` (the edge of
        the last entry is not used).
    table_edge : Signal(H_BITS), in
    table_vcode : Signal(vcode_bits), in
    table_fcode : Signal(fcode_bits), in
    vcode : Signal(vcode_bits), out
        Voltage code of the latest decision (0 after reset).
    fcode : Signal(fcode_bits), out
        Frequency code of the latest decision (0 after reset).
    status : Signal(status_layout(...)), out
        Latest decision, its bin and the number of decisions made.
    """

    def __init__(self, *, bins=8, vcode_bits=4, fcode_bits=4):
        with checked_construction(self):
            for name, v, lo, hi in (("bins", bins, 2, 64), ("vcode_bits", vcode_bits, 1, 16),
                                    ("fcode_bits", fcode_bits, 1, 16)):
                check_int(name, v, lo=lo, hi=hi, span=True)
        self._bins, self._vbits, self._fbits = bins, vcode_bits, fcode_bits
        super().__init__({
            "h": In(stream.Signature(H_BITS)),
            "table_we": In(1),
            "active": In(range(bins + 1), init=bins),
            "table_addr": In(range(bins)),
            "table_edge": In(H_BITS),
            "table_vcode": In(vcode_bits),
            "table_fcode": In(fcode_bits),
            "vcode": Out(vcode_bits),
            "fcode": Out(fcode_bits),
            "status": Out(status_layout(bins, vcode_bits, fcode_bits)),
        })

    @property
    def bins(self):
        return self._bins

    def elaborate(self, platform):
        m = Module()
        b = self._bins
        edges = Array(Signal(H_BITS, name=f"edge{i}") for i in range(b))
        vcodes = Array(Signal(self._vbits, name=f"vcode{i}") for i in range(b))
        fcodes = Array(Signal(self._fbits, name=f"fcode{i}") for i in range(b))
        with m.If(self.table_we):
            m.d.sync += [edges[self.table_addr].eq(self.table_edge),
                         vcodes[self.table_addr].eq(self.table_vcode),
                         fcodes[self.table_addr].eq(self.table_fcode)]
        chosen = Signal(range(b))
        m.d.comb += chosen.eq(sum((self.h.payload >= edges[i]) & (i + 1 < self.active)
                                 for i in range(b - 1)))
        m.d.comb += [self.h.ready.eq(1), self.vcode.eq(self.status.vcode),
                     self.fcode.eq(self.status.fcode)]
        with m.If(self.h.valid):
            m.d.sync += [self.status.valid.eq(1), self.status.bin.eq(chosen),
                         self.status.vcode.eq(vcodes[chosen]), self.status.fcode.eq(fcodes[chosen]),
                         self.status.updates.eq(self.status.updates + 1)]
        return m


register_block(
    "dvfs", "DVFS controller: programmable entropy bins to voltage and frequency codes",
    build=lambda bins, vcode_bits, fcode_bits: DvfsController(
        bins=bins, vcode_bits=vcode_bits, fcode_bits=fcode_bits),
    params={"bins": 8, "vcode_bits": 4, "fcode_bits": 4},
)
