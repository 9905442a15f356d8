"""The AXI4 load slave's generated Verilog over real memories, under cocotbext-axi's AxiMaster
(sim/tb_axi_mem.py)."""

import pytest

from hw.memmap import MemoryMap
from sim.axi_mem_top import AxiMemTop
from sim.runner import require_simulator, run_cocotb

# Small memories with every case of the window map: 6-byte ReRAM words (padding bytes in a
# lane), 2-byte mask words (n = 4), 16-byte words over four lanes, depths that are not powers
# of two (a gap after the data).
MEMMAP = MemoryMap(n=4, reram_bytes=96, reram_word_bytes=6, desc_words=8, wmask_words=16,
                   wval_words=40, wbias_words=8, act_words=24, aux_words=16, prog_words=12)


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_axi_mem(simulator):
    require_simulator(simulator)
    res = run_cocotb(AxiMemTop(memmap=MEMMAP), "axi_mem_top", "sim.tb_axi_mem",
                     simulator=simulator, params={"memmap": vars(MEMMAP)})
    assert res["tests"] == 3
