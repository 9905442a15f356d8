"""The top's DVFS stage: load the controller's table, feed it the recorded H ([H10]).

The table lives in aux at ``table_addr`` (:class:`hw.memformats.DvfsBlock`): ``bins - 1``
words of bin edges (H), then one word each of predicted layers, voltage codes and frequency
codes (a byte per bin: ``bins`` is at most the aux word's bytes). In the check cycle the stage
reads the layers and voltage words, ``DV0`` latches them and reads the frequency word, ``DV1``
latches it and reads the first edge, ``DVT`` writes the ``bins`` entries into
:class:`hw.dvfs.DvfsController`, one per cycle, ``DVH`` feeds it the entropy record's H of
``layer`` and ``DVS`` latches its decision on the top's ports (``dvfs_valid``, ``dvfs_bin``,
``dvfs_layer``, ``vcode``, ``fcode``).
"""

from amaranth.hdl import Signal

from hw.isa import Op
from hw.sfu_tables import H_BITS
from hw.top.context import Stage

__all__ = ["dvfs_stage"]


def dvfs_stage(ctx, status):
    """Add the table registers to ``ctx.m``; return the :class:`~hw.top.context.Stage`."""
    m, t, mem, dv, is_op = ctx.m, ctx.top, ctx.mem, ctx.dv, ctx.is_op
    wb = ctx.mm.word_bytes("aux")
    dfs = ctx.F[Op.DVFS]
    dv_layers, dv_v, dv_f = Signal(8 * wb), Signal(8 * wb), Signal(8 * wb, name="dv_f")
    dv_i = Signal(8)
    bins = ctx.limits["dvfs_bins"]
    dv_bins = Signal(range(bins + 1), init=bins)
    m.d.comb += dv.active.eq(dv_bins)

    def dispatch():
        with m.Elif(is_op[Op.DVFS]):
            # The predicted layers and the voltage codes (one aux word each: bins is
            # at most the word's bytes), then the frequency codes.
            m.d.comb += [mem.aux_a.addr.eq(dfs["table_addr"] + dfs["bins"] - 1),
                         mem.aux_a.en.eq(1),
                         mem.aux_b.addr.eq(dfs["table_addr"] + dfs["bins"]),
                         mem.aux_b.en.eq(1)]
            m.next = "DV0"

    def states():
        with m.State("DV0"):
            m.d.sync += [dv_layers.eq(mem.aux_a.data), dv_v.eq(mem.aux_b.data)]
            m.d.comb += [mem.aux_a.addr.eq(dfs["table_addr"] + dfs["bins"] + 1),
                         mem.aux_a.en.eq(1)]
            m.next = "DV1"
        with m.State("DV1"):
            m.d.sync += [dv_f.eq(mem.aux_a.data), dv_i.eq(0), dv_bins.eq(dfs["bins"])]
            m.d.comb += [mem.aux_b.addr.eq(dfs["table_addr"]), mem.aux_b.en.eq(1)]
            m.next = "DVT"
        with m.State("DVT"):
            # Entry dv_i: its edge was read last cycle; read the next one.
            m.d.comb += [
                dv.table_we.eq(1), dv.table_addr.eq(dv_i),
                dv.table_edge.eq(mem.aux_b.data[:H_BITS]),
                dv.table_vcode.eq(dv_v.word_select(dv_i, 8)),
                dv.table_fcode.eq(dv_f.word_select(dv_i, 8)),
                mem.aux_b.addr.eq(dfs["table_addr"] + dv_i + 1), mem.aux_b.en.eq(1),
            ]
            m.d.sync += dv_i.eq(dv_i + 1)
            with m.If(dv_i == dfs["bins"] - 1):
                m.next = "DVH"
        with m.State("DVH"):
            m.d.comb += [dv.h.valid.eq(1), dv.h.payload.eq(status.ent_rec[dfs["layer"] - 1])]
            m.next = "DVS"
        with m.State("DVS"):
            st = dv.status
            m.d.sync += [t.dvfs_valid.eq(1), t.dvfs_bin.eq(st.bin),
                         t.dvfs_layer.eq(dv_layers.word_select(st.bin, 8)),
                         t.vcode.eq(st.vcode), t.fcode.eq(st.fcode)]
            status.finish()

    return Stage(dispatch=dispatch, states=states)
