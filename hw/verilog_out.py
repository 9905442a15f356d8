"""Verilog text of a design: Amaranth's conversion, with memory initialisation kept compact.

Amaranth writes a memory's initial contents as one ``mem[i] = W'h...;`` statement per word,
zeros included, so a 16,384-word value buffer is 16,384 lines of Verilog and, under Verilator,
megabytes of constructor C++ that take longer to compile than the rest of the design. Every
run of at least :data:`MIN_RUN` consecutive words initialised to zero becomes one loop in a
named block; words with other values stay as they are. The text means exactly the same to a
simulator (the tests run it under Icarus and Verilator against the golden model).
"""

import re

__all__ = ["to_verilog", "compact_zero_init", "MIN_RUN"]

MIN_RUN = 8

_INIT = re.compile(r"^(\s*)([A-Za-z_\\][^\s\[]*)\[(\d+)\] = (\d+)'h([0-9a-fA-F]+);$")


def compact_zero_init(text):
    """``text`` with every run of at least :data:`MIN_RUN` consecutive zero word
    initialisations of one memory (``mem[i] = W'h0;`` for i, i + 1, ...) replaced by a loop."""
    out, run, blocks = [], [], 0

    def flush():
        nonlocal blocks
        if len(run) >= MIN_RUN:
            indent, name, lo, width = run[0][0], run[0][1], run[0][2], run[0][3]
            hi = run[-1][2] + 1
            out.append(f"{indent}begin : edgebert_zero_init_{blocks}")
            out.append(f"{indent}  integer i;")
            out.append(f"{indent}  for (i = {lo}; i < {hi}; i = i + 1) {name}[i] = {width}'h0;")
            out.append(f"{indent}end")
            blocks += 1
        else:
            out.extend(r[4] for r in run)
        run.clear()

    for line in text.split("\n"):
        m = _INIT.match(line)
        if m and int(m.group(5), 16) == 0:
            indent, name, idx, width = m.group(1), m.group(2), int(m.group(3)), m.group(4)
            if run and (name != run[-1][1] or idx != run[-1][2] + 1 or width != run[-1][3]):
                flush()
            run.append((indent, name, idx, width, line))
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)


def to_verilog(top, *, name, platform=None, emit_src=False):
    """Amaranth's Verilog of ``top`` (:func:`amaranth.back.verilog.convert`), zero-initialised
    memory words compacted (:func:`compact_zero_init`)."""
    from amaranth.back import verilog

    return compact_zero_init(verilog.convert(top, name=name, emit_src=emit_src,
                                             platform=platform))
