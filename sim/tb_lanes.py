"""cocotb: drive a :class:`sim.lanes.Lanes` wrapper with precomputed vectors, compare as integers.

The vectors come from :func:`sim.lanes.run_lanes` as a JSON file (its path in the ``vectors``
parameter): inputs and golden outputs per port, computed in the pytest process so the
simulator's embedded Python never imports PyTorch. Each step drives ``lanes`` vectors at once,
waits 1 ns for the combinational logic, and compares every lane of every output.
"""

import json

import cocotb
from cocotb.triggers import Timer

from sim.lanes import pack, unpack
from sim.scoreboard import Scoreboard, params


@cocotb.test()
async def lanes_match_golden(dut):
    p = params()
    with open(p["vectors"]) as f:
        v = json.load(f)
    lanes, widths = v["lanes"], v["widths"]
    inputs, expected = v["inputs"], v["expected"]
    count = len(next(iter(inputs.values())))
    boards = {name: Scoreboard(f"{v['name']}.{name}") for name in expected}

    def where(k):
        return ", ".join(f"{name}={vals[k]:#x}" for name, vals in inputs.items())

    for i in range(0, count, lanes):
        for name, vals in inputs.items():
            getattr(dut, name).value = pack(vals[i:i + lanes], widths[name][0])
        await Timer(1, unit="ns")
        for name, vals in expected.items():
            width, signed = widths[name]
            got = unpack(getattr(dut, name).value.to_unsigned(), width, signed, lanes)
            for j, (g, e) in enumerate(zip(got, vals[i:i + lanes], strict=False)):
                sb = boards[name]
                sb.check(g, e, "" if g == e else where(i + j))
    for sb in boards.values():
        assert sb.finish(minimum=count) == count
