"""cocotb testbench: the accelerator (:class:`hw.top.system.Accelerator`) through its buses only.

cocotbext-axi's AxiLiteMaster (registers) and AxiMaster (memory windows), with random
back-pressure on every channel of both. ``sentences`` reads MAGIC, VERSION and the CFG
registers and refuses other hardware (:func:`sim.system_bench.check_hardware`), loads every
memory image (the ReRAM section included) and the program of each job through AXI bursts,
sets the MATMUL_ACT bases and the embedding tables' rows, single-step mode, and starts at
command 0 (EMBED);
after every command (IRQ with ``IRQ_STATUS.step``) it reads back through the AXI4 window the act
words the command wrote, ENTROPY's H and flag, the DVFS decision and ``CMD_CYCLES``, then steps;
at the end (IRQ with ``IRQ_STATUS.done``) it reads the logits, exit layer, status and counters.
The result goes to a JSON file and is held to the job by :func:`sim.system_bench.compare`.
``bad_input`` drives the refusals: out-of-range register writes, loads beyond a memory (the
ReRAM store's among them), an incomplete weight or ReRAM word, a token row beyond
``VOCAB_ROWS``, an illegal command word, the watchdog.
"""

import json
import logging
import random
import time
from pathlib import Path
from types import SimpleNamespace

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster, AxiResp

from hw.memmap import MemoryMap
from hw.regmap import ErrorCode, RegisterMap, windows
from sim.scoreboard import Scoreboard, params
from sim.system_bench import (
    HardwareMismatch,
    check_hardware,
    compare,
    logits_from_words,
    ordinal_argmax,
    read_json,
)

