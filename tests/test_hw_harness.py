"""The synthesis harness: inputs from one shift register, outputs XOR-reduced, nothing lost."""

import random

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.harness import SynthHarness, port_bits


class _Comb(wiring.Component):
    """Two inputs of odd widths, two outputs: enough to see bit order and the XOR tree."""

    a: In(5)
    b: In(3)
    s: Out(6)
    p: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.s.eq(self.a + self.b), self.p.eq(self.a * self.b)]
        return m


def _parity(x):
    return bin(x).count("1") & 1


def test_ports_and_overhead():
    h = SynthHarness(dut=_Comb())
    assert (h.in_bits, h.out_bits) == (8, 14)
    # 14 output bits -> XOR levels of 4 and 1 registers.
    assert h.overhead == {"ffs": 8 + 14 + 4 + 1, "luts": 5}
    ins, outs = port_bits(h.dut)
    Fragment.get(h, None)
    assert [n for n, _ in ins] == ["a", "b"] and [n for n, _ in outs] == ["s", "p"]


def test_shift_register_feeds_inputs_and_xor_tree_sees_every_output():
    h = SynthHarness(dut=_Comb())
    dut = h.dut
    rng = random.Random(3)
    bits = [rng.getrandbits(1) for _ in range(200)]
    checked = 0

    async def tb(ctx):
        nonlocal checked
        chain = 0
        parities = []
        for bit in bits:
            ctx.set(h.din, bit)
            await ctx.tick()
            chain = ((chain << 1) | bit) & 0xFF
            a, b = chain & 0x1F, chain >> 5
            # The block's inputs are exactly the shift register, low bits to the first port.
            assert (ctx.get(dut.a), ctx.get(dut.b)) == (a, b)
            s, p = (a + b) & 0x3F, (a * b) & 0xFF
            parities.append(_parity(s | (p << 6)))
            # dout lags the inputs by the output register and the two XOR levels.
            if len(parities) > 3:
                assert ctx.get(h.dout) == parities[-4]
                checked += 1

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert checked == len(bits) - 3


class _NoInput(wiring.Component):
    o: Out(1)

    def elaborate(self, platform):
        return Module()


def test_bad_blocks():
    with pytest.raises(ValueError, match="must have at least one input bit"):
        SynthHarness(dut=_NoInput())
    with pytest.raises(TypeError, match="must be an amaranth.lib.wiring.Component, not 3"):
        SynthHarness(dut=3)
