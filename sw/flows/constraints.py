"""Constraint files for FPGA and ASIC flows, and memory-initialisation files of generated blocks.

:func:`write_constraints` writes what ``constraints/`` holds, from the same code the flow uses:

- ``<board>.lpf`` / ``<board>.pcf``: the pin and clock constraints of the synthesis harness on
  each board (clock input, ``button`` 0 as the harness's serial input, ``led`` 0 as its
  output), exactly as :func:`sw.flows.synth.synthesize` hands them to nextpnr;
- ``edgebert.sdc``: the clock definition for ASIC flows (:func:`sdc`);
- ``meminit/<block>.<memory>.hex``: ``$readmemh`` files of every memory with initial contents
  in a registered block at its default parameters (:func:`memory_init_files`).
"""

from pathlib import Path

from amaranth.hdl import Const, Fragment, Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.harness import SynthHarness

__all__ = ["SDC_PERIOD_NS", "sdc", "board_constraints", "memory_init_files", "write_constraints"]

# The project's clock target: 100 MHz, the ECP5 target of the FPGA flow.
SDC_PERIOD_NS = 10.0


def sdc(period_ns=SDC_PERIOD_NS):
    """SDC for a generated top: the clock on port ``clk`` (a virtual clock for combinational
    blocks, which have none) and input/output delays of 20 % of the period on every other port."""
    if not (isinstance(period_ns, int | float) and period_ns > 0):
        raise ValueError(f"clock period must be a positive number of ns, not {period_ns!r}")
    io = round(0.2 * period_ns, 3)
    return f"""\
# EdgeBERT generated blocks: clock definition for ASIC (and SDC-reading FPGA) flows.
# Written by `edgebert synth --write-constraints constraints/` from sw/flows/constraints.py
# (SDC_PERIOD_NS): change the period there and regenerate, or edit `period` below.
#
# Amaranth names the clock and reset of the `sync` domain `clk` and `rst` (reset is synchronous,
# active high). Combinational blocks have no clock: they are timed against a virtual clock of
# the same period, from input to output, as if registered on both sides.

set period {period_ns:g}
set io_delay {io:g}

set clk_port [get_ports -quiet clk]
if {{[llength $clk_port] > 0}} {{
    create_clock -name clk -period $period $clk_port
}} else {{
    create_clock -name clk -period $period
}}
# Every input but the clock (the synchronous reset `rst` included) and every output.
set non_clock_inputs [lsearch -inline -all -not -exact [all_inputs] $clk_port]
set_input_delay $io_delay -clock clk $non_clock_inputs
set_output_delay $io_delay -clock clk [all_outputs]
"""


class _OneBit(wiring.Component):
    """The smallest block the harness accepts, to render the harness's board constraints."""

    i: In(1)
    o: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.i)
        return m


def board_constraints(board):
    """``(file name, text)`` of the harness's pin and clock constraints on ``board``."""
    from sw.flows.synth import get_board, make_platform

    board = get_board(board) if isinstance(board, str) else board
    plan = make_platform(board).prepare(SynthHarness(dut=_OneBit()), name="top")
    text = plan.files[f"top.{board.constraint_ext}"]
    return f"{board.name}.{board.constraint_ext}", text.rstrip("\n") + "\n"


def _memories(fragment, path=()):
    from amaranth.hdl._mem import MemoryInstance

    if isinstance(fragment, MemoryInstance):
        yield ".".join(path), fragment._data
    for sub, name, _ in fragment.subfragments:
        yield from _memories(sub, (*path, name if isinstance(name, str) else str(name)))


def memory_init_files(top, prefix, out_dir):
    """Write a ``$readmemh`` file for every memory of ``top`` with non-zero initial contents.

    One word per line, in hex, as wide as the memory; the file is named
    ``<prefix>.<hierarchical memory name>.hex``. Returns the paths written.
    """
    out_dir = Path(out_dir)
    written = []
    for name, data in _memories(Fragment.get(top, None)):
        width = Shape.cast(data.shape).width
        words = [Const.cast(Const(v, Shape.cast(data.shape))).value & ((1 << width) - 1)
                 for v in data.init._raw]
        if not any(words):
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{prefix}.{name or 'mem'}.hex"
        digits = max(1, -(-width // 4))
        path.write_text("".join(f"{w:0{digits}x}\n" for w in words))
        written.append(path)
    return written


def write_constraints(out_dir, *, meminit=True):
    """Write every board's constraints, the SDC and (``meminit``) the blocks' memory-init files
    to ``out_dir``. The memory-init files need every block elaborated at its defaults, which
    takes minutes for the largest ones."""
    from hw.registry import blocks
    from sw.flows.synth import BOARDS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for board in BOARDS.values():
        name, text = board_constraints(board)
        (out_dir / name).write_text(text)
        written.append(out_dir / name)
    (out_dir / "edgebert.sdc").write_text(sdc())
    written.append(out_dir / "edgebert.sdc")
    if meminit:
        for name, block in blocks().items():
            written += memory_init_files(block.build(**block.params), name, out_dir / "meminit")
    return written
