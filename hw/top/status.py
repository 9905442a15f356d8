"""The top's counters and the end of a command ([H9]).

Per command (``cmd_*``, reported with ``cmd_done``): cycles from the fetch to the last cycle,
the matrix engine's MAC, skipped-vector and stall cycles, act reads (read-port addresses: a
tile word, ADD's two ports count two), act write cycles, aux reads, ReRAM word reads
(:func:`sw.program.cycles.port_accesses`); in total over the program (``total_*``), the same
and the program and descriptor reads and the commands. :meth:`Status.finish` ends a command:
``cmd_done`` with the counters, the next ``pc``, and the next state (``FETCH``, ``PAUSED`` in
single-step mode, ``IDLE`` when the program stops).

The entropy record (H of each layer, for DVFS) and the last ENTROPY's layer live here too.
"""

from amaranth.hdl import Array, Cat, Mux, Signal

from hw.matmul import COUNTER_BITS
from hw.sfu_tables import H_BITS

__all__ = ["COMMAND_COUNTERS", "TOTALS", "Status"]

COMMAND_COUNTERS = ("cycles", "mac", "skipped", "stall", "act_reads", "act_writes", "aux_reads",
                    "reram_reads")
TOTALS = ("cycles", "mac", "skipped", "stall", "act_reads", "act_writes", "aux_reads",
          "reram_reads", "prog_reads", "desc_reads", "commands")


class Status:
    """The counters of :class:`~hw.top.context.TopContext` ``ctx`` (whose ``pc`` is set).

    Attributes
    ----------
    c_mac, c_skip, c_stall : the command's engine counters (the matmul stage sets them).
    ent_rec : ``Array`` of H per layer (1 ... ``max_layers``).
    last_layer : the last ENTROPY's layer.
    """

    def __init__(self, ctx):
        self._ctx = ctx
        m, t, mem, running, busy = ctx.m, ctx.top, ctx.mem, ctx.running, ctx.busy
        cyc = Signal(COUNTER_BITS)
        c_mac, c_skip, c_stall = (Signal(COUNTER_BITS, name=nm) for nm in
                                  ("c_mac", "c_skip", "c_stall"))
        m.d.sync += [t.done.eq(0), t.cmd_done.eq(0)]
        with m.If(running):
            m.d.sync += [cyc.eq(cyc + 1), t.total_cycles.eq(t.total_cycles + 1)]
        act_r = Signal(2)
        act_wr = Signal()
        aux_r = Signal(2)
        rr = Signal()
        c_ar, c_aw, c_xr, c_rr = (Signal(COUNTER_BITS, name=nm) for nm in ("c_ar", "c_aw", "c_xr",
                                                                           "c_rr"))
        m.d.comb += rr.eq(ctx.emb.reram.req.valid & ctx.emb.reram.req.ready)
        m.d.sync += [t.total_reram_reads.eq(t.total_reram_reads + rr), c_rr.eq(c_rr + rr),
                     t.total_act_reads.eq(t.total_act_reads + act_r),
                     t.total_act_writes.eq(t.total_act_writes + act_wr),
                     t.total_aux_reads.eq(t.total_aux_reads + aux_r),
                     t.total_prog_reads.eq(t.total_prog_reads + mem.prog_rd.en),
                     t.total_desc_reads.eq(t.total_desc_reads + mem.desc_rd.en),
                     c_ar.eq(c_ar + act_r), c_aw.eq(c_aw + act_wr), c_xr.eq(c_xr + aux_r)]
        m.d.comb += [act_r.eq(Mux(running, mem.act_a[0].en + mem.act_b[0].en, 0)),
                     act_wr.eq(Cat(wp.en for wp in mem.act_w).any() & busy),
                     aux_r.eq(mem.aux_a.en + mem.aux_b.en)]
        layers = ctx.limits["max_layers"]
        self.ent_rec = Array(Signal(H_BITS, name=f"ent{i}") for i in range(layers))
        self.last_layer = Signal(8)
        self.cyc, self.c_mac, self.c_skip, self.c_stall = cyc, c_mac, c_skip, c_stall
        self._acc = act_r, act_wr, aux_r, rr
        self._c_acc = c_ar, c_aw, c_xr, c_rr

    def restart(self):
        """The fetch cycle's statements: a command's counters start."""
        c_ar, c_aw, c_xr, c_rr = self._c_acc
        self._ctx.m.d.sync += [self.cyc.eq(1), self.c_mac.eq(0), self.c_skip.eq(0),
                               self.c_stall.eq(0), c_ar.eq(0), c_aw.eq(0), c_xr.eq(0),
                               c_rr.eq(0)]

    def totals_clear(self):
        """The statements that clear the ``total_*`` counters (a program starts)."""
        return [getattr(self._ctx.top, f"total_{c}").eq(0) for c in TOTALS]

    def finish(self, stop=False):
        """End the command in this cycle: pulse ``cmd_done`` with its counters, advance ``pc``;
        ``stop``: the program ends (``done``), else the next command is fetched (or, with
        ``step_en``, the sequencer pauses)."""
        ctx = self._ctx
        m, t, pc = ctx.m, ctx.top, ctx.pc
        cyc, c_mac, c_skip, c_stall = self.cyc, self.c_mac, self.c_skip, self.c_stall
        act_r, act_wr, aux_r, rr = self._acc
        c_ar, c_aw, c_xr, c_rr = self._c_acc
        m.d.sync += [t.cmd_done.eq(1), t.cmd_pc.eq(pc), t.cmd_cycles.eq(cyc + 1),
                     t.cmd_mac.eq(c_mac), t.cmd_skipped.eq(c_skip),
                     t.cmd_stall.eq(c_stall), pc.eq(pc + 1),
                     t.cmd_act_reads.eq(c_ar + act_r),
                     t.cmd_act_writes.eq(c_aw + act_wr),
                     t.cmd_aux_reads.eq(c_xr + aux_r),
                     t.cmd_reram_reads.eq(c_rr + rr),
                     t.total_commands.eq(t.total_commands + 1),
                     t.total_mac.eq(t.total_mac + c_mac),
                     t.total_skipped.eq(t.total_skipped + c_skip),
                     t.total_stall.eq(t.total_stall + c_stall)]
        if stop:
            m.d.sync += t.done.eq(1)
            m.next = "IDLE"
        else:
            with m.If(t.step_en):
                m.next = "PAUSED"
            with m.Else():
                m.next = "FETCH"
