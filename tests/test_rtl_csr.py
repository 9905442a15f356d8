"""The CSR slave's generated Verilog under cocotbext-axi's AXI4-Lite master (sim/tb_csr.py)."""

import pytest

from hw.csr import Csr
from hw.layouts import AFFormat
from hw.memmap import MemoryMap
from hw.regmap import RegisterMap
from sim.runner import require_simulator, run_cocotb

# Small, non-default parameters: the CFG registers must show these, not the defaults.
MEMMAP = MemoryMap(n=4, reram_bytes=4096, reram_word_bytes=8, desc_words=16, wmask_words=64,
                   wval_words=200, wbias_words=32, act_words=96, aux_words=64, prog_words=40)
FMT = AFFormat(n_bits=8, exp_bits=4, offset=-12, bias_bits=3)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_csr(simulator):
    require_simulator(simulator)
    res = run_cocotb(Csr(regmap=RegisterMap(memmap=MEMMAP, fmt=FMT)), "csr", "sim.tb_csr",
                     simulator=simulator, params={"memmap": vars(MEMMAP), "fmt": vars(FMT)})
    assert res["tests"] == 7
