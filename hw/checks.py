"""Argument checks: one wording for every constructor and configuration of the project.

Imports neither Amaranth nor PyTorch, so gateware, configuration dataclasses and models all use
it. Each check returns the value it accepted and raises with the message the tests pin:

* :func:`check_int`: ``TypeError`` "must be an integer, not …", then ``ValueError`` "must be at
  least …" / "must be at most …", or "must be in lo..hi, not …" with ``span=True``;
* :func:`check_count`: ``ValueError`` "must be a positive integer, not …" (or "a non-negative
  integer" with ``lo=0``) for anything else, booleans included.
"""

from contextlib import contextmanager

__all__ = ["checked_construction", "is_int", "check_int", "check_count"]


def is_int(value):
    """True for a Python integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name, value, *, lo=None, hi=None, span=False):
    """``value`` if it is an integer in ``lo..hi`` (either bound optional).

    With ``span`` (both bounds given) a value out of range is reported as "must be in lo..hi";
    otherwise by the bound it crosses.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if span and not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be at most {hi}, not {value}")
    return value


def check_count(name, value, *, lo=1):
    """``value`` if it is an integer of at least ``lo`` (1: positive, 0: non-negative)."""
    if lo not in (0, 1):
        raise ValueError(f"lo must be 0 or 1, not {lo!r}")
    if not is_int(value) or value < lo:
        kind = "a positive" if lo else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer, not {value!r}")
    return value


@contextmanager
def checked_construction(component):
    """Run a constructor's argument checks; on failure, mark ``component`` as used.

    Amaranth warns about every elaboratable that is created but never elaborated, including one
    whose constructor refused its arguments; that warning would bury the real error.
    """
    try:
        yield
    except Exception:
        component._MustUse__used = True
        raise
