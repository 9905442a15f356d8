"""The accelerator top: memories, units and the command sequencer ([C4], [H9]).

The sequencer fetches a command word (``prog``), decodes it (:mod:`hw.top.decode`, generated
from :data:`hw.isa.LAYOUTS`), reads the matrix descriptor, checks the command
(:class:`~hw.regmap.ErrorCode`) and runs it on the units:

* ``MATMUL``: copy X from act into the engine's X banks (one bank word per cycle), run the
  engine on the descriptor's masks, values and bias (its base registers), copy Y back into act
  (one bank word per cycle; ``transpose`` writes each Y row as a column of the destination
  tile, one lane per bank);
* ``MATMUL_ACT``: as ``MATMUL``, with ``w`` copied from act into the value buffer's scratch
  region as dense vectors (``act_value_base``), the all-ones masks at ``act_mask_base`` and
  the zero bias at ``act_bias_base`` (:func:`sw.program.layout.lay_out` reserves them);
* ``SOFTMAX``, ``LAYERNORM``, ``ADD``, ``ENTROPY``: stream rows from act (row ``r`` of a matrix
  is bank ``r % n``, words ``base + (r // n) * stride + ct``) with their aux operands into the
  unit, one beat per cycle, and write its output beats back to act; ENTROPY records H of
  ``layer`` and, with ``stop`` and the exit flag, ends the program;
* ``DVFS``: load the controller's table from the aux block, feed it the recorded H of
  ``layer``; ``END``: stop.

* ``EMBED``: the embedding unit (:class:`hw.embed_unit.EmbedUnit`) reads the token entries
  from aux (``tok_addr``), the rows of the :data:`hw.isa.EMBED_DESC` tables from the ReRAM store
  (:class:`hw.reram.ReramStore`) and writes its output beats into act as they come (beat of
  row ``r``, column tile ``c``: bank ``r % n`` of word ``dst_base + (r // n) * dst_stride + c``);
  the unit starts in the check cycle, so the command costs ``FETCH_CYCLES`` plus the unit's
  :func:`hw.timing.embed_cycles`.

After every command the top pulses ``cmd_done`` with ``cmd_pc`` and the command's counters;
testbenches compare the command's destination then (nothing of the next command has run).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dvfs import DvfsController
from hw.embed_unit import EmbedUnit
from hw.entropy import EntropyExit
from hw.isa import Op
from hw.layernorm import LayerNorm
from hw.layouts import DEFAULT_AF, AFFormat
from hw.matmul import COUNTER_BITS, MatmulConfig, MatrixEngine
from hw.matmul.engine import payload_layouts
from hw.memformats import MASK_BYTES, TOKEN_ROW_BITS
from hw.memmap import MemoryMap
from hw.registry import register_block
from hw.regmap import ERROR_BITS, ErrorCode
from hw.reram import ReramStore
from hw.residual import ResidualAdd
from hw.sfu_tables import EPS_BITS, H_BITS, SPAN_MASK_FRAC
from hw.softmax import Softmax
from hw.top.checks import build_checks
from hw.top.decode import desc_fields, embed_desc_fields, fields
from hw.top.memories import build_memories, host_layouts, make_memories

__all__ = ["Top", "build_top"]

_MASK_BITS = SPAN_MASK_FRAC + 1
_SFU_OPS = (Op.SOFTMAX, Op.LAYERNORM, Op.ADD, Op.ENTROPY)
_TOTALS = ("cycles", "mac", "skipped", "stall", "act_reads", "act_writes", "aux_reads",
           "reram_reads", "prog_reads", "desc_reads", "commands")


class Top(wiring.Component):
    """The accelerator: memories of ``memmap``, the matrix engine, the special-function units,
    the DVFS controller and the command sequencer.

    Parameters
    ----------
    memmap : MemoryMap
        Memory sizes (n >= 4: a span-mask beat is two aux words).
    fmt : AFFormat
    max_k : int
        Largest matmul inner dimension (accumulator sizing).
    max_len : int
        Longest SOFTMAX / LAYERNORM row (elements).
    max_classes : int
        Most ENTROPY classes.
    dvfs_bins : int
        DVFS table entries (a program's ``bins`` must not exceed it, nor the aux word bytes).
    max_layers : int
        Entries of the entropy record.
    init : dict or None
        Initial memory words (:func:`hw.top.memories.word_images`; ``"reram"``: the store's
        bytes).
    reram_external, reram_init_file : bool, str
        The ReRAM store's words in the Verilog module :data:`hw.reram.EXTERNAL_MODULE`, loaded
        by ``$readmemh`` from ``reram_init_file`` (:class:`hw.reram.ReramStore` ``external``):
        fast Verilog generation for the default 2 MiB store; Verilog only.

    The embedding unit accepts rows of up to ``max_len // n`` column tiles (the embedding is
    LayerNorm's input, which ``max_len`` bounds anyway).

    Attributes
    ----------
    start : in, starts the program at ``start_pc`` (while idle).
    step_en, step : in, single-step: with ``step_en`` the sequencer pauses after every command
        that does not end the program (``paused``), until ``step`` pulses.
    paused : out, paused after a command (``busy`` stays high; the host may read act).
    pc : out, the command executing, or the next one.
    done : out, one-cycle pulse when the program stops (END, an exit taken, an error).
    busy : out.
    error, error_pc : out, :class:`~hw.regmap.ErrorCode` and the command it stopped at.
    exit, exit_layer : out, an ENTROPY with ``stop`` took the exit; the exit layer (the last
        ENTROPY's layer when the program ends at END).
    entropy, entropy_exit : out, the last ENTROPY's H and flag.
    dvfs_valid, dvfs_bin, dvfs_layer, vcode, fcode : out, the last DVFS decision.
    cmd_done, cmd_pc, cmd_cycles, cmd_mac, cmd_skipped, cmd_stall : out, pulse after each
        command with its index and counters (cycles from its fetch to its last cycle).
    cmd_act_reads, cmd_act_writes, cmd_aux_reads, cmd_reram_reads : out, the command's memory
        accesses: act read-port addresses (a tile word; ADD's two ports count two), act write
        cycles, aux read-port addresses, ReRAM word reads
        (:func:`sw.program.cycles.port_accesses`).
    total_* : out, the same summed over the program, the program and descriptor reads, the
        commands.
    act_mask_base, act_value_base, act_bias_base : in, the MATMUL_ACT regions of the weight
        memories (``lay.symbols["wmask"]["act.ones"]`` ...).
    vocab_rows, seg_rows, pos_rows : in, the rows of the token, segment and position tables in
        the ReRAM store (``lay.config["vocab_size"]``, ``["type_vocab"]``, ``["max_len"]``):
        EMBED stops with ``UNIT_ERROR`` on a token row or segment beyond them, or more tokens
        than position rows.
    host_act, host_aux, host_desc, host_prog : in, host write streams {addr, data, en}
        (``en``: one bit per byte of the word, per code of act).
    host_reram : in, host write stream {addr, data} (a ReRAM word, byte 0 in the low bits).
    host_wmask, host_wval, host_wbias : in, the engine's m_w / v_w / b_w streams.
    host_rd_en, host_rd_addr, host_rd_data : the host's act reads while idle or paused (a tile word,
        bank i in bits ``i * n * N``, the cycle after the address).
    """

    def __init__(self, *, memmap: MemoryMap = MemoryMap(n=4), fmt: AFFormat = DEFAULT_AF,
                 max_k=1024, max_len=256, max_classes=64, dvfs_bins=8, max_layers=16,
                 init=None, reram_external=False, reram_init_file=""):
        if not isinstance(memmap, MemoryMap):
            raise TypeError(f"memmap must be a MemoryMap, not {memmap!r}")
        if memmap.n < 4:
            raise ValueError(f"the top needs n >= 4 (a span-mask beat in two aux words), not "
                             f"{memmap.n}")
        self._mm, self._fmt = memmap, fmt
        self._mems = make_memories(memmap, fmt.n_bits, init)
        self._max_len, self._max_classes = max_len, max_classes
        self._bins, self._layers = dvfs_bins, max_layers
        n = memmap.n
        self._reram = ReramStore(memmap=memmap, init=(init or {}).get("reram"),
                                 external=reram_external, init_file=reram_init_file)
        self._embed = EmbedUnit(fmt=fmt, n=n, memmap=memmap, max_cols=max(1, max_len // n))
        self._cfg = MatmulConfig(n=n, fmt=fmt, max_k=max_k, x_depth=memmap.act_words,
                                 y_depth=memmap.act_words, m_depth=memmap.wmask_words,
                                 v_depth=memmap.wval_words)
        if self._cfg.b_depth < memmap.wbias_words:
            raise ValueError(f"the engine's bias buffer ({self._cfg.b_depth} words) is smaller "
                             f"than wbias ({memmap.wbias_words})")
        host = host_layouts(memmap, fmt.n_bits)
        eng = payload_layouts(self._cfg)
        cnt = COUNTER_BITS
        super().__init__({
            "start": In(1), "start_pc": In(range(memmap.prog_words)),
            "step_en": In(1), "step": In(1), "paused": Out(1),
            "pc": Out(range(memmap.prog_words + 1)),
            "done": Out(1), "busy": Out(1),
            "error": Out(ERROR_BITS), "error_pc": Out(range(memmap.prog_words + 1)),
            "exit": Out(1), "exit_layer": Out(8),
            "entropy": Out(H_BITS), "entropy_exit": Out(1),
            "dvfs_valid": Out(1), "dvfs_bin": Out(8), "dvfs_layer": Out(8),
            "vcode": Out(4), "fcode": Out(4),
            "cmd_done": Out(1), "cmd_pc": Out(range(memmap.prog_words + 1)),
            **{f"cmd_{c}": Out(cnt) for c in ("cycles", "mac", "skipped", "stall",
                                              "act_reads", "act_writes", "aux_reads",
                                              "reram_reads")},
            **{f"total_{c}": Out(cnt) for c in _TOTALS},
            "act_mask_base": In(range(memmap.wmask_words)),
            "act_value_base": In(range(memmap.wval_words)),
            "act_bias_base": In(range(self._cfg.b_depth)),
            "vocab_rows": In(TOKEN_ROW_BITS + 1), "seg_rows": In(9), "pos_rows": In(13),
            **{f"host_{m}": In(stream.Signature(lay)) for m, lay in host.items()},
            "host_wmask": In(stream.Signature(eng["m_w"])),
            "host_wval": In(stream.Signature(eng["v_w"])),
            "host_wbias": In(stream.Signature(eng["b_w"])),
            "host_rd_en": In(1), "host_rd_addr": In(range(memmap.act_words)),
            "host_rd_data": Out(n * n * fmt.n_bits),
        })

    @property
    def memmap(self):
        return self._mm

    @property
    def engine_config(self):
        return self._cfg

    @property
    def memories(self):
        """``{"act": [bank Memory ...], "aux", "desc", "prog": Memory}`` (testbenches read
        them with ``ctx.get(mem.data[i])``)."""
        return self._mems

    def elaborate(self, platform):
        m = Module()
        mm, fmt, n = self._mm, self._fmt, self._mm.n
        nb, ln = fmt.n_bits, n.bit_length() - 1
        eng = m.submodules.engine = MatrixEngine(config=self._cfg)
        sm = m.submodules.softmax = Softmax(fmt=fmt, n=n, max_len=self._max_len)
        lnorm = m.submodules.layernorm = LayerNorm(fmt=fmt, n=n, max_len=self._max_len)
        add = m.submodules.add = ResidualAdd(fmt=fmt, n=n)
        ent = m.submodules.entropy = EntropyExit(fmt=fmt, n=n, max_classes=self._max_classes)
        emb = m.submodules.embed = self._embed
        store = m.submodules.reram = self._reram
        wiring.connect(m, emb.reram, store.rd)
        dv = m.submodules.dvfs = DvfsController(bins=self._bins)
        busy, paused = Signal(), Signal()
        running = busy & ~paused
        m.d.comb += [self.busy.eq(busy), self.paused.eq(paused)]
        mem = build_memories(m, mm, nb, {k: getattr(self, f"host_{k}") for k in
                                         ("act", "aux", "desc", "prog")}, busy, self._mems)
        hr = self.host_reram
        m.d.comb += [hr.ready.eq(~busy), store.w_en.eq(hr.valid & ~busy),
                     store.w_addr.eq(hr.payload.addr), store.w_data.eq(hr.payload.data)]
        # The host writes the weight buffers through the engine's streams.
        for port, src in ((eng.m_w, self.host_wmask), (eng.b_w, self.host_wbias)):
            m.d.comb += [port.valid.eq(src.valid & ~busy), port.payload.eq(src.payload),
                         src.ready.eq(port.ready & ~busy)]
        seq_v = Signal()
        m.d.comb += [eng.v_w.valid.eq(self.host_wval.valid & ~busy),
                     eng.v_w.payload.eq(self.host_wval.payload),
                     self.host_wval.ready.eq(eng.v_w.ready & ~busy),
                     eng.y_rsp.ready.eq(1)]

        # Read ports are enabled (and hold their data) only where the sequencer says so.
        for p in (*mem.act_a, *mem.act_b, mem.aux_a, mem.aux_b, mem.desc_rd, mem.prog_rd):
            m.d.comb += p.en.eq(0)
        # The host reads act tile words while the top is idle or paused (data a cycle after the
        # address).
        with m.If(~running):
            for p in mem.act_a:
                m.d.comb += [p.addr.eq(self.host_rd_addr), p.en.eq(self.host_rd_en)]
        m.d.comb += self.host_rd_data.eq(Cat(p.data for p in mem.act_a))

        # ---- command register and decoding --------------------------------------------------
        pc = Signal(range(mm.prog_words + 1))
        m.d.comb += self.pc.eq(pc)
        cmd = Signal(128)
        op = Signal(4)
        m.d.comb += op.eq(cmd[:4])
        F = {o: fields(cmd, o) for o in Op}
        D = desc_fields(mem.desc_rd.data)
        is_op = {o: op == o for o in Op}

        code = build_checks(m, cmd=cmd, op=op, F=F, D=D, desc_word=mem.desc_rd.data,
                            memmap=mm, fmt=fmt, limits={
                                "max_len": self._max_len, "max_classes": self._max_classes,
                                "dvfs_bins": self._bins, "max_layers": self._layers})
        ent_beats = (F[Op.ENTROPY]["classes"] + n - 1) >> ln
        wb = mm.word_bytes("aux")

        # ---- status and counters ------------------------------------------------------------
        cyc = Signal(COUNTER_BITS)
        c_mac, c_skip, c_stall = (Signal(COUNTER_BITS, name=nm) for nm in
                                  ("c_mac", "c_skip", "c_stall"))
        m.d.sync += [self.done.eq(0), self.cmd_done.eq(0)]
        with m.If(running):
            m.d.sync += [cyc.eq(cyc + 1), self.total_cycles.eq(self.total_cycles + 1)]
        act_r = Signal(2)
        act_wr = Signal()
        aux_r = Signal(2)
        rr = Signal()
        c_ar, c_aw, c_xr, c_rr = (Signal(COUNTER_BITS, name=nm) for nm in ("c_ar", "c_aw", "c_xr",
                                                                           "c_rr"))
        m.d.comb += rr.eq(emb.reram.req.valid & emb.reram.req.ready)
        m.d.sync += [self.total_reram_reads.eq(self.total_reram_reads + rr), c_rr.eq(c_rr + rr),
                     self.total_act_reads.eq(self.total_act_reads + act_r),
                     self.total_act_writes.eq(self.total_act_writes + act_wr),
                     self.total_aux_reads.eq(self.total_aux_reads + aux_r),
                     self.total_prog_reads.eq(self.total_prog_reads + mem.prog_rd.en),
                     self.total_desc_reads.eq(self.total_desc_reads + mem.desc_rd.en),
                     c_ar.eq(c_ar + act_r), c_aw.eq(c_aw + act_wr), c_xr.eq(c_xr + aux_r)]
        m.d.comb += [act_r.eq(Mux(running, mem.act_a[0].en + mem.act_b[0].en, 0)),
                     act_wr.eq(Cat(wp.en for wp in mem.act_w).any() & busy),
                     aux_r.eq(mem.aux_a.en + mem.aux_b.en)]
        ent_rec = Array(Signal(H_BITS, name=f"ent{i}") for i in range(self._layers))
        last_layer = Signal(8)

        def finish(stop=False):
            m.d.sync += [self.cmd_done.eq(1), self.cmd_pc.eq(pc), self.cmd_cycles.eq(cyc + 1),
                         self.cmd_mac.eq(c_mac), self.cmd_skipped.eq(c_skip),
                         self.cmd_stall.eq(c_stall), pc.eq(pc + 1),
                         self.cmd_act_reads.eq(c_ar + act_r),
                         self.cmd_act_writes.eq(c_aw + act_wr),
                         self.cmd_aux_reads.eq(c_xr + aux_r),
                         self.cmd_reram_reads.eq(c_rr + rr),
                         self.total_commands.eq(self.total_commands + 1),
                         self.total_mac.eq(self.total_mac + c_mac),
                         self.total_skipped.eq(self.total_skipped + c_skip),
                         self.total_stall.eq(self.total_stall + c_stall)]
            if stop:
                m.d.sync += self.done.eq(1)
                m.next = "IDLE"
            else:
                with m.If(self.step_en):
                    m.next = "PAUSED"
                with m.Else():
                    m.next = "FETCH"

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
        mrows, mk, mcols = Signal(8), Signal(8), Signal(8)
        mnnz = Signal(32)
        mb, vb, bb = (Signal(range(d)) for d in (mm.wmask_words, mm.wval_words,
                                                  self._cfg.b_depth))
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
        yd_valid, yd_j, yd_addr = Signal(), Signal(range(n)), Signal(18)

        # ---- SFU feeder -----------------------------------------------------------------------
        fe, fct, oe, oct_ = (Signal(16, name=nm) for nm in ("fe", "fct", "oe", "oct"))
        frow_a, frow_b, orow = Signal(18), Signal(18), Signal(18)
        f_rows, f_beats = Signal(16), Signal(16)
        f_done, rd_valid = Signal(), Signal()
        bank_q, ct_q = Signal(range(n)), Signal(16)
        scal = Signal(32)
        unit_ready, unit_error = Signal(), Signal()
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

        # ---- embedding unit: the command's fields and the EMBED descriptor --------------------
        efd = F[Op.EMBED]
        ed = embed_desc_fields(mem.desc_rd.data)
        m.d.comb += [
            *(getattr(emb, k).eq(efd[k]) for k in ("rows", "cols", "tokens", "tok_addr",
                                                   "bias_word", "bias_pos", "bias_seg",
                                                   "bias_out")),
            *(getattr(emb, k).eq(v) for k, v in ed.items()),
            emb.vocab_rows.eq(self.vocab_rows), emb.seg_rows.eq(self.seg_rows),
            emb.pos_rows.eq(self.pos_rows), emb.aux_data.eq(mem.aux_a.data[:32]),
            emb.o.ready.eq(1),
        ]

        # ---- DVFS -----------------------------------------------------------------------------
        dfs = F[Op.DVFS]
        dv_layers, dv_v, dv_f = Signal(8 * wb), Signal(8 * wb), Signal(8 * wb)
        dv_i = Signal(8)
        dv_bins = Signal(range(self._bins + 1), init=self._bins)
        m.d.comb += dv.active.eq(dv_bins)

        # ---- the sequencer ----------------------------------------------------------------------
        with m.FSM(init="IDLE") as fsm:
            with m.State("PAUSED"):
                with m.If(self.step):
                    m.next = "FETCH"
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(self.start_pc), self.error.eq(0), self.error_pc.eq(0),
                                 self.exit.eq(0), self.exit_layer.eq(0), last_layer.eq(0),
                                 self.dvfs_valid.eq(0), busy.eq(1),
                                 *(getattr(self, f"total_{c}").eq(0) for c in _TOTALS)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.sync += [cyc.eq(1), c_mac.eq(0), c_skip.eq(0), c_stall.eq(0), c_ar.eq(0),
                             c_aw.eq(0), c_xr.eq(0), c_rr.eq(0)]
                with m.If(pc >= mm.prog_words):
                    m.d.sync += [self.error.eq(ErrorCode.PROGRAM_OVERRUN), self.error_pc.eq(pc),
                                 self.done.eq(1), busy.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [mem.prog_rd.addr.eq(pc), mem.prog_rd.en.eq(1)]
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += cmd.eq(mem.prog_rd.data)
                word = mem.prog_rd.data
                m.d.comb += [mem.desc_rd.addr.eq(Mux(word[:4] == Op.EMBED,
                                                     fields(word, Op.EMBED)["desc"],
                                                     fields(word, Op.MATMUL)["desc"])),
                             mem.desc_rd.en.eq(1)]
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(code != ErrorCode.NONE):
                    m.d.sync += [self.error.eq(code), self.error_pc.eq(pc), self.done.eq(1),
                                 busy.eq(0)]
                    m.next = "IDLE"
                with m.Elif(is_op[Op.END]):
                    m.d.sync += [busy.eq(0)]
                    with m.If(~self.exit):
                        m.d.sync += self.exit_layer.eq(last_layer)
                    finish(stop=True)
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
                                 mb.eq(self.act_mask_base), vb.eq(self.act_value_base),
                                 bb.eq(self.act_bias_base)]
                    walk_setup(afs["x_base"], afs["k"], afs["rows"], 1, afs["x_stride"], 0)
                    act_read_a(afs["x_base"])
                    m.next = "XCOPY"
                with m.Elif(is_op[Op.EMBED]):
                    m.d.comb += emb.start.eq(1)
                    m.next = "EMBED"
                with m.Elif(is_op[Op.DVFS]):
                    # The predicted layers and the voltage codes (one aux word each: bins is
                    # at most the word's bytes), then the frequency codes.
                    m.d.comb += [mem.aux_a.addr.eq(dfs["table_addr"] + dfs["bins"] - 1),
                                 mem.aux_a.en.eq(1),
                                 mem.aux_b.addr.eq(dfs["table_addr"] + dfs["bins"]),
                                 mem.aux_b.en.eq(1)]
                    m.next = "DV0"
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

            # -- MATMUL / MATMUL_ACT ----------------------------------------------------------
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
                                       self.act_value_base)
                            act_read_a(afs["w_base"])
                            m.next = "WCOPY"
                        with m.Else():
                            m.next = "ESTART"
            with m.State("WCOPY"):
                m.d.comb += [seq_v.eq(1), eng.v_w.valid.eq(1), eng.v_w.payload.addr.eq(taddr),
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
                        m.d.sync += [self.error.eq(ErrorCode.UNIT_ERROR), self.error_pc.eq(pc),
                                     self.done.eq(1), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [c_mac.eq(eng.cyc_mac), c_skip.eq(eng.vec_skipped),
                                     c_stall.eq(eng.cyc_stall)]
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
                finish()

            # -- SOFTMAX, LAYERNORM, ADD, ENTROPY ----------------------------------------------
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
                            finish()
                with m.If(is_op[Op.ENTROPY] & ent.o.valid):
                    h, flag = ent.o.payload.entropy, ent.o.payload.exit
                    layer = efs["layer"]
                    m.d.sync += [self.entropy.eq(h), self.entropy_exit.eq(flag),
                                 last_layer.eq(layer)]
                    with m.If((layer >= 1) & (layer <= self._layers)):
                        m.d.sync += ent_rec[layer - 1].eq(h)
                    with m.If(efs["stop"] & flag):
                        m.d.sync += [self.exit.eq(1), self.exit_layer.eq(layer), busy.eq(0)]
                        finish(stop=True)
                    with m.Else():
                        finish()
                with m.If(unit_error):
                    m.d.sync += [self.error.eq(ErrorCode.UNIT_ERROR), self.error_pc.eq(pc),
                                 self.done.eq(1), busy.eq(0)]
                    m.next = "IDLE"

            # -- EMBED --------------------------------------------------------------------------
            with m.State("EMBED"):
                m.d.comb += [mem.aux_a.addr.eq(emb.aux_addr), mem.aux_a.en.eq(emb.aux_en)]
                with m.If(emb.o.valid):
                    tag = emb.o.payload.tag
                    for i, wp in enumerate(mem.act_w):
                        m.d.comb += [wp.addr.eq(efd["dst_base"] + (tag.row >> ln)
                                                * efd["dst_stride"] + tag.col),
                                     wp.data.eq(emb.o.payload.codes),
                                     wp.en.eq(Mux(tag.row[:ln] == i, (1 << n) - 1, 0))]
                with m.If(emb.done):
                    with m.If(emb.error):
                        m.d.sync += [self.error.eq(ErrorCode.UNIT_ERROR), self.error_pc.eq(pc),
                                     self.done.eq(1), busy.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        finish()

            # -- DVFS ---------------------------------------------------------------------------
            with m.State("DV0"):
                m.d.sync += [dv_layers.eq(mem.aux_a.data), dv_v.eq(mem.aux_b.data)]
                m.d.comb += [mem.aux_a.addr.eq(dfs["table_addr"] + dfs["bins"] + 1),
                             mem.aux_a.en.eq(1)]
                m.next = "DV1"
            with m.State("DV1"):
                m.d.sync += [dv_f.eq(mem.aux_a.data), dv_i.eq(0), dv_bins.eq(dfs["bins"])]
                m.d.comb += [mem.aux_b.addr.eq(dfs["table_addr"]), mem.aux_b.en.eq(1)]
                m.next = "DVT"
            with m.State("DVT"):
                # Entry dv_i: its edge was read last cycle; read the next one.
                m.d.comb += [
                    dv.table_we.eq(1), dv.table_addr.eq(dv_i),
                    dv.table_edge.eq(mem.aux_b.data[:H_BITS]),
                    dv.table_vcode.eq(dv_v.word_select(dv_i, 8)),
                    dv.table_fcode.eq(dv_f.word_select(dv_i, 8)),
                    mem.aux_b.addr.eq(dfs["table_addr"] + dv_i + 1), mem.aux_b.en.eq(1),
                ]
                m.d.sync += dv_i.eq(dv_i + 1)
                with m.If(dv_i == dfs["bins"] - 1):
                    m.next = "DVH"
            with m.State("DVH"):
                m.d.comb += [dv.h.valid.eq(1), dv.h.payload.eq(ent_rec[dfs["layer"] - 1])]
                m.next = "DVS"
            with m.State("DVS"):
                st = dv.status
                m.d.sync += [self.dvfs_valid.eq(1), self.dvfs_bin.eq(st.bin),
                             self.dvfs_layer.eq(dv_layers.word_select(st.bin, 8)),
                             self.vcode.eq(st.vcode), self.fcode.eq(st.fcode)]
                finish()

        m.d.comb += paused.eq(fsm.ongoing("PAUSED"))

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
        return m


# Tiny defaults (n = 4): the memories hold the tiny image of sw.tiny_image and its programs.
_TINY = {"n": 4, "reram_bytes": 1024, "reram_word_bytes": 8, "reram_latency": 2,
         "desc_words": 16, "wmask_words": 256, "wval_words": 1024, "wbias_words": 64,
         "act_words": 256, "aux_words": 128, "prog_words": 64, "max_k": 64, "max_len": 64,
         "max_classes": 16, "dvfs_bins": 8, "max_layers": 8}
_MEMMAP_KEYS = ("n", "reram_bytes", "reram_word_bytes", "reram_latency", "desc_words",
                "wmask_words", "wval_words", "wbias_words", "act_words", "aux_words",
                "prog_words")


def build_top(**p):
    """The top of the flat parameters ``edgebert verilog -b top -p`` sets."""
    mm = MemoryMap(**{k: p[k] for k in _MEMMAP_KEYS})
    return Top(memmap=mm, **{k: v for k, v in p.items() if k not in _MEMMAP_KEYS})


register_block(
    "top", "accelerator top: memories, matrix engine, SFUs, DVFS and the command sequencer",
    build=build_top, params=_TINY)
