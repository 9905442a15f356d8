"""``edgebert energy``: energy and latency with and without early exit and DVFS ([P2], [S7])."""

import argparse
import json
from pathlib import Path

HELP = """\
Runs the dev split through the golden executor (the chip in software) twice, all layers and
with early exit, prices every executed command's actions (MACs, SFU elements, bytes per memory,
cycles: sw/program/cycles.py) with the energy model (sw/perf/energy.py, 45 nm constants with
sources in docs/energy.md) and reports per sentence, averaged over the split:

  (a) all layers at the nominal (highest) operating point
  (b) early exit at the nominal point (latency-unbounded early exit)
  (c) early exit with DVFS: after layer 1 the exit predictor's bin picks the slowest operating
      point that still finishes the predicted layers within the target latency

the ratios (c)/(a) and (c)/(b) beside EdgeBERT's published 7x and 2.5x, the accuracies, the
deadline misses of (c) (a sentence that runs past its predicted layer can miss), a sweep of
the target, and the oracle: a lower bound on the energy of ANY DVFS policy with the image's
operating points that meets the target (exit layer known in advance, every command at its own
point, free switches; sw.perf.comparison.oracle_bound). If the oracle is above a ratio, no
predictor or table reaches that ratio with these points. Writes energy.json and three plots
to --out.

The target is, per sentence, --target-factor times its own all-layers latency at the nominal
point (default 1: "as fast as all layers at full speed"), or --target-ms for every sentence.

examples:
  edgebert energy sw/assets/sst2_default.ebimg --data /path/to/sst2
  edgebert energy IMAGE --data DIR --target-ms 0.3 --limit 100 --out runs/energy_small
"""

PUBLISHED = {"no_early_exit": 7.0, "latency_unbounded_early_exit": 2.5,
             "source": "Tambe et al., EdgeBERT, MICRO 2021 (arXiv 2011.14203v5), abstract"}
SWEEP = (0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)


def _number(kind):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {s!r}") from None
        return v
    return parse


def register(sub):
    p = sub.add_parser("energy", help="energy and latency: all layers, early exit, early exit + "
                       "DVFS", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--data", default=None, help="GLUE task directory (default: $EDGEBERT_DATA)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-ms", type=_number(float), default=None, metavar="T",
                   help="latency target in ms for every sentence")
    g.add_argument("--target-factor", type=_number(float), default=None, metavar="F",
                   help="latency target as F x the sentence's all-layers latency at the nominal "
                        "point (default: 1)")
    p.add_argument("--sweep", default=",".join(f"{f:g}" for f in SWEEP),
                   help="target factors of the sweep plot, comma-separated (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N dev sentences (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs/energy"),
                   help="output directory (default: runs/energy)")
    p.set_defaults(func=run)


def _mean(x):
    return float(x.mean()) if len(x) else 0.0


