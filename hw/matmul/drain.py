"""Stage S4 of the matrix engine and the drain: accumulate, then requantize a tile into Y.

S4 adds each product into its accumulator; a tile's last token also copies the sums into a
shadow register set, which the drain empties one output row per cycle while the next tile
computes: add the aligned bias, ReLU, requantize with n pipelined
:class:`~hw.af_requant.AFRequantCore`, register the codes, write the row into its Y bank.
Nothing stalls the drain; the scanner keeps a tile's last token until the previous drain has
read its last row.
"""

from amaranth.hdl import Cat, Mux, Signal, signed

from hw.af_requant import AFRequantCore
from hw.matmul.config import DIM_BITS, REQUANT_STAGES

__all__ = ["build_drain"]


def build_drain(m, cfg, bufs, run, lanes):
    """Add S4, the shadow registers and the drain to ``m`` (``lanes`` from
    :func:`hw.matmul.lanes.build_lanes`)."""
    fmt = cfg.fmt
    n, ln, nb = cfg.n, cfg.log_n, fmt.n_bits
    accw = cfg.acc_width
    s4, prod = lanes.s4, lanes.prod

    # ---- S4: accumulate; a tile's last token copies the sums into the shadow ------------
    acc = [[Signal(signed(accw), name=f"acc{i}_{j}") for j in range(n)] for i in range(n)]
    shadow = [[Signal(signed(accw), name=f"shadow{i}_{j}") for j in range(n)]
              for i in range(n)]
    load = Signal()
    dactive = Signal()
    m.d.comb += load.eq(s4["valid"] & s4["last"])
    for i in range(n):
        for j in range(n):
            nxt = Signal(signed(accw), name=f"acc_next{i}_{j}")
            m.d.comb += nxt.eq(Mux(s4["first"], 0, acc[i][j]) + prod[i][j])
            with m.If(s4["valid"]):
                m.d.sync += acc[i][j].eq(nxt)
            with m.If(load):
                m.d.sync += shadow[i][j].eq(nxt)
            if i + 1 < n:
                with m.Elif(dactive):
                    m.d.sync += shadow[i][j].eq(shadow[i + 1][j])
    bias_al = [Signal(signed(accw), name=f"bias_al{j}") for j in range(n)]
    for j in range(n):
        with m.If(load):
            m.d.sync += bias_al[j].eq(Mux(lanes.bias_neg[j], -lanes.bias_mag[j],
                                          lanes.bias_mag[j]))

    # ---- Drain: one shadow row per cycle: + bias and ReLU | requantize (REQUANT_STAGES
    # pipeline stages) | code register | write Y. Nothing stalls it (en stays 1).
    drow = Signal(ln)
    dyaddr = Signal(DIM_BITS)
    d1 = dict(valid=Signal(), row=Signal(ln), yaddr=Signal(DIM_BITS))
    dsum = [Signal(signed(accw + 1), name=f"dsum{j}") for j in range(n)]
    ycode = [Signal(nb, name=f"ycode{j}") for j in range(n)]
    with m.If(dactive):
        m.d.sync += [drow.eq(drow + 1)]
        with m.If(drow == n - 1):
            m.d.sync += dactive.eq(0)
    with m.If(load):
        m.d.sync += [dactive.eq(1), drow.eq(0), dyaddr.eq(s4["yaddr"])]
    m.d.sync += [d1["valid"].eq(dactive), d1["row"].eq(drow), d1["yaddr"].eq(dyaddr)]
    for j in range(n):
        total = shadow[0][j] + bias_al[j]
        m.d.sync += dsum[j].eq(Mux(run.relu & (total < 0), 0, total))
    lo, hi = cfg.requant_shift_range
    shift = Signal(signed(max(abs(lo), abs(hi)).bit_length() + 2))
    # Registered: the biases are loaded with the command, long before the first drain, and
    # the sum is then not on the path into the n requantizers' pre-shifts (ECP5, n = 8).
    m.d.sync += shift.eq(run.bx + run.bw - run.bo + (fmt.offset - fmt.man_bits))
    for j in range(n):
        rq = AFRequantCore(fmt=fmt, in_width=accw + 1, shift_min=lo, shift_max=hi,
                           stages=REQUANT_STAGES)
        m.submodules[f"requant{j}"] = rq
        m.d.comb += [rq.value.eq(dsum[j]), rq.shift.eq(shift)]
        m.d.sync += ycode[j].eq(rq.code)
    # The write address and bank follow the codes through the requantizer and the register.
    d2 = d1
    for k in range(REQUANT_STAGES + 1):
        nxt = dict(valid=Signal(name=f"dq{k}_valid"), row=Signal(ln, name=f"dq{k}_row"),
                   yaddr=Signal(DIM_BITS, name=f"dq{k}_yaddr"))
        m.d.sync += [nxt[f].eq(d2[f]) for f in ("valid", "row", "yaddr")]
        d2 = nxt
    for i, ym in enumerate(bufs.y_banks):
        wp = ym.write_port()
        m.d.comb += [wp.addr.eq(d2["yaddr"]), wp.data.eq(Cat(*ycode)),
                     wp.en.eq(d2["valid"] & (d2["row"] == i))]
