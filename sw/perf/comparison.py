"""The EdgeBERT comparisons ([P2], [S7]): per-sentence energy and latency of a data split from
the program's per-command action counts.

Three ways to run a sentence:

* **(a)** all layers at the nominal (highest) operating point;
* **(b)** early exit at the nominal point (latency-unbounded early exit);
* **(c)** early exit with DVFS: the embedding, layer 1 and the DVFS command run at the nominal
  point; the DVFS command maps the layer-1 entropy to a bin, the bin to a predicted exit layer
  and an operating point; the remaining layers run there.

For (c) the DVFS table is rebuilt for the target latency with :func:`sw.dvfs.build_table`,
which is what the host loads into the programmable table of the DVFS controller ([H6]): for
each bin, the lowest-voltage point that finishes the predicted layers after layer 1 within
``target - t(embedding + layer 1 at the nominal point) - t(switch)``. A sentence that reaches
the DVFS command has not exited at layer 1, so a bin predicting layer 1 is planned for layer 2.
Since the cycle counts depend on the sentence length, so does the table: the host writes one per
length (it compiles one program per length already). A deadline is missed when a sentence's
actual latency (its real exit layer) exceeds the target.

Accuracy of (c) equals that of (b) by construction: DVFS changes when a command runs, never what
it computes.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from hw.isa import Op
from hw.sfu_tables import LN_FRAC
from sw.dvfs import build_table
from sw.perf.energy import V_REF, EnergyModel, Phase, summarize_actions
from sw.program.compiler import compile_program
from sw.program.cycles import command_cost, program_costs
from sw.program.executor import GoldenExecutor
from sw.program.frontend import encode_texts

__all__ = ["LengthPlan", "SplitRun", "run_split", "Target", "scenario_c", "TargetError"]


class TargetError(ValueError):
    """A latency target that is not a positive number, or that no operating point can meet."""


@dataclass
class LengthPlan:
    """The program of one sentence length, its per-command costs and DVFS landmarks."""

    tokens: int
    commands: list
    costs: list
    dvfs_index: int
    entropy_index: list          # per layer, the index of its ENTROPY command

    @property
    def phase1(self):
        """Command indices up to and including the DVFS decision (run at the nominal point)."""
        return range(self.dvfs_index + 1)

    def cycles(self, indices):
        return sum(self.costs[i].cycles for i in indices)

    @property
    def layer_cycles(self):
        """Cycles of one layer after layer 1 (layer 2's commands; later layers are equal)."""
        return self.cycles(range(self.dvfs_index + 1, self.entropy_index[1] + 1))


@dataclass
class SplitRun:
    """Per-sentence results of a split: lengths, labels, predictions (all layers, early exit),
    exit layers, DVFS bins, and the executed command indices of both runs."""

    plans: dict
    length: np.ndarray
    labels: np.ndarray
    pred_all: np.ndarray
    pred_exit: np.ndarray
    exit_layer: np.ndarray
    dvfs_bin: np.ndarray
    executed_all: list
    executed_exit: list
    embed_costs: list
    layers: int
    points: list
    predictor_layers: list
    edges_nats: list
    dynamic: dict = field(default_factory=dict)   # cache: (sentence, scenario) -> actions

    @property
    def nominal(self):
        return self.points[-1]

    def actions(self, i, indices):
        """Action counts of sentence ``i`` over ``indices`` (its exact EMBED cost)."""
        plan = self.plans[int(self.length[i])]
        costs = list(plan.costs)
        costs[0] = self.embed_costs[i]
        return summarize_actions(costs, indices)


def _plan(lay, ex, tokens):
    prog = compile_program(lay, tokens, early_exit=True)
    cmds = prog.commands
    ent = [i for i, c in enumerate(cmds) if c.op is Op.ENTROPY]
    dv = [i for i, c in enumerate(cmds) if c.op is Op.DVFS]
    if len(dv) != 1 or len(ent) < 2:
        raise ValueError("the program needs one DVFS command and at least two layers")
    return prog, LengthPlan(tokens=tokens, commands=cmds,
                            costs=program_costs(prog.program_bytes(), ex), dvfs_index=dv[0],
                            entropy_index=ent)


def run_split(lay, texts, labels, points, *, progress=False):
    """Run every sentence through the golden executor (all layers, and early exit) grouped by
    length, and collect what the energy scenarios need. ``points`` are the operating points
    (:func:`sw.perf.energy.operating_points` of the image's ``meta["dvfs"]``)."""
    from tqdm import tqdm

    ex = GoldenExecutor(lay)
    enc, _ = encode_texts(lay, texts)
    n = len(enc)
    groups = {}
    for i, e in enumerate(enc):
        groups.setdefault(e.length, []).append(i)
    c = lay.config
    out = {k: np.zeros(n, dtype=np.int64) for k in ("pred_all", "pred_exit", "exit", "bin")}
    executed_all, executed_exit, embed = [None] * n, [None] * n, [None] * n
    plans = {}
    for t in tqdm(sorted(groups), desc="lengths", disable=not progress):
        idx = groups[t]
        rows = torch.stack([enc[i].rows for i in idx])
        segs = torch.stack([enc[i].segments for i in idx])
        prog, plan = _plan(lay, ex, t)
        plans[t] = plan
        r = ex.run(prog.program_bytes(), rows, segs)
        full = compile_program(lay, t, early_exit=False)
        ra = ex.run(full.program_bytes(), rows, segs)
        for j, i in enumerate(idx):
            out["pred_exit"][i] = int(r.label[j])
            out["pred_all"][i] = int(ra.label[j])
            out["exit"][i] = int(r.exit_layer[j])
            out["bin"][i] = int(r.dvfs[j, 0])
            executed_exit[i] = list(r.executed[j])
            executed_all[i] = list(ra.executed[j])
            embed[i] = command_cost(plan.commands[0], ex, rows[j])
    img_layers = [int(x) for x in lay_predictor(lay)[1]]
    return SplitRun(
        plans=plans, length=np.array([e.length for e in enc]), labels=np.asarray(labels),
        pred_all=out["pred_all"], pred_exit=out["pred_exit"], exit_layer=out["exit"],
        dvfs_bin=out["bin"], executed_all=executed_all, executed_exit=executed_exit,
        embed_costs=embed, layers=c["layers"], points=list(points),
        predictor_layers=img_layers, edges_nats=lay_predictor(lay)[0])


def lay_predictor(lay):
    """``(edges in nats, predicted exit layer per bin)`` from the layout's DVFS table."""
    from hw.memformats import DvfsBlock

    wb = lay.memmap.word_bytes("aux")
    aux = lay.images["aux"]
    base = lay.symbols["aux"]["dvfs"] * wb
    blk = DvfsBlock(lay.dvfs_bins, wb)
    edges = [int.from_bytes(aux[base + i * wb:base + i * wb + 4].tobytes(), "little")
             for i in range(lay.dvfs_bins - 1)]
    layers = aux[base + blk.layers:base + blk.layers + lay.dvfs_bins].tolist()
    return [e / (1 << LN_FRAC) for e in edges], layers


__all__ += ["lay_predictor"]


@dataclass(frozen=True)
class Target:
    """A latency target: ``seconds`` (absolute, every sentence) or ``factor`` times the
    sentence's own all-layers latency at the nominal point."""

    seconds: float | None = None
    factor: float | None = None

    def __post_init__(self):
        if (self.seconds is None) == (self.factor is None):
            raise TargetError("a target is either seconds or a factor, exactly one of them")
        v = self.seconds if self.seconds is not None else self.factor
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 \
                or not np.isfinite(v):
            what = (f"{v * 1e3!r} ms" if self.seconds is not None and isinstance(v, int | float)
                    and not isinstance(v, bool) else repr(v))
            raise TargetError(f"the target latency must be a positive number, not {what}")

    def for_plan(self, all_layers_s):
        return self.seconds if self.seconds is not None else self.factor * all_layers_s

    def __str__(self):
        if self.seconds is not None:
            return f"{self.seconds * 1e3:.4g} ms"
        return f"{self.factor:g} x all layers at the nominal point"


def _table(run, plan, model, target_s):
    nominal = run.nominal
    t1 = plan.cycles(plan.phase1) / nominal.frequency
    budget = target_s - t1 - model.switch_s
    if budget <= 0:
        raise TargetError(
            f"target latency {target_s * 1e3:.4g} ms is unreachable for a {plan.tokens}-token "
            f"sentence: the embedding and layer 1 alone take {t1 * 1e3:.4g} ms at the nominal "
            f"point ({nominal.frequency / 1e6:g} MHz)")
    layers = [max(p, 2) for p in run.predictor_layers]
    try:
        return build_table(layers, run.edges_nats, plan.layer_cycles,
                           [(p.voltage, p.frequency) for p in run.points], budget, layers_done=1)
    except ValueError as e:
        raise TargetError(f"target latency {target_s * 1e3:.4g} ms is unreachable for a "
                          f"{plan.tokens}-token sentence: {e}") from None


def scenario_ab(run, model: EnergyModel):
    """Per sentence ``(energy_a, latency_a, energy_b, latency_b)`` (pJ, s) at the nominal
    point."""
    nom = run.nominal
    out = np.zeros((len(run.length), 4))
    for i in range(len(run.length)):
        for k, ex in enumerate((run.executed_all[i], run.executed_exit[i])):
            a = run.actions(i, ex)
            out[i, 2 * k:2 * k + 2] = model.run([Phase(model.dynamic_pj(a), a["cycles"], nom)])
    return out


def scenario_c(run, model: EnergyModel, target: Target, ab=None):
    """Per sentence (c): energy (pJ), latency (s), target (s), chosen point index (-1: exited
    at layer 1, no decision), predicted layer; raises :class:`TargetError` if the target is
    unreachable for a length of the split."""
    ab = scenario_ab(run, model) if ab is None else ab
    nom = run.nominal
    tables = {}
    for t, plan in run.plans.items():
        all_s = plan.cycles(range(len(plan.commands))) / nom.frequency
        tables[t] = (target.for_plan(all_s), _table(run, plan, model, target.for_plan(all_s)))
    n = len(run.length)
    energy, latency, tgt = np.zeros(n), np.zeros(n), np.zeros(n)
    point, predicted = np.full(n, -1), np.zeros(n, dtype=np.int64)
    for i in range(n):
        plan = run.plans[int(run.length[i])]
        target_s, table = tables[int(run.length[i])]
        tgt[i] = target_s
        ex = run.executed_exit[i]
        first = [j for j in ex if j <= plan.dvfs_index]
        rest = [j for j in ex if j > plan.dvfs_index]
        a1 = run.actions(i, first)
        phases = [Phase(model.dynamic_pj(a1), a1["cycles"], nom)]
        if plan.dvfs_index in ex:
            b = int(run.dvfs_bin[i])
            p = table.points[b]
            pt = next(q for q in run.points if (q.voltage, q.frequency) == (p.voltage,
                                                                            p.frequency))
            point[i] = run.points.index(pt)
            predicted[i] = max(run.predictor_layers[b], 2)
            a2 = run.actions(i, rest)
            phases.append(Phase(model.dynamic_pj(a2), a2["cycles"], pt))
        energy[i], latency[i] = model.run(phases)
    return {"energy": energy, "latency": latency, "target": tgt, "point": point,
            "predicted": predicted, "tables": {t: tb for t, (_, tb) in tables.items()}}


__all__ += ["scenario_ab"]


def _hull_steps(t, e):
    """Steps along the lower convex hull of one command's (time, energy) points, from the
    fastest point: ``[(dt, de)]`` with ``dt > 0`` and ``de / dt`` increasing (most saving
    first); steps that save nothing are dropped."""
    order = np.argsort(t)
    pts = [(t[k], e[k]) for k in order]
    hull = [pts[0]]
    for p in pts[1:]:
        if p[0] <= hull[-1][0]:
            if p[1] < hull[-1][1]:
                hull[-1] = p
            continue
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (y1 - y0) * (p[0] - x0) >= (p[1] - y0) * (x1 - x0):
                hull.pop()
            else:
                break
        hull.append(p)
    steps = []
    for (x0, y0), (x1, y1) in zip(hull, hull[1:], strict=False):
        if y1 >= y0:
            break
        steps.append((x1 - x0, y1 - y0))
    return steps


def oracle_bound(run, model: EnergyModel, target: Target):
    """Per sentence, a lower bound (pJ) on the energy of **any** DVFS policy over the image's
    operating points that meets ``target``: the exit layer known in advance, every command at
    its own point (embedding and layer 1 included), switches free and instantaneous, and a
    command's cycles splittable between points (the LP relaxation of that multiple-choice
    knapsack, solved exactly by taking hull steps in order of energy saved per second added).
    If this bound is above an energy target, no predictor and no DVFS table reaches it with
    these points."""
    nom = run.nominal
    pts = run.points
    scale = np.array([(p.voltage / V_REF) ** 2 for p in pts])
    leak_s = np.array([model.leakage_pj(1.0, p) for p in pts])      # pJ per second
    inv_f = np.array([1.0 / p.frequency for p in pts])
    out = np.zeros(len(run.length))
    for i in range(len(run.length)):
        plan = run.plans[int(run.length[i])]
        all_s = plan.cycles(range(len(plan.commands))) / nom.frequency
        costs = list(plan.costs)
        costs[0] = run.embed_costs[i]
        steps, base_e, base_t = [], 0.0, 0.0
        for j in run.executed_exit[i]:
            d, cyc = model.dynamic_pj(costs[j]), costs[j].cycles
            t = cyc * inv_f
            e = d * scale + leak_s * t
            k0 = int(np.argmin(t))
            base_e, base_t = base_e + e[k0], base_t + t[k0]
            steps += _hull_steps(t, e)
        slack = target.for_plan(all_s) - base_t
        energy = base_e
        for dt, de in sorted(steps, key=lambda s: s[1] / s[0]):
            if slack <= 0:
                break
            take = min(1.0, slack / dt)
            energy += take * de
            slack -= take * dt
        out[i] = energy
    return out


__all__ += ["oracle_bound"]
