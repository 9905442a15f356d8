"""What the top's sequencer and its stages share while :meth:`hw.top.top.Top.elaborate` builds
them.

:class:`TopContext` holds the module, the component's ports, the units, the memories' ports and
the command register's fields; each stage (:mod:`hw.top.matmul_stage`,
:mod:`hw.top.rows_stage`, :mod:`hw.top.embed_stage`, :mod:`hw.top.dvfs_stage`) is a function of
it that adds the stage's datapath to the module and returns a :class:`Stage`: its branches of
the check cycle and its FSM states, which :func:`hw.top.sequencer.build_sequencer` places
inside its ``m.FSM()``.

The order in which :meth:`~hw.top.top.Top.elaborate` calls them matters: the last ``comb``
assignment to a signal wins (a stage's port addresses override the defaults; the matmul
stage's Y write-back, after the FSM, overrides the states' act writes), and FSM states are
numbered in the order they are first named. A stage's signals are locals of its function
shared by its closures; ``name=`` on the last signal of some tuple assignments keeps the name
Amaranth gave it when the top was one function (``docs/structure.md``).
"""

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Stage", "TopContext"]


@dataclass(frozen=True)
class Stage:
    """A stage's parts of the sequencer.

    ``dispatch()`` adds the stage's ``m.Elif`` (or, for the last one, ``m.Else``) branches to
    the check cycle's chain: set up the command and name the first state; ``states()`` adds
    its ``m.State`` blocks; ``after()`` (if any) adds logic that must follow the FSM (its
    assignments take precedence over the states')."""

    dispatch: Callable[[], None]
    states: Callable[[], None]
    after: Callable[[], None] | None = None


class TopContext:
    """The shared signals of the top's elaboration.

    Attributes
    ----------
    m : Module
    top : Top
        The component (its ports: ``top.error``, ``top.cmd_done`` ...).
    mm, fmt, n, ln, nb : the memory map, the number format, n, log2 n, code bits.
    limits : dict
        ``max_len``, ``max_classes``, ``dvfs_bins``, ``max_layers``.
    eng, sm, lnorm, add, ent, emb, dv : the units (matrix engine, softmax, LayerNorm, residual
        add, entropy, embedding unit, DVFS controller).
    mem : the memories' sequencer ports (:func:`hw.top.memories.build_memories`).
    busy, paused, running : a program runs; it is paused (single step); it runs and is not
        paused.
    pc, cmd, op, F, D, is_op, code : set by :func:`hw.top.sequencer.decode`: the program
        counter, the command register, its opcode, its fields per opcode
        (:func:`hw.top.decode.fields`), the descriptor's fields, ``{Op: op == Op}``, the error
        code of the command (:func:`hw.top.checks.build_checks`).
    """

    def __init__(self, m, top, *, fmt, units, mem, busy, paused, running, limits):
        self.m, self.top = m, top
        self.mm, self.fmt = top.memmap, fmt
        self.n = self.mm.n
        self.ln, self.nb = self.n.bit_length() - 1, self.fmt.n_bits
        self.limits = limits
        for name, unit in units.items():
            setattr(self, name, unit)
        self.mem, self.busy, self.paused, self.running = mem, busy, paused, running

    def stop_on_error(self, code):
        """Stop the program with error ``code`` at the current command (``done`` pulses)."""
        m, t = self.m, self.top
        m.d.sync += [t.error.eq(code), t.error_pc.eq(self.pc), t.done.eq(1), self.busy.eq(0)]
        m.next = "IDLE"
