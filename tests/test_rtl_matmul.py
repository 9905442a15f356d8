"""Generated matrix engine under cocotb: Icarus at n = 4 and 8, every weight density, random
stalls on every stream; one Verilator run. Outputs compared with the golden model as integers,
counters with the cycle model (sim/tb_matmul.py)."""

import dataclasses

import pytest

from hw.matmul import MatmulConfig, MatrixEngine
from sim.matmul_stimulus import KINDS
from sim.runner import require_simulator, run_cocotb

CONFIGS = {
    4: MatmulConfig(n=4, max_k=64, x_depth=32, y_depth=32, m_depth=64, v_depth=128),
    8: MatmulConfig(n=8, max_k=64, x_depth=16, y_depth=16, m_depth=32, v_depth=128),
}


def config_params(config):
    fields = dataclasses.asdict(config)
    del fields["fmt"]
    return fields


def cases(n, seed, count_per_kind):
    """Random shapes within the test configs' buffers: n = 4 up to 12×32×12 (the value stream
    wraps the 4-slot realignment buffer many times), n = 8 up to 16×32×16."""
    import random

    rng = random.Random(seed)
    most = {4: (3, 8, 3), 8: (2, 4, 2)}[n]
    out = []
    for kind in KINDS:
        for _ in range(count_per_kind):
            r, k, c = (n * rng.randint(1, hi) for hi in most)
            out.append(dict(seed=rng.randrange(1 << 30), kind=kind, rows=r, k=k, cols=c))
    return out


def run(n, simulator, seed, count_per_kind):
    config = CONFIGS[n]
    p = dict(config=config_params(config), cases=cases(n, seed, count_per_kind), stall=0.3,
             seed=seed)
    return run_cocotb(MatrixEngine(config=config), f"matmul_n{n}", "sim.tb_matmul",
                      simulator=simulator, params=p)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("n,count", [(4, 3), (8, 2)])
def test_icarus(n, count):
    require_simulator("icarus")
    result = run(n, "icarus", seed=n, count_per_kind=count)
    assert result["tests"] == 2


@pytest.mark.rtl
@pytest.mark.slow
def test_verilator():
    require_simulator("verilator")
    result = run(4, "verilator", seed=11, count_per_kind=2)
    assert result["tests"] == 2
