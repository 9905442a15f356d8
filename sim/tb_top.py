"""cocotb testbench: the accelerator top's Verilog runs a tiny-image sentence.

The memories hold the layout's aux, desc and prog images and the EMBED output (Verilog
initial contents, :func:`sim.top_bench.build_top`); the bench writes the weight memories
through the host streams, starts at command 1, records every ``cmd_done`` (index, cycles and
access counters, held to the cycle model), ENTROPY's H and flag and DVFS's decision as they
complete, and at the end reads every act word the program wrote through the host read port
and compares it with the golden run as integers.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hw.isa import Op
from sim.scoreboard import Scoreboard, params
from sim.top_bench import build_top, final_act, tiny_sentence


def _payload(addr, data, addr_bits):
    return addr | data << addr_bits


@cocotb.test()
async def whole_sentence(dut):
    p = params()
    lay, words, golden, costs, kwargs = tiny_sentence(p["top"], p["sentence"])
    top, cmds, trace, weights = build_top(lay, words, golden, top_kwargs=kwargs)
    n, nb = lay.n, lay.fmt.n_bits
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in ("host_act", "host_aux", "host_desc", "host_prog", "host_wmask", "host_wval",
                 "host_wbias"):
        getattr(dut, f"{port}__valid").value = 0
    dut.start.value = 0
    dut.host_rd_en.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    mm = lay.memmap
    depth = {"host_wmask": mm.wmask_words, "host_wval": mm.wval_words,
             "host_wbias": top.engine_config.b_depth}
    for port, mem in (("host_wmask", "wmask"), ("host_wval", "wval"), ("host_wbias", "wbias")):
        bits = (depth[port] - 1).bit_length()
        for addr, word in enumerate(weights[mem]):
            await FallingEdge(dut.clk)
            getattr(dut, f"{port}__valid").value = 1
            getattr(dut, f"{port}__payload").value = _payload(addr, word, bits)
        await FallingEdge(dut.clk)
        getattr(dut, f"{port}__valid").value = 0
    syms = lay.symbols
    dut.act_mask_base.value = syms["wmask"]["act.ones"]
    dut.act_value_base.value = syms["wval"]["act.values"]
    dut.act_bias_base.value = syms["wbias"]["act.zero"]
    dut.start_pc.value = 1
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    cycles = Scoreboard("command cycles")
    outs = Scoreboard("ENTROPY and DVFS results")
    seen = []
    for _ in range(200_000):
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        if dut.cmd_done.value:
            pc = int(dut.cmd_pc.value)
            seen.append(pc)
            cycles.check(dut.cmd_cycles.value, costs[pc].cycles, f"command {pc}")
            for name, want in costs[pc].ports.items():
                outs.check(getattr(dut, f"cmd_{name}").value, want, f"command {pc} {name}")
            data = trace[pc].data
            if cmds[pc].op is Op.ENTROPY:
                outs.check(dut.entropy.value, int(data["entropy"][0]), f"command {pc} H")
                outs.check(dut.entropy_exit.value, int(data["exit"][0]), f"command {pc} exit")
            if cmds[pc].op is Op.DVFS:
                got = [dut.dvfs_bin.value, dut.dvfs_layer.value, dut.vcode.value,
                       dut.fcode.value]
                outs.check_many(got, data["dvfs"][0].tolist(), f"command {pc} DVFS")
        if dut.done.value:
            break
    assert int(dut.error.value) == 0, f"error {int(dut.error.value)} at {int(dut.error_pc.value)}"
    assert seen == golden.executed[0][1:], seen
    assert int(dut.exit_layer.value) == int(golden.exit_layer[0])
    acts = Scoreboard("act words")
    for word, tile in sorted(final_act(lay, cmds, golden).items()):
        dut.host_rd_en.value = 1
        dut.host_rd_addr.value = word
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        value = int(dut.host_rd_data.value)
        want = sum(int(c) << (nb * (i * n + j)) for i in range(n)
                   for j, c in enumerate(tile[i].tolist()))
        acts.check(value, want, f"act word {word}")
    dut.host_rd_en.value = 0
    assert cycles.count == len(seen) and outs.count > 0 and acts.count > 0
