"""Registry of generated blocks: what ``edgebert verilog`` writes and self-checks.

A block module registers itself with :func:`register_block`; :func:`blocks` imports every
module of the ``hw`` package (sub-packages included) first, so adding a block never means
editing a central list. The self-checks live with the test plumbing: :func:`sim.selfcheck.blocks`
returns these blocks with their ``selfcheck`` attached.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Block", "register_block", "blocks"]

_BLOCKS: dict = {}


@dataclass(frozen=True)
class Block:
    """One generator entry.

    ``build(**params)`` returns the Amaranth component; ``params`` are the defaults a user may
    override. ``selfcheck(**params)``, attached by :mod:`sim.selfcheck` (never by the gateware),
    runs a quick comparison against the golden model and returns a one-line summary, raising
    ``AssertionError`` on any mismatch.
    """

    name: str
    description: str
    build: Callable
    selfcheck: Callable | None = None
    params: dict = field(default_factory=dict)


def register_block(name, description, build, params=None):
    if name in _BLOCKS:
        raise ValueError(f"block {name!r} is registered twice")
    _BLOCKS[name] = Block(name, description, build, params=dict(params or {}))
    return _BLOCKS[name]


def blocks():
    """All registered blocks by name, after importing every module of the ``hw`` package."""
    import hw

    for info in pkgutil.walk_packages(hw.__path__, "hw."):
        if info.name not in ("hw.registry", "hw.layouts"):
            importlib.import_module(info.name)
    return dict(sorted(_BLOCKS.items()))
