import pytest

from hw.dvfs import DvfsController
from sim.selfcheck import blocks


def test_selfcheck_matches_golden():
    block = blocks()["dvfs"]
    assert "golden (bin, vcode, fcode)" in block.selfcheck(**block.params)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="bins must be in 2..64, not 1"):
        DvfsController(bins=1)
    with pytest.raises(ValueError, match="vcode_bits must be in 1..16, not 17"):
        DvfsController(vcode_bits=17)
