"""cocotb testbench of the generated matrix engine (run by tests/test_rtl_matmul.py and
``edgebert bench matmul``).

Parameters (``sim.scoreboard.params()``): ``config`` (MatmulConfig fields; the format is the
default), ``cases`` (list of ``{seed, rows, k, cols, kind}``), ``stall`` (probability that a
driver drops ``valid`` or the reader drops ``ready`` in a cycle), ``report`` (a JSON file to
write cycles and wall time to, for the benchmark).

Each case: load the buffers through the write streams, start, wait for ``done`` (a run that
does not finish within twice the cycle model + 1000 cycles fails as a hang), read Y back through
``y_req``/``y_rsp``, compare every code with the golden model as integers and every counter
with the cycle model.
"""

import json
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from hw.matmul import MatmulConfig, MatmulError, payload_layouts
from sim.matmul_stimulus import random_case
from sim.scoreboard import Scoreboard, params
from sw.golden.matmul import matmul
from sw.matmul_buffers import make_job, y_from_words, y_requests
from sw.perf.matmul import matmul_cycles


def _u(signal):
    value = signal.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def _pack(layout, **fields):
    word = 0
    for name, value in fields.items():
        field = layout[name]
        word |= (int(value) & ((1 << field.width) - 1)) << field.offset
    return word


def _unpack(layout, word, name):
    field = layout[name]
    return (word >> field.offset) & ((1 << field.width) - 1)


class MatmulTB:
    """Driver (write streams, registers), reader (Y streams) and checks for one engine."""

    def __init__(self, dut, config, stall, seed):
        self.dut = dut
        self.config = config
        self.layouts = payload_layouts(config)
        self.stall = stall
        self.rng = random.Random(seed)
        self.cycles = 0

    def stalled(self):
        return self.rng.random() < self.stall

    async def reset(self):
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        self.dut.start.value = 0
        for name in ("x_w", "m_w", "v_w", "b_w", "y_req"):
            getattr(self.dut, f"{name}__valid").value = 0
        self.dut.y_rsp__ready.value = 0
        # One matrix per run here: the weight buffers' base registers stay 0.
        for name in ("m_base", "v_base", "b_base"):
            getattr(self.dut, name).value = 0
        for _ in range(3):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def write(self, name, items):
        """Send every payload in ``items`` (dicts of fields), with random gaps in ``valid``."""
        valid = getattr(self.dut, f"{name}__valid")
        ready = getattr(self.dut, f"{name}__ready")
        payload = getattr(self.dut, f"{name}__payload")
        i = 0
        while i < len(items):
            await FallingEdge(self.dut.clk)
            if self.stalled():
                valid.value = 0
                continue
            valid.value = 1
            payload.value = _pack(self.layouts[name], **items[i])
            await ReadOnly()
            if _u(ready):
                i += 1
        await FallingEdge(self.dut.clk)
        valid.value = 0

    async def load(self, job):
        await self.write("x_w", [dict(bank=b, addr=a, data=d) for b, a, d in job.x_words])
        await self.write("m_w", [dict(addr=a, data=d) for a, d in job.m_words])
        await self.write("v_w", [dict(addr=a, data=d) for a, d in job.v_words])
        await self.write("b_w", [dict(addr=a, data=d) for a, d in job.b_words])

    async def run(self, regs, limit):
        """Start with ``regs`` and wait for ``done``; returns the counters and error status."""
        dut = self.dut
        await FallingEdge(dut.clk)
        for name, value in regs.items():
            getattr(dut, name).value = value
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        # One trigger for the whole run, so that the simulator runs at full speed.
        fired = await First(RisingEdge(dut.done), Timer(10 * limit, unit="ns"))
        if not isinstance(fired, RisingEdge):
            raise AssertionError(f"engine hung: no done within {limit} cycles")
        await ReadOnly()
        status = {name: _u(getattr(dut, name))
                  for name in ("cyc_total", "cyc_mac", "vec_skipped", "cyc_stall", "err")}
        await FallingEdge(dut.clk)
        assert _u(dut.busy) == 0, "engine still busy after done"
        return status

    async def read_y(self, job):
        dut = self.dut
        pending = y_requests(self.config, job.rows, job.cols)
        total = len(pending)
        words = []
        lay = self.layouts
        while len(words) < total:
            await FallingEdge(dut.clk)
            offer = bool(pending) and not self.stalled()
            dut.y_req__valid.value = int(offer)
            if offer:
                bank, addr = pending[0]
                dut.y_req__payload.value = _pack(lay["y_req"], bank=bank, addr=addr)
            take = not self.stalled()
            dut.y_rsp__ready.value = int(take)
            await ReadOnly()
            if offer and _u(dut.y_req__ready):
                pending.pop(0)
            if take and _u(dut.y_rsp__valid):
                words.append(_unpack(lay["y_rsp"], _u(dut.y_rsp__payload), "data"))
        await FallingEdge(dut.clk)
        dut.y_req__valid.value = 0
        dut.y_rsp__ready.value = 0
        return words


