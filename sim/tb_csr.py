"""cocotb testbench: the AXI4-Lite CSR slave (:class:`hw.csr.Csr`) against :mod:`hw.regmap`.

Driven by cocotbext-axi's AxiLiteMaster (and by raw signals for the AW/W orderings); every
register, port and refusal is checked against a model built from the same register map.
"""

import logging
import random
from types import SimpleNamespace

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from hw.memmap import MemoryMap
from hw.regmap import RegisterMap
from sim.scoreboard import Scoreboard, params


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class CsrBench:
    def __init__(self, dut, seed, *, master=True):
        p = params()
        self.dut = dut
        self.rm = RegisterMap(memmap=MemoryMap(**p["memmap"]), fmt=SimpleNamespace(**p["fmt"]))
        self.ports = self.rm.ports()
        self.rng = random.Random(seed)
        self.board = Scoreboard("csr")
        self.master = None
        if master:
            bus = AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")
            self.master = AxiLiteMaster(bus, dut.clk, dut.rst)
            for log in (self.master.write_if.log, self.master.read_if.log):
                log.setLevel(logging.WARNING)
        self.unmapped = [a for a in range(0, 1 << 12, 4) if self.rm.by_offset(a) is None]

    async def start(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        for name, (direction, _) in self.ports.items():
            if direction == "In":
                getattr(self.dut, name).value = 0
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        # Transactions issued right at reset release can be lost (cocotbext-axi#19).
        await ClockCycles(self.dut.clk, 3)

    def backpressure(self, p=0.4):
        m, rng = self.master, self.rng
        for ch in (m.write_if.aw_channel, m.write_if.w_channel, m.write_if.b_channel,
                   m.read_if.ar_channel, m.read_if.r_channel):
            ch.set_pause_generator(_pauses(random.Random(rng.getrandbits(32)), p))

    def pack(self, port, values):
        """The integer of input port ``port`` from ``{field: value}`` (fields LSB first)."""
        word, pos = 0, 0
        for f, w in self.ports[port][1]:
            word |= values.get(f, 0) << pos
            pos += w
        return word

    def unpack(self, port, word):
        out, pos = {}, 0
        for f, w in self.ports[port][1]:
            out[f] = (word >> pos) & ((1 << w) - 1)
            pos += w
        return out

    async def read(self, offset):
        r = await self.master.read(offset, 4)
        return int.from_bytes(r.data, "little"), r.resp

    async def write(self, offset, value, strb=None):
        data = value.to_bytes(4, "little")
        if strb is None:
            return (await self.master.write(offset, data)).resp
        # cocotbext-axi derives wstrb from the bytes written: write the strobed bytes only.
        lo = (strb & -strb).bit_length() - 1
        hi = strb.bit_length()
        return (await self.master.write(offset + lo, data[lo:hi])).resp

    async def expect_read(self, offset, value, resp=AxiResp.OKAY, what=""):
        got, r = await self.read(offset)
        self.board.check(r, resp, f"read response at {offset:#x} {what}")
        self.board.check(got, value, f"read at {offset:#x} {what}")

    async def expect_write(self, offset, value, resp, what=""):
        self.board.check(await self.write(offset, value), resp,
                         f"write {value:#x} at {offset:#x} {what}")


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def reset_values_and_config(dut):
    tb = CsrBench(dut, 1)
    await tb.start()
    for r in tb.rm:
        await tb.expect_read(r.offset, r.reset, what=r.name)
    mm = tb.rm.memmap
    await tb.expect_read(tb.rm["CFG_DEPTH_ACT"].offset, mm.act_words, what="act depth")
    await tb.expect_read(tb.rm["CFG_FORMAT"].offset & 0xFFF, tb.rm["CFG_FORMAT"].reset)
    tb.board.finish(2 * len(tb.rm.registers))


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def rw_round_trip_and_refused_writes(dut):
    tb = CsrBench(dut, 2)
    await tb.start()
    rm, refused = tb.rm, 0
    for reg_name in ("PROG_BASE", "WATCHDOG"):
        r = rm[reg_name]
        (f,) = r.fields
        top = f.maximum if f.maximum is not None else (1 << f.width) - 1
        for value in (0, top, *(tb.rng.randint(0, top) for _ in range(6))):
            await tb.expect_write(r.offset, value << f.lsb, AxiResp.OKAY, reg_name)
            await tb.expect_read(r.offset, value << f.lsb, what=reg_name)
        keep = value << f.lsb
        bad = [v for v in (top + 1, (1 << f.width) - 1) if v > top and v < 1 << f.width]
        reserved = ~r.used_mask & 0xFFFFFFFF
        for v in [*(b << f.lsb for b in bad), *([reserved] if reserved else [])]:
            await tb.expect_write(r.offset, v, AxiResp.SLVERR, f"{reg_name} out of range")
            await tb.expect_read(r.offset, keep, what=f"{reg_name} unchanged")
            refused += 1
    # Byte strobes: only the strobed bytes change.
    wd = rm["WATCHDOG"].offset
    await tb.expect_write(wd, 0x11223344, AxiResp.OKAY)
    tb.board.check(await tb.write(wd, 0xAABBCCDD, strb=0b0110), AxiResp.OKAY, "strobed write")
    await tb.expect_read(wd, 0x11BBCC44, what="after a strobed write")
    # Read-only registers: SLVERR, value unchanged.
    csr_error = 1 << rm["STATUS"].field("csr_error").lsb  # set by the refusals themselves
    for r in rm:
        if r.writable:
            continue
        await tb.expect_write(r.offset, 0xFFFFFFFF, AxiResp.SLVERR, r.name)
        refused += 1
        if r.name == "CSR_ERRORS":
            continue  # counts these refusals: checked below
        want = r.reset | (csr_error if r.name == "STATUS" else 0)
        await tb.expect_read(r.offset, want, what=f"{r.name} unchanged")
    errors = rm["CSR_ERRORS"]
    got, _ = await tb.read(errors.offset)
    tb.board.check(got & 0xFFFF, refused, "CSR_ERRORS.count")
    tb.board.check(got >> 16, rm["PROG_BASE"].offset, "CSR_ERRORS.offset (the first refusal)")
    tb.board.finish(50)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def read_only_ports_and_counter_snapshots(dut):
    tb = CsrBench(dut, 3)
    await tb.start()
    rm = tb.rm
    for _ in range(3):
        driven = {}
        for name, (direction, shape) in tb.ports.items():
            if direction != "In" or name.endswith("_set"):
                continue
            if isinstance(shape, int):
                driven[name] = tb.rng.getrandbits(shape)
            else:
                driven[name] = tb.pack(name, {f: tb.rng.getrandbits(w) for f, w in shape})
            getattr(tb.dut, name).value = driven[name]
        for r in rm:
            if r.port is not None:
                if r.port_lsb:
                    continue
                lo = r
                hi = rm[r.name[:-2] + "HI"]
                await tb.expect_read(lo.offset, driven[r.port] & 0xFFFFFFFF, what=lo.name)
                # HI returns the upper half as it was when LO was read.
                getattr(tb.dut, r.port).value = driven[r.port] ^ (0xFFFF << 40)
                await tb.expect_read(hi.offset, driven[r.port] >> 32, what=hi.name)
                getattr(tb.dut, r.port).value = driven[r.port]
            elif r.name.lower() in driven:
                values = tb.unpack(r.name.lower(), driven[r.name.lower()])
                want = sum(values.get(f.name, 0) << f.lsb for f in r.fields)
                await tb.expect_read(r.offset, want, what=r.name)
    read_only = sum(1 for r in rm if r.port or tb.ports.get(r.name.lower(), ("Out",))[0] == "In")
    tb.board.finish(3 * 2 * read_only)


async def _count_pulses(dut, port, pos, name, out):
    """Record ``name`` for every cycle bit ``pos`` of ``port`` is high (never twice in a row)."""
    prev = 0
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        v = (int(getattr(dut, port).value) >> pos) & 1
        if v:
            out.append(name)
            assert not prev, f"{port}.{name} high for two cycles"
        prev = v


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def pulses_w1c_and_irq(dut):
    tb = CsrBench(dut, 4)
    await tb.start()
    rm = tb.rm
    seen = []
    for port, field in (("ctrl", "start"), ("ctrl", "soft_reset"), ("step", "step"),
                        ("step", "resume")):
        pos = tb.pack(port, {field: 1}).bit_length() - 1
        cocotb.start_soon(_count_pulses(dut, port, pos, field, seen))
    ctrl, step = rm["CTRL"], rm["STEP"]
    irq_en = 1 << ctrl.field("irq_en").lsb
    await tb.expect_write(ctrl.offset, irq_en | 1, AxiResp.OKAY, "start, irq_en")
    await tb.expect_read(ctrl.offset, irq_en, what="CTRL: start reads 0, irq_en kept")
    await tb.expect_write(step.offset, 0b01, AxiResp.OKAY, "step")
    await tb.expect_write(step.offset, 0b10, AxiResp.OKAY, "resume")
    await tb.expect_write(ctrl.offset, irq_en | 2, AxiResp.OKAY, "soft reset")
    await ClockCycles(dut.clk, 3)
    tb.board.check_many([seen.count(f) for f in ("start", "step", "resume", "soft_reset")],
                        [1, 1, 1, 1], "one pulse each")
    # W1C: the hardware sets, the host clears by writing 1; irq follows, gated by irq_en.
    irq = rm["IRQ_STATUS"]
    port_fields = [f for f in irq.fields if f.source == "port"]
    tb.board.check(int(dut.irq.value), 0, "irq idle")
    for f in port_fields:
        await FallingEdge(dut.clk)
        dut.irq_status_set.value = tb.pack("irq_status_set", {f.name: 1})
        await FallingEdge(dut.clk)
        dut.irq_status_set.value = 0
        await ClockCycles(dut.clk, 2)
        tb.board.check(int(dut.irq.value), 1, f"irq after {f.name}")
        await tb.expect_read(irq.offset, 1 << f.lsb, what=f"IRQ_STATUS.{f.name}")
        await tb.expect_write(irq.offset, 1 << f.lsb, AxiResp.OKAY, f"clear {f.name}")
        await tb.expect_read(irq.offset, 0, what=f"IRQ_STATUS.{f.name} cleared")
        tb.board.check(int(dut.irq.value), 0, f"irq cleared after {f.name}")
    # Several causes; clearing one keeps the others; irq_en gates the line.
    await FallingEdge(dut.clk)
    dut.irq_status_set.value = tb.pack("irq_status_set", {f.name: 1 for f in port_fields})
    await FallingEdge(dut.clk)
    dut.irq_status_set.value = 0
    every = sum(1 << f.lsb for f in port_fields)
    await tb.expect_write(irq.offset, 1 << port_fields[0].lsb, AxiResp.OKAY, "clear one")
    await tb.expect_read(irq.offset, every & ~(1 << port_fields[0].lsb), what="others kept")
    await tb.expect_write(ctrl.offset, 0, AxiResp.OKAY, "irq_en off")
    await ClockCycles(dut.clk, 2)
    tb.board.check(int(dut.irq.value), 0, "irq gated by irq_en")
    await tb.expect_write(irq.offset, every, AxiResp.OKAY, "clear all")
    await tb.expect_write(irq.offset, 1 << 31, AxiResp.SLVERR, "reserved W1C bit")
    tb.board.finish(40)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def unmapped_offsets_answer_slverr(dut):
    tb = CsrBench(dut, 5)
    await tb.start()
    rm = tb.rm
    picks = tb.rng.sample(tb.unmapped, 12)
    for a in picks:
        await tb.expect_read(a, 0, AxiResp.SLVERR, "unmapped")
        await tb.expect_write(a, 0x5A5A5A5A, AxiResp.SLVERR, "unmapped")
    got, _ = await tb.read(rm["CSR_ERRORS"].offset)
    tb.board.check(got & 0xFFFF, 2 * len(picks), "CSR_ERRORS.count")
    tb.board.check(got >> 16, picks[0], "CSR_ERRORS.offset")
    status = rm["STATUS"]
    await tb.expect_read(status.offset, 1 << status.field("csr_error").lsb, what="STATUS")
    irq = rm["IRQ_STATUS"]
    await tb.expect_read(irq.offset, 1 << irq.field("csr_error").lsb, what="IRQ_STATUS")
    tb.board.finish(3 * len(picks) + 6)


async def _handshake(dut, valid, ready):
    """Hold ``valid`` high from the next falling edge until a rising edge sees ``ready``."""
    await FallingEdge(dut.clk)
    valid.value = 1
    while True:
        await ReadOnly()
        took = int(ready.value)
        await RisingEdge(dut.clk)
        if took:
            break
        await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    valid.value = 0


async def _raw_write(dut, addr, value, aw_delay, w_delay, b_delay):
    """Drive AW and W with their own delays (cycles), then take B after ``b_delay``."""
    async def aw():
        await ClockCycles(dut.clk, aw_delay)
        dut.s_axil__awaddr.value = addr
        await _handshake(dut, dut.s_axil__awvalid, dut.s_axil__awready)

    async def w():
        await ClockCycles(dut.clk, w_delay)
        dut.s_axil__wdata.value = value
        dut.s_axil__wstrb.value = 0xF
        await _handshake(dut, dut.s_axil__wvalid, dut.s_axil__wready)

    tasks = [cocotb.start_soon(aw()), cocotb.start_soon(w())]
    for t in tasks:
        await t
    await ClockCycles(dut.clk, b_delay)
    await ReadOnly()
    resp = None
    while resp is None:
        if int(dut.s_axil__bvalid.value):
            resp = int(dut.s_axil__bresp.value)
        await FallingEdge(dut.clk)
    await _handshake(dut, dut.s_axil__bready, dut.s_axil__bvalid)
    return resp


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def aw_before_w_w_before_aw_and_together(dut):
    tb = CsrBench(dut, 6, master=False)
    for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
        getattr(dut, f"s_axil__{name}").value = 0
    await tb.start()
    r = tb.rm["WATCHDOG"]
    for aw_delay, w_delay, b_delay in ((0, 0, 0), (0, 5, 0), (5, 0, 3), (2, 2, 7), (0, 9, 1),
                                       (9, 0, 0)):
        value = tb.rng.getrandbits(32)
        resp = await _raw_write(dut, r.offset, value, aw_delay, w_delay, b_delay)
        tb.board.check(resp, AxiResp.OKAY, f"AW delay {aw_delay}, W delay {w_delay}")
        tb.board.check(int(dut.watchdog.value), value, "WATCHDOG port")
        resp = await _raw_write(dut, 0xFFC, value, w_delay, aw_delay, b_delay)
        tb.board.check(resp, AxiResp.SLVERR, "unmapped, same orderings")
        tb.board.check(int(dut.watchdog.value), value, "WATCHDOG unchanged")
    tb.board.finish(24)


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_traffic_with_backpressure(dut):
    """Concurrent writes and reads on every channel's random pauses, against a model."""
    tb = CsrBench(dut, 7)
    await tb.start()
    tb.backpressure(0.5)
    rm = tb.rm
    model = {"PROG_BASE": 0, "WATCHDOG": 0}
    consts = [r for r in rm if all(f.source == "const" for f in r.fields)]

    async def writer():
        for _ in range(60):
            name = tb.rng.choice(list(model))
            r = rm[name]
            (f,) = r.fields
            top = f.maximum if f.maximum is not None else (1 << f.width) - 1
            value = tb.rng.randint(0, (1 << f.width) - 1)
            ok = value <= top
            await tb.expect_write(r.offset, value, AxiResp.OKAY if ok else AxiResp.SLVERR, name)
            if ok:
                model[name] = value
            await tb.expect_read(r.offset, model[name], what=name)

    async def reader():
        for _ in range(80):
            if tb.rng.random() < 0.2:
                await tb.expect_read(tb.rng.choice(tb.unmapped), 0, AxiResp.SLVERR, "unmapped")
            else:
                r = tb.rng.choice(consts)
                await tb.expect_read(r.offset, r.reset, what=r.name)

    w = cocotb.start_soon(writer())
    await reader()
    await w
    tb.board.finish(60 * 3 + 80 * 2)
