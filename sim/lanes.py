"""P copies of a block side by side, for fast simulator tests of its Verilog.

:class:`LaneGroup` puts several such wrappers into one design, ports prefixed by part name,
so that several blocks share one simulator build (a Verilator build takes about a minute).
:func:`run_vectors` is the one call a test needs: it writes the vectors and runs
:mod:`sim.tb_lanes` on the chosen simulator; :func:`run_lanes` wraps a block first.

A testbench drives one wide bus per port instead of one lane at a time, so P operand sets
are checked per simulator step. :class:`Lanes` concatenates lane ``i``'s port ``x`` into bits
``i*w .. (i+1)*w - 1`` of the wrapper's port ``x``; :func:`pack` and :func:`unpack` convert
between those buses and lists of integers (signed ports are returned signed).

A pipelined lane component (one with a ``latency`` attribute above 0 and, optionally, a clock
enable port ``en``) is tested clocked: :attr:`Lanes.timing` tells the testbench each output's
latency and enable port, and the testbench stalls the pipelines at random (see
:mod:`sim.tb_lanes`).
"""

import json

from amaranth.hdl import Cat, Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.checks import check_count, checked_construction

__all__ = ["Lanes", "LaneGroup", "pack", "unpack", "run_vectors", "run_lanes"]


class Lanes(wiring.Component):
    """``lanes`` instances of a component with flat ports, buses concatenated.

    Parameters
    ----------
    make : callable
        Returns a new instance of the lane component (every port a plain ``In``/``Out`` shape):
        combinational, or pipelined with a ``latency`` attribute and an optional clock enable
        ``en``.
    lanes : int
        Number of instances.

    Attributes
    ----------
    <port> : Signal(lanes * width), in or out
        For each port of the lane component, lane ``i``'s value in bits ``i*width`` upwards.
    widths : dict
        ``{port: (width, signed)}`` of one lane, for :func:`pack` / :func:`unpack`.
    timing : dict
        ``{output port: (latency, enable port or None)}`` of one lane.
    """

    def __init__(self, *, make, lanes):
        with checked_construction(self):
            if not callable(make):
                raise TypeError(f"make must be callable, not {make!r}")
            check_count("lanes", lanes)
        self._cores = [make() for _ in range(lanes)]
        members = {}
        self.widths = {}
        for name, member in self._cores[0].signature.members.items():
            if not member.is_port:
                raise TypeError(f"lane port {name} must be a plain In/Out port")
            shape = Shape.cast(member.shape)
            self.widths[name] = (shape.width, shape.signed)
            direction = In if member.flow == wiring.In else Out
            members[name] = direction(lanes * shape.width)
        latency = getattr(self._cores[0], "latency", 0)
        enable = "en" if latency and "en" in members else None
        self.timing = {name: (latency, enable) for name, member in members.items()
                       if member.flow == wiring.Out}
        super().__init__(members)

    @property
    def lanes(self):
        return len(self._cores)

    def elaborate(self, platform):
        m = Module()
        for i, core in enumerate(self._cores):
            m.submodules[f"lane{i}"] = core
        for name, (width, _) in self.widths.items():
            bus = getattr(self, name)
            if self.signature.members[name].flow == wiring.In:
                for i, core in enumerate(self._cores):
                    m.d.comb += getattr(core, name).eq(bus[i * width:(i + 1) * width])
            else:
                m.d.comb += bus.eq(Cat(getattr(core, name) for core in self._cores))
        return m


