"""The cycle model's formulas; tests/test_rtl_* check them against the RTL's measured cycles."""

import pytest

from sw.perf.sfu import entropy_cycles, layernorm_cycles, residual_cycles, softmax_cycles


def test_passes_scale_with_beats():
    for f, passes in ((softmax_cycles, 3), (layernorm_cycles, 2), (entropy_cycles, 2),
                      (residual_cycles, 1)):
        assert f(9) - f(8) == passes
        assert f(1) > passes


def test_bad_beats_are_refused():
    with pytest.raises(ValueError, match="beats must be a positive integer, not 0"):
        softmax_cycles(0)
