"""The sequencer's refusals ([H9]): the error code of the command in the command register.

:func:`build_checks` compares every field with the memory map and the units' limits, as
:func:`sw.program.checks.check_command` does, and returns the first failing
:class:`~hw.regmap.ErrorCode` (``NONE`` if the command can run). Combinational, from the
command register and the descriptor read of the decode cycle. The destination / source overlap
compares word *ranges* (first to last word of each operand), which refuses interleaved operands
too; the compiler never makes those.
"""

from amaranth.hdl import Cat, Mux, Signal

from hw.isa import Op
from hw.regmap import ERROR_BITS, ErrorCode
from hw.top.decode import reserved

__all__ = ["build_checks"]


def build_checks(m, *, cmd, op, F, D, desc_word, memmap, fmt, limits):
    """Add the checks to ``m``; return the error code (``Signal(ERROR_BITS)``).

    ``F`` maps each opcode to its fields in ``cmd`` (:func:`hw.top.decode.fields`), ``D`` the
    matrix descriptor's fields of ``desc_word``; ``limits`` holds the units' ``max_len``,
    ``max_classes``, ``dvfs_bins`` and ``max_layers``."""
    mm, n = memmap, memmap.n
    ln = n.bit_length() - 1
    is_op = {o: op == o for o in Op}
    act_words, aux_words = mm.act_words, mm.aux_words
    code = Signal(ERROR_BITS)
    checks = [(op > max(Op), ErrorCode.ILLEGAL_OPCODE)]
    checks += [(is_op[o] & reserved(cmd, o), ErrorCode.RESERVED_BITS) for o in Op]
    wb = mm.word_bytes("aux")
    for o in Op:
        f, bad = F[o], []
        for name, v in f.items():
            if name.startswith("bias_"):
                bad.append(v > fmt.bias_max)
            if name in ("rows", "cols", "k"):
                bad.append(v == 0)
            if name.endswith("_addr"):
                bad.append(v >= aux_words)
        if "desc" in f:
            bad.append(f["desc"] >= mm.desc_words)
        if o is Op.ENTROPY:
            bad += [f["classes"] == 0, f["classes"] > limits["max_classes"]]
        if o is Op.SOFTMAX:
            bad += [f["keys"] > f["cols"] * n, f["cols"] * n > limits["max_len"]]
        if o is Op.LAYERNORM:
            bad.append(f["cols"] * n > limits["max_len"])
        if o is Op.EMBED:
            bad.append(f["tokens"] > f["rows"] * n)
        if o is Op.DVFS:
            bad += [f["bins"] == 0, f["bins"] > min(limits["dvfs_bins"], wb), f["layer"] == 0,
                    f["layer"] > limits["max_layers"]]
        if bad:
            checks.append((is_op[o] & Cat(*bad).any(), ErrorCode.BAD_FIELD))
    checks.append((is_op[Op.MATMUL] & (desc_word == 0), ErrorCode.BAD_DESCRIPTOR))

    def extent(base, stride, rows, cols):
        return base, base + (rows - 1) * stride + cols - 1

    ranges = {
        Op.MATMUL: (F[Op.MATMUL], ("x", F[Op.MATMUL]["rows"], D["k"]),
                    (F[Op.MATMUL]["rows"], D["cols"])),
        Op.MATMUL_ACT: (F[Op.MATMUL_ACT], ("x", F[Op.MATMUL_ACT]["rows"],
                                           F[Op.MATMUL_ACT]["k"]),
                        ("w", F[Op.MATMUL_ACT]["k"], F[Op.MATMUL_ACT]["cols"]),
                        (F[Op.MATMUL_ACT]["rows"], F[Op.MATMUL_ACT]["cols"])),
    }
    for o in (Op.SOFTMAX, Op.LAYERNORM):
        ranges[o] = (F[o], ("x", F[o]["rows"], F[o]["cols"]), (F[o]["rows"], F[o]["cols"]))
    ranges[Op.EMBED] = (F[Op.EMBED], (F[Op.EMBED]["rows"], F[Op.EMBED]["cols"]))
    ranges[Op.ADD] = (F[Op.ADD], ("a", F[Op.ADD]["rows"], F[Op.ADD]["cols"]),
                      ("b", F[Op.ADD]["rows"], F[Op.ADD]["cols"]),
                      (F[Op.ADD]["rows"], F[Op.ADD]["cols"]))
    ent_beats = (F[Op.ENTROPY]["classes"] + n - 1) >> ln
    range_bad, overlap_bad = [], []
    for o, (f, *srcs, dst) in ranges.items():
        spans = []
        for name, r, c in srcs:
            spans.append(extent(f[f"{name}_base"], f[f"{name}_stride"], r, c))
        rows, cols = dst
        if "transpose" in f:
            rows, cols = Mux(f["transpose"], cols, rows), Mux(f["transpose"], rows, cols)
        dlo, dhi = extent(f["dst_base"], f["dst_stride"], rows, cols)
        range_bad.append(is_op[o] & Cat(*(hi >= act_words for _, hi in
                                          [*spans, (dlo, dhi)])).any())
        if spans:
            overlap_bad.append(is_op[o] & Cat(*((dlo <= hi) & (lo <= dhi)
                                                for lo, hi in spans)).any())
    range_bad.append(is_op[Op.ENTROPY] & (F[Op.ENTROPY]["x_base"] + ent_beats > act_words))
    checks.append((Cat(*range_bad).any(), ErrorCode.OUT_OF_RANGE))
    checks.append((Cat(*overlap_bad).any(), ErrorCode.OVERLAP))
    for cond, c in reversed(checks):
        with m.If(cond):
            m.d.comb += code.eq(c)
    return code
