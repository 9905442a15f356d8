"""cocotb testbench: the accelerator top's Verilog runs whole sentences from command 0 (EMBED).

The pytest side (or :mod:`sim.top_default`) writes a JSON file (``params()["cases"]``,
:func:`sim.top_bench.bench_setup` plus ``sentences`` of :func:`sim.top_bench.sentence_case`).
The bench writes the weight memories (and the ReRAM store, for a top built without its
contents) through the host ports once, then per sentence the program (``host_prog``) and the
token entries (``host_aux``), sets ``start_pc = 0`` and starts. It sleeps until ``cmd_done`` or
``done`` changes (the simulator runs freely in between) and at every ``cmd_done`` checks the
command's index, its counters (cycles, MAC cycles, skipped vectors, stalls, act / aux / ReRAM
accesses) against the cycle model, and what it left against the golden trace: every
destination act word (read from the act banks' arrays), H and the exit flag, the DVFS
decision. Programs expect act to start at zero (the output columns of a head the program skips
are never written): before every sentence but the first the bench writes zeros over the words
the previous one wrote. A report (``params()["report"]``, if given) records every command's RTL
counters and the wall time per sentence.
"""

import json
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer

from sim.scoreboard import Scoreboard, params
from sim.tape_bench import host_payload

_COUNTERS = ("cycles", "mac", "skipped", "stall")
_PORTS = ("act_reads", "act_writes", "aux_reads", "reram_reads")


class TopBench:
    def __init__(self, dut, setup):
        self.dut = dut
        self.s = setup
        self.n = setup["n"]
        self.banks = [getattr(dut, f"act{i}") for i in range(self.n)]
        self.words = Scoreboard("act words")
        self.counters = Scoreboard("command counters")
        self.outs = Scoreboard("ENTROPY and DVFS results")
        self.dirty = set()

    async def reset(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        for port in ("act", "aux", "desc", "prog", "reram", "wmask", "wval", "wbias"):
            getattr(dut, f"host_{port}__valid").value = 0
        dut.start.value = 0
        dut.host_rd_en.value = 0
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0

    async def write(self, port, words):
        """Host writes ``{addr: word}`` (or a list) through ``host_<port>``, one per cycle
        (the ports are ready while the top is idle)."""
        dut = self.dut
        valid = getattr(dut, f"host_{port}__valid")
        payload = getattr(dut, f"host_{port}__payload")
        items = words.items() if isinstance(words, dict) else enumerate(words)
        for addr, word in items:
            if not word and isinstance(words, list):
                continue        # the memories start at zero
            await FallingEdge(dut.clk)
            valid.value = 1
            payload.value = host_payload(self.s, port, addr, word)
        await FallingEdge(dut.clk)
        valid.value = 0

    async def load(self):
        for mem in ("wmask", "wval", "wbias"):
            await self.write(mem, self.s["weights"][mem])
        if "reram" in self.s:
            await self.write("reram", self.s["reram"])
        for name, v in self.s["config"].items():
            getattr(self.dut, name).value = v

    def check_command(self, want):
        dut, pc = self.dut, want["pc"]
        got = {c: int(getattr(dut, f"cmd_{c}").value) for c in (*_COUNTERS, *_PORTS)}
        where = f"command {pc} ({want['op']})"
        for c in _COUNTERS:
            self.counters.check(got[c], want[c], f"{where} {c}")
        for c in _PORTS:
            self.counters.check(got[c], want["ports"][c], f"{where} {c}")
        for word, banks in want.get("words", {}).items():
            for i, value in enumerate(banks):
                self.words.check(self.banks[i][int(word)].value, value,
                                 f"{where} act word {word} bank {i}")
        if "entropy" in want:
            self.outs.check_many([dut.entropy.value, dut.entropy_exit.value], want["entropy"],
                                 f"{where} H, exit")
        if "dvfs" in want:
            self.outs.check_many([dut.dvfs_bin.value, dut.dvfs_layer.value, dut.vcode.value,
                                  dut.fcode.value], want["dvfs"], f"{where} DVFS")
        return got

    async def sentence(self, case, max_ns):
        dut = self.dut
        await self.write("act", dict.fromkeys(sorted(self.dirty), 0))
        self.dirty = {int(w) for c in case["commands"] for w in c.get("words", {})}
        await self.write("prog", case["prog"])
        await self.write("aux", {int(k): v for k, v in case["tokens"].items()})
        dut.start_pc.value = 0
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        t0 = time.perf_counter()
        want = iter(case["commands"])
        seen, record = [], []
        while True:
            trig = await First(RisingEdge(dut.cmd_done), RisingEdge(dut.done),
                               Timer(max_ns, unit="ns"))
            if isinstance(trig, Timer):
                raise AssertionError(f"the top did not finish within {max_ns} ns; commands "
                                     f"seen {seen}")
            await ReadOnly()
            if dut.cmd_done.value:
                pc = int(dut.cmd_pc.value)
                w = next(want, None)
                assert w is not None and w["pc"] == pc, f"command {pc} ran, golden {w}"
                seen.append(pc)
                record.append({"pc": pc, "op": w["op"], **self.check_command(w)})
            if dut.done.value:
                break
            await RisingEdge(dut.clk)
        wall = time.perf_counter() - t0
        assert int(dut.error.value) == 0, \
            f"error {int(dut.error.value)} at command {int(dut.error_pc.value)}"
        assert seen == case["executed"], (seen, case["executed"])
        assert int(dut.exit_layer.value) == case["exit_layer"]
        total = int(dut.total_cycles.value)
        self.counters.check(total, sum(w["cycles"] for w in case["commands"]), "total cycles")
        self.counters.check(dut.total_reram_reads.value,
                            sum(w["ports"]["reram_reads"] for w in case["commands"]),
                            "total ReRAM reads")
        await FallingEdge(dut.clk)
        return {"wall_s": wall, "cycles": total, "commands": record}


@cocotb.test()
async def whole_sentences(dut):
    p = params()
    with open(p["cases"]) as f:
        setup = json.load(f)
    tb = TopBench(dut, setup)
    await tb.reset()
    t0 = time.perf_counter()
    await tb.load()
    report = {"load_s": time.perf_counter() - t0, "sentences": []}
    for case in setup["sentences"]:
        report["sentences"].append(await tb.sentence(case, p.get("max_ns", 10**9)))
        dut._log.info("sentence %d: %d cycles in %.1f s", len(report["sentences"]),
                      report["sentences"][-1]["cycles"], report["sentences"][-1]["wall_s"])
    if p.get("report"):
        with open(p["report"], "w") as f:
            json.dump(report, f)
    tb.words.finish()
    tb.counters.finish()
    tb.outs.finish()
