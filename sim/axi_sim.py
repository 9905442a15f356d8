"""Amaranth-simulator bus masters for the self-checks of the bus slaves (no Verilog).

The cocotb testbenches (``sim/tb_csr.py``, ``sim/tb_axi_mem.py``, with cocotbext-axi and random
back-pressure) are the thorough check; these run one transaction at a time in seconds.
"""

import random

from amaranth.sim import Simulator

from hw.axi import Burst, Resp
from hw.regmap import BUS_BYTES, Access, windows

__all__ = ["axil_write", "axil_read", "csr_selfcheck", "MemoryModel", "axi_write", "axi_read",
           "axi_mem_selfcheck"]

_TIMEOUT = 1000


async def _wait(ctx, sig, what):
    for _ in range(_TIMEOUT):
        if ctx.get(sig):
            return
        await ctx.tick()
    raise AssertionError(f"no {what} within {_TIMEOUT} cycles")


async def axil_write(ctx, bus, addr, value, strb=0xF):
    """One AXI4-Lite write (AW and W together); returns the response code."""
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, value)
    ctx.set(bus.wstrb, strb)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    aw = w = False
    for _ in range(_TIMEOUT):
        aw_now, w_now = ctx.get(bus.awready), ctx.get(bus.wready)
        await ctx.tick()
        aw, w = aw or aw_now, w or w_now
        ctx.set(bus.awvalid, not aw)
        ctx.set(bus.wvalid, not w)
        if aw and w:
            break
    else:
        raise AssertionError("AW/W not accepted")
    ctx.set(bus.bready, 1)
    await _wait(ctx, bus.bvalid, "write response")
    resp = ctx.get(bus.bresp)
    await ctx.tick()
    ctx.set(bus.bready, 0)
    return resp


