"""Energy model and the EdgeBERT comparisons (sw/perf/energy.py, sw/perf/comparison.py)."""

import math
import re

import pytest
import torch

from hw.isa import Op, command, encode_program
from sw.image import read_image
from sw.perf.comparison import Target, TargetError, run_split, scenario_ab, scenario_c
from sw.perf.energy import (
    ADD_PJ,
    CONSTANTS,
    CONTROL_PJ,
    MAC_PJ,
    SFU_PJ,
    V_REF,
    EnergyModel,
    OperatingPoint,
    Phase,
    constants_table,
    operating_points,
    summarize_actions,
)
from sw.program.cycles import program_costs
from sw.program.executor import GoldenExecutor
from sw.program.layout import lay_out

IMAGE = "sw/assets/sst2_small.ebimg"  # the width-128 image: quick on the golden executor


@pytest.fixture(scope="module")
def image():
    torch.set_num_threads(1)
    return read_image(IMAGE)


@pytest.fixture(scope="module")
def lay(image):
    return lay_out(image)


def _hand_program():
    mat = {"x_base": 0, "x_stride": 1, "dst_base": 8, "dst_stride": 1}
    return [
        command(Op.MATMUL_ACT, **mat, w_base=4, w_stride=1, rows=1, k=1, cols=1, bias_x=0,
                bias_w=0, bias_out=0, transpose=0),
        command(Op.SOFTMAX, **mat, rows=1, cols=1, keys=16, mask_addr=0, bias_in=0,
                bias_out=0, renorm=0),
        command(Op.ADD, a_base=0, a_stride=1, b_base=8, b_stride=1, dst_base=12, dst_stride=1,
                rows=1, cols=1, bias_a=0, bias_b=0, bias_out=0),
        command(Op.END),
    ]


def test_hand_program_energy_is_the_sum_of_its_actions(lay):
    model = EnergyModel(lay.memmap)
    costs = program_costs(encode_program(_hand_program()), GoldenExecutor(lay))
    expected = 0.0
    for c in costs:
        expected += c.issued_macs * MAC_PJ + c.cycles * CONTROL_PJ
        expected += c.sfu_elements * {"softmax": SFU_PJ, "add": ADD_PJ}.get(c.unit, 0)
        for kind in (c.reads, c.writes):
            expected += sum(b * model.sram_byte_pj(m) for m, b in kind.items())
    actions = summarize_actions(costs, range(len(costs)))
    assert costs[0].issued_macs == 16 ** 3
    assert model.dynamic_pj(actions) == pytest.approx(expected, rel=1e-12)
    assert sum(model.dynamic_pj(c) for c in costs) == pytest.approx(expected, rel=1e-12)
    # One phase at 0.9 V: dynamic + leakage over the run's time.
    f = 1e9
    e, t = model.run([Phase(expected, actions["cycles"], OperatingPoint(V_REF, f))])
    assert t == actions["cycles"] / f
    assert e == pytest.approx(expected + model.leakage_mw * 1e-3 * t * 1e12)


def test_voltage_scaling_and_switch(lay):
    model = EnergyModel(lay.memmap)
    hi, lo = OperatingPoint(0.9, 1e9), OperatingPoint(0.45, 5e8)
    e_lo, t_lo = model.run([Phase(1000.0, 500, lo)])
    assert t_lo == 1e-6
    assert e_lo == pytest.approx(1000.0 / 4 + model.leakage_mw * 1e-3 * 0.5 * 1e-6 * 1e12)
    e2, t2 = model.run([Phase(1000.0, 500, hi), Phase(1000.0, 500, lo)])
    e_hi, t_hi = model.run([Phase(1000.0, 500, hi)])
    assert t2 == pytest.approx(t_hi + t_lo + model.switch_s)
    assert e2 == pytest.approx(e_hi + e_lo + model.leakage_pj(model.switch_s, hi))


def test_sram_rule_fits_horowitz(lay):
    model = EnergyModel(lay.memmap)
    # 10 pJ per 64 bits at 8 KB, x sqrt(capacity / 8 KB); the act memory is priced per bank.
    assert model.sram_byte_pj("aux") == pytest.approx(10 / 8 * math.sqrt(16 / 8))
    assert model.sram_byte_pj("act") == pytest.approx(10 / 8 * math.sqrt(16 / 8))
    assert model.sram_byte_pj("wval") == pytest.approx(10 / 8 * math.sqrt(256 / 8))


def test_every_constant_has_a_source():
    for c in CONSTANTS:
        assert c.value > 0 and c.source and c.published
    assert constants_table().count("\n") == len(CONSTANTS) + 1


def test_operating_points(image):
    pts = operating_points(image.meta["dvfs"])
    assert pts[-1] == OperatingPoint(0.8, 1e9) and pts[0] == OperatingPoint(0.5, 2.5e8)
    with pytest.raises(ValueError, match=re.escape("dvfs mv and mhz must be ascending, not "
                                                   "[800, 500] and [1000, 250]")):
        operating_points({"mv": [800, 500], "mhz": [1000, 250]})


