"""The accelerator top: memories, units and the command sequencer ([C4], [H9]).

:class:`Top` holds the component: its ports, parameters, units (the matrix engine, softmax,
LayerNorm, residual add, entropy, the embedding unit and its ReRAM store, the DVFS
controller), memories (:mod:`hw.top.memories`) and the host's ports. Its ``elaborate`` builds,
in this order, on a shared :class:`~hw.top.context.TopContext`:

* :func:`hw.top.sequencer.decode`: the program counter, the command register, its fields
  (:mod:`hw.top.decode`) and its refusals (:mod:`hw.top.checks`);
* :class:`hw.top.status.Status`: counters per command and in total, the entropy record, the
  end of a command (``cmd_done`` with ``cmd_pc`` and the command's counters: testbenches
  compare the command's destination then, nothing of the next command has run);
* the stages, each in its module: :mod:`hw.top.matmul_stage` (``MATMUL``, ``MATMUL_ACT``),
  :mod:`hw.top.rows_stage` (``SOFTMAX``, ``LAYERNORM``, ``ADD``, ``ENTROPY``),
  :mod:`hw.top.embed_stage` (``EMBED``), :mod:`hw.top.dvfs_stage` (``DVFS``);
* :func:`hw.top.sequencer.build_sequencer`: the FSM (fetch, decode, check, dispatch to the
  stages' states, single step, ``END``).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.dvfs import DvfsController
from hw.embed_unit import EmbedUnit
from hw.entropy import EntropyExit
from hw.layernorm import LayerNorm
from hw.layouts import DEFAULT_AF, AFFormat
from hw.matmul import COUNTER_BITS, MatmulConfig, MatrixEngine
from hw.matmul.engine import payload_layouts
from hw.memformats import TOKEN_ROW_BITS
from hw.memmap import MemoryMap
from hw.registry import register_block
from hw.regmap import ERROR_BITS
from hw.reram import ReramStore
from hw.residual import ResidualAdd
from hw.sfu_tables import H_BITS
from hw.softmax import Softmax
from hw.top.context import TopContext
from hw.top.dvfs_stage import dvfs_stage
from hw.top.embed_stage import embed_stage
from hw.top.matmul_stage import matmul_stage
from hw.top.memories import build_memories, host_layouts, make_memories
from hw.top.rows_stage import rows_stage
from hw.top.sequencer import build_sequencer, decode
from hw.top.status import COMMAND_COUNTERS, TOTALS, Status

__all__ = ["Top", "build_top", "engine_config"]


def engine_config(memmap, fmt, max_k):
    """The :class:`~hw.matmul.config.MatmulConfig` of the matrix engine inside a
    :class:`Top` with this memory map, format and ``max_k`` (its buffers are the act and
    weight memories), without building the top: testbenches take the bias-address width
    from it."""
    return MatmulConfig(n=memmap.n, fmt=fmt, max_k=max_k, x_depth=memmap.act_words,
                        y_depth=memmap.act_words, m_depth=memmap.wmask_words,
                        v_depth=memmap.wval_words)


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
        DVFS table entries (a program's ``bins`` must not exceed it, nor the aux word bytes);
        16 by default, the committed default image's table.
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
                 max_k=1024, max_len=256, max_classes=64, dvfs_bins=16, max_layers=16,
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
        self._cfg = engine_config(memmap, fmt, max_k)
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
            **{f"cmd_{c}": Out(cnt) for c in COMMAND_COUNTERS},
            **{f"total_{c}": Out(cnt) for c in TOTALS},
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
        nb = fmt.n_bits
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

        # The sequencer and its stages, in this order: the stages' assignments follow the
        # defaults above, and the Y write-back (matmul ``after``) follows the FSM.
        ctx = TopContext(m, self, fmt=fmt, mem=mem, busy=busy, paused=paused, running=running,
                         units={"eng": eng, "sm": sm, "lnorm": lnorm, "add": add, "ent": ent,
                                "emb": emb, "dv": dv},
                         limits={"max_len": self._max_len, "max_classes": self._max_classes,
                                 "dvfs_bins": self._bins, "max_layers": self._layers})
        decode(ctx)
        status = Status(ctx)
        matmul = matmul_stage(ctx, status)
        rows = rows_stage(ctx, status)
        embed = embed_stage(ctx, status)
        dvfs = dvfs_stage(ctx, status)
        build_sequencer(ctx, status, matmul=matmul, rows=rows, embed=embed, dvfs=dvfs)
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
