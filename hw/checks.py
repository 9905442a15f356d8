"""Argument checking for gateware constructors."""

from contextlib import contextmanager

__all__ = ["checked_construction"]


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