async def axil_read(ctx, bus, addr):
    """One AXI4-Lite read; returns ``(data, response code)``."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await _wait(ctx, bus.arready, "AR ready")
    await ctx.tick()
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    await _wait(ctx, bus.rvalid, "read data")
    got = (ctx.get(bus.rdata), ctx.get(bus.rresp))
    await ctx.tick()
    ctx.set(bus.rready, 0)
    return got


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def csr_selfcheck(dut):
    """Every register reads its reset value; RW registers keep a legal write; read-only,
    unmapped and reserved-bit writes answer SLVERR and change nothing. Returns a summary."""
    rm, bus = dut.regmap, dut.s_axil
    done, refused = [], []

    async def bench(ctx):
        for r in rm:
            got = await axil_read(ctx, bus, r.offset)
            if got != (r.reset, Resp.OKAY):
                raise AssertionError(f"{r.name} reads {got[0]:#x} ({got[1]}), not its reset "
                                     f"{r.reset:#x}")
            done.append(r.name)
        for r in rm:
            rw = [f for f in r.fields if f.access is Access.RW]
            if not rw or len(rw) != len(r.fields):
                continue
            value = sum((f.maximum if f.maximum is not None else 1) << f.lsb for f in rw)
            if await axil_write(ctx, bus, r.offset, value) != Resp.OKAY:
                raise AssertionError(f"{r.name}: legal write {value:#x} refused")
            reserved = ~r.used_mask & 0xFFFFFFFF
            if reserved:
                if await axil_write(ctx, bus, r.offset, reserved) != Resp.SLVERR:
                    raise AssertionError(f"{r.name}: reserved bits {reserved:#x} accepted")
                refused.append(r.name)
            got = await axil_read(ctx, bus, r.offset)
            if got != (value, Resp.OKAY):
                raise AssertionError(f"{r.name} reads {got[0]:#x} after writing {value:#x}")
            done.append(r.name)
        magic = rm["MAGIC"]
        if await axil_write(ctx, bus, magic.offset, 0) != Resp.SLVERR:
            raise AssertionError("a write to read-only MAGIC was accepted")
        refused.append("MAGIC")
        unmapped = next(a for a in range(0, 1 << 12, 4) if rm.by_offset(a) is None)
        if await axil_read(ctx, bus, unmapped) != (0, Resp.SLVERR):
            raise AssertionError(f"unmapped offset {unmapped:#x} did not answer SLVERR with 0")
        refused.append("unmapped")
        got = await axil_read(ctx, bus, rm["CSR_ERRORS"].offset)
        if got[0] & 0xFFFF != len(refused):
            raise AssertionError(f"CSR_ERRORS reads {got[0]:#x} after {len(refused)} refusals")
        done.append("errors")

    _run(dut, bench)
    return f"{len(done)} register checks (reset values, RW, refused writes) passed"


class MemoryModel:
    """The memories behind :class:`hw.axi_mem.AxiMem` in Python: write ports with byte
    enables, read ports with one cycle of latency. :meth:`step` runs once per clock edge."""

    def __init__(self, dut):
        self.dut = dut
        self.words = {w.memory: [0] * w.depth for w in windows(dut.memmap)}
        self._pending = {}

    def step_before(self, ctx):
        """Sample the ports (before the edge)."""
        self._pending = {}
        for w in windows(self.dut.memmap):
            wr, rd = getattr(self.dut, f"{w.memory}_wr"), getattr(self.dut, f"{w.memory}_rd")
            en, addr = ctx.get(wr.en), ctx.get(wr.addr)
            if en:
                old, new = self.words[w.memory][addr], ctx.get(wr.data)
                mask = sum(0xFF << 8 * b for b in range(w.word_bytes) if en >> b & 1)
                self.words[w.memory][addr] = (old & ~mask) | (new & mask)
            if ctx.get(rd.en):
                self._pending[w.memory] = ctx.get(rd.addr)

    def step_after(self, ctx):
        """Present read data (after the edge)."""
        for mem, addr in self._pending.items():
            ctx.set(getattr(self.dut, f"{mem}_rd").data, self.words[mem][addr])


async def _cycle(ctx, model):
    model.step_before(ctx)
    await ctx.tick()
    model.step_after(ctx)


async def axi_write(ctx, dut, model, addr, beats, *, size=2, burst=Burst.INCR, awid=1):
    """One AXI4 write burst of 32-bit ``beats`` (full strobes); returns the response code."""
    bus = dut.s_axi
    for sig, v in ((bus.awaddr, addr), (bus.awlen, len(beats) - 1), (bus.awsize, size),
                   (bus.awburst, burst), (bus.awid, awid), (bus.awvalid, 1)):
        ctx.set(sig, v)
    while not ctx.get(bus.awready):
        await _cycle(ctx, model)
    await _cycle(ctx, model)
    ctx.set(bus.awvalid, 0)
    for i, b in enumerate(beats):
        for sig, v in ((bus.wdata, b), (bus.wstrb, 0xF), (bus.wlast, i == len(beats) - 1),
                       (bus.wvalid, 1)):
            ctx.set(sig, v)
        while not ctx.get(bus.wready):
            await _cycle(ctx, model)
        await _cycle(ctx, model)
    ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    while not ctx.get(bus.bvalid):
        await _cycle(ctx, model)
    resp, bid = ctx.get(bus.bresp), ctx.get(bus.bid)
    await _cycle(ctx, model)
    ctx.set(bus.bready, 0)
    assert bid == awid, f"bid {bid} != awid {awid}"
    return resp


async def axi_read(ctx, dut, model, addr, count, *, size=2, burst=Burst.INCR, arid=2):
    """One AXI4 read burst; returns ``([data], [response codes])``."""
    bus = dut.s_axi
    for sig, v in ((bus.araddr, addr), (bus.arlen, count - 1), (bus.arsize, size),
                   (bus.arburst, burst), (bus.arid, arid), (bus.arvalid, 1)):
        ctx.set(sig, v)
    while not ctx.get(bus.arready):
        await _cycle(ctx, model)
    await _cycle(ctx, model)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    out, resps = [], []
    while len(out) < count:
        if ctx.get(bus.rvalid):
            out.append(ctx.get(bus.rdata))
            resps.append(ctx.get(bus.rresp))
            assert ctx.get(bus.rid) == arid
            assert ctx.get(bus.rlast) == (len(out) == count), "rlast on the wrong beat"
        await _cycle(ctx, model)
    ctx.set(bus.rready, 0)
    return out, resps


def axi_mem_selfcheck(dut):
    """A burst into and out of every memory equals what was written; a burst past a memory's
    end answers SLVERR, writes nothing and raises ``load_error``. Returns a summary."""
    model = MemoryModel(dut)
    rng = random.Random(5)
    counted = []

    async def bench(ctx):
        for w in windows(dut.memmap):
            beats = min(w.depth * w.lanes, 24)
            want = []  # random data, zero in the padding bytes
            for i in range(beats):
                lane_bytes = min(BUS_BYTES, max(0, w.word_bytes - BUS_BYTES * (i % w.lanes)))
                want.append(rng.getrandbits(32) & ((1 << 8 * lane_bytes) - 1))
            if await axi_write(ctx, dut, model, w.base, want) != Resp.OKAY:
                raise AssertionError(f"{w.memory}: in-range burst refused")
            got, resps = await axi_read(ctx, dut, model, w.base, beats)
            if got != want or set(resps) != {Resp.OKAY}:
                raise AssertionError(f"{w.memory}: read {got} ({resps}), wrote {want}")
            counted.append(beats)
            if ctx.get(dut.load_error):
                raise AssertionError(f"{w.memory}: load_error after an in-range burst")
        last = windows(dut.memmap)[-1]
        before = list(model.words[last.memory])
        resp = await axi_write(ctx, dut, model, last.data_end - 4, [1, 2])
        if resp != Resp.SLVERR or model.words[last.memory] != before:
            raise AssertionError(f"a burst past the end of {last.memory} answered {resp} or "
                                 f"wrote")
        if not ctx.get(dut.load_error) or ctx.get(dut.load_error_addr) != last.data_end:
            raise AssertionError(f"load_error {ctx.get(dut.load_error)} at "
                                 f"{ctx.get(dut.load_error_addr):#x}, not {last.data_end:#x}")
        counted.append(1)

    _run(dut, bench)
    return (f"{sum(counted)} beats into and out of {len(counted) - 1} memories and a refused "
            f"burst behave")
