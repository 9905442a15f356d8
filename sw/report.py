"""Reports ([S7]) of a trained student and its image: JSON plus plots.

* accuracy vs. average exit layer (the entropy-threshold sweep on dev, the chosen threshold),
* sparsity per pruned tensor (encoder matrices and the token table),
* memory breakdown of the weight image (per section and per tensor group).
"""

import json
from pathlib import Path

__all__ = ["memory_breakdown", "build_report", "plot_report", "write_report"]


def memory_breakdown(img):
    """Bytes per section and per tensor group (``wq.masks`` and ``wq.values`` → ``wq``)."""
    groups = {}
    for name, t in img.tensors.items():
        g = name.split(".")[0] if t.fmt.startswith("bitmask") or name.endswith(
            (".weight", ".bias")) else name
        groups.setdefault(t.section, {}).setdefault(g, 0)
        groups[t.section][g] += t.array.nbytes
    return {"sections": img.section_bytes(), "groups": groups}


def build_report(metrics, img=None, image_size=None):
    """The JSON report from training metrics (and the image, if given)."""
    dev = metrics["dev"]
    rep = {
        "dev": {k: dev[k] for k in ("accuracy_float", "accuracy_all_layers",
                                     "accuracy_early_exit", "avg_layers",
                                     "avg_layers_fraction", "accuracy_per_ramp")},
        "layers": metrics["student_config"]["layers"],
        "threshold": metrics["threshold"],
        "sweep": dev["sweep"],
        "sparsity": metrics["sparsity"],
        "spans": metrics["spans"],
        "predictor": metrics["predictor"],
        "dvfs": metrics["dvfs"],
        "calibration": metrics["calibration"],
        "train_s": metrics["train_s"],
        "n_train": metrics["n_train"],
    }
    if img is not None:
        rep["memory"] = memory_breakdown(img)
        rep["memory"]["image_bytes"] = image_size
    return rep


def plot_report(rep, out_dir):
    """Three PNG plots next to the JSON; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sw = rep["sweep"]
    ax.plot([r["avg_layers"] for r in sw], [100 * r["accuracy"] for r in sw], ".-")
    ax.axhline(100 * rep["dev"]["accuracy_all_layers"], color="grey", ls="--",
               label="all layers")
    ax.plot([rep["dev"]["avg_layers"]], [100 * rep["dev"]["accuracy_early_exit"]], "r*",
            ms=12, label=f"chosen threshold {rep['threshold']:.3f}")
    ax.set_xlabel("average executed layers")
    ax.set_ylabel("dev accuracy (%)")
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / "accuracy_vs_exit_layer.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sp = {k: v for k, v in rep["sparsity"].items()}
    ax.bar(list(sp), [100 * v for v in sp.values()])
    ax.set_ylabel("zero weights (%)")
    ax.set_title("sparsity per tensor")
    fig.tight_layout()
    paths.append(out_dir / "sparsity.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    if "memory" in rep:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bottom = 0
        groups = rep["memory"]["groups"]
        names = list(groups)
        for g in sorted({k for s in groups.values() for k in s}):
            vals = [groups[s].get(g, 0) / 1024 for s in names]
            if any(vals):
                ax.bar(names, vals, bottom=bottom, label=g)
                bottom = [b + v for b, v in zip(
                    bottom if isinstance(bottom, list) else [0] * len(names), vals,
                    strict=True)]
        ax.set_ylabel("KiB")
        ax.set_title(f"weight image: {rep['memory']['image_bytes'] / 1024:.0f} KiB")
        ax.legend(fontsize=6, ncol=3)
        fig.tight_layout()
        paths.append(out_dir / "memory.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def write_report(metrics, out_dir, img=None, image_size=None):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = build_report(metrics, img, image_size)
    (out_dir / "report.json").write_text(json.dumps(rep, indent=2))
    return rep, [out_dir / "report.json", *plot_report(rep, out_dir)]


