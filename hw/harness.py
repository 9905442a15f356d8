"""Synthesis harness: puts any generated block on an FPGA with two pins, timed register to register.

A generated block has far more ports than a board has pins, and a combinational block has no
clock at all. :class:`SynthHarness` wraps it so that place-and-route times exactly the paths
through the block and optimises nothing away:

- **Inputs.** Every input bit of the block (all ``In`` members of its signature, flattened) is a
  flip-flop of one long shift register fed from a single input pin (``din``). Each bit therefore
  changes independently of the others, so synthesis cannot treat any input as constant, and the
  block's inputs come straight from registers (the shift itself costs no logic).
- **Outputs.** Every output bit is registered, then XOR-reduced to one bit in a pipelined tree of
  4-input XORs (one LUT4 and one register per node), so every output bit stays observable and the
  harness never adds more than one LUT level between two registers. The final bit drives one
  output pin (``dout``).

The clock-to-clock paths are therefore: shift register -> block -> output registers (the block's
own logic, plus its internal pipeline registers if it has any) and harness paths of at most one
LUT. The achieved Fmax is that of the block unless the block is faster than a single LUT4.

By construction the harness adds ``in_bits + out_bits + xor_registers`` flip-flops and
``xor_registers`` LUTs (see :attr:`SynthHarness.overhead`); the block's own counts are reported
separately by the flow (the block keeps its hierarchy through synthesis).
"""

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value, unsigned
from amaranth.lib import io, wiring

from hw.checks import checked_construction

__all__ = ["SynthHarness", "port_bits"]

_XOR_FANIN = 4


def port_bits(dut):
    """The block's flattened ports as ``(inputs, outputs)``, each a list of ``(name, value)``."""
    if not isinstance(dut, wiring.Component):
        raise TypeError(f"block must be an amaranth.lib.wiring.Component, not {dut!r}")
    inputs, outputs = [], []
    for path, member, value in dut.signature.flatten(dut):
        name = "__".join(str(p) for p in path)
        (inputs if member.flow == wiring.In else outputs).append((name, value))
    return inputs, outputs


def _xor_tree_sizes(width):
    """Widths of each registered level of the XOR tree that reduces ``width`` bits to one."""
    sizes = []
    while width > 1:
        width = -(-width // _XOR_FANIN)
        sizes.append(width)
    return sizes


class SynthHarness(Elaboratable):
    """Wraps ``dut`` for an FPGA build: shift-register inputs, registered and XOR-reduced outputs.

    Parameters
    ----------
    dut : wiring.Component
        The block under synthesis; becomes the submodule ``dut``.

    Attributes
    ----------
    din : Signal(1), in
        Serial input; shifted into the input register chain every clock.
    dout : Signal(1), out
        XOR of every registered output bit (pipelined).

    Without a platform, ``din`` and ``dout`` are plain signals (for simulation); with one, they
    are taken from the platform's ``button`` 0 and ``led`` 0 resources.
    """

    def __init__(self, *, dut):
        with checked_construction(self):
            try:
                inputs, outputs = port_bits(dut)
                self.in_bits = sum(len(Value.cast(v)) for _, v in inputs)
                self.out_bits = sum(len(Value.cast(v)) for _, v in outputs)
                if self.in_bits == 0:
                    raise ValueError(f"block {type(dut).__name__} must have at least one input bit")
                if self.out_bits == 0:
                    raise ValueError(
                        f"block {type(dut).__name__} must have at least one output bit")
            except Exception:
                # The refused block will never be elaborated either: keep its warning quiet too.
                if isinstance(dut, Elaboratable):
                    dut._MustUse__used = True
                raise
        self.dut = dut
        self._inputs = inputs
        self._outputs = outputs
        self.din = Signal()
        self.dout = Signal()

    @property
    def overhead(self):
        """Flip-flops and LUTs the harness adds around the block, by construction."""
        xor_regs = sum(_xor_tree_sizes(self.out_bits))
        return {"ffs": self.in_bits + self.out_bits + xor_regs, "luts": xor_regs}

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        din, dout = self.din, self.dout
        if platform is not None:
            m.submodules.din_buf = din_buf = io.Buffer("i", platform.request("button", 0, dir="-"))
            m.submodules.dout_buf = dout_buf = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += [din.eq(din_buf.i), dout_buf.o.eq(dout)]

        chain = Signal(unsigned(self.in_bits))
        m.d.sync += chain.eq((chain << 1) | din)
        pos = 0
        for _, value in self._inputs:
            width = len(Value.cast(value))
            m.d.comb += value.eq(chain[pos:pos + width])
            pos += width

        level = Signal(unsigned(self.out_bits))
        m.d.sync += level.eq(Cat(*(v for _, v in self._outputs)))
        for i, width in enumerate(_xor_tree_sizes(self.out_bits)):
            nxt = Signal(unsigned(width), name=f"xor{i}")
            for j in range(width):
                m.d.sync += nxt[j].eq(level[j * _XOR_FANIN:(j + 1) * _XOR_FANIN].xor())
            level = nxt
        m.d.comb += dout.eq(level[0])
        return m
