"""Matrix engine in the Amaranth simulator (n = 4): bit-exact against the golden model, counters
equal to the cycle model, random stalls on every stream, error statuses, argument checks."""

import dataclasses

import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.layouts import AFFormat
from hw.matmul import MatmulConfig, MatmulError, MatrixEngine
from hw.matmul.logic import at_least as _at_least
from sim.drivers import run_matmul as run_amaranth
from sim.matmul_stimulus import random_case, random_codes
from sw.golden.matmul import matmul
from sw.matmul_buffers import make_job, y_from_words
from sw.perf.matmul import matmul_cycles
from sw.sparse import PackedWeights

CFG = MatmulConfig(n=4, max_k=32, x_depth=16, y_depth=16, m_depth=32, v_depth=64)


def check_run(job, regs, x, w, bias, stall_seed=None):
    words, status = run_amaranth(job, stall_seed=stall_seed)
    assert status["err"] == MatmulError.NONE
    got = y_from_words(job.config, job.rows, job.cols, words)
    want = matmul(x, w, bias, **regs).to(torch.int64)
    assert torch.equal(got, want), f"first mismatch at {(got != want).nonzero()[0].tolist()}"
    model = matmul_cycles(job.packed, job.rows)
    assert (status["cyc_total"], status["cyc_mac"], status["vec_skipped"],
            status["cyc_stall"]) == (model.total, model.mac, model.skipped, model.stall)
    return status


@pytest.mark.parametrize("seed,kind", [(0, "dense"), (1, "unstructured50"), (2, "block50"),
                                       (3, "density10")])
def test_random_shapes_match_golden_and_cycle_model(seed, kind):
    g = torch.Generator().manual_seed(seed)
    n = CFG.n
    rows, k, cols = (n * int(v) for v in torch.randint(1, 4, (3,), generator=g))
    x, w, bias, regs = random_case(seed, rows, k, cols, n, kind)
    check_run(make_job(CFG, x, w, bias, **regs), regs, x, w, bias, stall_seed=seed)


def test_all_zero_weights_give_requantized_bias():
    g = torch.Generator().manual_seed(9)
    x, bias = random_codes(g, 4, 8), random_codes(g, 8)
    w = torch.zeros(8, 8, dtype=torch.int64)
    regs = dict(bias_x=2, bias_w=2, bias_b=3, bias_out=3, relu=False)
    status = check_run(make_job(CFG, x, w, bias, **regs), regs, x, w, bias)
    assert status["cyc_mac"] == 0 and status["vec_skipped"] == 16


def _job(rows=4, k=8, cols=8):
    g = torch.Generator().manual_seed(5)
    regs = dict(bias_x=1, bias_w=1, bias_b=1, bias_out=1, relu=False)
    return make_job(CFG, random_codes(g, rows, k), random_codes(g, k, cols),
                    random_codes(g, cols), **regs)


@pytest.mark.parametrize("change,error", [
    (dict(rows=0), MatmulError.ZERO_DIM),
    (dict(k=6), MatmulError.NOT_MULTIPLE),
    (dict(cols=10), MatmulError.NOT_MULTIPLE),
    (dict(k=36), MatmulError.K_TOO_LARGE),
    (dict(rows=40, k=28), MatmulError.X_OVERFLOW),
    (dict(nnz=64 * 4 + 1), MatmulError.W_OVERFLOW),
    (dict(rows=20, cols=16), MatmulError.Y_OVERFLOW),
    (dict(nnz=60), MatmulError.MASK_MISMATCH),
])
def test_hardware_reports_errors_and_returns_to_idle(change, error):
    job = _job()
    bad = dataclasses.replace(job, regs={**job.regs, **change})
    words, status = run_amaranth(bad, max_cycles=2000)
    assert status["err"] == error
    assert words is None


def test_mask_mismatch_found_after_the_first_of_two_row_tiles():
    job = _job(rows=8)
    bad = dataclasses.replace(job, regs={**job.regs, "nnz": job.regs["nnz"] + 4})
    words, status = run_amaranth(bad, max_cycles=2000)
    assert status["err"] == MatmulError.MASK_MISMATCH
    assert words is None


def test_software_side_errors():
    g = torch.Generator().manual_seed(0)
    x, w, bias = random_codes(g, 4, 8), random_codes(g, 8, 8), random_codes(g, 8)
    regs = dict(bias_x=1, bias_w=1, bias_b=1, bias_out=1)
    with pytest.raises(ValueError, match="rows must be a multiple of n=4"):
        make_job(CFG, x[:3], w, bias, **regs)
    with pytest.raises(ValueError, match="K must be at most max_k=32"):
        make_job(CFG, random_codes(g, 4, 36), random_codes(g, 36, 8), bias, **regs)
    with pytest.raises(ValueError, match="does not fit the X buffer"):
        make_job(CFG, random_codes(g, 12, 32), random_codes(g, 32, 8), bias, **regs)
    with pytest.raises(ValueError, match="bias_out must be in the bias register range"):
        make_job(CFG, x, w, bias, **{**regs, "bias_out": 9})
    with pytest.raises(ValueError, match="engine needs n=4"):
        from sw.sparse import pack_bitmask
        make_job(CFG, x, pack_bitmask(w, 8), bias, **regs)
    with pytest.raises(ValueError, match="mask and packed data disagree"):
        PackedWeights(n=4, rows=8, cols=8, masks=torch.ones(2, 8, dtype=torch.int64),
                      values=torch.ones(3, dtype=torch.uint8),
                      offsets=torch.tensor([0, 8, 16]))


def test_constructor_checks():
    with pytest.raises(TypeError, match="config must be a MatmulConfig, not 4"):
        MatrixEngine(config=4)
    with pytest.raises(ValueError, match="n must be a power of two in 2..64, not 6"):
        MatmulConfig(n=6)
    with pytest.raises(ValueError, match="offset must be at most M - 2·bias_max"):
        MatmulConfig(fmt=AFFormat(offset=-8))
    with pytest.raises(ValueError, match="max_k must be a multiple of n=16"):
        MatmulConfig(max_k=100)


def test_accumulator_is_sized_for_max_k_and_the_bias():
    # Products 25 bits + log2(1024) = 35; the aligned bias 1 + 5 + 28 = 34; one more for the sum.
    assert MatmulConfig().acc_width == 36
    assert MatmulConfig(max_k=4096).acc_width == 38


@pytest.mark.parametrize("width", [1, 3, 4, 8])
def test_at_least_counts_set_bits_exhaustively(width):
    # The scanner's "more than one mask pending" flag and its update (at least 2 / 3 set).
    x = Signal(width)
    outs = {k: Signal(name=f"at_least{k}") for k in (1, 2, 3)}
    m = Module()
    m.d.comb += [o.eq(_at_least(x, k)) for k, o in outs.items()]
    seen = []

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(x, v)
            for k, o in outs.items():
                assert ctx.get(o) == (v.bit_count() >= k), (v, k)
                seen.append(v)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 3 << width
