"""The matrix engine's buffers and host ports: X and Y banks, masks, values, bias.

All buffers are ``amaranth.lib.memory.Memory``; word bit ``t·N`` starts code ``t``. The host
writes them and reads Y back through the engine's streams, only while the engine is idle
(:class:`hw.matmul.engine.MatrixEngine` documents the layouts).
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Signal, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from hw.matmul.logic import at_least, split

__all__ = ["build_buffers"]


def build_buffers(m, cfg, eng):
    """Add the buffers, the host writes and the host reads of Y to ``m``.

    Returns a namespace: ``idle`` (to be driven by the sequencer; host access only while it is
    1), the run's read ports ``x_rd`` (one per X bank), ``m_rd``, ``v_rd``, ``b_rd`` and the
    Y banks ``y_banks`` (the drain adds their write ports).
    """
    n, ln, nb = cfg.n, cfg.log_n, cfg.fmt.n_bits
    x_banks, y_banks = [], []
    for i in range(n):
        xm = Memory(shape=unsigned(n * nb), depth=cfg.x_depth, init=[])
        ym = Memory(shape=unsigned(n * nb), depth=cfg.y_depth, init=[])
        m.submodules[f"x_bank{i}"] = xm
        m.submodules[f"y_bank{i}"] = ym
        x_banks.append(xm)
        y_banks.append(ym)
    # The mask buffer also stores, per word, what the scanner needs of it (computed on the
    # host write): the non-zero masks, "at least one" and "more than one" of them, and each
    # mask's popcount, so that the block RAM's output (4.3 ns clock-to-out) only loads
    # registers. Costs no block RAM at n = 4 (34 bits), one at n = 8 (106 bits, 3 DP16KD).
    mask_word = data.StructLayout({
        "masks": n * n, "nz": n, "any": 1, "multi": 1,
        "pc": data.ArrayLayout(unsigned(ln + 1), n),
    })
    m.submodules.masks = m_mem = Memory(shape=mask_word, depth=cfg.m_depth, init=[])
    m.submodules.values = v_mem = Memory(shape=unsigned(n * nb), depth=cfg.v_depth, init=[])
    m.submodules.bias = b_mem = Memory(shape=unsigned(n * nb), depth=cfg.b_depth, init=[])

    # Host writes, accepted only while idle.
    idle = Signal()
    for port, mem in ((eng.m_w, m_mem), (eng.v_w, v_mem), (eng.b_w, b_mem)):
        wp = mem.write_port()
        m.d.comb += [
            port.ready.eq(idle),
            wp.addr.eq(port.payload.addr),
            wp.en.eq(port.valid & idle),
        ]
        if mem is m_mem:
            masks = split(port.payload.data, n, n)
            nz = Cat(mk.any() for mk in masks)
            m.d.comb += [
                wp.data.masks.eq(port.payload.data), wp.data.nz.eq(nz),
                wp.data.any.eq(nz.any()), wp.data.multi.eq(at_least(nz, 2)),
                *(wp.data.pc[t].eq(sum(mk[b] for b in range(n)))
                  for t, mk in enumerate(masks)),
            ]
        else:
            m.d.comb += wp.data.eq(port.payload.data)
    m.d.comb += eng.x_w.ready.eq(idle)
    x_rd = []
    for i, xm in enumerate(x_banks):
        wp = xm.write_port()
        m.d.comb += [
            wp.addr.eq(eng.x_w.payload.addr),
            wp.data.eq(eng.x_w.payload.data),
            wp.en.eq(eng.x_w.valid & idle & (eng.x_w.payload.bank == i)),
        ]
        x_rd.append(xm.read_port())
    m_rd = m_mem.read_port()
    v_rd = v_mem.read_port()
    b_rd = b_mem.read_port()

    # Host reads of Y: one request in flight, held until the response is taken.
    y_rd = [ym.read_port() for ym in y_banks]
    rsp_bank = Signal(range(n))
    take = Signal()
    m.d.comb += [
        eng.y_req.ready.eq(idle & (~eng.y_rsp.valid | eng.y_rsp.ready)),
        take.eq(eng.y_req.valid & eng.y_req.ready),
        eng.y_rsp.payload.data.eq(Array(p.data for p in y_rd)[rsp_bank]),
    ]
    for p in y_rd:
        m.d.comb += [p.addr.eq(eng.y_req.payload.addr), p.en.eq(take)]
    with m.If(take):
        m.d.sync += [rsp_bank.eq(eng.y_req.payload.bank), eng.y_rsp.valid.eq(1)]
    with m.Elif(eng.y_rsp.ready):
        m.d.sync += eng.y_rsp.valid.eq(0)
    return SimpleNamespace(idle=idle, x_rd=x_rd, m_rd=m_rd, v_rd=v_rd, b_rd=b_rd,
                           y_banks=y_banks)