class LaneGroup(wiring.Component):
    """Several :class:`Lanes` wrappers in one design; part ``p``'s port ``x`` is ``p_x``.

    Parameters
    ----------
    parts : dict
        ``{name: Lanes}``; every part must have the same number of lanes.

    Attributes
    ----------
    <part>_<port> : Signal, in or out
        The parts' buses.
    widths : dict
        ``{<part>_<port>: (width, signed)}`` of one lane.
    timing : dict
        ``{<part>_<output>: (latency, <part>_<enable> or None)}`` of one lane.
    """

    def __init__(self, *, parts):
        with checked_construction(self):
            if not parts or not all(isinstance(p, Lanes) for p in parts.values()):
                raise TypeError(f"parts must be a non-empty dict of Lanes, not {parts!r}")
            if len({p.lanes for p in parts.values()}) != 1:
                raise ValueError("every part must have the same number of lanes")
        self._parts = dict(parts)
        self.widths = {f"{pn}_{name}": w for pn, p in parts.items() for name, w in p.widths.items()}
        self.timing = {f"{pn}_{name}": (lat, en and f"{pn}_{en}")
                       for pn, p in parts.items() for name, (lat, en) in p.timing.items()}
        members = {f"{pn}_{name}": member for pn, p in parts.items()
                   for name, member in p.signature.members.items()}
        super().__init__(members)

    @property
    def lanes(self):
        return next(iter(self._parts.values())).lanes

    def elaborate(self, platform):
        m = Module()
        for pn, part in self._parts.items():
            m.submodules[pn] = part
            for name, member in part.signature.members.items():
                outer, inner = getattr(self, f"{pn}_{name}"), getattr(part, name)
                if member.flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m


def pack(values, width):
    """Concatenate integers (two's complement, ``width`` bits each) into one bus value."""
    mask = (1 << width) - 1
    bus = 0
    for i, v in enumerate(values):
        bus |= (int(v) & mask) << (i * width)
    return bus


def unpack(bus, width, signed, lanes):
    """Split a bus value into ``lanes`` integers of ``width`` bits (sign-extended if signed)."""
    mask = (1 << width) - 1
    out = []
    for i in range(lanes):
        v = (bus >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def run_vectors(top, inputs, expected, *, name, workdir, simulator="icarus", rebuild=False):
    """Compare a :class:`Lanes` or :class:`LaneGroup` design with golden outputs under cocotb.

    ``inputs`` and ``expected`` map port names of ``top`` to equally long sequences of integers
    (the golden outputs computed by the caller); ports not named are left undriven or unread
    (except the clock enables of pipelined parts, which the testbench toggles).
    The vectors are written to ``workdir``; the design is built once per simulator and Verilog
    text (see :func:`sim.runner.run_cocotb`; ``rebuild`` discards a cached build first).
    Raises ``AssertionError`` on the first mismatch, naming the inputs; returns the runner's
    result with ``compared``, the number of vectors checked on every output port named.
    """
    from pathlib import Path

    from sim.runner import run_cocotb

    inputs = {k: [int(x) for x in v] for k, v in inputs.items()}
    expected = {k: [int(x) for x in v] for k, v in expected.items()}
    unknown = sorted((set(inputs) | set(expected)) - set(top.widths))
    if unknown:
        raise ValueError(f"{name} has no port(s) {', '.join(unknown)}")
    counts = {len(v) for v in (*inputs.values(), *expected.values())}
    if len(counts) != 1 or not counts.pop():
        raise ValueError("inputs and expected must be non-empty and equally long")
    count = len(next(iter(inputs.values())))
    path = Path(workdir) / f"{name}-{simulator}-vectors.json"
    path.write_text(json.dumps({
        "name": name, "lanes": top.lanes, "widths": top.widths, "timing": top.timing,
        "inputs": inputs, "expected": expected,
    }))
    result = run_cocotb(top, name, "sim.tb_lanes", simulator=simulator,
                        params={"vectors": str(path.resolve())}, rebuild=rebuild)
    return {**result, "compared": count}


def run_lanes(make, inputs, expected, *, name, workdir, simulator="icarus", lanes=32,
              rebuild=False):
    """:func:`run_vectors` on ``lanes`` copies of ``make()`` (see :class:`Lanes`)."""
    return run_vectors(Lanes(make=make, lanes=lanes), inputs, expected, name=name,
                       workdir=workdir, simulator=simulator, rebuild=rebuild)
