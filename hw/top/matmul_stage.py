"""The top's matmul stage: ``MATMUL`` and ``MATMUL_ACT`` on the matrix engine ([C4]).

* ``XCOPY``: copy X from act into the engine's X banks, one bank word per cycle (n per tile);
* ``WCOPY`` (``MATMUL_ACT``): copy ``w`` from act into the value buffer's scratch region as
  dense vectors (``act_value_base``; the all-ones masks at ``act_mask_base`` and the zero bias
  at ``act_bias_base``, which :func:`sw.program.layout.lay_out` reserves);
* ``ESTART``, ``EWAIT``: run the engine on the descriptor's (or the scratch region's) masks,
  values and bias (its base registers); an engine error stops the program (``UNIT_ERROR``);
* ``YCOPY``, ``YLAST``: copy Y back into act, one bank word per cycle; ``transpose`` writes
  each Y row as a column of the destination tile, one lane per bank.

A tile walker steps through the tiles of an operand (inner count and step, outer count and
step) and the n bank words of each; the Y write-back follows the engine's response a cycle
after each request, after the FSM (its act writes take precedence).
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal

from hw.isa import Op
from hw.regmap import ErrorCode
from hw.top.context import Stage

__all__ = ["matmul_stage"]


def matmul_stage(ctx, status):
    """Add the matmul stage's registers and engine wiring to ``ctx.m``; return its
    :class:`~hw.top.context.Stage` (with the Y write-back as ``after``)."""
    m, t, mm, n, ln, nb = ctx.m, ctx.top, ctx.mm, ctx.n, ctx.ln, ctx.nb
    eng, mem, F, D, is_op = ctx.eng, ctx.mem, ctx.F, ctx.D, ctx.is_op

    # ---- tile walker: MATMUL copies (X, W into the engine; Y back into act) ------------
    cur, obase = Signal(18), Signal(18)
    ii, oo, icnt, ocnt = (Signal(8, name=nm) for nm in ("ii", "oo", "icnt", "ocnt"))
    istep, ostep = Signal(9), Signal(9)
    jj = Signal(range(n))
    taddr = Signal(range(max(mm.act_words, mm.wval_words) + 1))
    last_tile = Signal()
    next_cur = Signal(18)
    m.d.comb += [last_tile.eq((ii == icnt - 1) & (oo == ocnt - 1)),
                 next_cur.eq(Mux(ii == icnt - 1, obase + ostep, cur + istep))]

    def walk_setup(start, inner, outer, in_step, out_step, target):
        m.d.sync += [cur.eq(start), obase.eq(start), ii.eq(0), oo.eq(0), jj.eq(0),
                     icnt.eq(inner), ocnt.eq(outer), istep.eq(in_step), ostep.eq(out_step),
                     taddr.eq(target)]

    def walk_step(per_cycle_target):
        m.d.sync += jj.eq(jj + 1)
        if per_cycle_target:
            m.d.sync += taddr.eq(taddr + 1)
        with m.If(jj == n - 1):
            m.d.sync += [jj.eq(0), cur.eq(next_cur)]
            if not per_cycle_target:
                m.d.sync += taddr.eq(taddr + 1)
            with m.If(ii == icnt - 1):
                m.d.sync += [ii.eq(0), oo.eq(oo + 1), obase.eq(obase + ostep)]
            with m.Else():
                m.d.sync += ii.eq(ii + 1)

    def act_read_a(addr, en=1):
        for p in mem.act_a:
            m.d.comb += [p.addr.eq(addr), p.en.eq(en)]

    # Matmul shape registers (tiles) and engine bases.
    mrows, mk, mcols = Signal(8), Signal(8), Signal(8, name="mcols")
    mnnz = Signal(32)
    mb, vb, bb = (Signal(range(d)) for d in (mm.wmask_words, mm.wval_words,
                                              t.engine_config.b_depth))
    mfs, afs = F[Op.MATMUL], F[Op.MATMUL_ACT]
    is_act = is_op[Op.MATMUL_ACT]
    m.d.comb += [
        eng.rows.eq(mrows << ln), eng.k.eq(mk << ln), eng.cols.eq(mcols << ln),
        eng.nnz.eq(mnnz), eng.m_base.eq(mb), eng.v_base.eq(vb), eng.b_base.eq(bb),
        eng.bias_x.eq(Mux(is_act, afs["bias_x"], mfs["bias_x"])),
        eng.bias_w.eq(Mux(is_act, afs["bias_w"], mfs["bias_w"])),
        eng.bias_b.eq(Mux(is_act, 0, mfs["bias_b"])),
        eng.bias_out.eq(Mux(is_act, afs["bias_out"], mfs["bias_out"])),
        eng.relu.eq(~is_act & mfs["relu"]),
    ]
    transpose = Mux(is_act, afs["transpose"], mfs["transpose"])
    dst_base = Mux(is_act, afs["dst_base"], mfs["dst_base"])
    dst_stride = Mux(is_act, afs["dst_stride"], mfs["dst_stride"])
    # Y responses come a cycle after their request: the write follows them.
    yd_valid, yd_j, yd_addr = Signal(), Signal(range(n)), Signal(18, name="yd_addr")

    def dispatch():
        with m.Elif(is_op[Op.MATMUL]):
            m.d.sync += [mrows.eq(mfs["rows"]), mk.eq(D["k"]), mcols.eq(D["cols"]),
                         mnnz.eq(D["nnz"]), mb.eq(D["mask_base"]),
                         vb.eq(D["value_base"]), bb.eq(D["bias_base"])]
            walk_setup(mfs["x_base"], D["k"], mfs["rows"], 1, mfs["x_stride"], 0)
            act_read_a(mfs["x_base"])
            m.next = "XCOPY"
        with m.Elif(is_act):
            m.d.sync += [mrows.eq(afs["rows"]), mk.eq(afs["k"]), mcols.eq(afs["cols"]),
                         mnnz.eq((afs["k"] * afs["cols"]) << (2 * ln)),
                         mb.eq(t.act_mask_base), vb.eq(t.act_value_base),
                         bb.eq(t.act_bias_base)]
            walk_setup(afs["x_base"], afs["k"], afs["rows"], 1, afs["x_stride"], 0)
            act_read_a(afs["x_base"])
            m.next = "XCOPY"

    def states():
        with m.State("XCOPY"):
            m.d.comb += [eng.x_w.valid.eq(1), eng.x_w.payload.bank.eq(jj),
                         eng.x_w.payload.addr.eq(taddr),
                         eng.x_w.payload.data.eq(Array(p.data for p in mem.act_a)[jj])]
            walk_step(False)
            with m.If(jj == n - 1):
                act_read_a(next_cur, ~last_tile)
                with m.If(last_tile):
                    with m.If(is_act):
                        walk_setup(afs["w_base"], afs["k"], afs["cols"], afs["w_stride"], 1,
                                   t.act_value_base)
                        act_read_a(afs["w_base"])
                        m.next = "WCOPY"
                    with m.Else():
                        m.next = "ESTART"
        with m.State("WCOPY"):
            m.d.comb += [eng.v_w.valid.eq(1), eng.v_w.payload.addr.eq(taddr),
                         eng.v_w.payload.data.eq(Array(p.data for p in mem.act_a)[jj])]
            walk_step(True)
            with m.If(jj == n - 1):
                act_read_a(next_cur, ~last_tile)
                with m.If(last_tile):
                    m.next = "ESTART"
        with m.State("ESTART"):
            m.d.comb += eng.start.eq(1)
            m.next = "EWAIT"
        with m.State("EWAIT"):
            with m.If(eng.done):
                with m.If(eng.err.as_value() != 0):
                    ctx.stop_on_error(ErrorCode.UNIT_ERROR)
                with m.Else():
                    m.d.sync += [status.c_mac.eq(eng.cyc_mac), status.c_skip.eq(eng.vec_skipped),
                                 status.c_stall.eq(eng.cyc_stall)]
                    walk_setup(dst_base, mcols, mrows, Mux(transpose, dst_stride, 1),
                               Mux(transpose, 1, dst_stride), 0)
                    m.next = "YCOPY"
        with m.State("YCOPY"):
            m.d.comb += [eng.y_req.valid.eq(1), eng.y_req.payload.bank.eq(jj),
                         eng.y_req.payload.addr.eq(taddr)]
            walk_step(False)
            with m.If((jj == n - 1) & last_tile):
                m.next = "YLAST"
        with m.State("YLAST"):
            status.finish()

    def write_back():
        # Y write-back: response of the request made a cycle earlier.
        m.d.sync += [yd_valid.eq(eng.y_req.valid & eng.y_req.ready), yd_j.eq(jj),
                     yd_addr.eq(cur)]
        with m.If(yd_valid & eng.y_rsp.valid):
            codes = [eng.y_rsp.payload.data[j * nb:(j + 1) * nb] for j in range(n)]
            for i, wp in enumerate(mem.act_w):
                m.d.comb += wp.addr.eq(yd_addr)
                with m.If(transpose):
                    m.d.comb += [wp.data.eq(Cat(*[codes[i]] * n)),
                                 wp.en.eq(Const(1, n) << yd_j)]
                with m.Else():
                    m.d.comb += [wp.data.eq(eng.y_rsp.payload.data),
                                 wp.en.eq(Mux(yd_j == i, (1 << n) - 1, 0))]

    return Stage(dispatch=dispatch, states=states, after=write_back)
