"""The top's command sequencer ([H9]): fetch, decode, check, dispatch, stop.

:func:`decode` adds the program counter and the command register with its fields
(:mod:`hw.top.decode`) and error code (:mod:`hw.top.checks`). :func:`build_sequencer` adds the
FSM: ``IDLE`` (until ``start``), ``FETCH`` (program read; ``PROGRAM_OVERRUN`` past the program
memory), ``DECODE`` (latch the word, read its descriptor), ``CHECK`` (stop on an error code, at
``END``, or set the command up and go to its stage's first state), ``PAUSED`` (single step,
until ``step``); the stages' states follow. Every command thus takes three cycles before its
unit starts (:data:`hw.timing.FETCH_CYCLES`); its stage ends it with
:meth:`hw.top.status.Status.finish`.
"""

from amaranth.hdl import Mux, Signal

from hw.isa import Op
from hw.regmap import ErrorCode
from hw.top.checks import build_checks
from hw.top.decode import desc_fields, fields

__all__ = ["decode", "build_sequencer"]


def decode(ctx):
    """Add ``pc``, the command register ``cmd``, its opcode ``op`` and its checks; set
    ``ctx.pc``, ``cmd``, ``op``, ``F``, ``D``, ``is_op``, ``code``."""
    m, mm = ctx.m, ctx.mm
    pc = Signal(range(mm.prog_words + 1))
    m.d.comb += ctx.top.pc.eq(pc)
    cmd = Signal(128)
    op = Signal(4)
    m.d.comb += op.eq(cmd[:4])
    F = {o: fields(cmd, o) for o in Op}
    D = desc_fields(ctx.mem.desc_rd.data)
    is_op = {o: op == o for o in Op}

    code = build_checks(m, cmd=cmd, op=op, F=F, D=D, desc_word=ctx.mem.desc_rd.data,
                        memmap=mm, fmt=ctx.fmt, limits=ctx.limits)
    ctx.pc, ctx.cmd, ctx.op, ctx.F, ctx.D, ctx.is_op, ctx.code = pc, cmd, op, F, D, is_op, code


def build_sequencer(ctx, status, *, matmul, rows, embed, dvfs):
    """Add the FSM of :class:`~hw.top.context.TopContext` ``ctx`` (after :func:`decode`) with
    :class:`~hw.top.status.Status` ``status`` and the stages (:class:`~hw.top.context.Stage`):
    ``rows`` takes every opcode the others do not (its ``dispatch`` is an ``m.Else``)."""
    m, t, mm, mem = ctx.m, ctx.top, ctx.mm, ctx.mem
    pc, cmd, code, is_op, busy = ctx.pc, ctx.cmd, ctx.code, ctx.is_op, ctx.busy
    with m.FSM(init="IDLE") as fsm:
        with m.State("PAUSED"):
            with m.If(t.step):
                m.next = "FETCH"
        with m.State("IDLE"):
            with m.If(t.start):
                m.d.sync += [pc.eq(t.start_pc), t.error.eq(0), t.error_pc.eq(0),
                             t.exit.eq(0), t.exit_layer.eq(0), status.last_layer.eq(0),
                             t.dvfs_valid.eq(0), busy.eq(1), *status.totals_clear()]
                m.next = "FETCH"
        with m.State("FETCH"):
            status.restart()
            with m.If(pc >= mm.prog_words):
                ctx.stop_on_error(ErrorCode.PROGRAM_OVERRUN)
            with m.Else():
                m.d.comb += [mem.prog_rd.addr.eq(pc), mem.prog_rd.en.eq(1)]
                m.next = "DECODE"
        with m.State("DECODE"):
            m.d.sync += cmd.eq(mem.prog_rd.data)
            word = mem.prog_rd.data
            m.d.comb += [mem.desc_rd.addr.eq(Mux(word[:4] == Op.EMBED,
                                                 fields(word, Op.EMBED)["desc"],
                                                 fields(word, Op.MATMUL)["desc"])),
                         mem.desc_rd.en.eq(1)]
            m.next = "CHECK"
        with m.State("CHECK"):
            with m.If(code != ErrorCode.NONE):
                ctx.stop_on_error(code)
            with m.Elif(is_op[Op.END]):
                m.d.sync += [busy.eq(0)]
                with m.If(~t.exit):
                    m.d.sync += t.exit_layer.eq(status.last_layer)
                status.finish(stop=True)
            matmul.dispatch()
            embed.dispatch()
            dvfs.dispatch()
            rows.dispatch()
        for stage in (matmul, rows, embed, dvfs):
            stage.states()

    m.d.comb += ctx.paused.eq(fsm.ongoing("PAUSED"))
    for stage in (matmul, rows, embed, dvfs):
        if stage.after is not None:
            stage.after()