@pytest.mark.parametrize("kw, msg", [
    ({"seconds": -1e-3}, "the target latency must be a positive number, not -1.0 ms"),
    ({"factor": 0.0}, "the target latency must be a positive number, not 0.0"),
    ({"factor": float("nan")}, "the target latency must be a positive number, not nan"),
    ({}, "a target is either seconds or a factor, exactly one of them"),
])
def test_bad_targets(kw, msg):
    with pytest.raises(TargetError, match=f"^{re.escape(msg)}$"):
        Target(**kw)


@pytest.fixture(scope="module")
def split(image, lay):
    texts = ["a gorgeous , witty , seductive movie .", "the acting is dreadful .",
             "it 's a charming and often affecting journey ."]
    return run_split(lay, texts, [1, 0, 1], operating_points(image.meta["dvfs"]))


def test_scenarios(split, lay):
    model = EnergyModel(lay.memmap)
    ab = scenario_ab(split, model)
    assert (ab[:, 2] <= ab[:, 0]).all() and (ab[:, 3] <= ab[:, 1]).all()
    c = scenario_c(split, model, Target(factor=1.0), ab)
    # A sentence that exits at layer 1 never reaches the DVFS decision: (c) equals (b).
    one = split.exit_layer == 1
    assert (c["point"][one] == -1).all()
    assert c["energy"][one] == pytest.approx(ab[one, 2])
    # A sentence left at the nominal point (or exiting at layer 1) runs no slower than all
    # layers at the nominal point (END included), so it meets a 1x target.
    nominal = len(split.points) - 1
    ok = (c["point"] == -1) | (c["point"] == nominal)
    assert ok.any() and (c["latency"][ok] <= c["target"][ok]).all()
    assert (c["target"] == pytest.approx(ab[:, 1], rel=1e-12))
    # At a generous target every decision takes the lowest point.
    slow = scenario_c(split, model, Target(factor=100.0), ab)
    assert (slow["point"][~one] == 0).all()


def test_unreachable_targets(split, lay):
    model = EnergyModel(lay.memmap)
    t = int(split.length.min())
    plan = split.plans[t]
    t1 = plan.cycles(plan.phase1) / 1e9
    msg = (f"target latency 0.0001 ms is unreachable for a {t}-token sentence: the embedding "
           f"and layer 1 alone take {t1 * 1e3:.4g} ms at the nominal point (1000 MHz)")
    with pytest.raises(TargetError, match=f"^{re.escape(msg)}$"):
        scenario_c(split, model, Target(seconds=1e-7))
    # Past layer 1 but not the predicted layers at the fastest point.
    just = t1 + model.switch_s + plan.layer_cycles / 1e9 * 1.5
    with pytest.raises(TargetError, match=re.escape(
            f"target latency {just * 1e3:.4g} ms is unreachable for a {t}-token sentence: bin ")):
        scenario_c(split, model, Target(seconds=just))


def test_hull_steps_by_hand():
    from sw.perf.comparison import _hull_steps

    # Three points: (1 s, 10 pJ), (2 s, 6 pJ), (4 s, 5 pJ); the middle one is on the hull.
    assert _hull_steps([1.0, 2.0, 4.0], [10.0, 6.0, 5.0]) == [(1.0, -4.0), (2.0, -1.0)]
    # (2 s, 9 pJ) lies above the chord from (1, 10) to (4, 4): skipped.
    assert _hull_steps([1.0, 2.0, 4.0], [10.0, 9.0, 4.0]) == [(3.0, -6.0)]
    # Slower and dearer (leakage): no step.
    assert _hull_steps([1.0, 2.0], [10.0, 11.0]) == []


def test_oracle_bounds_every_feasible_policy(split, lay):
    from sw.perf.comparison import oracle_bound

    model = EnergyModel(lay.memmap)
    ab = scenario_ab(split, model)
    for factor in (1.0, 2.0):
        tgt = Target(factor=factor)
        c = scenario_c(split, model, tgt, ab)
        bound = oracle_bound(split, model, tgt)
        met = c["latency"] <= c["target"]
        # (b) and (c), where they meet the target, are policies the bound covers.
        assert (bound <= ab[:, 2] * (1 + 1e-12)).all()
        assert (bound[met] <= c["energy"][met] * (1 + 1e-12)).all()
    # An unbounded target: every command at its cheapest point, by hand.
    pts = split.points
    i = 0
    plan = split.plans[int(split.length[i])]
    costs = list(plan.costs)
    costs[0] = split.embed_costs[i]
    want = sum(min(model.dynamic_pj(costs[j]) * (p.voltage / V_REF) ** 2
                   + model.leakage_pj(costs[j].cycles / p.frequency, p) for p in pts)
               for j in split.executed_exit[i])
    got = oracle_bound(split, model, Target(factor=1e6))[i]
    assert got == pytest.approx(want, rel=1e-12)
