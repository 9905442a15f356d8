"""Argument checks shared by the special function units (softmax, LayerNorm, entropy, add)."""

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


def _check_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return value


def check_lanes(n, name="n"):
    """Raise a clear error unless ``n`` is a legal lane count (1..64)."""
    _check_int(name, n)
    if not 1 <= n <= 64:
        raise ValueError(f"{name} must be in 1..64, not {n}")
    return n


def check_format(fmt, fixed):
    """Raise unless ``fmt`` is an AFFormat and ``fixed`` a FixedFormat that holds all of it."""
    if not isinstance(fmt, AFFormat):
        raise TypeError(f"fmt must be an AFFormat, not {fmt!r}")
    if not isinstance(fixed, FixedFormat):
        raise TypeError(f"fixed must be a FixedFormat, not {fixed!r}")
    fixed.check_holds(fmt)


def check_row(n, max_len, limit=4096):
    """Raise unless ``max_len`` (elements per row) is a multiple of ``n`` in ``n .. limit``."""
    _check_int("max_len", max_len)
    if not n <= max_len <= limit:
        raise ValueError(f"max_len must be in {n}..{limit}, not {max_len}")
    if max_len % n:
        raise ValueError(f"max_len must be a multiple of n ({n}), not {max_len}")
    return max_len // n
