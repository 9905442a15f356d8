import pytest

from sw.dvfs import OperatingPoint, build_table
from sw.golden.dvfs import dvfs_lookup
from sw.golden.entropy import threshold_units

POINTS = [(0.5, 100e6), (0.6, 200e6), (0.7, 300e6), (0.8, 400e6)]


def test_lowest_voltage_meeting_the_target():
    # 1000 cycles per layer, 12.5 us budget: remaining layers 0, 1, 3, 5 need 0, 1e3, 3e3, 5e3
    # cycles, so at least 0, 80, 240, 400 MHz: 100, 100, 300, 400 MHz points.
    t = build_table([1, 2, 4, 6], [0.1, 0.3, 0.5], 1000, POINTS, 12.5e-6)
    assert [p.frequency for p in t.points] == [100e6, 100e6, 300e6, 400e6]
    assert t.vcodes == (0, 0, 2, 3) and t.fcodes == (0, 0, 2, 3)
    assert t.latencies == pytest.approx((0.0, 10e-6, 10e-6, 12.5e-6))
    assert t.edges == tuple(threshold_units(e) for e in (0.1, 0.3, 0.5))
    assert t.registers()[1] == (1, threshold_units(0.3), 0, 0)
    assert t.registers()[3][1] == 0


def test_exactly_on_the_target_and_tie_on_voltage():
    t = build_table([3, 3], [0.2], 1000, [(0.6, 250e6), (0.6, 200e6), (0.9, 500e6)], 10e-6)
    # 2000 cycles at 200 MHz = 10 us exactly: allowed; same voltage, lower frequency chosen.
    assert t.points[0] == OperatingPoint(0.6, 200e6)


def test_unreachable_target_is_a_clear_error():
    with pytest.raises(ValueError, match=r"bin 1 \(exit layer 12\) needs 11000 cycles"):
        build_table([2, 12], [0.4], 1000, POINTS, 20e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="need 2 bin edges for 3 bins"):
        build_table([1, 2, 3], [0.1], 100, POINTS, 1e-3)
    with pytest.raises(ValueError, match="strictly ascending"):
        build_table([1, 2, 3], [0.3, 0.1], 100, POINTS, 1e-3)
    with pytest.raises(ValueError, match="voltage must be a positive number"):
        OperatingPoint(0, 1e6)
    with pytest.raises(ValueError, match="do not fit 1 and 4 bits"):
        build_table([1, 2, 4, 6], [0.1, 0.3, 0.5], 1000, POINTS, 12.5e-6).registers(1, 4)


def test_golden_lookup():
    edges, v, f = [10, 20, 30], [3, 2, 1, 0], [7, 6, 5, 4]
    assert [dvfs_lookup(h, edges, v, f)[0] for h in (0, 9, 10, 19, 20, 30, 1 << 19)] == \
        [0, 0, 1, 1, 2, 3, 3]
    assert dvfs_lookup(25, edges, v, f) == (2, 1, 5)
    with pytest.raises(ValueError, match="one vcode and fcode per bin"):
        dvfs_lookup(0, edges, v[:3], f)
