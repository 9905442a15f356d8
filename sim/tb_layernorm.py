"""cocotb testbench: LayerNorm against :func:`sw.golden.layernorm.layernorm`."""

import cocotb
import torch

from hw.layouts import AFFormat
from sim.rowbench import RowBench
from sim.stream import pack, unpack
from sw.adaptivfloat import encode
from sw.golden.layernorm import layernorm
from sw.golden.sfu_check import hidden_activations
from sw.perf.sfu import layernorm_cycles


class LayerNormBench(RowBench):
    def __init__(self, dut, seed, p_valid=1.0, p_ready=1.0):
        super().__init__(dut, "layernorm", seed, p_valid, p_ready)
        self.n = self.p["n"]
        self.max_len = self.p["max_len"]
        self.fmt = AFFormat(**self.p["fmt"])

    async def rows(self, codes, gamma, beta, biases, eps):
        """Run code rows (rows, L) with gamma, beta (L,); ``biases`` = (in, gamma, beta, out)."""
        rows, length = codes.shape
        n, w, d = self.n, self.fmt.n_bits, self.dut
        d.length.value = length // n
        d.bias_in.value, d.bias_gamma.value, d.bias_beta.value, d.bias_out.value = biases
        d.eps.value = eps
        want = layernorm(codes, gamma, beta, *biases, eps, self.fmt)
        g, b = gamma.tolist(), beta.tolist()
        beats = [pack(row[c:c + n] + g[c:c + n] + b[c:c + n], w)
                 for row in codes.tolist() for c in range(0, length, n)]
        got = await self.transfer(beats, len(beats))
        for r, (word, exp) in enumerate(zip(got, want.reshape(-1, n).tolist(), strict=True)):
            self.board.check_many(unpack(word, w, n), exp,
                                  f"row {r * n // length} beat {r % (length // n)}, eps={eps}")


def _gamma_beta(length, seed):
    g = torch.Generator().manual_seed(seed)
    gamma = encode(1 + 0.2 * torch.randn(length, generator=g), 3)
    beta = encode(0.1 * torch.randn(length, generator=g), 1)
    return gamma, beta


@cocotb.test()
async def random_rows_with_stalls(dut):
    tb = LayerNormBench(dut, seed=21, p_valid=0.7, p_ready=0.6)
    await tb.start()
    total = 0
    for i, length in enumerate((tb.max_len, tb.n, 3 * tb.n)):
        gamma, beta = _gamma_beta(length, seed=i)
        codes = encode(hidden_activations(3, length, seed=i), 7)
        for eps in (0, 300):
            await tb.rows(codes, gamma, beta, (7, 3, 1, 6), eps)
            total += codes.numel()
    g = torch.Generator().manual_seed(5)
    random = torch.randint(0, 256, (2, 64), generator=g)
    await tb.rows(random, random[0], random[1], (2, 5, 6, 4), 7)
    tb.board.finish(total + random.numel())


@cocotb.test()
async def constant_rows(dut):
    tb = LayerNormBench(dut, seed=22, p_valid=0.8, p_ready=0.8)
    await tb.start()
    gamma, beta = _gamma_beta(tb.max_len, seed=9)
    for eps in (0, 1):
        await tb.rows(torch.full((2, tb.max_len), 0x4A), gamma, beta, (4, 3, 1, 1), eps)
    tb.board.finish(4 * tb.max_len)


@cocotb.test()
async def throughput_matches_cycle_model(dut):
    tb = LayerNormBench(dut, seed=23)
    await tb.start()
    for length in (tb.n, tb.max_len):
        gamma, beta = _gamma_beta(length, seed=1)
        await tb.rows(encode(hidden_activations(3, length, seed=2), 7), gamma, beta,
                      (7, 3, 1, 6), 0)
        beats = length // tb.n
        assert tb.row_period(beats) == layernorm_cycles(beats), (length, tb.row_period(beats))
        assert tb.span() == 3 * layernorm_cycles(beats), (length, tb.span())
    tb.board.finish()