_CTRL = {"start": 1, "soft_reset": 2, "irq_en": 4, "step_en": 8}
_IRQ = {"done": 1, "error": 2, "exit": 4, "step": 8, "load_error": 16, "csr_error": 32}
_STATUS = {"busy": 1, "done": 2, "error": 4, "exit": 8, "paused": 16, "load_error": 32}
_CLOCK_NS = 10


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class SystemBench:
    """Bus masters, register access by name and the stepped run of one job."""

    def __init__(self, dut, job, seed=1):
        self.dut, self.job = dut, job
        self.mm = MemoryMap(**job["memmap"])
        self.rm = RegisterMap(memmap=self.mm, fmt=SimpleNamespace(**job["hw"]))
        self.win = {w.memory: w for w in windows(self.mm)}
        self.rng = random.Random(seed)
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"),
                                  dut.clk, dut.rst)
        self.axi = AxiMaster(AxiBus.from_prefix(dut, "s_axi", bus_separator="__"), dut.clk,
                             dut.rst)
        for m in (self.lite, self.axi):
            for log in (m.write_if.log, m.read_if.log):
                log.setLevel(logging.WARNING)
        self.board = Scoreboard("system")
        self.reram = None  # the ReRAM section the store holds (hex), if loaded by load_job

    async def start(self, backpressure=0.3):
        cocotb.start_soon(Clock(self.dut.clk, _CLOCK_NS, unit="ns").start())
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        # Transactions issued right at reset release can be lost (cocotbext-axi#19).
        await ClockCycles(self.dut.clk, 3)
        for m in (self.lite, self.axi):
            for ch in (m.write_if.aw_channel, m.write_if.w_channel, m.write_if.b_channel,
                       m.read_if.ar_channel, m.read_if.r_channel):
                ch.set_pause_generator(_pauses(random.Random(self.rng.getrandbits(32)),
                                               backpressure))

    # -- registers -------------------------------------------------------------------------
    async def reg(self, name):
        r = await self.lite.read(self.rm[name].offset, 4)
        if r.resp != AxiResp.OKAY:
            raise AssertionError(f"reading {name} answered {r.resp}")
        return int.from_bytes(r.data, "little")

    async def reg64(self, stem):
        lo = await self.reg(f"{stem}_LO")
        return lo | await self.reg(f"{stem}_HI") << 32

    async def set_reg(self, name, value):
        """Write ``name``; returns the response."""
        return (await self.lite.write(self.rm[name].offset, value.to_bytes(4, "little"))).resp

    async def must_set(self, name, value):
        resp = await self.set_reg(name, value)
        if resp != AxiResp.OKAY:
            raise AssertionError(f"writing {value:#x} to {name} answered {resp}")

    async def identify(self, job=None):
        names = ["MAGIC", "VERSION", "CFG_FORMAT", *(f"CFG_DEPTH_{m.upper()}" for m in
                                                     self.win)]
        regs = {n: await self.reg(n) for n in names}
        check_hardware(regs, job or self.job)
        return regs

    # -- memories --------------------------------------------------------------------------
    async def load(self, memory, data, offset=0):
        """Write ``data`` at byte ``offset`` of ``memory``'s window; returns the response."""
        if memory == "reram":
            self.reram = None
        return (await self.axi.write(self.win[memory].base + offset, bytes(data))).resp

    async def load_job(self):
        """Every memory of the job; the ReRAM section only if the store does not hold it
        already (it is non-volatile: soft resets and other sentences leave it)."""
        for memory, hexed in (*self.job["loads"].items(), ("prog", self.job["prog"])):
            if memory == "reram" and hexed == self.reram:
                continue
            resp = await self.load(memory, bytes.fromhex(hexed))
            self.board.check(resp, AxiResp.OKAY, f"loading {memory}")
            if memory == "reram":
                self.reram = hexed

    async def act_word(self, word):
        w = self.win["act"]
        r = await self.axi.read(w.base + word * w.stride, w.word_bytes)
        self.board.check(r.resp, AxiResp.OKAY, f"reading act word {word}")
        return int.from_bytes(r.data, "little")

    async def wait_irq(self, limit=2_000_000):
        for _ in range(limit):
            if self.dut.irq.value:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"no interrupt within {limit} cycles")

    # -- a stepped run ---------------------------------------------------------------------
    async def record(self, pc):
        entry = {"pc": pc, "cycles": await self.reg64("CMD_CYCLES")}
        want = self.by_pc.get(pc, {})
        if "act" in want:
            entry["act"] = {w: await self.act_word(int(w)) for w in want["act"]}
        if want.get("op") == "ENTROPY":
            e = await self.reg("ENTROPY")
            entry.update(entropy=e & 0xFFFFF, exit=e >> 31)
        if want.get("op") == "DVFS":
            d, b = await self.reg("DVFS"), await self.reg("DVFS_BIN")
            entry["dvfs"] = [b & 0xFF, b >> 8 & 0xFF, d & 0xFFFF, d >> 16]
        return entry

    async def configure(self):
        """The job's registers: MATMUL_ACT bases, embedding tables' rows, ``PROG_BASE`` 0."""
        mask, value, bias = self.job["act_bases"]
        for name, v in (("ACT_MASK_BASE", mask), ("ACT_VALUE_BASE", value),
                        ("ACT_BIAS_BASE", bias), *self.job["rows"].items(), ("PROG_BASE", 0)):
            await self.must_set(name, v)

    async def run_job(self, step=True):
        job = self.job
        self.by_pc = {c["pc"]: c for c in job["commands"]}
        await self.configure()
        await self.must_set("IRQ_STATUS", 0x3F)
        ctrl = _CTRL["irq_en"] | (_CTRL["step_en"] if step else 0)
        await self.must_set("CTRL", ctrl)
        t0, wall0 = get_sim_time("ns"), time.perf_counter()
        await self.must_set("CTRL", ctrl | _CTRL["start"])
        commands = []
        while True:
            await self.wait_irq()
            irq = await self.reg("IRQ_STATUS")
            pc = await self.reg("PC") - 1
            if irq & _IRQ["done"]:
                break
            if not irq & _IRQ["step"]:
                raise AssertionError(f"interrupt with IRQ_STATUS {irq:#x}, neither step nor done")
            commands.append(await self.record(pc))
            await self.must_set("IRQ_STATUS", _IRQ["step"])
            await self.must_set("STEP", 1)
        sim_ns = get_sim_time("ns") - t0
        status = await self.reg("STATUS")
        code = await self.reg("ERROR")
        if not code:
            commands.append(await self.record(pc))
        fin = job["final"]
        words = [await self.act_word(w) for w in fin["logits_words"]]
        logits = logits_from_words(words, len(fin["logits"]), job["hw"]["n"])
        counters = {s: await self.reg64(s) for s in ("CYCLES", "MAC_CYCLES", "SKIPPED",
                                                     "STALLS", "ACT_READS", "ACT_WRITES",
                                                     "AUX_READS", "PROG_READS", "DESC_READS")}
        status_d = {k: int(bool(status & v)) for k, v in _STATUS.items()}
        status_d.update(error=code, error_name=ErrorCode(code).name,
                        error_pc=await self.reg("ERROR_PC"))
        return {
            "commands": commands,
            "final": {"logits": logits, "exit_layer": await self.reg("EXIT_LAYER"),
                      "label": ordinal_argmax(logits, job["hw"]["n_bits"]),
                      "exit": status_d["exit"], "cycles": counters["CYCLES"],
                      "commands": len(commands)},
            "status": status_d, "counters": counters,
            "dvfs_codes": [int(self.dut.vcode.value), int(self.dut.fcode.value)],
            "run_sim_cycles": int(sim_ns // _CLOCK_NS), "run_wall_s": time.perf_counter() - wall0,
        }


def _jobs():
    return [read_json(p) for p in params()["jobs"]]


@cocotb.test()
async def sentences(dut):
    """Every job, stepped, compared command by command; the results go to ``result``."""
    p = params()
    jobs = _jobs()
    bench = SystemBench(dut, jobs[0], seed=p.get("seed", 1))
    await bench.start(p.get("backpressure", 0.3))
    results, compared = [], 0
    for job in jobs:
        bench.job = job
        await bench.identify()
        await bench.must_set("CTRL", _CTRL["soft_reset"])
        await bench.load_job()
        res = await bench.run_job(step=p.get("step", True))
        cmp = compare(job, res)
        res["mismatch"], res["rows"] = cmp.mismatch, cmp.rows
        results.append(res)
        if "result" in p:
            Path(p["result"]).write_text(json.dumps(results))
        if p.get("fail_on_mismatch", True):
            assert cmp.mismatch is None, f"{job['text']!r}: {cmp.mismatch}"
        compared += cmp.compared
    assert compared > 0, "the system testbench compared nothing"


@cocotb.test()
async def bad_input(dut):
    """Refused register writes and loads, an illegal command, the watchdog: error status,
    never a hang."""
    job = _jobs()[0]
    bench = SystemBench(dut, job, seed=7)
    await bench.start(0.2)
    b, mm = bench.board, bench.mm
    await bench.identify()
    other = dict(job, hw=dict(job["hw"], exp_bits=job["hw"]["exp_bits"] + 1))
    try:
        await bench.identify(other)
    except HardwareMismatch as e:
        b.check("other hardware: exp_bits" in str(e) or "exp_bits" in str(e), 1, str(e))
    else:
        raise AssertionError("an image for another number format was not refused")

    # Out-of-range register writes: SLVERR, nothing changes, counted.
    bad_writes = (("PROG_BASE", mm.prog_words), ("ACT_VALUE_BASE", mm.wval_words),
                  ("VOCAB_ROWS", (1 << 24) + 1), ("SEG_ROWS", 257), ("POS_ROWS", 4097))
    for name, bad in bad_writes:
        before = await bench.reg(name)
        b.check(await bench.set_reg(name, bad), AxiResp.SLVERR, f"{name} = {bad}")
        b.check(await bench.reg(name), before, f"{name} after a refused write")
    b.check(await bench.reg("CSR_ERRORS") & 0xFFFF, len(bad_writes), "CSR_ERRORS count")

    # A load beyond a memory: refused, reported; a start then stops with LOAD_OUT_OF_RANGE.
    prog = bench.win["prog"]
    b.check(await bench.load("prog", bytes(32), prog.data_end - prog.base - 16),
            AxiResp.SLVERR, "a burst past the program memory")
    b.check(await bench.reg("STATUS") & _STATUS["load_error"], _STATUS["load_error"],
            "STATUS.load_error")
    b.check(await bench.reg("LOAD_ERROR_ADDR"), prog.data_end, "LOAD_ERROR_ADDR")
    # The ReRAM store is read-only to the host.
    b.check((await bench.axi.read(bench.win["reram"].base, 8)).resp, AxiResp.SLVERR,
            "a read of the ReRAM window")
    await bench.must_set("CTRL", _CTRL["irq_en"] | _CTRL["start"])
    await bench.wait_irq(1000)
    b.check(await bench.reg("ERROR"), ErrorCode.LOAD_OUT_OF_RANGE, "ERROR after a refused load")
    b.check(await bench.reg("STATUS") & (_STATUS["busy"] | _STATUS["done"] | _STATUS["error"]),
            _STATUS["done"] | _STATUS["error"], "STATUS after a refused load")
    await bench.must_set("CTRL", _CTRL["soft_reset"])
    await bench.must_set("IRQ_STATUS", 0x3F)
    b.check(await bench.reg("STATUS") & _STATUS["load_error"], 0, "soft reset clears it")

    # A burst past the ReRAM store: refused whole, reported at the store's end.
    reram = bench.win["reram"]
    b.check(await bench.load("reram", bytes(2 * reram.stride), reram.data_end - reram.base
                             - reram.stride), AxiResp.SLVERR, "a burst past the ReRAM store")
    b.check(await bench.reg("LOAD_ERROR_ADDR"), reram.data_end, "LOAD_ERROR_ADDR (ReRAM)")
    await bench.must_set("CTRL", _CTRL["soft_reset"])
    await bench.must_set("IRQ_STATUS", 0x3F)

    # An incomplete ReRAM word, then a start: nothing runs, LOAD_OUT_OF_RANGE; once the word
    # is complete, the store takes it.
    b.check(await bench.load("reram", bytes([1, 2, 3])), AxiResp.OKAY, "3 bytes of a ReRAM word")
    await bench.must_set("CTRL", _CTRL["irq_en"] | _CTRL["start"])
    await bench.wait_irq(1000)
    b.check(await bench.reg("ERROR"), ErrorCode.LOAD_OUT_OF_RANGE, "start, ReRAM word incomplete")
    b.check(await bench.reg("STATUS") & _STATUS["busy"], 0, "idle after the refused start")
    b.check(await bench.load("reram", bytes(reram.word_bytes - 3), 3), AxiResp.OKAY,
            "the rest of the ReRAM word")
    await bench.must_set("IRQ_STATUS", 0x3F)
    # An incomplete ReRAM word dropped by a beat into another word: a load error at it.
    await bench.load("reram", bytes([1, 2]), reram.stride)
    await bench.load("reram", bytes(reram.word_bytes), 2 * reram.stride)
    b.check(await bench.reg("STATUS") & _STATUS["load_error"], _STATUS["load_error"],
            "STATUS.load_error after a dropped ReRAM word")
    b.check(await bench.reg("LOAD_ERROR_ADDR"), reram.base + reram.stride,
            "the dropped ReRAM word")
    await bench.must_set("CTRL", _CTRL["soft_reset"])
    await bench.must_set("IRQ_STATUS", 0x3F)

    # An incomplete weight word dropped by a beat into another word: a load error at it.
    wval = bench.win["wval"]
    if wval.word_bytes > 2:
        await bench.load("wval", bytes([1, 2]))
        await bench.load("wval", bytes(wval.word_bytes), wval.stride)
        b.check(await bench.reg("LOAD_ERROR_ADDR"), wval.base, "the dropped weight word")
        await bench.must_set("CTRL", _CTRL["soft_reset"])
        await bench.must_set("IRQ_STATUS", 0x3F)

    async def stopped_with(cycles, code, pc, what):
        """The program stops with ``code`` at ``pc`` (IRQ within ``cycles``), idle again."""
        await bench.wait_irq(cycles)
        b.check(await bench.reg("ERROR"), code, f"ERROR, {what}")
        b.check(await bench.reg("ERROR_PC"), pc, f"ERROR_PC, {what}")
        b.check(await bench.reg("STATUS") & _STATUS["busy"], 0, f"idle after {what}")
        await bench.must_set("IRQ_STATUS", 0x3F)

    # An illegal command word: ILLEGAL_OPCODE at its pc, the accelerator idle again.
    b.check(await bench.load("prog", (0xF).to_bytes(16, "little")), AxiResp.OKAY, "prog")
    await bench.must_set("PROG_BASE", 0)
    await bench.must_set("CTRL", _CTRL["irq_en"] | _CTRL["start"])
    await stopped_with(1000, ErrorCode.ILLEGAL_OPCODE, 0, "opcode 15")

    # A token row at VOCAB_ROWS: EMBED (command 0) stops with UNIT_ERROR, never a hang.
    await bench.load_job()
    await bench.configure()
    await bench.must_set("VOCAB_ROWS", max(job["token_rows"]))
    await bench.must_set("CTRL", _CTRL["irq_en"] | _CTRL["start"])
    await stopped_with(10_000, ErrorCode.UNIT_ERROR, 0, "a token row beyond VOCAB_ROWS")

    # The watchdog stops a program that runs too long; loads while it runs are refused.
    await bench.configure()
    await bench.must_set("WATCHDOG", 1500)
    await bench.must_set("CTRL", _CTRL["irq_en"] | _CTRL["start"])
    b.check(await bench.load("aux", bytes(4)), AxiResp.SLVERR, "a load while running")
    await bench.must_set("IRQ_STATUS", _IRQ["load_error"])
    await bench.wait_irq(10_000)
    b.check(await bench.reg("IRQ_STATUS") & _IRQ["done"], _IRQ["done"], "IRQ_STATUS.done")
    b.check(await bench.reg("ERROR"), ErrorCode.WATCHDOG, "ERROR after the watchdog")
    b.check(await bench.reg("STATUS") & _STATUS["busy"], 0, "idle after the watchdog")
    b.finish(39)