def summarize(run, model, target):
    """The report of one target: averages, ratios, accuracies, misses, chosen points."""
    import numpy as np

    from sw.perf.comparison import oracle_bound, scenario_ab, scenario_c

    ab = scenario_ab(run, model)
    c = scenario_c(run, model, target, ab)
    miss = c["latency"] > c["target"] * (1 + 1e-9)
    e_a, e_b, e_c = _mean(ab[:, 0]), _mean(ab[:, 2]), _mean(c["energy"])
    nom = run.nominal
    # Lower bound of (c): the layers after the DVFS decision cost nothing.
    phase1 = np.array([
        run.actions(i, [j for j in run.executed_exit[i]
                        if j <= run.plans[int(run.length[i])].dvfs_index])
        for i in range(len(run.length))], dtype=object)
    bound = _mean(np.array([model.run([_phase(model, a, nom)])[0] for a in phase1]))
    oracle = _mean(oracle_bound(run, model, target))
    chosen = {}
    for i in np.flatnonzero(c["point"] >= 0):
        pt = run.points[c["point"][i]]
        key = f"{int(c['predicted'][i])}"
        name = f"{pt.voltage * 1e3:.0f} mV / {pt.frequency / 1e6:.0f} MHz"
        chosen.setdefault(key, {}).setdefault(name, 0)
        chosen[key][name] += 1
    acc = lambda p: float((p == run.labels).mean())  # noqa: E731
    return {
        "target": str(target), "sentences": int(len(run.length)),
        "energy_uj": {"a": e_a / 1e6, "b": e_b / 1e6, "c": e_c / 1e6},
        "latency_us": {"a": _mean(ab[:, 1]) * 1e6, "b": _mean(ab[:, 3]) * 1e6,
                       "c": _mean(c["latency"]) * 1e6},
        "ratio": {"c_over_a": e_c / e_a, "c_over_b": e_c / e_b, "b_over_a": e_b / e_a,
                  "a_over_c": e_a / e_c, "b_over_c": e_b / e_c},
        "c_lower_bound_uj": bound / 1e6,
        "c_over_b_lower_bound": bound / e_b,
        "oracle_uj": oracle / 1e6,
        "oracle_ratio": {"over_a": oracle / e_a, "over_b": oracle / e_b},
        "deadline_misses": int(miss.sum()),
        "accuracy": {"a": acc(run.pred_all), "b": acc(run.pred_exit), "c": acc(run.pred_exit)},
        "avg_exit_layer": float(run.exit_layer.mean()),
        "exited_at_layer_1": int((run.exit_layer == 1).sum()),
        "chosen_points_by_predicted_layer": chosen,
    }, ab, c


def _phase(model, actions, point):
    from sw.perf.energy import Phase

    return Phase(model.dynamic_pj(actions), actions["cycles"], point)


