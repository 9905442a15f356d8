"""Matrix engine ([H1], [H2], [F4]): n VMACs × n lanes, banked SRAMs, bitmask-sparse weights.

Computes ``Y = requant(act(X·W + bias))`` for AdaptivFloat X (rows × K), W (K × cols) and bias
(cols), ``act`` ∈ {identity, ReLU}; the golden model is :func:`sw.golden.matmul.matmul` and the
cycle model :mod:`sw.perf.matmul`.

Dataflow: output-stationary outer product. A *tile* is n output rows × n output columns
(row tile ``rt``, column block ``cb``). VMAC ``i`` holds the n accumulators of output row
``rt·n + i``; each cycle one decoded weight vector ``W[k, cb·n : cb·n+n]`` is broadcast to every
VMAC and VMAC ``i`` multiplies it by its scalar ``X[rt·n + i, k]`` (n lanes = n MACs). Vectors
whose mask is 0 are never issued: an all-zero vector costs no cycle.

Buffers (all ``amaranth.lib.memory.Memory``; word bit ``t·N`` starts code ``t``):

* **X**: n banks, bank ``i`` holds the rows ``r ≡ i (mod n)``; word ``(r // n)·(K/n) + k // n``
  holds ``X[r, (k//n)·n : (k//n)·n + n]``. One read of every bank at the same address gives the
  column slice ``X[rt·n : rt·n+n, k]`` after a lane select.
* **Y**: the same layout with ``cols`` in place of K, so a Y buffer is the next layer's X
  buffer. The drain writes output row ``i`` of a tile into bank ``i``: one bank per cycle.
* **masks**: word ``cb·(K/n) + j`` holds the n masks of ``k = j·n .. j·n+n-1`` of block
  ``cb`` (mask of ``k = j·n + t`` at bits ``t·n``), as :func:`sw.sparse.pack_bitmask` orders them.
  The engine stores next to them, computed as the host writes the word, which masks are
  non-zero, whether any and more than one are, and each mask's popcount (the host writes only
  the n² mask bits).
* **values**: the packed non-zero codes, n per word, in :func:`sw.sparse.pack_bitmask` order.
* **bias**: word ``cb`` holds ``bias[cb·n : cb·n+n]``.

Pipeline: S0 scans a (registered, read-ahead) mask word per n vectors and issues one vector
(token) per cycle; S1 reads the non-zeros out of a 4n-code realignment buffer and the X lane out
of the X slice, S1b splits the codes into sign, exponent and significand; S2 multiplies the
significands (and adds the exponents); S3 shifts and signs the products; S4 accumulates. The
last token of a tile also copies the sum into a shadow register set that is drained (one output
row per cycle: add the aligned bias, ReLU, requantize with n pipelined
:class:`~hw.af_requant.AFRequantCore`, register the codes, write Y) while the next tile
computes. A tile's last token therefore waits until the previous drain has read its last row
(n cycles between last tokens).
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.af_mul import af_fields
from hw.af_requant import DEFAULT_STAGES as REQUANT_STAGES
from hw.af_requant import AFRequantCore
from hw.checks import checked_construction
from hw.layouts import DEFAULT_AF, AFFormat, acc_width_for
from hw.registry import register_block

__all__ = [
    "MatmulConfig", "MatmulError", "MatrixEngine", "payload_layouts", "run_amaranth",
    "DIM_BITS", "NNZ_BITS", "COUNTER_BITS",
]

DIM_BITS = 16
NNZ_BITS = 32
COUNTER_BITS = 32
# Fixed cycles of a run besides the scanned vectors: one to check the shape, two per row tile
# to prime the mask and value reads, and the flush after the last token (S1, S1b, S2..S4, n
# drain rows, bias and ReLU, the requantizer's pipeline stages, the code register, write).
CHECK_CYCLES = 1
PRIME_CYCLES = 2
FLUSH_EXTRA = 7 + REQUANT_STAGES


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


def _check_pos_int(name, value, *, lo=1):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, not {value}")


@dataclass(frozen=True)
class MatmulConfig:
    """Generator parameters of the matrix engine; shared by gateware, driver and models.

    Parameters
    ----------
    n : int
        VMACs = lanes = vector width (a power of two, 2..64).
    fmt : AFFormat
        AdaptivFloat format of X, W, bias and Y.
    max_k : int
        Largest inner dimension; sizes the accumulators ([F4]).
    x_depth, y_depth : int
        Words per X / Y bank (each word n codes).
    m_depth : int
        Mask words (n masks of n bits each).
    v_depth : int
        Value words (n codes each).
    """

    n: int = 16
    fmt: AFFormat = DEFAULT_AF
    max_k: int = 1024
    x_depth: int = 512
    y_depth: int = 512
    m_depth: int = 512
    v_depth: int = 4096

    def __post_init__(self):
        _check_pos_int("n", self.n, lo=2)
        if self.n & (self.n - 1) or self.n > 64:
            raise ValueError(f"n must be a power of two in 2..64, not {self.n}")
        if not isinstance(self.fmt, AFFormat):
            raise TypeError(f"fmt must be an AFFormat, not {self.fmt!r}")
        from sw.golden.matmul import bias_shift_range

        bias_shift_range(self.fmt)
        _check_pos_int("max_k", self.max_k)
        if self.max_k % self.n or self.max_k >= 1 << DIM_BITS:
            raise ValueError(
                f"max_k must be a multiple of n={self.n} below 2^{DIM_BITS}, not {self.max_k}")
        for name in ("x_depth", "y_depth", "m_depth", "v_depth"):
            _check_pos_int(name, getattr(self, name))
        if self.v_depth * self.n >= 1 << (NNZ_BITS - 2):
            raise ValueError(f"v_depth must be below 2^{NNZ_BITS - 2} / n, not {self.v_depth}")

    @property
    def b_depth(self):
        """Bias words: one per column block (cols/n is bounded by the Y and mask buffers)."""
        return max(2, min(self.y_depth, self.m_depth))

    @property
    def log_n(self):
        return self.n.bit_length() - 1

    @property
    def bias_width(self):
        """Signed width of a bias aligned to the accumulator unit."""
        return 1 + self.fmt.sig_bits + self.bias_shift_range[1]

    @property
    def bias_shift_range(self):
        """(smallest, largest) left shift aligning a bias significand to the accumulator unit."""
        from sw.golden.matmul import bias_shift_range

        return bias_shift_range(self.fmt)

    @property
    def acc_width(self):
        """Accumulator width: products of max_k terms or the aligned bias, plus one for the sum."""
        return max(acc_width_for(self.fmt, self.max_k), self.bias_width) + 1

    @property
    def requant_shift_range(self):
        """Requantizer shifts ``bias_x + bias_w - bias_out + offset - M`` over all registers."""
        f = self.fmt
        return (-f.bias_max + f.offset - f.man_bits, 2 * f.bias_max + f.offset - f.man_bits)

    def check_shape(self, rows, k, cols, nnz):
        """Raise ``ValueError`` naming the problem unless the engine can run this shape."""
        n = self.n
        for name, v in (("rows", rows), ("K", k), ("cols", cols)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be positive, not {v}")
            if v % n:
                raise ValueError(
                    f"{name} must be a multiple of n={n} (pad in software), not {v}")
        if k > self.max_k:
            raise ValueError(f"K must be at most max_k={self.max_k}, not {k}")
        if (rows // n) * (k // n) > self.x_depth:
            raise ValueError(
                f"X ({rows}×{k}) does not fit the X buffer: {rows * k} codes, capacity "
                f"{self.x_depth * n * n}")
        if (rows // n) * (cols // n) > self.y_depth:
            raise ValueError(
                f"Y ({rows}×{cols}) does not fit the Y buffer: {rows * cols} codes, capacity "
                f"{self.y_depth * n * n}")
        if (cols // n) * (k // n) > self.m_depth:
            raise ValueError(
                f"the masks of W ({k}×{cols}) do not fit the mask buffer: "
                f"{(cols // n) * (k // n)} words, capacity {self.m_depth}")
        if not isinstance(nnz, int) or nnz < 0 or -(-nnz // n) > self.v_depth:
            raise ValueError(
                f"the {nnz} non-zero codes of W do not fit the value buffer "
                f"(capacity {self.v_depth * n} codes)")


def payload_layouts(config: MatmulConfig):
    """Struct layouts of the stream payloads (fields LSB first), for drivers and testbenches."""
    n, nb = config.n, config.fmt.n_bits
    return {
        "x_w": data.StructLayout({"bank": range(n), "addr": range(config.x_depth),
                                  "data": n * nb}),
        "m_w": data.StructLayout({"addr": range(config.m_depth), "data": n * n}),
        "v_w": data.StructLayout({"addr": range(config.v_depth), "data": n * nb}),
        "b_w": data.StructLayout({"addr": range(config.b_depth), "data": n * nb}),
        "y_req": data.StructLayout({"bank": range(n), "addr": range(config.y_depth)}),
        "y_rsp": data.StructLayout({"data": n * nb}),
    }


class MatrixEngine(wiring.Component):
    """The matrix engine (see the module docstring for dataflow and buffer layouts).

    Parameters
    ----------
    config : MatmulConfig
        Generator parameters.

    Attributes
    ----------
    x_w : stream of {bank, addr, data}, in
        Writes one X word (n codes) into X bank ``bank``; accepted only while idle.
    m_w, v_w, b_w : stream of {addr, data}, in
        Write one mask / value / bias word; accepted only while idle.
    y_req : stream of {bank, addr}, in
        Read request for one Y word; accepted only while idle.
    y_rsp : stream of {data}, out
        The Y words, in request order.
    start : Signal(1), in
        Starts a run with the shape and bias ports below (sampled while idle).
    rows, k, cols : Signal(16), in
        Shape; each must be a positive multiple of n that fits the buffers.
    nnz : Signal(32), in
        Number of packed non-zero codes of W (checked against what the masks consume).
    bias_x, bias_w, bias_b, bias_out : Signal(fmt.bias_bits), in
        Bias registers of X, W, the bias vector and Y.
    relu : Signal(1), in
        Apply ReLU before requantization.
    busy : Signal(1), out
        A run is in progress.
    done : Signal(1), out
        One-cycle pulse at the end of a run (also after an error).
    err : Signal(MatmulError), out
        Status of the last run (NONE when it succeeded).
    cyc_total, cyc_mac, vec_skipped, cyc_stall : Signal(32), out
        Counters of the last run: busy cycles, cycles that issued a non-zero weight vector,
        all-zero vectors skipped, cycles a tile's last vector waited for the drain.
    """

    def __init__(self, *, config: MatmulConfig = MatmulConfig()):
        with checked_construction(self):
            if not isinstance(config, MatmulConfig):
                raise TypeError(f"config must be a MatmulConfig, not {config!r}")
        self._cfg = config
        bias = config.fmt.bias_bits
        lay = payload_layouts(config)
        super().__init__({
            **{name: In(stream.Signature(lay[name]))
               for name in ("x_w", "m_w", "v_w", "b_w", "y_req")},
            "y_rsp": Out(stream.Signature(lay["y_rsp"])),
            "start": In(1),
            "rows": In(DIM_BITS), "k": In(DIM_BITS), "cols": In(DIM_BITS),
            "nnz": In(NNZ_BITS),
            "bias_x": In(bias), "bias_w": In(bias), "bias_b": In(bias), "bias_out": In(bias),
            "relu": In(1),
            "busy": Out(1), "done": Out(1), "err": Out(MatmulError),
            "cyc_total": Out(COUNTER_BITS), "cyc_mac": Out(COUNTER_BITS),
            "vec_skipped": Out(COUNTER_BITS), "cyc_stall": Out(COUNTER_BITS),
        })

    @property
    def config(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        fmt = cfg.fmt
        n, ln, nb = cfg.n, cfg.log_n, fmt.n_bits
        accw = cfg.acc_width
        pw = fmt.product_bits

        def codes_of(word, width):
            return [word[t * width:(t + 1) * width] for t in range(n)]

        def codes(word):
            return codes_of(word, nb)

        # ---- Buffers -----------------------------------------------------------------------
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
        for port, mem in ((self.m_w, m_mem), (self.v_w, v_mem), (self.b_w, b_mem)):
            wp = mem.write_port()
            m.d.comb += [
                port.ready.eq(idle),
                wp.addr.eq(port.payload.addr),
                wp.en.eq(port.valid & idle),
            ]
            if mem is m_mem:
                masks = codes_of(port.payload.data, n)
                nz = Cat(mk.any() for mk in masks)
                m.d.comb += [
                    wp.data.masks.eq(port.payload.data), wp.data.nz.eq(nz),
                    wp.data.any.eq(nz.any()), wp.data.multi.eq(_at_least(nz, 2)),
                    *(wp.data.pc[t].eq(sum(mk[b] for b in range(n)))
                      for t, mk in enumerate(masks)),
                ]
            else:
                m.d.comb += wp.data.eq(port.payload.data)
        m.d.comb += self.x_w.ready.eq(idle)
        x_rd = []
        for i, xm in enumerate(x_banks):
            wp = xm.write_port()
            m.d.comb += [
                wp.addr.eq(self.x_w.payload.addr),
                wp.data.eq(self.x_w.payload.data),
                wp.en.eq(self.x_w.valid & idle & (self.x_w.payload.bank == i)),
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
            self.y_req.ready.eq(idle & (~self.y_rsp.valid | self.y_rsp.ready)),
            take.eq(self.y_req.valid & self.y_req.ready),
            self.y_rsp.payload.data.eq(Array(p.data for p in y_rd)[rsp_bank]),
        ]
        for p in y_rd:
            m.d.comb += [p.addr.eq(self.y_req.payload.addr), p.en.eq(take)]
        with m.If(take):
            m.d.sync += [rsp_bank.eq(self.y_req.payload.bank), self.y_rsp.valid.eq(1)]
        with m.Elif(self.y_rsp.ready):
            m.d.sync += self.y_rsp.valid.eq(0)

        # ---- Run registers -----------------------------------------------------------------
        kw = Signal(DIM_BITS)       # K / n: mask words per column block, X words per row
        cbn = Signal(DIM_BITS)      # cols / n: column blocks
        rtn = Signal(DIM_BITS)      # rows / n: row tiles
        nnz = Signal(NNZ_BITS)
        bx, bw = Signal(fmt.bias_bits), Signal(fmt.bias_bits)
        bb, bo = Signal(fmt.bias_bits), Signal(fmt.bias_bits)
        relu = Signal()
        rows_r, k_r, cols_r = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS)

        rt = Signal(DIM_BITS)       # current row tile
        xbase = Signal(range(cfg.x_depth + 1))
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
        row_done = Signal()         # a row tile just ended: check what its masks consumed
        fetched = Signal(vbits)     # codes requested
        landed = Signal(vbits)      # codes written into the buffer
        used = Signal(vbits)        # codes consumed by issued tokens
        ahead = Signal(vbits)       # used + 3n, kept as a register for the fetch decision
        landing = Signal()
        vbuf = [Signal(nb, name=f"vbuf{i}") for i in range(4 * n)]

        cyc_total = Signal(COUNTER_BITS)
        cyc_mac = Signal(COUNTER_BITS)
        skipped = Signal(COUNTER_BITS)
        stall = Signal(COUNTER_BITS)
        m.d.comb += [self.cyc_total.eq(cyc_total), self.cyc_mac.eq(cyc_mac),
                     self.vec_skipped.eq(skipped), self.cyc_stall.eq(stall)]

        flush = Signal(range(n + FLUSH_EXTRA + 1))
        err = Signal(MatmulError)
        m.d.comb += self.err.eq(err)

        # ---- S0: scan the mask word, issue one token per cycle ------------------------------
        # The scanner works on a registered copy of the mask word (mword, with its non-zero
        # masks and popcounts stored next to it in the buffer) while the block RAM already reads
        # the next word: the RAM's clock-to-output time stays off the scanner's decisions. pend_r
        # holds the non-zero masks not yet issued; it is never empty but for an all-zero word.
        wmasks = [mword[t * n:(t + 1) * n] for t in range(n)]
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

        # Token registers S1..S4.
        s1 = dict(valid=Signal(), mask=Signal(n), lane=Signal(ln),
                  first=Signal(), last=Signal(), cb=Signal(DIM_BITS), yaddr=Signal(DIM_BITS))
        # Buffer slot of window code k (see S1): used + k modulo 4n, one register per k so that
        # each drives one window multiplexer only.
        s1_win = [Signal(ln + 2, name=f"s1_win{k}") for k in range(n)]
        s1b = {f: Signal.like(s1[f], name=f"s1b_{f}")
               for f in ("valid", "first", "last", "cb", "yaddr")}
        s2 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))
        s3 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))
        s4 = dict(valid=Signal(), first=Signal(), last=Signal(), yaddr=Signal(DIM_BITS))
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
        for p in x_rd:
            m.d.comb += [p.addr.eq(xbase + wi), p.en.eq(streaming)]

        # Gap since the last tile-closing token: the drain reads a shadow for n cycles.
        with m.If(issue & tok_last):
            m.d.sync += gap.eq(1)
        with m.Elif(gap < n):
            m.d.sync += gap.eq(gap + 1)

        # Value fetch: keep up to 3n codes ahead of consumption (see the module docstring of
        # sw.perf.matmul for why this never starves the scanner). The value RAM reads
        # fetched's word every cycle of the scan and `landing` (the registered decision) picks
        # the words that count, so the decision's comparators stay off the block RAMs' enables.
        fetch = Signal()
        m.d.comb += [
            fetch.eq(streaming & (fetched < nnz) & (fetched <= ahead)),
            v_rd.addr.eq(fetched[ln:]),
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
                    m.d.sync += [vbuf[s * n + t].eq(c) for t, c in enumerate(codes(v_rd.data))]
        with m.If(issue):
            m.d.sync += [used.eq(used + tok_pc), ahead.eq(ahead + tok_pc)]

        # Scanner state. The mask RAM reads one word ahead (maddr); a word moves from its output
        # into mword when the scanner is done with the previous one (or in PRIME1).
        load_word = Signal()
        m.d.comb += [m_rd.addr.eq(maddr), m_rd.en.eq(load_word)]
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
                m.d.sync += [pend_r.eq(rest), pend_any.eq(1), multi.eq(_at_least(pend, 3))]
            with m.Else():
                m.d.comb += load_word.eq(1)
                with m.If(word_end_tile):
                    m.d.sync += [wi.eq(0), cb.eq(cb + 1), yaddr.eq(yaddr + 1),
                                 tile_first.eq(1), word_end_tile.eq(kw == 1),
                                 cb_last.eq(cb + 2 == cbn)]
                with m.Else():
                    m.d.sync += [wi.eq(wi + 1), word_end_tile.eq(wi + 2 == kw)]

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
            m.d.sync += cyc_mac.eq(cyc_mac + 1)
        with m.If(stall_inc):
            m.d.sync += stall.eq(stall + 1)
        m.d.sync += skipped.eq(skipped + skip_inc)

        # ---- S1: realign the non-zeros and select the X lane (registered codes); S1b: split
        # both into fields. Two stages keep the X banks' block RAM output time and the 4n-way
        # realignment multiplexer each in a cycle of their own.
        def fields(prefix, k):
            return (Signal(name=f"{prefix}_s{k}"), Signal(fmt.exp_bits, name=f"{prefix}_e{k}"),
                    Signal(fmt.sig_bits, name=f"{prefix}_g{k}"))

        wf = [fields("w", j) for j in range(n)]
        xf = [fields("x", i) for i in range(n)]
        w_code = [Signal(nb, name=f"w_code{j}") for j in range(n)]
        x_code = [Signal(nb, name=f"x_code{i}") for i in range(n)]
        # Lane j takes code used + (set mask bits below j) of the buffer, modulo 4n. Done in two
        # parallel halves, neither with an adder: the window of the n codes from `used` on
        # (win[k] = buffer code used + k, a 4n-way multiplexer on its own register), and
        # one-hot counts of the set mask bits below each lane (plain logic), which then pick
        # one of the first j + 1 window codes. (An adder `used + popcount` in front of the
        # 4n-way multiplexer was the critical path at n = 8.)
        vb = Array(vbuf)
        win = []
        for k in range(n):
            w = Signal(nb, name=f"win{k}")
            m.d.comb += w.eq(vb[s1_win[k]])
            win.append(w)
        below = [Const(1)]          # one-hot count of the set bits in mask[:j]
        for j in range(n):
            bit = s1["mask"][j]
            pick = 0
            for k, hot in enumerate(below):
                pick = pick | Mux(hot, win[k], 0)
            m.d.sync += w_code[j].eq(Mux(bit, pick, 0))
            # Named signals per step: as nested expressions each step would copy the previous
            # one twice, and the Verilog would grow as 2^n (1.5 M lines at n = 16).
            nxt = [Signal(name=f"below{j + 1}_{k}") for k in range(len(below) + 1)]
            m.d.comb += [b.eq((below[k] if k < len(below) else 0) & ~bit
                              | (below[k - 1] & bit if k else 0)) for k, b in enumerate(nxt)]
            below = nxt
        for i in range(n):
            m.d.sync += x_code[i].eq(Array(codes(x_rd[i].data))[s1["lane"]])
        m.d.sync += [s1b[f].eq(s1[f]) for f in s1b]
        for f, code in [*zip(wf, w_code, strict=True), *zip(xf, x_code, strict=True)]:
            m.d.sync += [r.eq(v) for r, v in zip(f, af_fields(fmt, code), strict=True)]
        m.d.sync += [s2[f].eq(s1b[f]) for f in s2]

        # ---- S2: n × n significand products, exponent sums and signs ------------------------
        sp = [[Signal(2 * fmt.sig_bits, name=f"sp{i}_{j}") for j in range(n)] for i in range(n)]
        es = [[Signal(fmt.exp_bits + 1, name=f"es{i}_{j}") for j in range(n)] for i in range(n)]
        sg = [[Signal(name=f"sg{i}_{j}") for j in range(n)] for i in range(n)]
        for i, (sx, ex, gx) in enumerate(xf):
            for j, (sw_, ew, gw) in enumerate(wf):
                m.d.sync += [sp[i][j].eq(gx * gw), es[i][j].eq(ex + ew), sg[i][j].eq(sx ^ sw_)]
        m.d.sync += s3["valid"].eq(s2["valid"])
        m.d.sync += [s3[f].eq(s2[f]) for f in ("first", "last", "yaddr")]

        # ---- S3: exact signed products ±sig·sig << (e + e) -----------------------------------
        prod = [[Signal(signed(pw), name=f"prod{i}_{j}") for j in range(n)] for i in range(n)]
        for i in range(n):
            for j in range(n):
                mag = (sp[i][j] << es[i][j])[:pw - 1]
                m.d.sync += prod[i][j].eq(Mux(sg[i][j], -mag, mag))
        m.d.sync += s4["valid"].eq(s3["valid"])
        m.d.sync += [s4[f].eq(s3[f]) for f in ("first", "last", "yaddr")]

        # Bias of the tile a closing token ends, aligned to the accumulator unit:
        # sig << (exp + bias_b - bias_x - bias_w - offset + M), never a negative shift
        # (MatmulConfig checks the format). Read at S1b; fields and shift amount registered at
        # S2 (so the block RAM's output time stays off the shifter), shifted at S3, signed at S4.
        m.d.comb += [b_rd.addr.eq(s1b["cb"]), b_rd.en.eq(s1b["valid"] & s1b["last"])]
        base = Signal(range(2 * fmt.bias_max + 1 + cfg.bias_shift_range[1]))
        m.d.sync += base.eq(bb + (fmt.man_bits - fmt.offset) - bx - bw)
        bias_sig = [Signal(fmt.sig_bits, name=f"bias_sig{j}") for j in range(n)]
        bias_sh = [Signal(range(cfg.bias_shift_range[1] + 1), name=f"bias_sh{j}")
                   for j in range(n)]
        bias_sg = [Signal(name=f"bias_sg{j}") for j in range(n)]
        bias_mag = [Signal(cfg.bias_width - 1, name=f"bias_mag{j}") for j in range(n)]
        bias_neg = [Signal(name=f"bias_neg{j}") for j in range(n)]
        for j, c in enumerate(codes(b_rd.data)):
            sb, eb, gb = af_fields(fmt, c)
            with m.If(s2["valid"] & s2["last"]):
                m.d.sync += [bias_sig[j].eq(gb), bias_sh[j].eq(eb + base), bias_sg[j].eq(sb)]
            with m.If(s3["valid"] & s3["last"]):
                m.d.sync += [bias_mag[j].eq(bias_sig[j] << bias_sh[j]),
                             bias_neg[j].eq(bias_sg[j])]

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
                m.d.sync += bias_al[j].eq(Mux(bias_neg[j], -bias_mag[j], bias_mag[j]))

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
            m.d.sync += dsum[j].eq(Mux(relu & (total < 0), 0, total))
        lo, hi = cfg.requant_shift_range
        shift = Signal(signed(max(abs(lo), abs(hi)).bit_length() + 2))
        # Registered: the biases are loaded with the command, long before the first drain, and
        # the sum is then not on the path into the n requantizers' pre-shifts (ECP5, n = 8).
        m.d.sync += shift.eq(bx + bw - bo + (fmt.offset - fmt.man_bits))
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
        for i, ym in enumerate(y_banks):
            wp = ym.write_port()
            m.d.comb += [wp.addr.eq(d2["yaddr"]), wp.data.eq(Cat(*ycode)),
                         wp.en.eq(d2["valid"] & (d2["row"] == i))]

        # ---- Sequencer -------------------------------------------------------------------------
        m.d.comb += [self.busy.eq(~idle)]
        # Buffer words the requested shape needs, registered from the ports every idle cycle so
        # that the multiplications stay out of the check cycle's path.
        x_words, y_words, m_words = (Signal(2 * DIM_BITS, name=nm)
                                     for nm in ("x_words", "y_words", "m_words"))
        with m.If(idle):
            rtn_p, kw_p, cbn_p = self.rows >> ln, self.k >> ln, self.cols >> ln
            m.d.sync += [x_words.eq(rtn_p * kw_p), y_words.eq(rtn_p * cbn_p),
                         m_words.eq(cbn_p * kw_p)]
        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(self.start):
                    m.d.sync += [
                        rows_r.eq(self.rows), k_r.eq(self.k), cols_r.eq(self.cols),
                        nnz.eq(self.nnz), bx.eq(self.bias_x), bw.eq(self.bias_w),
                        bb.eq(self.bias_b), bo.eq(self.bias_out), relu.eq(self.relu),
                        cyc_total.eq(0), cyc_mac.eq(0), skipped.eq(0), stall.eq(0),
                        err.eq(MatmulError.NONE), gap.eq(n), row_done.eq(0),
                    ]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += cyc_total.eq(cyc_total + 1)
                low_bits = Const(n - 1, DIM_BITS)
                m.d.sync += [rtn.eq(rows_r >> ln), kw.eq(k_r >> ln), cbn.eq(cols_r >> ln),
                             rt.eq(0), xbase.eq(0), yaddr.eq(0), maddr.eq(0)]
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
                    m.d.sync += [err.eq(bad), self.done.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.next = "PRIME0"
            # Per row tile: restart the value stream and the mask scan from word 0 (read in
            # PRIME0, in mword from PRIME1 on, while PRIME1 reads word 1).
            with m.State("PRIME0"):
                m.d.sync += [cyc_total.eq(cyc_total + 1), row_done.eq(0)]
                m.d.comb += load_word.eq(1)
                with m.If(row_done & (used != nnz)):
                    m.d.sync += [err.eq(MatmulError.MASK_MISMATCH), flush.eq(0)]
                    m.next = "FLUSH"
                with m.Else():
                    m.next = "PRIME1"
                m.d.comb += [v_rd.addr.eq(0), v_rd.en.eq(nnz != 0)]
                m.d.sync += [fetched.eq(Mux(nnz != 0, n, 0)), landing.eq(nnz != 0),
                             landed.eq(0), used.eq(0), ahead.eq(3 * n), cb.eq(0), wi.eq(0),
                             word_end_tile.eq(kw == 1), cb_last.eq(cbn == 1),
                             tile_first.eq(1)]
            with m.State("PRIME1"):
                m.d.sync += cyc_total.eq(cyc_total + 1)
                more = fetched < nnz
                m.d.comb += [v_rd.addr.eq(1), v_rd.en.eq(more), load_word.eq(1)]
                m.d.sync += [fetched.eq(Mux(more, 2 * n, fetched)), landing.eq(more)]
                m.next = "STREAM"
            with m.State("STREAM"):
                m.d.sync += cyc_total.eq(cyc_total + 1)
                m.d.comb += streaming.eq(1)
                with m.If(advance & word_end_all & ~multi):
                    # Row tile complete; the next state checks that its masks consumed exactly
                    # the nnz packed codes (a cycle later, off the scanner's path).
                    m.d.sync += row_done.eq(1)
                    with m.If(rt == rtn - 1):
                        m.d.sync += flush.eq(0)
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.sync += [rt.eq(rt + 1), xbase.eq(xbase + kw), landing.eq(0),
                                     maddr.eq(0)]
                        m.next = "PRIME0"
            with m.State("FLUSH"):
                m.d.sync += [cyc_total.eq(cyc_total + 1), flush.eq(flush + 1), row_done.eq(0)]
                with m.If(row_done & (used != nnz)):
                    m.d.sync += err.eq(MatmulError.MASK_MISMATCH)
                with m.If(flush == n + FLUSH_EXTRA - 1):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        return m


def _at_least(bits, k):
    """1 when ``k`` or more of ``bits`` are set: a balanced tree of plain logic, no adder."""

    def tree(lo, hi):  # [at least 1, .., at least k] of bits[lo:hi]
        if hi - lo == 1:
            return [bits[lo]] + [Const(0)] * (k - 1)
        mid = (lo + hi) // 2
        a, b = [Const(1), *tree(lo, mid)], [Const(1), *tree(mid, hi)]
        out = []
        for i in range(1, k + 1):
            term = Const(0)
            for j in range(i + 1):
                term = term | (a[j] & b[i - j])
            out.append(term)
        return out

    return tree(0, len(bits))[k - 1]


def run_amaranth(job, *, stall_seed=None, max_cycles=1_000_000):
    """Run one :class:`sw.matmul_buffers.MatmulJob` on the engine in the Amaranth simulator.

    Loads the buffers, starts the engine, waits for ``done`` and reads Y back through the
    streams. With ``stall_seed`` the testbench drops ``valid``/``ready`` at random on every
    stream. Returns ``(y_words, status)`` with the counters and the error status.
    """
    import random

    from amaranth.sim import Simulator

    from sw.matmul_buffers import y_requests

    dut = MatrixEngine(config=job.config)
    rng = random.Random(stall_seed)
    out = {}

    def stalled():
        return stall_seed is not None and rng.random() < 0.3

    async def put(ctx, port, items):
        for item in items:
            while stalled():
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, item)
            await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def bench(ctx):
        await put(ctx, dut.x_w, [{"bank": b, "addr": a, "data": d} for b, a, d in job.x_words])
        await put(ctx, dut.m_w, [{"addr": a, "data": d} for a, d in job.m_words])
        await put(ctx, dut.v_w, [{"addr": a, "data": d} for a, d in job.v_words])
        await put(ctx, dut.b_w, [{"addr": a, "data": d} for a, d in job.b_words])
        for name, value in job.regs.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(max_cycles):
            await ctx.tick()
            if ctx.get(dut.done):
                break
        else:
            raise AssertionError(f"engine did not finish within {max_cycles} cycles")
        out["status"] = {name: ctx.get(getattr(dut, name)) for name in
                         ("cyc_total", "cyc_mac", "vec_skipped", "cyc_stall")}
        out["status"]["err"] = ctx.get(dut.err)
        if out["status"]["err"] != MatmulError.NONE:
            out["y"] = None
            return
        reqs = y_requests(job.config, job.rows, job.cols)
        words = []
        pending = list(reqs)
        while len(words) < len(reqs):
            if pending and not stalled():
                bank, addr = pending[0]
                ctx.set(dut.y_req.valid, 1)
                ctx.set(dut.y_req.payload, {"bank": bank, "addr": addr})
            else:
                ctx.set(dut.y_req.valid, 0)
            ready = not stalled()
            ctx.set(dut.y_rsp.ready, ready)
            _, _, req_ready, rsp_valid, rsp_data = await ctx.tick().sample(
                dut.y_req.ready, dut.y_rsp.valid, dut.y_rsp.payload.data)
            if ctx.get(dut.y_req.valid) and req_ready:
                pending.pop(0)
            if ready and rsp_valid:
                words.append(rsp_data)
        ctx.set(dut.y_req.valid, 0)
        out["y"] = words

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["y"], out["status"]


_DEFAULTS = MatmulConfig()


def _config(n, n_bits, exp_bits, offset, bias_bits, max_k, x_depth, y_depth, m_depth, v_depth):
    return MatmulConfig(n=n, fmt=AFFormat(n_bits=n_bits, exp_bits=exp_bits, offset=offset,
                                          bias_bits=bias_bits),
                        max_k=max_k, x_depth=x_depth, y_depth=y_depth, m_depth=m_depth,
                        v_depth=v_depth)


def _selfcheck(**params):
    import torch

    from sw.golden.matmul import matmul
    from sw.matmul_buffers import make_job, y_from_words
    from sw.perf.matmul import matmul_cycles

    cfg = _config(**params)
    n, fmt = cfg.n, cfg.fmt
    g = torch.Generator().manual_seed(3)
    rows, k, cols = n, 2 * n, 2 * n

    def codes(*shape):
        c = torch.randint(0, fmt.code_max + 1, shape, generator=g)
        return torch.where(c == 1 << (fmt.n_bits - 1), 0, c)

    x, w, bias = codes(rows, k), codes(k, cols), codes(cols)
    w[torch.rand(k, cols // n, generator=g).repeat_interleave(n, dim=1) < 0.5] = 0
    regs = dict(bias_x=min(3, fmt.bias_max), bias_w=min(4, fmt.bias_max), bias_b=0,
                bias_out=min(5, fmt.bias_max), relu=True)
    job = make_job(cfg, x, w, bias, **regs)
    words, status = run_amaranth(job)
    assert status["err"] == MatmulError.NONE, f"engine reported {status['err']}"
    got = y_from_words(cfg, rows, cols, words)
    want = matmul(x, w, bias, **regs, fmt=fmt).to(torch.int64)
    bad = (got != want).nonzero()
    assert not len(bad), (f"Y{tuple(bad[0].tolist())} = {int(got[tuple(bad[0])])}, golden "
                          f"{int(want[tuple(bad[0])])}")
    model = matmul_cycles(job.packed, rows)
    for name, value in (("cyc_total", model.total), ("cyc_mac", model.mac),
                        ("vec_skipped", model.skipped), ("cyc_stall", model.stall)):
        assert status[name] == value, f"{name} = {status[name]}, cycle model {value}"
    return (f"{rows}×{k}×{cols} at 50% 1×n block sparsity: {got.numel()} outputs equal the "
            f"golden model, {status['cyc_total']} cycles as the cycle model predicts")


register_block(
    "matmul", "matrix engine: n×n AdaptivFloat MAC array, bitmask-sparse weights, banked SRAMs",
    build=lambda **p: MatrixEngine(config=_config(**p)), selfcheck=_selfcheck,
    params={"n": _DEFAULTS.n, "n_bits": 8, "exp_bits": 3, "offset": -10, "bias_bits": 3,
            "max_k": _DEFAULTS.max_k, "x_depth": _DEFAULTS.x_depth,
            "y_depth": _DEFAULTS.y_depth, "m_depth": _DEFAULTS.m_depth,
            "v_depth": _DEFAULTS.v_depth},
)
