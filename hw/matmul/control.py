"""The matrix engine's run registers and sequencer: start, shape check, row tiles, flush.

A run: IDLE takes the shape and bias registers on ``start``; CHECK refuses a shape the buffers
cannot hold (``err``, ``done``, back to IDLE); per row tile PRIME0 and PRIME1 restart the mask
scan and the value stream, STREAM lets the scanner issue the tile's tokens; FLUSH waits for the
last tile to leave the drain, then pulses ``done``. ``cyc_total`` counts every busy cycle.
"""

from types import SimpleNamespace

from amaranth.hdl import Const, Mux, Signal
from amaranth.lib import enum

from hw.matmul.config import COUNTER_BITS, DIM_BITS, FLUSH_EXTRA, NNZ_BITS

__all__ = ["MatmulError", "run_registers", "build_sequencer"]


class MatmulError(enum.Enum, shape=4):
    """Error status of the engine (``err`` port); the engine returns to idle after any error."""

    NONE = 0
    ZERO_DIM = 1            # rows, K or cols is 0
    NOT_MULTIPLE = 2        # rows, K or cols is not a multiple of n
    K_TOO_LARGE = 3         # K exceeds max_k, the accumulator sizing bound
    X_OVERFLOW = 4          # rows·K does not fit the X banks
    W_OVERFLOW = 5          # the masks or the packed non-zeros do not fit their buffers
    Y_OVERFLOW = 6          # rows·cols does not fit the Y banks
    MASK_MISMATCH = 7       # the masks consumed a different number of codes than nnz


def run_registers(m, cfg, eng):
    """The registers a run keeps from ``start`` to ``done``, and the status ports they drive."""
    fmt = cfg.fmt
    run = SimpleNamespace(
        kw=Signal(DIM_BITS, name="kw"),        # K / n: mask words per block, X words per row
        cbn=Signal(DIM_BITS, name="cbn"),      # cols / n: column blocks
        rtn=Signal(DIM_BITS, name="rtn"),      # rows / n: row tiles
        nnz=Signal(NNZ_BITS, name="nnz"),
        bx=Signal(fmt.bias_bits, name="bx"), bw=Signal(fmt.bias_bits, name="bw"),
        bb=Signal(fmt.bias_bits, name="bb"), bo=Signal(fmt.bias_bits, name="bo"),
        relu=Signal(name="relu"),
        mbase=Signal(range(cfg.m_depth), name="mbase"),
        vbase=Signal(range(cfg.v_depth), name="vbase"),
        bbase=Signal(range(cfg.b_depth), name="bbase"),
        rows_r=Signal(DIM_BITS, name="rows_r"), k_r=Signal(DIM_BITS, name="k_r"),
        cols_r=Signal(DIM_BITS, name="cols_r"),
        rt=Signal(DIM_BITS, name="rt"),        # current row tile
        xbase=Signal(range(cfg.x_depth + 1), name="xbase"),
        row_done=Signal(name="row_done"),      # a row tile just ended: check its masks' codes
        cyc_total=Signal(COUNTER_BITS, name="cyc_total"),
        cyc_mac=Signal(COUNTER_BITS, name="cyc_mac"),
        skipped=Signal(COUNTER_BITS, name="skipped"),
        stall=Signal(COUNTER_BITS, name="stall"),
        flush=Signal(range(cfg.n + FLUSH_EXTRA + 1), name="flush"),
        err=Signal(MatmulError, name="err"),
    )
    m.d.comb += [eng.cyc_total.eq(run.cyc_total), eng.cyc_mac.eq(run.cyc_mac),
                 eng.vec_skipped.eq(run.skipped), eng.cyc_stall.eq(run.stall),
                 eng.err.eq(run.err)]
    return run


