"""Test top: :class:`hw.axi_mem.AxiMem` with an ``amaranth.lib.memory.Memory`` per memory.

The accelerator top connects the same ports to its own memories (shared with the datapath);
this wrapper gives the testbench real memories behind the bus and nothing else.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.axi import axi4_signature
from hw.axi_mem import AxiMem
from hw.regmap import windows

__all__ = ["AxiMemTop"]


class AxiMemTop(wiring.Component):
    """:class:`AxiMem` over real memories; the ports are those of :class:`AxiMem` without the
    memory ports."""

    def __init__(self, *, memmap, id_width=4):
        self._axi = AxiMem(memmap=memmap, id_width=id_width)
        self._memmap = memmap
        bits = self._axi.addr_bits
        super().__init__({"s_axi": In(axi4_signature(bits, id_width)), "load_error": Out(1),
                          "load_error_addr": Out(bits), "clear_load_error": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.axi = axi = self._axi
        wiring.connect(m, wiring.flipped(self.s_axi), axi.s_axi)
        m.d.comb += [self.load_error.eq(axi.load_error),
                     self.load_error_addr.eq(axi.load_error_addr),
                     axi.clear_load_error.eq(self.clear_load_error)]
        for w in windows(self._memmap):
            mem = Memory(shape=8 * w.word_bytes, depth=w.depth, init=[])
            m.submodules[f"{w.memory}_mem"] = mem
            wiring.connect(m, getattr(axi, f"{w.memory}_wr"), mem.write_port(granularity=8))
            wiring.connect(m, getattr(axi, f"{w.memory}_rd"), mem.read_port())
        return m
