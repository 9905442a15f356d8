"""The pipeline helpers: cuts with and without enable, delays, tree reductions in fixed stages,
the chunked multiplier."""

import operator
import random

import pytest
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.sim import Simulator

from hw.entropy import max_tree_stages as entropy_max_tree_stages
from hw.sfu_pipe import MUL_CUTS, delay, max_tree_stages, mul, register_cut, tree


def _run(m, outputs, stimulus, cycles):
    """Drive ``stimulus(i) -> [(signal, value)]`` each cycle; returns each output's values."""
    seen = [[] for _ in outputs]

    async def bench(ctx):
        for i in range(cycles):
            for sig, value in stimulus(i):
                ctx.set(sig, value)
            for o, values in zip(outputs, seen, strict=True):
                values.append(ctx.get(o))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 16, 17])
@pytest.mark.parametrize("stages", [1, 2, 3])
def test_tree_sum_and_max_follow_inputs_by_stages(count, stages):
    m = Module()
    cut = register_cut(m)
    xs = [Signal(signed(12), name=f"x{i}") for i in range(count)]
    total = tree(cut, xs, operator.add, stages)
    best = tree(cut, xs, lambda a, b: Mux(a > b, a, b), stages)
    values = [[(31 * i + 17 * j) % 4001 - 2000 for j in range(count)] for i in range(12)]
    sums, maxima = _run(m, [total, best], lambda i: zip(xs, values[i], strict=True), 12)
    for i in range(12 - stages):
        assert sums[i + stages] == sum(values[i])
        assert maxima[i + stages] == max(values[i])


def test_cut_with_enable_holds_and_delay_counts_cuts():
    m = Module()
    en = Signal()
    x = Signal(8)
    (held,) = register_cut(m, en)([x])
    (late,) = delay(register_cut(m), [x], 3)
    held_seen, late_seen = _run(m, [held, late], lambda i: [(x, i + 1), (en, i % 3 == 0)], 10)
    assert late_seen[3:] == [1, 2, 3, 4, 5, 6, 7]
    # Loaded with x in cycles 0, 3, 6 (x = 1, 4, 7), seen from the next cycle on.
    assert held_seen == [0, 1, 1, 1, 4, 4, 4, 7, 7, 7]


def test_bad_tree_arguments_are_refused():
    with pytest.raises(ValueError, match="tree needs at least one value"):
        tree(list, [], operator.add, 2)
    with pytest.raises(ValueError, match="stages must be a positive integer, not 0"):
        tree(list, [Signal()], operator.add, 0)


@pytest.mark.parametrize(("wa", "sa", "wb", "sb"), [
    (5, False, 7, False), (17, False, 17, False), (18, False, 35, False), (38, False, 21, False),
    (24, True, 24, True), (25, True, 22, False), (14, True, 24, True), (11, False, 36, False),
    (22, False, 24, True)])
def test_mul_is_exact_after_its_cuts(wa, sa, wb, sb):
    m = Module()
    a, b = Signal(signed(wa) if sa else wa), Signal(signed(wb) if sb else wb)
    p = mul(register_cut(m), a, b)
    lo_a, hi_a = (-(1 << (wa - 1)), (1 << (wa - 1)) - 1) if sa else (0, (1 << wa) - 1)
    lo_b, hi_b = (-(1 << (wb - 1)), (1 << (wb - 1)) - 1) if sb else (0, (1 << wb) - 1)
    rng = random.Random(wa * 100 + wb)
    pairs = [(lo_a, lo_b), (hi_a, hi_b), (lo_a, hi_b), (hi_a, lo_b), (0, hi_b)]
    pairs += [(rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)) for _ in range(40)]
    (got,) = _run(m, [p], lambda i: [(a, pairs[i % 45][0]), (b, pairs[i % 45][1])], 45 + MUL_CUTS)
    assert got[MUL_CUTS:] == [x * y for x, y in pairs]


def test_max_tree_has_a_stage_per_compare_level_and_at_least_two():
    # Compare levels of a balanced tree over n lanes, by hand: 0, 1, 2, 3 (5 and 8 lanes), 4, 6.
    assert [max_tree_stages(n) for n in (1, 2, 4, 5, 8, 16, 64)] == [2, 2, 2, 3, 3, 4, 6]
    assert entropy_max_tree_stages is max_tree_stages  # still importable from hw.entropy