def build_sequencer(m, cfg, eng, bufs, run, scan):
    """Add the sequencer's state machine to ``m``; it comes last, so that its assignments to
    the scanner's registers take precedence over the scanner's own."""
    n, ln = cfg.n, cfg.log_n
    idle = bufs.idle
    m.d.comb += [eng.busy.eq(~idle)]
    # Buffer words the requested shape needs, registered from the ports every idle cycle so
    # that the multiplications stay out of the check cycle's path.
    x_words, y_words, m_words = (Signal(2 * DIM_BITS, name=nm)
                                 for nm in ("x_words", "y_words", "m_words"))
    with m.If(idle):
        rtn_p, kw_p, cbn_p = eng.rows >> ln, eng.k >> ln, eng.cols >> ln
        m.d.sync += [x_words.eq(rtn_p * kw_p), y_words.eq(rtn_p * cbn_p),
                     m_words.eq(cbn_p * kw_p)]
    m.d.sync += eng.done.eq(0)
    v_rd = bufs.v_rd
    rows_r, k_r, cols_r, nnz = run.rows_r, run.k_r, run.cols_r, run.nnz
    cyc_total, row_done, used, err = run.cyc_total, run.row_done, scan.used, run.err
    with m.FSM():
        with m.State("IDLE"):
            m.d.comb += idle.eq(1)
            with m.If(eng.start):
                m.d.sync += [
                    rows_r.eq(eng.rows), k_r.eq(eng.k), cols_r.eq(eng.cols),
                    nnz.eq(eng.nnz), run.bx.eq(eng.bias_x), run.bw.eq(eng.bias_w),
                    run.bb.eq(eng.bias_b), run.bo.eq(eng.bias_out), run.relu.eq(eng.relu),
                    run.mbase.eq(eng.m_base), run.vbase.eq(eng.v_base),
                    run.bbase.eq(eng.b_base),
                    cyc_total.eq(0), run.cyc_mac.eq(0), run.skipped.eq(0), run.stall.eq(0),
                    err.eq(MatmulError.NONE), scan.gap.eq(n), row_done.eq(0),
                ]
                m.next = "CHECK"
        with m.State("CHECK"):
            m.d.sync += cyc_total.eq(cyc_total + 1)
            low_bits = Const(n - 1, DIM_BITS)
            m.d.sync += [run.rtn.eq(rows_r >> ln), run.kw.eq(k_r >> ln),
                         run.cbn.eq(cols_r >> ln), run.rt.eq(0), run.xbase.eq(0),
                         scan.yaddr.eq(0), scan.maddr.eq(0)]
            bad = Signal(MatmulError)
            with m.If((rows_r == 0) | (k_r == 0) | (cols_r == 0)):
                m.d.comb += bad.eq(MatmulError.ZERO_DIM)
            with m.Elif(((rows_r | k_r | cols_r) & low_bits) != 0):
                m.d.comb += bad.eq(MatmulError.NOT_MULTIPLE)
            with m.Elif(k_r > cfg.max_k):
                m.d.comb += bad.eq(MatmulError.K_TOO_LARGE)
            with m.Elif(x_words > cfg.x_depth):
                m.d.comb += bad.eq(MatmulError.X_OVERFLOW)
            with m.Elif((m_words > cfg.m_depth) |
                        (nnz > cfg.v_depth * n)):
                m.d.comb += bad.eq(MatmulError.W_OVERFLOW)
            with m.Elif(y_words > cfg.y_depth):
                m.d.comb += bad.eq(MatmulError.Y_OVERFLOW)
            with m.If(bad != MatmulError.NONE):
                m.d.sync += [err.eq(bad), eng.done.eq(1)]
                m.next = "IDLE"
            with m.Else():
                m.next = "PRIME0"
        # Per row tile: restart the value stream and the mask scan from word 0 (read in
        # PRIME0, in mword from PRIME1 on, while PRIME1 reads word 1).
        with m.State("PRIME0"):
            m.d.sync += [cyc_total.eq(cyc_total + 1), row_done.eq(0)]
            m.d.comb += scan.load_word.eq(1)
            with m.If(row_done & (used != nnz)):
                m.d.sync += [err.eq(MatmulError.MASK_MISMATCH), run.flush.eq(0)]
                m.next = "FLUSH"
            with m.Else():
                m.next = "PRIME1"
            m.d.comb += [v_rd.addr.eq(run.vbase), v_rd.en.eq(nnz != 0)]
            m.d.sync += [scan.fetched.eq(Mux(nnz != 0, n, 0)), scan.landing.eq(nnz != 0),
                         scan.landed.eq(0), used.eq(0), scan.ahead.eq(3 * n), scan.cb.eq(0),
                         scan.wi.eq(0), scan.word_end_tile.eq(run.kw == 1),
                         scan.cb_last.eq(run.cbn == 1), scan.tile_first.eq(1)]
        with m.State("PRIME1"):
            m.d.sync += cyc_total.eq(cyc_total + 1)
            more = scan.fetched < nnz
            m.d.comb += [v_rd.addr.eq(run.vbase + 1), v_rd.en.eq(more), scan.load_word.eq(1)]
            m.d.sync += [scan.fetched.eq(Mux(more, 2 * n, scan.fetched)),
                         scan.landing.eq(more)]
            m.next = "STREAM"
        with m.State("STREAM"):
            m.d.sync += cyc_total.eq(cyc_total + 1)
            m.d.comb += scan.streaming.eq(1)
            with m.If(scan.advance & scan.word_end_all & ~scan.multi):
                # Row tile complete; the next state checks that its masks consumed exactly
                # the nnz packed codes (a cycle later, off the scanner's path).
                m.d.sync += row_done.eq(1)
                with m.If(run.rt == run.rtn - 1):
                    m.d.sync += run.flush.eq(0)
                    m.next = "FLUSH"
                with m.Else():
                    m.d.sync += [run.rt.eq(run.rt + 1), run.xbase.eq(run.xbase + run.kw),
                                 scan.landing.eq(0), scan.maddr.eq(0)]
                    m.next = "PRIME0"
        with m.State("FLUSH"):
            m.d.sync += [cyc_total.eq(cyc_total + 1), run.flush.eq(run.flush + 1),
                         row_done.eq(0)]
            with m.If(row_done & (used != nnz)):
                m.d.sync += err.eq(MatmulError.MASK_MISMATCH)
            with m.If(run.flush == n + FLUSH_EXTRA - 1):
                m.d.sync += eng.done.eq(1)
                m.next = "IDLE"
