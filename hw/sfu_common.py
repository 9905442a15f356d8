"""Argument checks shared by the special function units (softmax, LayerNorm, entropy, add)."""

from hw.checks import check_int
from hw.layouts import AFFormat, FixedFormat

__all__ = ["LaneUnit", "check_lanes", "check_format", "check_row"]


class LaneUnit:
    """The ``fmt`` and ``n`` properties every special function unit has (mixed in before
    ``wiring.Component``; the unit sets ``_fmt`` and ``_n``)."""

    @property
    def fmt(self):
        """AdaptivFloat format of the unit's codes."""
        return self._fmt

    @property
    def n(self):
        """Lanes per beat."""
        return self._n


def check_lanes(n, name="n"):
    """Raise a clear error unless ``n`` is a legal lane count (1..64)."""
    return check_int(name, n, lo=1, hi=64, span=True)


def check_format(fmt, fixed):
    """Raise unless ``fmt`` is an AFFormat and ``fixed`` a FixedFormat that holds all of it."""
    if not isinstance(fmt, AFFormat):
        raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
    if not isinstance(fixed, FixedFormat):
        raise TypeError(f"fixed must be a FixedFormat, not {fixed!r}")
    fixed.check_holds(fmt)


def check_row(n, max_len, limit=4096):
    """Raise unless ``max_len`` (elements per row) is a multiple of ``n`` in ``n .. limit``."""
    check_int("max_len", max_len, lo=n, hi=limit, span=True)
    if max_len % n:
        raise ValueError(f"max_len must be a multiple of n ({n}), not {max_len}")
    return max_len // n
