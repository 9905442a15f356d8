"""The top's EMBED stage: the embedding unit writes the token rows into act ([H8]).

The embedding unit (:class:`hw.embed_unit.EmbedUnit`) starts in the check cycle with the
command's fields and the :data:`hw.isa.EMBED_DESC` descriptor (read in the decode cycle); in
``EMBED`` it reads the token entries from aux (``tok_addr``, through port ``aux_a``), the rows
of its tables from the ReRAM store (:class:`hw.reram.ReramStore`) and its output beats go into
act as they come (beat of row ``r``, column tile ``c``: bank ``r % n`` of word
``dst_base + (r // n) * dst_stride + c``). The command costs ``FETCH_CYCLES`` plus the unit's
:func:`hw.timing.embed_cycles`; a unit error (a token row or segment beyond the tables, more
tokens than position rows) stops the program (``UNIT_ERROR``).
"""

from amaranth.hdl import Mux

from hw.isa import Op
from hw.regmap import ErrorCode
from hw.top.context import Stage
from hw.top.decode import embed_desc_fields

__all__ = ["embed_stage"]


def embed_stage(ctx, status):
    """Wire the embedding unit ``ctx.emb`` to the command, the descriptor and the top's table
    sizes; return the :class:`~hw.top.context.Stage`."""
    m, t, n, ln, emb, mem, is_op = ctx.m, ctx.top, ctx.n, ctx.ln, ctx.emb, ctx.mem, ctx.is_op
    efd = ctx.F[Op.EMBED]
    ed = embed_desc_fields(mem.desc_rd.data)
    m.d.comb += [
        *(getattr(emb, k).eq(efd[k]) for k in ("rows", "cols", "tokens", "tok_addr",
                                               "bias_word", "bias_pos", "bias_seg",
                                               "bias_out")),
        *(getattr(emb, k).eq(v) for k, v in ed.items()),
        emb.vocab_rows.eq(t.vocab_rows), emb.seg_rows.eq(t.seg_rows),
        emb.pos_rows.eq(t.pos_rows), emb.aux_data.eq(mem.aux_a.data[:32]),
        emb.o.ready.eq(1),
    ]

    def dispatch():
        with m.Elif(is_op[Op.EMBED]):
            m.d.comb += emb.start.eq(1)
            m.next = "EMBED"

    def states():
        with m.State("EMBED"):
            m.d.comb += [mem.aux_a.addr.eq(emb.aux_addr), mem.aux_a.en.eq(emb.aux_en)]
            with m.If(emb.o.valid):
                tag = emb.o.payload.tag
                for i, wp in enumerate(mem.act_w):
                    m.d.comb += [wp.addr.eq(efd["dst_base"] + (tag.row >> ln)
                                            * efd["dst_stride"] + tag.col),
                                 wp.data.eq(emb.o.payload.codes),
                                 wp.en.eq(Mux(tag.row[:ln] == i, (1 << n) - 1, 0))]
            with m.If(emb.done):
                with m.If(emb.error):
                    ctx.stop_on_error(ErrorCode.UNIT_ERROR)
                with m.Else():
                    status.finish()

    return Stage(dispatch=dispatch, states=states)
