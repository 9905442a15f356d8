"""AXI4 slave through which the host loads every memory and reads results back ([H9]).

The address map is :func:`hw.regmap.windows`: one window per memory of the
:class:`hw.memmap.MemoryMap`, word ``i`` at ``base + i * stride``, little-endian, bus lane ``k``
(32 bits) holding bytes ``4k .. 4k + 3`` of the word.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from hw.axi import Burst, Resp, axi4_signature
from hw.checks import checked_construction
from hw.memmap import DEFAULT_MEMMAP, MEMORIES, MemoryMap
from hw.registry import register_block
from hw.regmap import BUS_BYTES, memmap_fields, window_address_bits, windows

__all__ = ["AxiMem"]


def _log2(x):
    return (x - 1).bit_length()


def _within(value, lo, hi):
    """``lo <= value < hi``, without a comparison that is constant (Verilator's UNSIGNED)."""
    return (value < hi) if lo == 0 else (value >= lo) & (value < hi)


class AxiMem(wiring.Component):
    """AXI4 slave decoding the memory windows onto one write and one read port per memory.

    Bursts are INCR or FIXED, with beats of 1, 2 or 4 bytes (``wstrb`` selects the bytes). A
    word wider than the bus takes ``stride / 4`` consecutive bus addresses; each beat writes
    its lane straight into the word through byte enables (the write port has 8-bit
    granularity), so words are loaded in any order and no beat is held back. Writes take one
    cycle per beat, reads two.

    A burst is checked when its address is accepted: one that starts outside every memory's
    data (a gap, or past the last window), runs past the end of its memory's data, is WRAP
    (or reserved), or has beats wider than the bus is *refused*: all its beats are consumed
    (reads return 0), none is written, it answers SLVERR, and ``load_error`` rises with the
    first offending address. A beat that writes non-zero data into a word's padding bytes is
    refused alone the same way (the burst's response is SLVERR). A window left out of
    ``writable`` (``readable``) is treated as a gap for writes (reads). While
    ``refuse_writes`` (``refuse_reads``) is high, every write (read) beat is refused alone
    (a read beat returns 0 with SLVERR): the accelerator holds them while its sequencer owns
    the memories. Every handshake completes.

    Parameters
    ----------
    memmap : MemoryMap
        The memories and hence the windows.
    id_width : int
        Width of the AXI IDs (1..16); responses carry the request's ID.
    writable, readable : tuple of str
        The memories whose windows take writes / reads (default: all of
        :data:`hw.memmap.MEMORIES`); the others' ports stay idle.

    Attributes
    ----------
    s_axi : AXI4 slave, :func:`hw.regmap.window_address_bits` address bits, 32-bit data
        (:func:`hw.axi.axi4_signature`, flipped).
    <memory>_wr : ``WritePort.Signature(addr_width, shape=8 * word_bytes, granularity=8)``, out
        ``addr`` (in words), ``data`` (the beat's 32 bits repeated across the word), ``en``
        (one bit per byte: the beat's lane and strobes). Connects to
        ``Memory.write_port(granularity=8)``.
    <memory>_rd : ``ReadPort.Signature(addr_width, shape=8 * word_bytes)``, out
        ``addr``, ``en`` (one cycle per beat); ``data`` (in) is sampled one cycle after ``en``.
        Connects to ``Memory.read_port()``.
    load_error : Signal(1), out
        Sticky: a burst or beat was refused since reset or ``clear_load_error``.
    load_error_addr : Signal(address bits), out
        The first offending address.
    clear_load_error : Signal(1), in
        Clear ``load_error`` (a refusal in the same cycle wins).
    refuse_writes, refuse_reads : Signal(1), in
        Refuse every write / read beat while high.
    """

    def __init__(self, *, memmap=DEFAULT_MEMMAP, id_width=4, writable=MEMORIES,
                 readable=MEMORIES):
        with checked_construction(self):
            if not isinstance(memmap, MemoryMap):
                raise TypeError(f"memmap must be a hw.memmap.MemoryMap, not {memmap!r}")
            if not isinstance(id_width, int) or isinstance(id_width, bool) or not (
                    1 <= id_width <= 16):
                raise ValueError(f"id_width must be an integer in 1..16, not {id_width!r}")
            addr_bits = window_address_bits(memmap)
            for name, mems in (("writable", writable), ("readable", readable)):
                if not isinstance(mems, tuple | list) or not set(mems) <= set(MEMORIES):
                    raise ValueError(f"{name} must be a tuple of memories of {MEMORIES}, not "
                                     f"{mems!r}")
        self._memmap, self._id_width, self._addr_bits = memmap, id_width, addr_bits
        self._writable, self._readable = tuple(writable), tuple(readable)
        self._windows = windows(memmap)
        members = {"s_axi": In(axi4_signature(addr_bits, id_width)),
                   "load_error": Out(1), "load_error_addr": Out(addr_bits),
                   "clear_load_error": In(1), "refuse_writes": In(1), "refuse_reads": In(1)}
        for w in self._windows:
            abits, bits = max(1, _log2(w.depth)), 8 * w.word_bytes
            members[f"{w.memory}_wr"] = In(WritePort.Signature(addr_width=abits, shape=bits,
                                                               granularity=8))
            members[f"{w.memory}_rd"] = In(ReadPort.Signature(addr_width=abits, shape=bits))
        super().__init__(members)

    @property
    def memmap(self):
        return self._memmap

    @property
    def addr_bits(self):
        return self._addr_bits

    def _check_burst(self, m, name, addr, length, size, burst, allowed):
        """``(ok, window index, offending address)`` of a burst's address phase; windows of
        memories outside ``allowed`` count as gaps."""
        aw = self._addr_bits
        last = Signal(aw + 11, name=f"{name}_last")
        m.d.comb += last.eq(Mux(burst == Burst.FIXED, addr,
                                ((addr >> size) << size) + (length << size)))
        starts, fits = [], []
        for w in self._windows:
            on = w.memory in allowed
            starts.append(_within(addr, w.base, w.data_end) if on else Const(0))
            fits.append(_within(last, w.base, w.data_end) if on else Const(0))
        ok, index, bad = Signal(name=f"{name}_ok"), Signal(range(len(self._windows))), \
            Signal(aw, name=f"{name}_bad")
        m.d.comb += bad.eq(addr)
        for i, w in enumerate(self._windows):
            with m.If(starts[i]):
                m.d.comb += [index.eq(i), bad.eq(Mux(fits[i], addr, w.data_end))]
        legal = (size <= _log2(BUS_BYTES)) & ((burst == Burst.INCR) | (burst == Burst.FIXED))
        m.d.comb += ok.eq(legal & Cat(s & f for s, f in zip(starts, fits, strict=True)).any())
        return ok, index, bad

    @staticmethod
    def _next(addr, size, burst):
        return Mux(burst == Burst.FIXED, addr, ((addr >> size) + 1) << size)

    def _split(self, w, addr):
        """``(word, lane)`` of an address inside window ``w``."""
        offset = addr[:_log2(w.size)]
        lane = offset[2:_log2(w.stride)] if w.lanes > 1 else Const(0, 1)
        return offset[_log2(w.stride):], lane

    def elaborate(self, platform):
        m = Module()
        ax, aw = self.s_axi, self._addr_bits
        lane_bits = max(1, max(_log2(w.lanes) for w in self._windows))

        # A refusal: the first one since the last clear is kept.
        errors = []  # (condition, address), highest priority first

        # Write path: IDLE (accept AW) -> DATA (one beat per cycle) -> RESP.
        w_ok, w_err = Signal(), Signal()
        w_win = Signal(range(len(self._windows)))
        w_addr, w_size, w_burst = Signal(aw), Signal(3), Signal(2)
        w_left = Signal(8)
        aw_ok, aw_win, aw_bad = self._check_burst(m, "aw", ax.awaddr, ax.awlen, ax.awsize,
                                                  ax.awburst, self._writable)
        pad_err = Signal()
        beat = Signal()
        with m.FSM(name="write"):
            with m.State("IDLE"):
                m.d.comb += ax.awready.eq(1)
                with m.If(ax.awvalid):
                    m.d.sync += [w_ok.eq(aw_ok), w_err.eq(~aw_ok), w_win.eq(aw_win),
                                 w_addr.eq(ax.awaddr), w_size.eq(ax.awsize),
                                 w_burst.eq(ax.awburst), w_left.eq(ax.awlen), ax.bid.eq(ax.awid)]
                    m.next = "DATA"
                errors.append((ax.awvalid & ax.awready & ~aw_ok, aw_bad))
            with m.State("DATA"):
                m.d.comb += [ax.wready.eq(1), beat.eq(ax.wvalid)]
                with m.If(ax.wvalid):
                    m.d.sync += [w_addr.eq(self._next(w_addr, w_size, w_burst)),
                                 w_left.eq(w_left - 1)]
                    with m.If(pad_err):
                        m.d.sync += w_err.eq(1)
                    with m.If(w_left == 0):
                        m.next = "RESP"
                errors.append((pad_err, w_addr))
            with m.State("RESP"):
                m.d.comb += [ax.bvalid.eq(1), ax.bresp.eq(Mux(w_err, Resp.SLVERR, Resp.OKAY))]
                with m.If(ax.bready):
                    m.next = "IDLE"

        pads = []
        for i, w in enumerate(self._windows):
            wr = getattr(self, f"{w.memory}_wr")
            word, lane = self._split(w, w_addr)
            sel = beat & w_ok & ~self.refuse_writes & (w_win == i)
            # Bytes of each lane past the word: writable only with zero.
            masks = [sum(1 << j for j in range(BUS_BYTES) if k * BUS_BYTES + j >= w.word_bytes)
                     for k in range(w.lanes)]
            bad = Const(0, 1)
            if any(masks):
                pad = Const(sum(v << BUS_BYTES * k for k, v in enumerate(masks)),
                            BUS_BYTES * w.lanes).word_select(lane, BUS_BYTES)
                bad = Cat(pad[j] & ax.wstrb[j] & (ax.wdata[8 * j:8 * j + 8] != 0)
                          for j in range(BUS_BYTES)).any()
            pads.append(sel & bad)
            hit = Signal(w.lanes, name=f"{w.memory}_lane_hit")
            m.d.comb += hit.eq(Mux(sel & ~bad, 1 << lane, 0))
            copies = -(-w.word_bytes // BUS_BYTES)
            m.d.comb += [
                wr.addr.eq(word),
                wr.data.eq(ax.wdata.replicate(copies)),
                wr.en.eq(Cat(hit[b // BUS_BYTES] & ax.wstrb[b % BUS_BYTES]
                             for b in range(w.word_bytes))),
            ]
        m.d.comb += pad_err.eq(Cat(pads).any() | (beat & w_ok & self.refuse_writes))

        # Read path: IDLE (accept AR) -> ISSUE -> CAPTURE (read data registered) -> WAIT
        # (R valid); a beat taken in WAIT issues the next read at once.
        r_ok = Signal()
        r_win = Signal(range(len(self._windows)))
        r_addr, r_size, r_burst = Signal(aw), Signal(3), Signal(2)
        r_left = Signal(8)
        r_lane = Signal(lane_bits)
        ar_ok, ar_win, ar_bad = self._check_burst(m, "ar", ax.araddr, ax.arlen, ax.arsize,
                                                  ax.arburst, self._readable)
        issue = Signal()
        beat_ok = Signal()  # the beat in flight was read (not refused)
        lanes = []
        for i, w in enumerate(self._windows):
            rd = getattr(self, f"{w.memory}_rd")
            word, lane = self._split(w, r_addr)
            m.d.comb += [rd.addr.eq(word),
                         rd.en.eq(issue & r_ok & ~self.refuse_reads & (r_win == i))]
            padded = Cat(rd.data, Const(0, 8 * w.stride - len(rd.data)))
            lanes.append(padded.word_select(r_lane[:max(1, _log2(w.lanes))], 8 * BUS_BYTES)
                         if w.lanes > 1 else padded)
        errors.append((issue & r_ok & self.refuse_reads, r_addr))
        with m.If(issue):
            m.d.sync += [beat_ok.eq(r_ok & ~self.refuse_reads),
                         r_lane.eq(Array(self._split(w, r_addr)[1] for w in self._windows)[r_win]),
                         r_addr.eq(self._next(r_addr, r_size, r_burst))]
        with m.FSM(name="read"):
            with m.State("IDLE"):
                m.d.comb += ax.arready.eq(1)
                with m.If(ax.arvalid):
                    m.d.sync += [r_ok.eq(ar_ok), r_win.eq(ar_win), r_addr.eq(ax.araddr),
                                 r_size.eq(ax.arsize), r_burst.eq(ax.arburst),
                                 r_left.eq(ax.arlen), ax.rid.eq(ax.arid)]
                    m.next = "ISSUE"
                errors.append((ax.arvalid & ax.arready & ~ar_ok, ar_bad))
            with m.State("ISSUE"):
                m.d.comb += issue.eq(1)
                m.next = "CAPTURE"
            with m.State("CAPTURE"):
                m.d.sync += ax.rdata.eq(Mux(beat_ok, Array(lanes)[r_win], 0))
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [ax.rvalid.eq(1), ax.rlast.eq(r_left == 0),
                             ax.rresp.eq(Mux(beat_ok, Resp.OKAY, Resp.SLVERR))]
                with m.If(ax.rready):
                    m.d.sync += r_left.eq(r_left - 1)
                    with m.If(r_left == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += issue.eq(1)
                        m.next = "CAPTURE"

        with m.If(self.clear_load_error):
            m.d.sync += self.load_error.eq(0)
        first = Signal(aw)
        m.d.comb += first.eq(errors[-1][1])
        for cond, addr in reversed(errors[:-1]):
            with m.If(cond):
                m.d.comb += first.eq(addr)
        with m.If(Cat(c for c, _ in errors).any()):
            m.d.sync += self.load_error.eq(1)
            with m.If(~self.load_error | self.clear_load_error):
                m.d.sync += self.load_error_addr.eq(first)
        return m


def _build(id_width, **params):
    return AxiMem(memmap=MemoryMap(**params), id_width=id_width)


register_block(
    "axi_mem", "AXI4 slave loading and reading back every memory (hw.regmap.windows)",
    build=_build,
    params={"id_width": 4, **{f: getattr(MemoryMap(), f) for f in memmap_fields()}},
)
