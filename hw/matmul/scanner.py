"""Stage S0 of the matrix engine: scan the masks, issue one weight vector (token) per cycle.

The scanner walks the mask words of a row tile, column block by column block, and issues one
token per non-zero mask: the mask, its place in the value stream and the X lane it multiplies.
All-zero vectors are never issued; an all-zero word costs one idle cycle. Beside it the value
fetch keeps a 4n-code realignment buffer filled from the value RAM, and the performance
counters count issued, skipped and stalled vectors.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Mux, Signal

from hw.matmul.config import DIM_BITS
from hw.matmul.logic import at_least, split

__all__ = ["build_scanner"]


def build_scanner(m, cfg, bufs, run):
    """Add S0, the value fetch and the counters to ``m``; return the scanner's state.

    ``bufs`` comes from :func:`hw.matmul.buffers.build_buffers`, ``run`` from
    :func:`hw.matmul.control.run_registers`. The sequencer drives ``streaming`` and, while it
    primes a row tile, ``load_word`` and the value reads; it resets the state below per row
    tile. ``s1`` and ``s1_win`` are the token registers the lanes (S1) read.
    """
    n, ln, nb = cfg.n, cfg.log_n, cfg.fmt.n_bits
    cb = Signal(DIM_BITS)       # current column block
    wi = Signal(DIM_BITS)       # mask word within the block
    maddr = Signal(range(cfg.m_depth + 2))  # mask word being read ahead
    yaddr = Signal(DIM_BITS)    # tile index = Y word address
    mword = Signal(n * n)       # the mask word being scanned (registered)
    mnz = Signal(n)             # its non-zero masks
    mpc = [Signal(range(n + 1), name=f"mpc{t}") for t in range(n)]  # its masks' popcounts
    pend_r = Signal(n)          # non-zero masks of the current word not yet issued
    pend_any = Signal()         # pend_r is not empty
    tile_first = Signal()       # no token of the current tile issued yet
    gap = Signal(range(n + 1), init=n)  # cycles since the last tile-closing token

    # Value realignment buffer: 4 slots of n codes; counters in codes.
    # Wide enough for every code a row tile's masks can ask for, so that a mismatch with
    # nnz cannot wrap around unseen.
    vbits = max(cfg.m_depth * n * n, cfg.v_depth * n + 4 * n).bit_length() + 1
    fetched = Signal(vbits)     # codes requested
    landed = Signal(vbits)      # codes written into the buffer
    used = Signal(vbits)        # codes consumed by issued tokens
    ahead = Signal(vbits)       # used + 3n, kept as a register for the fetch decision
    landing = Signal()
    vbuf = [Signal(nb, name=f"vbuf{i}") for i in range(4 * n)]

    # The scanner works on a registered copy of the mask word (mword, with its non-zero
    # masks and popcounts stored next to it in the buffer) while the block RAM already reads
    # the next word: the RAM's clock-to-output time stays off the scanner's decisions. pend_r
    # holds the non-zero masks not yet issued; it is never empty but for an all-zero word.
    wmasks = split(mword, n, n)
    pend = pend_r
    low = Signal(n)
    m.d.comb += low.eq(pend & (~pend + 1))
    idx = Signal(ln)
    for t in reversed(range(n)):
        with m.If(pend[t]):
            m.d.comb += idx.eq(t)
    rest = Signal(n)
    m.d.comb += rest.eq(pend & ~low)
    # "More than one mask pending" (rest is not empty) decides whether the scanner stays on
    # the word, so it sits in front of every scanner enable and of the sequencer: kept as a
    # register next to pend_r (set below), so that those decisions start at flip-flops.
    multi = Signal()
    # With pend empty the word is all zero, so mask idx = 0 is zero too.
    tok_mask = Signal(n)
    m.d.comb += tok_mask.eq(Array(wmasks)[idx])
    tok_pc = Signal(range(n + 1))
    m.d.comb += tok_pc.eq(Array(mpc)[idx])
    # Registered "last mask word of the tile" and "last column block" flags: comparing the
    # counters here would put a subtract and compare in front of every enable.
    word_end_tile = Signal()    # wi == kw - 1
    cb_last = Signal()          # cb == cbn - 1
    word_end_all = Signal()
    m.d.comb += word_end_all.eq(word_end_tile & cb_last)
    tok_valid = Signal()
    tok_last = Signal()
    m.d.comb += [tok_valid.eq(pend_any | word_end_tile),
                 tok_last.eq(word_end_tile & ~multi)]
    streaming = Signal()
    advance = Signal()
    issue = Signal()
    next_word = Signal()        # the scanner is done with mword
    m.d.comb += [
        advance.eq(streaming & ~(tok_valid & tok_last & (gap < n))),
        issue.eq(advance & tok_valid),
        next_word.eq(advance & ~multi),
    ]

    # Token register S1 (the lanes hold S1b..S4).
    s1 = dict(valid=Signal(), mask=Signal(n), lane=Signal(ln),
              first=Signal(), last=Signal(), cb=Signal(DIM_BITS), yaddr=Signal(DIM_BITS))
    # Buffer slot of window code k (see S1): used + k modulo 4n, one register per k so that
    # each drives one window multiplexer only.
    s1_win = [Signal(ln + 2, name=f"s1_win{k}") for k in range(n)]
    # Only S1's valid bit depends on `issue`: the token's fields load every cycle (later
    # stages use them only with a valid bit), and the X banks read the current word every
    # cycle of the scan (S1 uses their data only for a valid token). Both keep `issue`, at
    # the end of the scanner's decision, off the enables of ~100 registers and of the n
    # X banks' block RAMs, which lie far apart at n >= 8.
    m.d.sync += [
        s1["valid"].eq(issue),
        s1["mask"].eq(tok_mask), s1["lane"].eq(idx),
        s1["first"].eq(tile_first), s1["last"].eq(tok_last), s1["cb"].eq(cb),
        s1["yaddr"].eq(yaddr),
        *(a.eq(used[:ln + 2] + k) for k, a in enumerate(s1_win)),
    ]
    for p in bufs.x_rd:
        m.d.comb += [p.addr.eq(run.xbase + wi), p.en.eq(streaming)]

    # Gap since the last tile-closing token: the drain reads a shadow for n cycles.
    with m.If(issue & tok_last):
        m.d.sync += gap.eq(1)
    with m.Elif(gap < n):
        m.d.sync += gap.eq(gap + 1)

    # Value fetch: keep up to 3n codes ahead of consumption (see the module docstring of
    # sw.perf.matmul for why this never starves the scanner). The value RAM reads
    # fetched's word every cycle of the scan and `landing` (the registered decision) picks
    # the words that count, so the decision's comparators stay off the block RAMs' enables.
    v_rd = bufs.v_rd
    fetch = Signal()
    m.d.comb += [
        fetch.eq(streaming & (fetched < run.nnz) & (fetched <= ahead)),
        v_rd.addr.eq(fetched[ln:] + run.vbase),
        v_rd.en.eq(streaming),
    ]
    m.d.sync += landing.eq(fetch)
    with m.If(fetch):
        m.d.sync += fetched.eq(fetched + n)
    with m.If(landing):
        m.d.sync += landed.eq(landed + n)
        slot = landed[ln:ln + 2]
        for s in range(4):
            with m.If(slot == s):
                m.d.sync += [vbuf[s * n + t].eq(c) for t, c in enumerate(split(v_rd.data, n, nb))]
    with m.If(issue):
        m.d.sync += [used.eq(used + tok_pc), ahead.eq(ahead + tok_pc)]

    # Scanner state. The mask RAM reads one word ahead (maddr); a word moves from its output
    # into mword when the scanner is done with the previous one (or in PRIME1).
    m_rd = bufs.m_rd
    load_word = Signal()
    m.d.comb += [m_rd.addr.eq(maddr + run.mbase), m_rd.en.eq(load_word)]
    with m.If(load_word):
        m.d.sync += [
            mword.eq(m_rd.data.masks), maddr.eq(maddr + 1), mnz.eq(m_rd.data.nz),
            pend_r.eq(m_rd.data.nz), pend_any.eq(m_rd.data.any), multi.eq(m_rd.data.multi),
            *(mpc[t].eq(m_rd.data.pc[t]) for t in range(n)),
        ]
    with m.If(advance):
        with m.If(issue):
            m.d.sync += tile_first.eq(0)
        with m.If(multi):
            m.d.sync += [pend_r.eq(rest), pend_any.eq(1), multi.eq(at_least(pend, 3))]
        with m.Else():
            m.d.comb += load_word.eq(1)
            with m.If(word_end_tile):
                m.d.sync += [wi.eq(0), cb.eq(cb + 1), yaddr.eq(yaddr + 1),
                             tile_first.eq(1), word_end_tile.eq(run.kw == 1),
                             cb_last.eq(cb + 2 == run.cbn)]
            with m.Else():
                m.d.sync += [wi.eq(wi + 1), word_end_tile.eq(wi + 2 == run.kw)]

    # Performance counters, one cycle behind the scanner from registered increments (the
    # flush leaves them their final values long before done): keeps their adders and
    # enables off the scanner's paths.
    mac_inc = Signal()
    stall_inc = Signal()
    skip_inc = Signal(range(n + 1))
    m.d.sync += [
        mac_inc.eq(issue & pend_any),
        stall_inc.eq(streaming & ~advance),
        skip_inc.eq(Mux(next_word, n - sum(mnz[t] for t in range(n)), 0)),
    ]
    with m.If(mac_inc):
        m.d.sync += run.cyc_mac.eq(run.cyc_mac + 1)
    with m.If(stall_inc):
        m.d.sync += run.stall.eq(run.stall + 1)
    m.d.sync += run.skipped.eq(run.skipped + skip_inc)
    return SimpleNamespace(
        streaming=streaming, load_word=load_word, advance=advance, multi=multi,
        word_end_all=word_end_all, word_end_tile=word_end_tile, cb_last=cb_last, cb=cb, wi=wi,
        maddr=maddr, yaddr=yaddr, tile_first=tile_first, gap=gap, fetched=fetched,
        landed=landed, used=used, ahead=ahead, landing=landing, vbuf=vbuf, s1=s1, s1_win=s1_win)
