"""``edgebert bench sim``: the same cocotb test on Icarus Verilog and on Verilator, timed.

The test is the exhaustive multiplier check (every pair of 8-bit codes through ``lanes``
copies of :class:`hw.af_mul.AFMulLane`, compared with the golden ``lane_product``). Each
simulator builds from scratch (build_s) and then runs the test (run_s: the simulator process,
its start-up and the testbench's imports included; test_s: the cocotb test alone). Verilog
generation and the golden values are computed outside these figures (total_s includes them).
"""

import json
import time
from pathlib import Path


def register(sub):
    p = sub.add_parser("sim", help="time the same cocotb test on Icarus and on Verilator",
                       description=__doc__)
    p.add_argument("--simulator", action="append", choices=("icarus", "verilator"),
                   help="simulator to time (repeatable; default: both)")
    p.add_argument("--lanes", type=int, default=32,
                   help="multiplier copies driven per simulator step (default: 32)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=run)


def run(args):
    import tempfile

    import torch

    from hw.af_mul import AFMulLane
    from hw.layouts import DEFAULT_AF
    from sim.lanes import run_lanes
    from sim.runner import simulator_available
    from sw.golden.af import lane_product

    if args.lanes < 1:
        raise ValueError(f"--lanes must be at least 1, not {args.lanes}")
    sims = args.simulator or ["icarus", "verilator"]
    missing = [s for s in sims if not simulator_available(s)]
    if missing:
        raise FileNotFoundError(f"simulator(s) not installed: {', '.join(missing)}")
    fmt = DEFAULT_AF
    codes = torch.arange(fmt.code_max + 1)
    a, b = torch.cartesian_prod(codes, codes).unbind(1)
    expected = lane_product(a, b, fmt)
    figures = {"test": "af_mul exhaustive (65,536 code pairs)", "lanes": args.lanes,
               "steps": -(-len(a) // args.lanes), "simulators": {}}
    print(f"{figures['test']}, {args.lanes} lanes, {figures['steps']} simulator steps")
    print(f"{'simulator':10s} {'build_s':>8s} {'run_s':>8s} {'test_s':>8s} {'total_s':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for sim in sims:
            t0 = time.perf_counter()
            r = run_lanes(lambda: AFMulLane(fmt=fmt), {"a": a, "b": b}, {"product": expected},
                          name="bench_af_mul", workdir=tmp, simulator=sim, lanes=args.lanes,
                          rebuild=True)
            total = time.perf_counter() - t0
            figures["simulators"][sim] = {"build_s": round(r["build_s"], 2),
                                          "run_s": round(r["run_s"], 2),
                                          "test_s": round(r["test_s"], 2),
                                          "compared": r["compared"]}
            print(f"{sim:10s} {r['build_s']:8.2f} {r['run_s']:8.2f} {r['test_s']:8.2f} "
                  f"{total:8.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
