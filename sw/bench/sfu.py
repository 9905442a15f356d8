"""``edgebert bench sfu``: accuracy of the special function units against float64, and their
cycles per row from the cycle model (checked against the RTL by tests/test_rtl_*)."""

import json
from pathlib import Path


def register(sub):
    p = sub.add_parser("sfu", help="special function units: accuracy vs float64, cycles per row",
                       description=__doc__)
    p.add_argument("--rows", type=int, default=10_000, help="rows per measurement (10000)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.set_defaults(func=run)


def run(args):
    from tqdm import tqdm

    from sw.golden.sfu_check import measure_entropy, measure_layernorm, measure_softmax
    from sw.perf.sfu import entropy_cycles, layernorm_cycles, residual_cycles, softmax_cycles

    if args.rows < 1:
        raise ValueError(f"--rows must be positive, not {args.rows}")
    jobs = [lambda: measure_softmax(args.rows, 64, False),
            lambda: measure_softmax(args.rows, 64, True),
            lambda: measure_layernorm(args.rows, 128, 6),
            *[(lambda c=c: measure_entropy(args.rows, c)) for c in (2, 3, 10, 64)]]
    figures = [job() for job in tqdm(jobs, desc="measuring", leave=False)]
    for f in figures:
        print(json.dumps(f))
    n = 16
    cycles = {"lanes": n,
              "softmax_64": softmax_cycles(64 // n, n), "softmax_512": softmax_cycles(512 // n, n),
              "layernorm_384": layernorm_cycles(384 // n),
              "entropy_2_classes_4_lanes": entropy_cycles(1, 4),
              "residual_384": residual_cycles(384 // n)}
    print(json.dumps({"cycles_per_row": cycles}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"accuracy": figures, "cycles_per_row": cycles},
                                        indent=2))
    return 0
