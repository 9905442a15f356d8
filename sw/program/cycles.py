"""Cycle and action model of a whole program ([P1], [P2]): what every command costs.

Each command costs :data:`hw.timing.FETCH_CYCLES` plus its unit's cycles, from the unit models
that the RTL counters already equal (:func:`sw.perf.matmul.matmul_cycles`, :mod:`sw.perf.sfu`)
and the sequencer's own (:mod:`hw.timing`); the accelerator top's per-command cycle counter
equals it (tests/test_hw_top.py):

* MATMUL: copy X into the engine (n cycles per tile), the engine run on the matrix's masks
  (zero vectors skipped), copy Y back (n cycles per tile), :data:`hw.timing.MATMUL_OVERHEAD`;
  MATMUL_ACT: the same with w copied too, on a dense ``k x cols`` matrix (activations are
  fed dense: every vector is issued);
* SOFTMAX, LAYERNORM: :data:`hw.timing.SFU_PROLOGUE`, then ``rows`` row periods (rows stream
  back to back); ENTROPY: the prologue and one row of ``ceil(classes / n)`` beats; ADD: the
  prologue and one stream of ``rows * cols / n`` beats;
* EMBED: :func:`hw.timing.embed_cycles` (the embedding unit's own count: the top starts the
  unit in the fetch's check cycle and adds nothing); DVFS: :data:`hw.timing.DVFS_CYCLES` plus
  one cycle per bin.

Alongside the cycles it counts the actions an energy model prices (:class:`Cost`): MACs
issued, SFU elements, and bytes read and written per memory (activations as n-code bank words;
weights as the words the engine streams).
"""

from dataclasses import dataclass, field

from hw.isa import Op, decode_program
from hw.timing import (
    DVFS_CYCLES,
    END_CYCLES,
    FETCH_CYCLES,
    MATMUL_OVERHEAD,
    SFU_PROLOGUE,
    embed_cycles,
    embed_reram_reads,
    matmul_copy_cycles,
)
from sw.perf.matmul import dense_masks, matmul_cycles
from sw.perf.sfu import entropy_cycles, layernorm_cycles, residual_cycles, softmax_cycles

__all__ = ["Cost", "command_cost", "port_accesses", "program_costs", "summarize", "UNITS"]

UNITS = ("matmul", "softmax", "layernorm", "add", "entropy", "embed", "dvfs", "sequencer")


@dataclass
class Cost:
    """Cycles and actions of one command."""

    unit: str
    cycles: int                 # fetch included
    macs: int = 0               # dense-equivalent multiply-accumulates (rows * K * cols)
    mac_cycles: int = 0         # cycles the n x n array issued a weight vector
    issued_macs: int = 0        # MACs performed: mac_cycles * n * n
    skipped: int = 0            # all-zero weight vectors skipped (per row tile)
    stall: int = 0              # cycles a tile waited for the drain
    sfu_elements: int = 0       # elements through a special-function unit
    reads: dict = field(default_factory=dict)    # memory -> bytes
    writes: dict = field(default_factory=dict)   # memory -> bytes
    ports: dict = field(default_factory=dict)    # the top's access counters (port_accesses)

    @property
    def unit_cycles(self):
        return self.cycles - FETCH_CYCLES