def _plots(out, run, ab, c, sweep):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    layers = np.arange(1, run.layers + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    w = 0.27
    for k, (name, e) in enumerate((("(a) all layers", ab[:, 0]), ("(b) early exit", ab[:, 2]),
                                   ("(c) early exit + DVFS", c["energy"]))):
        means = [e[run.exit_layer == L].mean() / 1e6 if (run.exit_layer == L).any() else 0
                 for L in layers]
        ax.bar(layers + (k - 1) * w, means, w, label=name)
    counts = [int((run.exit_layer == L).sum()) for L in layers]
    ax.set_xticks(layers, [f"{L}\n({n})" for L, n in zip(layers, counts, strict=True)])
    ax.set_xlabel("exit layer (sentences)")
    ax.set_ylabel("energy per sentence (µJ)")
    ax.set_title("Energy per sentence by exit layer")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "energy_by_exit_layer.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    sel = c["point"] >= 0
    pts = run.points
    for L in sorted(set(c["predicted"][sel].tolist())):
        idx = c["point"][sel][c["predicted"][sel] == L]
        for p, n in zip(*np.unique(idx, return_counts=True), strict=True):
            ax.scatter(L, pts[p].frequency / 1e6, s=20 + 4 * n, color="C0")
            ax.annotate(f"{pts[p].voltage * 1e3:.0f} mV ({n})", (L, pts[p].frequency / 1e6),
                        textcoords="offset points", xytext=(8, -4))
    ax.set_xlabel("predicted exit layer (DVFS bin)")
    ax.set_ylabel("clock after layer 1 (MHz)")
    ax.set_yticks([p.frequency / 1e6 for p in pts])
    ax.set_xlim(1, run.layers + 1)
    ax.set_title("Operating point chosen per predicted layer (sentences)")
    fig.tight_layout()
    paths.append(out / "operating_point_by_predicted_layer.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ok = [s for s in sweep if s["reachable"]]
    f = [s["factor"] for s in ok]
    ax.plot(f, [s["energy_uj"]["c"] for s in ok], "o-", label="(c) early exit + DVFS")
    ax.axhline(_mean(ab[:, 2]) / 1e6, color="C1", ls="--", label="(b) early exit")
    ax.axhline(_mean(ab[:, 0]) / 1e6, color="C2", ls=":", label="(a) all layers")
    ax.set_xlabel("target latency / all-layers latency at the nominal point")
    ax.set_ylabel("average energy per sentence (µJ)")
    ax2 = ax.twinx()
    ax2.bar(f, [s["deadline_misses"] for s in ok], width=0.05, color="C3", alpha=0.5)
    ax2.set_ylabel("deadline misses (sentences)", color="C3")
    ax.legend(loc="upper right")
    ax.set_title("Energy and deadline misses as the target sweeps")
    fig.tight_layout()
    paths.append(out / "target_sweep.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def run(args):
    import torch

    from sw.data import load_split
    from sw.image import read_image
    from sw.perf.comparison import Target, TargetError, run_split
    from sw.perf.energy import CONSTANTS, EnergyModel, operating_points
    from sw.program.layout import lay_out

    torch.set_num_threads(args.threads)
    if args.target_ms is not None:
        target = Target(seconds=args.target_ms / 1e3)
    else:
        target = Target(factor=1.0 if args.target_factor is None else args.target_factor)
    try:
        factors = [float(s) for s in args.sweep.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sweep must be comma-separated numbers, not {args.sweep!r}") from None
    for f in factors:
        Target(factor=f)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive integer, not {args.limit}")
    img = read_image(args.image)
    lay = lay_out(img)
    examples = load_split(args.data, "dev")[:args.limit]
    if any(e.text_b is not None for e in examples):
        raise ValueError("sentence-pair tasks are not supported by the energy report yet")
    points = operating_points(img.meta["dvfs"])
    split = run_split(lay, [e.text_a for e in examples], [e.label for e in examples], points,
                      progress=True)
    model = EnergyModel(lay.memmap)
    rep, ab, c = summarize(split, model, target)
    sweep = []
    for f in factors:
        try:
            s, _, _ = summarize(split, model, Target(factor=f))
            sweep.append({"factor": f, "reachable": True, **s})
        except TargetError as e:
            sweep.append({"factor": f, "reachable": False, "why": str(e)})
    rep.update({
        "image": str(args.image), "published_energy_reduction": PUBLISHED,
        "operating_points": [{"mv": p.voltage * 1e3, "mhz": p.frequency / 1e6} for p in points],
        "leakage_mw_at_0v9": model.leakage_mw,
        "constants": [vars(k) for k in CONSTANTS], "sweep": sweep,
    })
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "energy.json").write_text(json.dumps(rep, indent=2))
    paths = _plots(args.out, split, ab, c, sweep)
    e, r = rep["energy_uj"], rep["ratio"]
    print(f"{rep['sentences']} sentences, target {rep['target']}")
    print(f"energy per sentence: (a) {e['a']:.3f} µJ  (b) {e['b']:.3f} µJ  (c) {e['c']:.3f} µJ")
    print(f"(c)/(a) = 1/{r['a_over_c']:.2f} (EdgeBERT: 1/7), (c)/(b) = 1/{r['b_over_c']:.2f} "
          f"(EdgeBERT: 1/2.5); deadline misses {rep['deadline_misses']}")
    o = rep["oracle_ratio"]
    print(f"any DVFS policy with these points (exit known, per-command points, free switches): "
          f"≥ {rep['oracle_uj']:.3f} µJ, ≥ 1/{1 / o['over_a']:.2f} of (a), "
          f"≥ 1/{1 / o['over_b']:.2f} of (b)")
    acc = rep["accuracy"]
    print(f"accuracy: (a) {acc['a']:.4f}  (b) {acc['b']:.4f}  (c) {acc['c']:.4f}; average exit "
          f"layer {rep['avg_exit_layer']:.2f}")
    for p in [args.out / "energy.json", *paths]:
        print(f"wrote {p}")