def _config():
    return MatmulConfig(**params()["config"])


@cocotb.test()
async def random_cases(dut):
    p = params()
    config = _config()
    tb = MatmulTB(dut, config, p.get("stall", 0.0), p.get("seed", 0))
    await tb.reset()
    outputs = Scoreboard("Y codes")
    counters = Scoreboard("performance counters")
    report = []
    for case in p["cases"]:
        x, w, bias, regs = random_case(case["seed"], case["rows"], case["k"], case["cols"],
                                       config.n, case["kind"], config.fmt)
        job = make_job(config, x, w, bias, **regs)
        model = matmul_cycles(job.packed, job.rows)
        await tb.load(job)
        t0 = time.perf_counter()
        status = await tb.run(job.regs, 2 * model.total + 1000)
        wall = time.perf_counter() - t0
        what = f"{case['kind']} {job.rows}×{case['k']}×{job.cols} seed {case['seed']}"
        assert status["err"] == MatmulError.NONE.value, f"{what}: error status {status['err']}"
        got = y_from_words(config, job.rows, job.cols, await tb.read_y(job))
        want = matmul(x, w, bias, **regs, fmt=config.fmt).to(got.dtype)
        outputs.check_many(got.flatten().tolist(), want.flatten().tolist(), what)
        for name, value in (("cyc_total", model.total), ("cyc_mac", model.mac),
                            ("vec_skipped", model.skipped), ("cyc_stall", model.stall)):
            counters.check(status[name], value, f"{what}: {name}")
        report.append({**case, "cycles": status["cyc_total"], "run_wall_s": wall,
                       "utilization": model.macs / (config.n ** 2 * status["cyc_total"])})
        dut._log.info("%s: %d cycles, %.2f s simulated wall time", what, status["cyc_total"], wall)
    outputs.finish(minimum=1)
    counters.finish(minimum=4 * len(p["cases"]))
    if p.get("report"):
        with open(p["report"], "w") as f:
            json.dump(report, f)


@cocotb.test()
async def bad_shapes_report_errors(dut):
    config = _config()
    n = config.n
    tb = MatmulTB(dut, config, 0.0, 1)
    await tb.reset()
    errors = Scoreboard("error status")
    # W all zero (one mask word 0, no values) and bias 0: the good run gives Y = 0.
    await tb.write("m_w", [dict(addr=0, data=0)])
    await tb.write("b_w", [dict(addr=0, data=0)])
    good = dict(rows=n, k=n, cols=n, nnz=0, bias_x=0, bias_w=0, bias_b=0, bias_out=0, relu=0)
    for change, expected in (
        (dict(rows=0), MatmulError.ZERO_DIM),
        (dict(k=n + 1), MatmulError.NOT_MULTIPLE),
        (dict(k=config.max_k + n), MatmulError.K_TOO_LARGE),
        (dict(nnz=config.v_depth * n + 1), MatmulError.W_OVERFLOW),
        (dict(nnz=1), MatmulError.MASK_MISMATCH),  # the all-zero masks consume no code
    ):
        status = await tb.run({**good, **change}, 10_000)
        errors.check(status["err"], expected.value, f"{change}")
    status = await tb.run(good, 10_000)
    errors.check(status["err"], MatmulError.NONE.value, "good run after the errors")
    errors.finish(minimum=6)
