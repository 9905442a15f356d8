"""cocotb drivers for ``amaranth.lib.stream`` ports with random stalls, and lane packing.

A stream port ``x`` of a generated design appears as ``x__valid``, ``x__ready`` and
``x__payload``. Transfers are sampled at the rising edge (the values set after the previous
falling edge); new values are driven after the falling edge.
"""

from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, RisingEdge

__all__ = ["pack", "unpack", "StreamSource", "StreamSink"]


def pack(values, width):
    """Lane values (lane 0 first, least significant) → one integer; signed values wrap."""
    word = 0
    mask = (1 << width) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack(word, width, count, signed=False):
    """One integer → ``count`` lane values of ``width`` bits (lane 0 least significant)."""
    mask = (1 << width) - 1
    out = []
    for i in range(count):
        v = (int(word) >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


class StreamSource:
    """Drives ``<prefix>__valid/payload``; holds valid low on a random ``1 - p_valid`` of cycles."""

    def __init__(self, dut, prefix, rng, p_valid=1.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng = rng
        self.p_valid = p_valid
        self.times = []  # simulation time (ns) of every transfer
        self.valid.value = 0

    async def send(self, beats):
        """Send every beat in order; returns when the last one was accepted."""
        for beat in beats:
            await FallingEdge(self.clk)
            while self.rng.random() >= self.p_valid:
                self.valid.value = 0
                await FallingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = int(beat)
            while True:
                await RisingEdge(self.clk)
                if self.ready.value:
                    self.times.append(get_sim_time("ns"))
                    break
        await FallingEdge(self.clk)
        self.valid.value = 0


class StreamSink:
    """Receives from ``<prefix>__valid/payload``; ``ready`` high on a random ``p_ready`` of cycles.

    ``times`` collects the simulation time (ns) of every transfer.
    """

    def __init__(self, dut, prefix, rng, p_ready=1.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng = rng
        self.p_ready = p_ready
        self.times = []
        self.ready.value = 0

    async def recv(self, count):
        """Collect ``count`` beats (ints)."""
        out = []
        await FallingEdge(self.clk)
        while len(out) < count:
            self.ready.value = 1 if self.rng.random() < self.p_ready else 0
            await RisingEdge(self.clk)
            if self.valid.value and self.ready.value:
                out.append(int(self.payload.value))
                self.times.append(get_sim_time("ns"))
            await FallingEdge(self.clk)
        self.ready.value = 0
        return out
