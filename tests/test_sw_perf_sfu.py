"""The cycle model's formulas; tests/test_rtl_* check them against the RTL's measured cycles."""

import pytest

from sw.perf.sfu import entropy_cycles, layernorm_cycles, residual_cycles, softmax_cycles


def test_passes_scale_with_beats():
    for f, passes in ((lambda beats: softmax_cycles(beats, 4), 3), (layernorm_cycles, 2),
                      (lambda beats: entropy_cycles(beats, 4), 2), (residual_cycles, 1)):
        assert f(9) - f(8) == passes
        assert f(1) > passes


def test_bad_beats_are_refused():
    with pytest.raises(ValueError, match="beats must be a positive integer, not 0"):
        softmax_cycles(0, 4)


@pytest.mark.parametrize("cycles", [entropy_cycles, softmax_cycles])
def test_sum_pass_waits_for_each_compare_level_past_the_second(cycles):
    # Hand count: the beat's maximum over n lanes has ceil(log2 n) compare levels, one stage each,
    # and pass 2 is timed for two; n = 1, 2, 4 are as n = 4.
    base = cycles(3, 4)
    assert [cycles(3, n) - base for n in (1, 2, 4, 5, 8, 16, 64)] == [0, 0, 0, 1, 1, 2, 4]
    with pytest.raises(ValueError, match="n must be a positive integer, not 0"):
        cycles(3, 0)
    with pytest.raises(ValueError, match="n must be a positive integer, not True"):
        cycles(3, True)