def port_accesses(cmd, n, desc=None, *, reram_word_bytes=None):
    """The accelerator top's access counters of one command (``cmd_act_reads``,
    ``cmd_act_writes``, ``cmd_aux_reads``, ``cmd_reram_reads``): act read-port addresses (a
    tile word; ADD's two ports count two), act write cycles, aux read-port addresses, ReRAM word
    reads. ``desc`` (K and cols in tiles) is needed for MATMUL, the store's word
    (``reram_word_bytes``) for EMBED."""
    acc = {"act_reads": 0, "act_writes": 0, "aux_reads": 0, "reram_reads": 0}
    if cmd.op in (Op.MATMUL, Op.MATMUL_ACT):
        k, cols = (desc["k"], desc["cols"]) if cmd.op is Op.MATMUL else (cmd.k, cmd.cols)
        w = cmd.k * cmd.cols if cmd.op is Op.MATMUL_ACT else 0
        acc.update(act_reads=cmd.rows * k + w, act_writes=n * cmd.rows * cols)
    elif cmd.op in (Op.SOFTMAX, Op.LAYERNORM, Op.ADD):
        beats = cmd.rows * n * cmd.cols
        two = cmd.op is Op.ADD
        acc.update(act_reads=(1 + two) * beats, act_writes=beats,
                   aux_reads=1 + (0 if two else 2 * beats))
    elif cmd.op is Op.ENTROPY:
        acc.update(act_reads=-(-cmd.classes // n), aux_reads=1)
    elif cmd.op is Op.DVFS:
        acc.update(aux_reads=DVFS_CYCLES + cmd.bins)
    elif cmd.op is Op.EMBED:
        if reram_word_bytes is None:
            raise ValueError("EMBED's accesses need the ReRAM word (reram_word_bytes)")
        # One aux read per token entry, one act write per output beat (a bank word).
        acc.update(act_writes=cmd.rows * n * cmd.cols, aux_reads=cmd.tokens,
                   reram_reads=embed_reram_reads(cmd.cols, cmd.tokens, n, reram_word_bytes))
    return acc


def command_cost(cmd, executor, token_rows=None):
    """:class:`Cost` of one decoded command; ``executor`` (a
    :class:`~sw.program.executor.GoldenExecutor`) gives the memories (weight masks, the
    embedding table). ``token_rows`` (the sentence's token-table rows) is accepted for callers
    that price one sentence; EMBED's ReRAM reads no longer depend on it (the unit reads a fixed
    number of words per row and vector: :func:`hw.timing.embed_reram_reads`)."""
    n = executor.n
    fetch = {"prog": 16}
    cost = _command_cost(cmd, executor, token_rows, n, fetch)
    cost.ports = port_accesses(cmd, n, executor.matrix(cmd.desc) if cmd.op is Op.MATMUL
                               else None, reram_word_bytes=executor.mm.reram_word_bytes)
    return cost


def _command_cost(cmd, executor, token_rows, n, fetch):
    if cmd.op in (Op.MATMUL, Op.MATMUL_ACT):
        if cmd.op is Op.MATMUL:
            d = executor.matrix(cmd.desc)
            masks, k, cols, nnz = d["masks"], d["K"], d["C"], d["nnz"]
            w_reads = {"wmask": (cmd.rows) * (cols // n) * (k // n) * max(1, n * n // 8),
                       "wval": cmd.rows * -(-nnz // n) * n, "wbias": cmd.rows * cols}
        else:
            k, cols = cmd.k * n, cmd.cols * n
            masks, nnz = dense_masks(k, cols, n), k * cols
            w_reads = {"act": cmd.rows * (cols // n) * k * n}
        rows = cmd.rows * n
        mc = matmul_cycles(masks, rows, n)
        w_tiles = cmd.k * cmd.cols if cmd.op is Op.MATMUL_ACT else 0
        copies = matmul_copy_cycles(cmd.rows * (k // n), w_tiles, cmd.rows * (cols // n), n)
        reads = {"act": cmd.rows * (cols // n) * (k // n) * n * n, **fetch}
        for mem, b in w_reads.items():
            reads[mem] = reads.get(mem, 0) + b
        return Cost("matmul", FETCH_CYCLES + copies + MATMUL_OVERHEAD + mc.total, macs=mc.macs,
                    mac_cycles=mc.mac,
                    issued_macs=mc.mac * n * n, skipped=mc.skipped, stall=mc.stall,
                    reads=reads, writes={"act": rows * cols})
    if cmd.op is Op.SOFTMAX:
        rows, cols = cmd.rows * n, cmd.cols * n
        return Cost("softmax", FETCH_CYCLES + SFU_PROLOGUE + rows * softmax_cycles(cmd.cols, n),
                    sfu_elements=rows * cols,
                    reads={"act": rows * cols, "aux": 2 * cols, **fetch},
                    writes={"act": rows * cols})
    if cmd.op is Op.LAYERNORM:
        rows, cols = cmd.rows * n, cmd.cols * n
        return Cost("layernorm", FETCH_CYCLES + SFU_PROLOGUE + rows * layernorm_cycles(cmd.cols),
                    sfu_elements=rows * cols,
                    reads={"act": 2 * rows * cols, "aux": rows * 2 * cols + 4, **fetch},
                    writes={"act": rows * cols})
    if cmd.op is Op.ADD:
        rows, cols = cmd.rows * n, cmd.cols * n
        return Cost("add", FETCH_CYCLES + SFU_PROLOGUE + residual_cycles(cmd.rows * n * cmd.cols),
                    sfu_elements=rows * cols, reads={"act": 2 * rows * cols, **fetch},
                    writes={"act": rows * cols})
    if cmd.op is Op.ENTROPY:
        beats = -(-cmd.classes // n)
        return Cost("entropy", FETCH_CYCLES + SFU_PROLOGUE + entropy_cycles(beats, n),
                    sfu_elements=cmd.classes, reads={"act": beats * n, "aux": 4, **fetch})
    if cmd.op is Op.EMBED:
        rows, cols = cmd.rows * n, cmd.cols * n
        mm = executor.mm
        # The unit reads a fixed number of ReRAM words per row and vector, whatever the data.
        reram = embed_reram_reads(cmd.cols, cmd.tokens, n, mm.reram_word_bytes)
        cycles = embed_cycles(cmd.rows, cmd.cols, cmd.tokens, n, mm.reram_word_bytes,
                              mm.reram_latency)
        return Cost("embed", FETCH_CYCLES + cycles, sfu_elements=rows * cols,
                    reads={"reram": reram * mm.reram_word_bytes, "aux": 4 * cmd.tokens, **fetch},
                    writes={"act": rows * cols})
    if cmd.op is Op.DVFS:
        return Cost("dvfs", FETCH_CYCLES + DVFS_CYCLES + cmd.bins,
                    reads={"aux": 4 * (cmd.bins + 2), **fetch})
    return Cost("sequencer", FETCH_CYCLES + END_CYCLES, reads=dict(fetch))


def program_costs(program_bytes, executor, token_rows=None):
    """:class:`Cost` of every command of a program (in program order)."""
    return [command_cost(c, executor, token_rows) for c in decode_program(bytes(program_bytes))]


def summarize(costs, executed=None):
    """Totals over the commands (only the ``executed`` indices if given): cycles, cycles per
    unit, the matrix engine's computing share, MACs and bytes per memory."""
    idx = range(len(costs)) if executed is None else executed
    out = {"cycles": 0, "unit_cycles": dict.fromkeys(UNITS, 0), "mac_cycles": 0, "macs": 0,
           "issued_macs": 0, "sfu_elements": 0, "reads": {}, "writes": {}, "commands": 0}
    for i in idx:
        c = costs[i]
        out["commands"] += 1
        out["cycles"] += c.cycles
        out["unit_cycles"][c.unit] += c.unit_cycles
        out["unit_cycles"]["sequencer"] += FETCH_CYCLES
        for k in ("mac_cycles", "macs", "issued_macs", "sfu_elements"):
            out[k] += getattr(c, k)
        for k in ("reads", "writes"):
            for mem, b in getattr(c, k).items():
                out[k][mem] = out[k].get(mem, 0) + b
    out["mac_share"] = out["mac_cycles"] / out["cycles"] if out["cycles"] else 0.0
    return out
