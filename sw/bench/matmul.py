"""``edgebert bench matmul``: utilisation and sparse speed-up of the matrix engine.

For each listed layer shape (the default student's 32×128×128, 32×128×512, 32×512×128 and a
BERT-base-like 128×768×768) at n = 16 it prints, from the cycle model (:mod:`sw.perf.matmul`,
equal to the RTL counters): dense utilisation = rows·K·cols / (n² · cycles), and the cycles with
50 % 1×n block sparsity divided by the dense cycles. Then it runs the generated Verilog
(cocotb, outputs checked against the golden model) for the shapes that fit the default buffers,
prints the measured counters side by side, and the simulation speed (RTL cycles per wall-clock
second of the run phase) on Icarus and on Verilator for 32×128×512.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SHAPES = [(32, 128, 128), (32, 128, 512), (32, 512, 128), (128, 768, 768)]
SPEED_SHAPE = (32, 128, 512)
TARGET_UTIL = 0.95
TARGET_SPARSE = 0.55


def register(sub):
    p = sub.add_parser(
        "matmul", help="matrix engine: utilisation, block-sparse speed-up, simulation speed",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="VMACs = lanes (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    p.add_argument("--simulators", nargs="*", default=["icarus", "verilator"],
                   choices=["icarus", "verilator"],
                   help="simulators for the RTL runs (default: both; none: model only)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--log", type=Path, default=Path("build/bench_matmul_sim.log"),
                   help="simulator output goes here (default: build/bench_matmul_sim.log)")
    p.set_defaults(func=run)


def _model_rows(config, seed):
    import torch

    from sim.matmul_stimulus import random_weights
    from sw.perf.matmul import dense_masks, matmul_cycles
    from sw.sparse import pack_bitmask

    n = config.n
    rows_out = []
    for rows, k, cols in SHAPES:
        dense = matmul_cycles(dense_masks(k, cols, n), rows, n)
        g = torch.Generator().manual_seed(seed)
        sparse = matmul_cycles(pack_bitmask(random_weights(g, k, cols, n, "block50"), n), rows)
        rows_out.append(dict(shape=f"{rows}x{k}x{cols}", dense_cycles=dense.total,
                             utilization=dense.utilization, block50_cycles=sparse.total,
                             block50_ratio=sparse.total / dense.total))
    return rows_out


@contextlib.contextmanager
def _output_to(path):
    """Send this process's stdout/stderr (and its children's: simulator builds and runs) to
    ``path``, so that the benchmark prints only its figures."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _rtl(config, simulator, cases, log):
    from hw.matmul import MatrixEngine
    from sim.runner import run_cocotb, simulator_available

    if not simulator_available(simulator):
        print(f"  {simulator}: not available, skipped")
        return None
    fields = dataclasses.asdict(config)
    del fields["fmt"]
    print(f"  {simulator}: building and running {len(cases)} case(s) (log: {log}) ...",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        t0 = time.perf_counter()
        with _output_to(log):
            result = run_cocotb(
                MatrixEngine(config=config), f"matmul_bench_n{config.n}", "sim.tb_matmul",
                simulator=simulator, testcase="random_cases",
                params=dict(config=fields, cases=cases, stall=0.0, report=str(report)))
        took = time.perf_counter() - t0
        measured = json.loads(report.read_text())
    print(f"  {simulator}: build {result['build_s']:.0f} s, all runs {took:.0f} s "
          f"(outputs and counters checked against the golden and cycle models)")
    return measured


def _fits(config, shape):
    rows, k, cols = shape
    try:
        config.check_shape(rows, k, cols, k * cols)
    except ValueError:
        return False
    return True


def run(args):
    from hw.matmul.config import MatmulConfig
    from sim.matmul_stimulus import random_case
    from sw.perf.matmul import matmul_cycles
    from sw.sparse import pack_bitmask

    config = MatmulConfig(n=args.n)
    n = config.n
    print(f"matrix engine, n = {n} ({n * n} MACs/cycle), cycle model (equals the RTL counters)")
    print(f"{'shape':>12} {'dense cyc':>10} {'util':>7} {'50% 1xn cyc':>12} {'ratio':>6}")
    model = _model_rows(config, args.seed)
    for r in model:
        ok = "ok" if r["utilization"] >= TARGET_UTIL and r["block50_ratio"] <= TARGET_SPARSE \
            else "MISSES TARGET"
        print(f"{r['shape']:>12} {r['dense_cycles']:>10} {100 * r['utilization']:>6.2f}% "
              f"{r['block50_cycles']:>12} {r['block50_ratio']:>6.3f}  {ok}")
    print(f"targets: utilisation >= {100 * TARGET_UTIL:.0f} %, 50 % block-sparse cycles <= "
          f"{TARGET_SPARSE} x dense")
    figures = {"n": n, "model": model, "rtl": {}}

    # RTL: Icarus runs the speed shape (it is slow); Verilator every shape that fits the
    # default buffers, dense and 50 % block sparse.
    fits = [shape for shape in SHAPES if _fits(config, shape)]
    plans = {"icarus": [(SPEED_SHAPE, "dense")],
             "verilator": [(shape, kind) for shape in fits for kind in ("dense", "block50")]}
    sims = list(dict.fromkeys(args.simulators))
    if sims:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        print(f"RTL runs ({', '.join(sims)}), cycles per wall-clock second of the run phase:")
    for sim in sims:
        cases = [dict(seed=args.seed, rows=r, k=k, cols=c, kind=kind)
                 for (r, k, c), kind in plans[sim]]
        measured = _rtl(config, sim, cases, args.log)
        if measured is None:
            continue
        figures["rtl"][sim] = measured
        dense = {}
        for m in measured:
            shape = f"{m['rows']}x{m['k']}x{m['cols']}"
            _, w, _, _ = random_case(m["seed"], m["rows"], m["k"], m["cols"], n, m["kind"])
            m["model_cycles"] = matmul_cycles(pack_bitmask(w, n), m["rows"]).total
            m["cycles_per_s"] = m["cycles"] / m["run_wall_s"]
            if m["kind"] == "dense":
                dense[shape] = m["cycles"]
                extra = f"utilisation {100 * m['utilization']:.2f}%"
            else:
                extra = f"{m['cycles'] / dense[shape]:.3f} x dense" if shape in dense else ""
            print(f"  {sim:>9} {shape:>12} {m['kind']:>7}: {m['cycles']} cycles (model "
                  f"{m['model_cycles']}), {extra}, {m['cycles_per_s']:,.0f} cycles/s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
