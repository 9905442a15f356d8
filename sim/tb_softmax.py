"""cocotb testbench: span-masked softmax against :func:`sw.golden.softmax.softmax`."""

import cocotb
import torch

from hw.layouts import AFFormat, FixedFormat
from hw.sfu_tables import SPAN_MASK_FRAC
from sim.rowbench import RowBench
from sim.stream import pack, unpack
from sw.adaptivfloat import encode
from sw.golden.sfu_check import attention_scores
from sw.golden.softmax import MASK_ONE, softmax, span_mask
from sw.perf.sfu import softmax_cycles


class SoftmaxBench(RowBench):
    def __init__(self, dut, seed, p_valid=1.0, p_ready=1.0):
        super().__init__(dut, "softmax", seed, p_valid, p_ready)
        self.n = self.p["n"]
        self.max_len = self.p["max_len"]
        self.fmt = AFFormat(**self.p["fmt"])
        self.fixed = FixedFormat(**self.p["fixed"])

    async def rows(self, codes, mask, bias_in, bias_out, renorm):
        """Run code rows (rows, L) with one mask (L,) and check every output element."""
        rows, length = codes.shape
        n, w = self.n, self.fmt.n_bits
        d = self.dut
        d.length.value, d.bias_in.value, d.bias_out.value = length // n, bias_in, bias_out
        d.renorm.value = int(renorm)
        want = softmax(codes, mask, bias_in, bias_out, renorm, self.fmt, self.fixed)
        beats = []
        for row in codes.tolist():
            for b in range(0, length, n):
                beats.append(pack(row[b:b + n], w)
                             | pack(mask[b:b + n].tolist(), SPAN_MASK_FRAC + 1) << (n * w))
        got = await self.transfer(beats, len(beats))
        flat = want.reshape(-1, n).tolist()
        for r, (word, exp) in enumerate(zip(got, flat, strict=True)):
            self.board.check_many(unpack(word, w, n), exp,
                                  f"row {r * n // length} beat {r % (length // n)}, "
                                  f"renorm={renorm}")


def _codes(rows, length, seed, bias=6):
    return encode(attention_scores(rows, length, seed), bias)


@cocotb.test()
async def random_rows_with_stalls(dut):
    tb = SoftmaxBench(dut, seed=11, p_valid=0.7, p_ready=0.6)
    await tb.start()
    for i, length in enumerate((64, tb.n, tb.max_len, 3 * tb.n)):
        for renorm in (False, True):
            z = tb.rng.uniform(-8, length)
            await tb.rows(_codes(3, length, seed=i), span_mask(z, 8, length), 6, 3, renorm)
    tb.board.finish(2 * 3 * (64 + tb.n + tb.max_len + 3 * tb.n))


@cocotb.test()
async def edge_cases(dut):
    tb = SoftmaxBench(dut, seed=12, p_valid=0.8, p_ready=0.8)
    await tb.start()
    full = torch.full((tb.max_len,), MASK_ONE)
    length = tb.max_len
    equal = torch.full((2, length), 0x35)
    dominant = torch.zeros(2, length, dtype=torch.int64)
    dominant[0, 5] = 0x7F
    dominant[1, length - 1] = 0x7F
    very_negative = encode(attention_scores(2, length, seed=3) / 4 - 27, 7)
    for codes, bias in ((equal, 5), (dominant, 7), (very_negative, 7)):
        for renorm in (False, True):
            await tb.rows(codes, full, bias, 3, renorm)
    codes = _codes(2, 64, seed=4)
    for z in (-8.0, 64.0):  # span zero and full span
        for renorm in (False, True):
            await tb.rows(codes, span_mask(z, 8, 64), 6, 3, renorm)
    tb.board.finish(6 * 2 * length + 4 * 2 * 64)


@cocotb.test()
async def throughput_matches_cycle_model(dut):
    tb = SoftmaxBench(dut, seed=13)
    await tb.start()
    for length in (tb.n, 64, tb.max_len):
        await tb.rows(_codes(3, length, seed=9), span_mask(length, 8, length), 6, 3, False)
        beats = length // tb.n
        want = softmax_cycles(beats, tb.n)
        assert tb.row_period(beats) == want, (length, tb.row_period(beats), want)
        assert tb.span() == 3 * want, (length, tb.span(), want)
    tb.board.finish()
