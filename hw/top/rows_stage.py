"""The top's row-streaming stage: ``SOFTMAX``, ``LAYERNORM``, ``ADD``, ``ENTROPY`` ([C4]).

In the check cycle the stage reads its scalar aux operand (LayerNorm's ``eps[bias_in]``, the
entropy threshold); ``SCALAR`` latches it. ``STREAM`` streams rows from act (row ``r`` of a
matrix is bank ``r % n``, words ``base + (r // n) * stride + ct``; ADD reads its second operand
through act's second port) with their aux operands (softmax span-mask beats, two aux words
each; LayerNorm's gamma and beta) into the unit, one beat per cycle, and writes the unit's
output beats back to act (row ``oe``: bank ``oe % n``). ENTROPY records H of ``layer`` and,
with ``stop`` and the exit flag, ends the program. A unit's error stops it (``UNIT_ERROR``).
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal

from hw.isa import Op
from hw.memformats import MASK_BYTES
from hw.regmap import ErrorCode
from hw.sfu_tables import EPS_BITS, H_BITS, SPAN_MASK_FRAC
from hw.top.context import Stage

__all__ = ["rows_stage"]

_MASK_BITS = SPAN_MASK_FRAC + 1
_SFU_OPS = (Op.SOFTMAX, Op.LAYERNORM, Op.ADD, Op.ENTROPY)


def rows_stage(ctx, status):
    """Add the feeder's registers and the units' wiring to ``ctx.m``; return the
    :class:`~hw.top.context.Stage` (its ``dispatch`` is the check cycle's ``m.Else``: every
    opcode the other stages do not take)."""
    m, t, n, ln = ctx.m, ctx.top, ctx.n, ctx.ln
    sm, lnorm, add, ent, mem, F, is_op = (ctx.sm, ctx.lnorm, ctx.add, ctx.ent, ctx.mem, ctx.F,
                                          ctx.is_op)
    ent_beats = (F[Op.ENTROPY]["classes"] + n - 1) >> ln

    fe, fct, oe, oct_ = (Signal(16, name=nm) for nm in ("fe", "fct", "oe", "oct"))
    frow_a, frow_b, orow = Signal(18), Signal(18), Signal(18, name="orow")
    f_rows, f_beats = Signal(16), Signal(16, name="f_beats")
    f_done, rd_valid = Signal(), Signal(name="rd_valid")
    bank_q, ct_q = Signal(range(n)), Signal(16)
    scal = Signal(32)
    unit_ready, unit_error = Signal(), Signal(name="unit_error")
    issue = Signal()
    sfs, lfs, afs2, efs = F[Op.SOFTMAX], F[Op.LAYERNORM], F[Op.ADD], F[Op.ENTROPY]
    m.d.comb += [
        unit_ready.eq(Mux(is_op[Op.SOFTMAX], sm.i.ready,
                      Mux(is_op[Op.LAYERNORM], lnorm.i.ready,
                          Mux(is_op[Op.ADD], add.i.ready, ent.i.ready)))),
        unit_error.eq((is_op[Op.SOFTMAX] & sm.error) | (is_op[Op.LAYERNORM] & lnorm.error)
                      | (is_op[Op.ENTROPY] & ent.error)),
    ]
    xa = Array(p.data for p in mem.act_a)[bank_q]
    xb = Array(p.data for p in mem.act_b)[bank_q]
    both = Cat(mem.aux_a.data, mem.aux_b.data)
    entry = 8 * MASK_BYTES
    mask = [Mux(ct_q * n + j < sfs["keys"], both[j * entry:j * entry + _MASK_BITS], 0)
            for j in range(n)]
    m.d.comb += [
        sm.length.eq(sfs["cols"]), sm.bias_in.eq(sfs["bias_in"]),
        sm.bias_out.eq(sfs["bias_out"]), sm.renorm.eq(sfs["renorm"]),
        sm.i.payload.x.eq(xa), sm.i.payload.mask.eq(Cat(*mask)),
        lnorm.length.eq(lfs["cols"]), lnorm.bias_in.eq(lfs["bias_in"]),
        lnorm.bias_gamma.eq(lfs["bias_gamma"]), lnorm.bias_beta.eq(lfs["bias_beta"]),
        lnorm.bias_out.eq(lfs["bias_out"]), lnorm.eps.eq(scal[:EPS_BITS]),
        lnorm.i.payload.x.eq(xa), lnorm.i.payload.gamma.eq(mem.aux_a.data),
        lnorm.i.payload.beta.eq(mem.aux_b.data),
        add.bias_a.eq(afs2["bias_a"]), add.bias_b.eq(afs2["bias_b"]),
        add.bias_out.eq(afs2["bias_out"]),
        add.i.payload.a.eq(xa), add.i.payload.b.eq(xb),
        ent.classes.eq(efs["classes"]), ent.bias_in.eq(efs["bias_in"]),
        ent.threshold.eq(scal[:H_BITS]), ent.i.payload.eq(xa),
        sm.o.ready.eq(1), lnorm.o.ready.eq(1), add.o.ready.eq(1), ent.o.ready.eq(1),
    ]
    out_valid = Mux(is_op[Op.SOFTMAX], sm.o.valid,
                    Mux(is_op[Op.LAYERNORM], lnorm.o.valid, add.o.valid))
    out_data = Mux(is_op[Op.SOFTMAX], sm.o.payload,
                   Mux(is_op[Op.LAYERNORM], lnorm.o.payload, add.o.payload))
    sfu_src = {o: F[o] for o in _SFU_OPS}

    def sfu_field(name):
        """``x`` / ``a`` operand field ``name`` of the SFU opcode being run."""
        out = Const(0)
        for o, f in sfu_src.items():
            key = name.replace("x_", "a_") if o is Op.ADD else name
            if key in f:
                out = Mux(is_op[o], f[key], out)
        return out

    def dispatch():
        with m.Else():
            # SFU: read the scalar operand (LayerNorm eps[bias_in], the threshold).
            m.d.comb += [mem.aux_a.addr.eq(Mux(
                is_op[Op.LAYERNORM],
                lfs["param_addr"] + 2 * lfs["cols"] + lfs["bias_in"],
                efs["thr_addr"])), mem.aux_a.en.eq(1)]
            is_ent = is_op[Op.ENTROPY]
            m.d.sync += [
                fe.eq(0), fct.eq(0), oe.eq(0), oct_.eq(0), f_done.eq(0),
                rd_valid.eq(0),
                frow_a.eq(sfu_field("x_base")), frow_b.eq(afs2["b_base"]),
                orow.eq(Mux(is_op[Op.ADD], afs2["dst_base"],
                            Mux(is_op[Op.SOFTMAX], sfs["dst_base"], lfs["dst_base"]))),
                f_rows.eq(Mux(is_ent, 1, sfu_field("rows") << ln)),
                f_beats.eq(Mux(is_ent, ent_beats, sfu_field("cols"))),
            ]
            m.next = "SCALAR"

    def states():
        with m.State("SCALAR"):
            m.d.sync += scal.eq(mem.aux_a.data[:32])
            m.next = "STREAM"
        with m.State("STREAM"):
            m.d.comb += issue.eq((~rd_valid | unit_ready) & ~f_done)
            for p in mem.act_a:
                m.d.comb += [p.addr.eq(frow_a + fct), p.en.eq(issue)]
            for p in mem.act_b:
                m.d.comb += [p.addr.eq(frow_b + fct), p.en.eq(issue & is_op[Op.ADD])]
            m.d.comb += [
                mem.aux_a.addr.eq(Mux(is_op[Op.SOFTMAX], sfs["mask_addr"] + 2 * fct,
                                      lfs["param_addr"] + fct)),
                mem.aux_b.addr.eq(Mux(is_op[Op.SOFTMAX], sfs["mask_addr"] + 2 * fct + 1,
                                      lfs["param_addr"] + lfs["cols"] + fct)),
                mem.aux_a.en.eq(issue & (is_op[Op.SOFTMAX] | is_op[Op.LAYERNORM])),
                mem.aux_b.en.eq(issue & (is_op[Op.SOFTMAX] | is_op[Op.LAYERNORM])),
                sm.i.valid.eq(rd_valid & is_op[Op.SOFTMAX]),
                lnorm.i.valid.eq(rd_valid & is_op[Op.LAYERNORM]),
                add.i.valid.eq(rd_valid & is_op[Op.ADD]),
                ent.i.valid.eq(rd_valid & is_op[Op.ENTROPY]),
            ]
            m.d.sync += rd_valid.eq(issue | (rd_valid & ~unit_ready))
            with m.If(issue):
                m.d.sync += [bank_q.eq(fe[:ln]), ct_q.eq(fct), fct.eq(fct + 1)]
                with m.If(fct == f_beats - 1):
                    m.d.sync += [fct.eq(0), fe.eq(fe + 1)]
                    with m.If(fe[:ln] == n - 1):
                        m.d.sync += [frow_a.eq(frow_a + sfu_field("x_stride")),
                                     frow_b.eq(frow_b + afs2["b_stride"])]
                    with m.If(fe == f_rows - 1):
                        m.d.sync += f_done.eq(1)
            # Output beats back to act (row oe: bank oe % n).
            o_stride = Mux(is_op[Op.ADD], afs2["dst_stride"],
                           Mux(is_op[Op.SOFTMAX], sfs["dst_stride"], lfs["dst_stride"]))
            with m.If(out_valid & ~is_op[Op.ENTROPY]):
                for i, wp in enumerate(mem.act_w):
                    m.d.comb += [wp.addr.eq(orow + oct_), wp.data.eq(out_data),
                                 wp.en.eq(Mux(oe[:ln] == i, (1 << n) - 1, 0))]
                m.d.sync += oct_.eq(oct_ + 1)
                with m.If(oct_ == f_beats - 1):
                    m.d.sync += [oct_.eq(0), oe.eq(oe + 1)]
                    with m.If(oe[:ln] == n - 1):
                        m.d.sync += orow.eq(orow + o_stride)
                    with m.If(oe == f_rows - 1):
                        status.finish()
            with m.If(is_op[Op.ENTROPY] & ent.o.valid):
                h, flag = ent.o.payload.entropy, ent.o.payload.exit
                layer = efs["layer"]
                m.d.sync += [t.entropy.eq(h), t.entropy_exit.eq(flag),
                             status.last_layer.eq(layer)]
                with m.If((layer >= 1) & (layer <= ctx.limits["max_layers"])):
                    m.d.sync += status.ent_rec[layer - 1].eq(h)
                with m.If(efs["stop"] & flag):
                    m.d.sync += [t.exit.eq(1), t.exit_layer.eq(layer), ctx.busy.eq(0)]
                    status.finish(stop=True)
                with m.Else():
                    status.finish()
            with m.If(unit_error):
                ctx.stop_on_error(ErrorCode.UNIT_ERROR)

    return Stage(dispatch=dispatch, states=states)
