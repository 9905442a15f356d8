"""cocotb testbench: entropy early-exit unit against :func:`sw.golden.entropy.entropy`."""

import cocotb
import torch

from hw.layouts import AFFormat, FixedFormat
from hw.sfu_tables import H_BITS
from sim.rowbench import RowBench
from sim.stream import pack
from sw.adaptivfloat import encode
from sw.golden.entropy import entropy
from sw.golden.sfu_check import offramp_logits
from sw.perf.sfu import entropy_cycles


class EntropyBench(RowBench):
    def __init__(self, dut, seed, p_valid=1.0, p_ready=1.0):
        super().__init__(dut, "entropy_exit", seed, p_valid, p_ready)
        self.n = self.p["n"]
        self.max_classes = self.p["max_classes"]
        self.fmt = AFFormat(**self.p["fmt"])
        self.fixed = FixedFormat(**self.p["fixed"])

    async def rows(self, codes, bias, threshold):
        rows, classes = codes.shape
        n, w, d = self.n, self.fmt.n_bits, self.dut
        d.classes.value, d.bias_in.value, d.threshold.value = classes, bias, threshold
        want = entropy(codes, bias, self.fmt, self.fixed).tolist()
        beats = []
        for row in codes.tolist():
            row = row + [0] * (-classes % n)
            beats += [pack(row[c:c + n], w) for c in range(0, len(row), n)]
        got = await self.transfer(beats, rows)
        for r, (word, h) in enumerate(zip(got, want, strict=True)):
            self.board.check(word & ((1 << H_BITS) - 1), h, f"row {r}, {classes} classes")
            self.board.check(word >> H_BITS, int(h < threshold), f"exit flag, row {r}")


def _logits(rows, classes, seed, bias=6):
    return encode(offramp_logits(rows, classes, seed), bias)


@cocotb.test()
async def random_rows_with_stalls(dut):
    tb = EntropyBench(dut, seed=31, p_valid=0.6, p_ready=0.5)
    await tb.start()
    for classes in (2, 3, tb.n, tb.n + 1, tb.max_classes):
        await tb.rows(_logits(6, classes, seed=classes), 6, 20000)
    tb.board.finish(2 * 5 * 6)


@cocotb.test()
async def edge_cases(dut):
    tb = EntropyBench(dut, seed=32, p_valid=0.8, p_ready=0.8)
    await tb.start()
    mc = tb.max_classes
    equal = torch.full((2, mc), 0x35)
    dominant = torch.zeros(2, mc, dtype=torch.int64)
    dominant[0, 0] = 0x7F
    dominant[1, mc - 1] = 0x7F
    very_negative = encode(offramp_logits(2, mc, seed=3) / 4 - 27, 7)
    two = _logits(4, 2, seed=4)
    for codes, bias in ((equal, 5), (dominant, 7), (very_negative, 7), (two, 6)):
        await tb.rows(codes, bias, 1 << 15)
    await tb.rows(torch.tensor([[0x44], [0xC4]]), 3, 1)
    tb.board.finish(2 * (2 + 2 + 2 + 4 + 2))


@cocotb.test()
async def throughput_matches_cycle_model(dut):
    tb = EntropyBench(dut, seed=33)
    await tb.start()
    for classes in (2, tb.max_classes):
        await tb.rows(_logits(3, classes, seed=7), 6, 1000)
        beats = -(-classes // tb.n)
        want = entropy_cycles(beats, tb.n)
        assert tb.row_period(beats) == want, (classes, tb.row_period(beats))
        assert tb.span() == 3 * want, (classes, tb.span())
    tb.board.finish()
