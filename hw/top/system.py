"""The accelerator behind its buses ([C4], [H9]): :class:`~hw.csr.Csr` + :class:`~hw.axi_mem.AxiMem`
+ :class:`~hw.top.top.Top`.

The host sees two slaves and an interrupt only: the AXI4-Lite registers of
:class:`hw.regmap.RegisterMap` and the AXI4 memory windows of :func:`hw.regmap.windows`.

* **Loads.** act, aux, desc and prog take the bus's 32-bit lanes straight through byte enables
  (:mod:`hw.top.memories`). The weight buffers (wmask, wval, wbias) live in the matrix engine,
  which takes whole words (the mask buffer stores what its scanner derives from each word), and
  the ReRAM store takes whole words too (``Top.host_reram``), so a word assembler per such
  memory (:func:`_assemble`, one helper for all four) holds the bytes of one word and writes it
  when all its bytes have arrived, in any order, over any bursts. A beat into another word of
  that memory while one is incomplete drops the incomplete word and is a load error
  (``LOAD_ERROR_ADDR``: the dropped word's first byte), as is a start while a word is
  incomplete. Reads are served from act only (logits and the per-command read-back); the other
  windows, the ReRAM store's among them (read-only to the host: only the datapath reads it),
  answer SLVERR. While the sequencer runs, every bus beat into the memories is refused; while
  it is paused (single step), act reads are served.
* **Embedding tables.** ``VOCAB_ROWS``, ``SEG_ROWS``, ``POS_ROWS`` drive the top's
  ``vocab_rows``, ``seg_rows``, ``pos_rows`` (the rows of the tables in the ReRAM section; the
  embedding unit's bounds: EMBED stops with ``UNIT_ERROR`` on a token row or segment beyond
  them, or more tokens than position rows). They reset to 0, so an EMBED before the host sets
  them stops with ``UNIT_ERROR`` rather than reading an unchecked row.
* **Start.** ``CTRL.start`` runs the program from ``PROG_BASE``, unless a load was refused
  since the last ``CTRL.soft_reset`` (``STATUS.load_error``): then the program does not start
  and ``ERROR`` is ``LOAD_OUT_OF_RANGE``. ``CTRL.step_en`` pauses the sequencer after every
  command (``STATUS.paused``, ``IRQ_STATUS.step``); ``STEP.step`` / ``STEP.resume`` run on.
* **Stop.** ``CTRL.soft_reset`` and the watchdog (``WATCHDOG`` cycles of running, 0: off)
  reset the top's datapath and sequencer (not the memories' contents, nor the registers); the
  watchdog reports ``WATCHDOG`` at the command it stopped.
* **Counters.** ``CYCLES``, ``MAC_CYCLES``, ``SKIPPED``, ``STALLS`` and the act, aux, desc and
  prog reads are the top's totals of the last program (paused cycles excluded). ``*_WRITES``
  count the datapath's write cycles (act) plus the host's word writes (a bus beat into a
  byte-granular memory, an assembled word into a weight buffer); every counter restarts at
  ``CTRL.start``. ``RERAM_READS`` is the embedding unit's word reads of the store (the top's
  total). The weight buffers' reads are not counted yet (0): the engine keeps them to itself.
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.axi import axi4_signature, axi_lite_signature
from hw.axi_mem import AxiMem
from hw.csr import Csr
from hw.layouts import DEFAULT_AF, AFFormat
from hw.memmap import MemoryMap
from hw.registry import register_block
from hw.regmap import CSR_ADDR_BITS, ErrorCode, RegisterMap, windows
from hw.top.top import _MEMMAP_KEYS, _TINY, Top

__all__ = ["Accelerator", "BYTE_MEMORIES", "WORD_MEMORIES"]

BYTE_MEMORIES = ("desc", "act", "aux", "prog")   # host writes go in through byte enables
# Whole words, through a word assembler each: the engine's buffers and the ReRAM store.
WORD_MEMORIES = ("wmask", "wval", "wbias", "reram")
# Memories with a *_WRITES counter (the datapath never writes the ReRAM store).
_WRITE_COUNTED = tuple(m for m in BYTE_MEMORIES + WORD_MEMORIES if m != "reram")
_COUNTER_BITS = 64


class Accelerator(wiring.Component):
    """The EdgeBERT accelerator with its host buses.

    Parameters
    ----------
    memmap : MemoryMap
        Memory sizes (as :class:`~hw.top.top.Top`; the AdaptivFloat codes must be bytes).
    fmt : AFFormat
    id_width : int
        AXI4 ID width.
    top_kwargs
        The rest of :class:`~hw.top.top.Top`'s parameters (``max_k``, ``max_len``, ...).

    Attributes
    ----------
    s_axil : AXI4-Lite slave (registers, :data:`hw.regmap.CSR_ADDR_BITS` address bits).
    s_axi : AXI4 slave (memory windows, :func:`hw.regmap.window_address_bits` address bits).
    irq : Signal(1), out
        ``CTRL.irq_en`` and any ``IRQ_STATUS`` bit.
    vcode, fcode : Signal(4), out
        The DVFS decision's voltage and frequency codes.
    """

    def __init__(self, *, memmap: MemoryMap = MemoryMap(n=4), fmt: AFFormat = DEFAULT_AF,
                 id_width=4, **top_kwargs):
        if not isinstance(fmt, AFFormat) or fmt.n_bits != 8:
            raise ValueError(f"the accelerator's memory windows hold byte codes: fmt must be an "
                             f"AFFormat with n_bits = 8, not {fmt!r}")
        self._top = Top(memmap=memmap, fmt=fmt, **top_kwargs)
        self._regmap = RegisterMap(memmap=memmap, fmt=fmt)
        self._csr = Csr(regmap=self._regmap)
        self._axi = AxiMem(memmap=memmap, id_width=id_width,
                           writable=BYTE_MEMORIES + WORD_MEMORIES, readable=("act",))
        self._mm, self._fmt = memmap, fmt
        super().__init__({
            "s_axil": In(axi_lite_signature(CSR_ADDR_BITS)),
            "s_axi": In(axi4_signature(self._axi.addr_bits, id_width)),
            "irq": Out(1), "vcode": Out(4), "fcode": Out(4),
        })

    @property
    def memmap(self):
        return self._mm

    @property
    def regmap(self):
        return self._regmap

    @property
    def top(self):
        return self._top

    def elaborate(self, platform):
        m = Module()
        mm = self._mm
        soft = Signal()  # resets the top (soft reset, watchdog)
        m.submodules.csr = csr = self._csr
        m.submodules.axi = axi = self._axi
        m.submodules.top = ResetInserter({"sync": soft})(self._top)
        top = self._top
        wiring.connect(m, wiring.flipped(self.s_axil), csr.s_axil)
        wiring.connect(m, wiring.flipped(self.s_axi), axi.s_axi)
        m.d.comb += [self.irq.eq(csr.irq), self.vcode.eq(top.vcode), self.fcode.eq(top.fcode)]
        running = top.busy & ~top.paused
        m.d.comb += [axi.refuse_writes.eq(top.busy), axi.refuse_reads.eq(running)]

        # ---- loads ----------------------------------------------------------------------------
        wins = {w.memory: w for w in windows(mm)}
        host_writes = {}
        for name in BYTE_MEMORIES:
            wr, port = getattr(axi, f"{name}_wr"), getattr(top, f"host_{name}")
            m.d.comb += [port.valid.eq(wr.en.any()), port.payload.addr.eq(wr.addr),
                         port.payload.data.eq(wr.data), port.payload.en.eq(wr.en)]
            host_writes[name] = port.valid & port.ready
        dropped, dropped_addr = [], []
        for name in WORD_MEMORIES:
            valid, drop, addr, pending = _assemble(m, name, getattr(axi, f"{name}_wr"),
                                                   getattr(top, f"host_{name}"), wins[name])
            host_writes[name] = valid
            dropped.append(drop)
            dropped_addr.append(addr)
            host_writes[f"{name}_pending"] = pending
        # act reads (the only readable window) through the top's host read port.
        rd = axi.act_rd
        m.d.comb += [top.host_rd_en.eq(rd.en), top.host_rd_addr.eq(rd.addr),
                     rd.data.eq(top.host_rd_data)]

        # Load errors: the slave's refusals and the assemblers' dropped words; the first kept.
        load_err = Signal()
        load_addr = Signal(32)
        any_drop = Cat(dropped).any()
        drop_addr = Signal(32)
        for d, a in reversed(list(zip(dropped, dropped_addr, strict=True))):
            with m.If(d):
                m.d.comb += drop_addr.eq(a)
        with m.If(any_drop & ~load_err):
            m.d.sync += [load_err.eq(1), load_addr.eq(drop_addr)]
        with m.If(soft):
            m.d.sync += load_err.eq(0)
        pending = Cat(host_writes[f"{w}_pending"] for w in WORD_MEMORIES).any()
        refused = Signal()
        m.d.comb += [axi.clear_load_error.eq(csr.ctrl.soft_reset),
                     refused.eq(axi.load_error | load_err)]

        # ---- start, step, stop ----------------------------------------------------------------
        prog_base = csr.prog_base.pc
        start_ok = csr.ctrl.start & ~top.busy & ~refused & ~pending
        start_bad = csr.ctrl.start & ~top.busy & (refused | pending)
        m.d.comb += [top.start.eq(start_ok), top.start_pc.eq(prog_base),
                     top.step_en.eq(csr.ctrl.step_en),
                     top.step.eq(csr.step.step | csr.step.resume),
                     top.act_mask_base.eq(csr.act_mask_base.word),
                     top.act_value_base.eq(csr.act_value_base.word),
                     top.act_bias_base.eq(csr.act_bias_base.word),
                     top.vocab_rows.eq(csr.vocab_rows.rows), top.seg_rows.eq(csr.seg_rows.rows),
                     top.pos_rows.eq(csr.pos_rows.rows)]
        code = Signal(8)
        err_pc = Signal(16)
        done = Signal()  # STATUS.done: sticky until the next start
        stop_pulse = Signal()  # the accelerator stopped a program itself (load, watchdog)
        wd = Signal(32)
        limit = csr.watchdog.cycles
        fire = running & (limit != 0) & (wd == limit - 1)
        with m.If(start_ok):
            m.d.sync += [code.eq(0), err_pc.eq(0), done.eq(0), wd.eq(0)]
        with m.Elif(running):
            m.d.sync += wd.eq(wd + 1)
        with m.If(start_bad):
            m.d.sync += [code.eq(ErrorCode.LOAD_OUT_OF_RANGE), err_pc.eq(prog_base),
                         done.eq(1)]
            m.d.comb += stop_pulse.eq(1)
        with m.If(top.done):
            m.d.sync += [code.eq(top.error), err_pc.eq(top.error_pc), done.eq(1)]
        with m.If(fire):
            m.d.sync += [code.eq(ErrorCode.WATCHDOG), err_pc.eq(top.pc), done.eq(1)]
            m.d.comb += stop_pulse.eq(1)
        m.d.comb += soft.eq(csr.ctrl.soft_reset | fire)

        # ---- status and interrupts ---------------------------------------------------------
        was_paused, was_refused = Signal(), Signal()
        m.d.sync += [was_paused.eq(top.paused), was_refused.eq(refused)]
        m.d.comb += [
            csr.status.busy.eq(top.busy), csr.status.done.eq(done),
            csr.status.error.eq(done & (code != 0)), csr.status.exit.eq(done & top.exit),
            csr.status.paused.eq(top.paused), csr.status.load_error.eq(refused),
            csr.irq_status_set.done.eq(top.done | stop_pulse),
            csr.irq_status_set.error.eq((top.done & (top.error != 0)) | stop_pulse),
            csr.irq_status_set.exit.eq(top.done & top.exit),
            csr.irq_status_set.step.eq(top.paused & ~was_paused),
            csr.irq_status_set.load_error.eq(refused & ~was_refused),
            csr.error.code.eq(code), csr.error_pc.pc.eq(err_pc), csr.pc.pc.eq(top.pc),
            csr.exit_layer.layer.eq(top.exit_layer),
            csr.dvfs.vcode.eq(top.vcode), csr.dvfs.fcode.eq(top.fcode),
            csr.dvfs_bin.bin.eq(top.dvfs_bin), csr.dvfs_bin.layer.eq(top.dvfs_layer),
            csr.dvfs_bin.valid.eq(top.dvfs_valid), csr.entropy.h.eq(top.entropy),
            csr.entropy.flag.eq(top.entropy_exit),
            csr.load_error_addr.addr.eq(Mux(axi.load_error, axi.load_error_addr, load_addr)),
        ]

        # ---- counters -----------------------------------------------------------------------
        for name, src in (("cycles", top.total_cycles), ("mac_cycles", top.total_mac),
                          ("skipped", top.total_skipped), ("stalls", top.total_stall),
                          ("cmd_cycles", top.cmd_cycles), ("act_reads", top.total_act_reads),
                          ("aux_reads", top.total_aux_reads),
                          ("desc_reads", top.total_desc_reads),
                          ("prog_reads", top.total_prog_reads),
                          ("reram_reads", top.total_reram_reads)):
            m.d.comb += getattr(csr, name).eq(src)
        for name in ("wmask_reads", "wval_reads", "wbias_reads"):
            m.d.comb += getattr(csr, name).eq(0)
        for name in _WRITE_COUNTED:
            count = Signal(_COUNTER_BITS, name=f"host_{name}_writes")
            with m.If(start_ok):
                m.d.sync += count.eq(0)
            with m.Elif(host_writes[name]):
                m.d.sync += count.eq(count + 1)
            extra = top.total_act_writes if name == "act" else Const(0)
            m.d.comb += getattr(csr, f"{name}_writes").eq(count + extra)
        return m


def _assemble(m, name, wr, port, window):
    """A word assembler between ``wr`` (byte-enabled write port of :class:`AxiMem`) and a
    whole-word stream ``port`` (payload ``{addr, data}``: the engine's weight streams, the top's
    ``host_reram``). Returns ``(word written, word dropped, AXI address of
    the dropped word, a word is incomplete)``."""
    wb = window.word_bytes
    full = (1 << wb) - 1
    have = Signal(wb, name=f"{name}_have")
    addr = Signal.like(wr.addr, name=f"{name}_addr")
    buf = Signal(8 * wb, name=f"{name}_buf")
    beat = wr.en.any()
    same = (have != 0) & (wr.addr == addr)
    base = Mux(same, buf, 0)
    mask = Cat(b.replicate(8) for b in wr.en)
    merged = (base & ~mask) | (wr.data & mask)
    got = Mux(same, have, 0) | wr.en
    complete = beat & (got == full)
    drop = beat & (have != 0) & (wr.addr != addr)
    m.d.comb += [port.valid.eq(complete), port.payload.addr.eq(wr.addr),
                 port.payload.data.eq(merged)]
    with m.If(complete):
        m.d.sync += have.eq(0)
    with m.Elif(beat):
        m.d.sync += [have.eq(got), addr.eq(wr.addr), buf.eq(merged)]
    dropped_at = Signal(32, name=f"{name}_dropped_at")
    m.d.comb += dropped_at.eq(window.base + addr * window.stride)
    return port.valid & port.ready, drop, dropped_at, have != 0


def build_accelerator(**p):
    """The accelerator of the flat parameters ``edgebert verilog -b accelerator -p`` sets."""
    mm = MemoryMap(**{k: p[k] for k in _MEMMAP_KEYS})
    rest = {k: v for k, v in p.items() if k not in _MEMMAP_KEYS}
    return Accelerator(memmap=mm, **rest)


register_block(
    "accelerator", "the accelerator behind its buses: AXI4-Lite registers, AXI4 memory "
                   "windows, IRQ, DVFS codes (Csr + AxiMem + Top)",
    build=build_accelerator, params={**_TINY, "id_width": 4})
