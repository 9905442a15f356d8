"""The Python side of the system testbench (``sim/tb_system.py``): what to load, what to expect.

:func:`build_job` runs one sentence on the golden executor (with the trace) and the cycle model
and turns it into a *job*, plain JSON: the bytes of every memory window
(:func:`hw.regmap.pack_words` of :func:`sw.program.layout.lay_out`'s images, the ReRAM section
among them, the program, the token words in aux, zeros over the act words the program writes),
the MATMUL_ACT bases, the embedding tables' rows (``VOCAB_ROWS``, ``SEG_ROWS``, ``POS_ROWS``),
and per executed command from command 0 (EMBED) on what the bench reads back: the act words it
wrote (integers, a tile word little-endian), ENTROPY's H and flag, DVFS's decision, its cycles
in the model. The testbench writes back a *result* of the same shape,
read through the buses; :func:`compare` holds one to the other and names the first command,
buffer and element that differ. :func:`check_hardware` refuses a job whose image was built for
other hardware than the CFG registers describe.
"""

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from hw.isa import Op, decode_program
from hw.memmap import MemoryMap
from hw.regmap import MAGIC, VERSION, pack_words, windows

__all__ = ["HardwareMismatch", "build_job", "check_hardware", "compare",
           "Comparison", "write_job", "read_json", "ordinal_argmax", "SystemRun", "run_system",
           "accelerator_for", "small_memmap", "logits_from_words"]

# Commands whose destination (act words) the bench reads back and compares.
_ACT_OPS = (Op.EMBED, Op.MATMUL, Op.MATMUL_ACT, Op.SOFTMAX, Op.LAYERNORM, Op.ADD)


class HardwareMismatch(ValueError):
    """The hardware behind the buses is not the hardware the job (its image) was built for."""


def _dst_words(cmd, codes, n):
    """``{act word: integer}`` that the command's destination holds after writing ``codes``
    (``rows x cols``, transposed already where the command transposes)."""
    r, c = codes.shape
    out = {}
    for rt in range(r // n):
        for ct in range(c // n):
            tile = codes[rt * n:(rt + 1) * n, ct * n:(ct + 1) * n].flatten().tolist()
            out[cmd.dst_base + rt * cmd.dst_stride + ct] = int.from_bytes(bytes(tile), "little")
    return out


def _words(raw, wb):
    raw = bytes(raw)
    return [int.from_bytes(raw[i:i + wb], "little") for i in range(0, len(raw), wb)]


def ordinal_argmax(codes, n_bits=8):
    """The label of logits ``codes`` (sign-magnitude AdaptivFloat codes: the order of the
    values is the order of the ordinals), as the golden executor picks it."""
    sign = 1 << (n_bits - 1)
    ords = [-(c - sign) if c >= sign else c for c in codes]
    return max(range(len(ords)), key=lambda i: (ords[i], -i))


def build_job(lay, text, *, text_b=None, early_exit=True, executor=None):
    """The job of one sentence (or pair) on layout ``lay`` (see the module docstring)."""
    from hw.memformats import token_word
    from sim.top_bench import table_rows
    from sw.program.compiler import compile_program
    from sw.program.cycles import program_costs
    from sw.program.executor import GoldenExecutor
    from sw.program.frontend import encode_texts
    from sw.tokenizer import WordPiece

    mm, n = lay.memmap, lay.n
    ex = executor or GoldenExecutor(lay)
    tok = WordPiece(max_len=lay.config["max_len"])
    (e,), _ = encode_texts(lay, [text], None if text_b is None else [text_b], tokenizer=tok)
    words = compile_program(lay, e.length, early_exit=early_exit).program_bytes()
    golden = ex.run(words, e.rows[None], e.segments[None], trace=True)
    costs = program_costs(words, ex, e.rows)
    cmds = decode_program(words)
    trace = {t.index: t for t in golden.trace}

    images = {m: bytes(lay.images[m]) for m in ("desc", "wmask", "wval", "wbias", "aux")}
    aux = bytearray(images["aux"])
    awb = mm.word_bytes("aux")
    base = lay.symbols["aux"]["tokens"] * awb
    for i, (r, s) in enumerate(zip(e.rows.tolist(), e.segments.tolist(), strict=True)):
        aux[base + i * awb:base + i * awb + 4] = token_word(r, s).to_bytes(4, "little")
    images["aux"] = bytes(aux)
    loads = {m: pack_words(m, _words(images[m], mm.word_bytes(m)), mm) for m in images}
    prog_words = _words(words, mm.word_bytes("prog"))
    # The golden model starts from an act memory of zeros, and programs read words no command
    # wrote (the columns of a skipped head): the host clears every act word the program writes.
    used = [w for t in golden.trace if "codes" in t.data
            for w in _dst_words(cmds[t.index], t.data["codes"][0], n)]
    loads["act"] = pack_words("act", [0] * (max(used) + 1), mm)
    loads["reram"] = pack_words("reram", _words(lay.images["reram"], mm.word_bytes("reram")), mm)

    commands = []
    for pc in golden.executed[0]:
        cmd, data = cmds[pc], trace[pc].data
        entry = {"pc": pc, "op": cmd.op.name, "cycles": costs[pc].cycles}
        if cmd.op in _ACT_OPS:
            entry["act"] = {str(k): v for k, v in
                            _dst_words(cmd, data["codes"][0], n).items()}
        elif cmd.op is Op.ENTROPY:
            entry.update(entropy=int(data["entropy"][0]), exit=int(data["exit"][0]),
                         layer=cmd.layer, logits_words=_logit_words(cmd, n),
                         logits=[int(c) for c in data["logits"][0].tolist()])
        elif cmd.op is Op.DVFS:
            entry["dvfs"] = [int(v) for v in data["dvfs"][0].tolist()]
        commands.append(entry)
    last_ent = [c for c in commands if c["op"] == "ENTROPY"][-1]
    fmt = lay.fmt
    return {
        "text": text, "memmap": vars(mm),
        "hw": {"n": n, "n_bits": fmt.n_bits, "exp_bits": fmt.exp_bits,
               "bias_bits": fmt.bias_bits, "offset": fmt.offset},
        "loads": {m: b.hex() for m, b in loads.items()},
        "prog": pack_words("prog", prog_words, mm).hex(), "prog_words": len(prog_words),
        "act_bases": [lay.symbols["wmask"]["act.ones"], lay.symbols["wval"]["act.values"],
                      lay.symbols["wbias"]["act.zero"]],
        "rows": {k.upper(): v for k, v in table_rows(lay).items()},
        "token_rows": [int(r) for r in e.rows.tolist()], "commands": commands,
        "final": {"exit_layer": int(golden.exit_layer[0]), "label": int(golden.label[0]),
                  "exit": int(any(c.get("exit") and cmds[c["pc"]].stop for c in commands
                                  if c["op"] == "ENTROPY")),
                  "logits_words": last_ent["logits_words"], "logits": last_ent["logits"],
                  "cycles": sum(c["cycles"] for c in commands),
                  "commands": len(commands)},
        "tokens": tok.id_to_tokens(e.ids), "truncated": bool(e.truncated),
    }


def _logit_words(cmd, n):
    """The act words whose bank 0 holds ENTROPY's logits (row 0)."""
    return [cmd.x_base + i for i in range(-(-cmd.classes // n))]


def logits_from_words(words, classes, n):
    """The first ``classes`` codes of row 0 (bank 0) of act tile ``words``."""
    codes = []
    for w in words:
        codes += list(int(w).to_bytes(n * n, "little")[:n])
    return codes[:classes]


def check_hardware(regs, job):
    """Raise :class:`HardwareMismatch` naming the difference unless the identification and
    configuration registers ``regs`` (``{name: value}``: MAGIC, VERSION, CFG_FORMAT and every
    CFG_DEPTH_*) describe hardware that runs ``job``."""
    if regs["MAGIC"] != MAGIC:
        raise HardwareMismatch(f"MAGIC reads {regs['MAGIC']:#010x}, not {MAGIC:#010x}: this is "
                               f"not an EdgeBERT accelerator")
    major = regs["VERSION"] >> 8 & 0xFF
    if major != VERSION[0]:
        raise HardwareMismatch(f"the register map is version {major}.{regs['VERSION'] & 0xFF}; "
                               f"this software speaks {VERSION[0]}.x")
    cfg = regs["CFG_FORMAT"]
    got = {"n": cfg & 0xFF, "n_bits": cfg >> 8 & 0xFF, "exp_bits": cfg >> 16 & 0xF,
           "bias_bits": cfg >> 20 & 0xF, "offset": (cfg >> 24 & 0xFF) - ((cfg >> 24 & 0x80) << 1)}
    bad = [f"{k} = {job['hw'][k]} (hardware: {got[k]})" for k in got if got[k] != job["hw"][k]]
    if bad:
        raise HardwareMismatch(f"the image was built for other hardware: {', '.join(bad)}")
    wins = {w.memory: w for w in windows(MemoryMap(**job["memmap"]))}
    for m, hexed in (*job["loads"].items(), ("prog", job["prog"])):
        need = len(hexed) // 2 // wins[m].stride
        depth = regs[f"CFG_DEPTH_{m.upper()}"]
        if need > depth:
            raise HardwareMismatch(f"the image needs {need} words of the {m} memory; the "
                                   f"hardware has {depth}")


@dataclass
class Comparison:
    """Per command ``(pc, op, RTL cycles, model cycles, buffers equal)``; the first mismatch
    (a sentence naming command, buffer and element with both values) or ``None``; the number
    of values compared."""

    rows: list
    mismatch: str | None
    compared: int


def _first_code(got, want, n):
    gb, wb = int(got).to_bytes(n * n, "little"), int(want).to_bytes(n * n, "little")
    i = next(i for i in range(n * n) if gb[i] != wb[i])
    return i // n, i % n, gb[i], wb[i]


def compare(job, result):
    """Hold a testbench ``result`` to ``job``: every command in order, its act words, H, exit
    flag, DVFS decision, cycles; then the final logits, exit layer, label, counters."""
    n = job["hw"]["n"]
    rows, mismatch, compared = [], None, 0

    def miss(text):
        nonlocal mismatch
        if mismatch is None:
            mismatch = text

    got_cmds = result.get("commands", [])
    for i, want in enumerate(job["commands"]):
        if i >= len(got_cmds):
            miss(f"command {want['pc']} ({want['op']}) did not run on the RTL (it stopped "
                 f"after {len(got_cmds)} commands: {result.get('status', {})})")
            break
        got = got_cmds[i]
        pc, op = want["pc"], want["op"]
        if got["pc"] != pc:
            miss(f"the RTL ran command {got['pc']} where the golden model ran {pc} ({op})")
            break
        equal = True
        for word, value in want.get("act", {}).items():
            compared += 1
            have = got["act"].get(word)
            if have != value:
                equal = False
                if have is None:
                    miss(f"command {pc} ({op}): act word {word} was not read back")
                else:
                    r, c, a, b = _first_code(have, value, n)
                    miss(f"command {pc} ({op}): act word {word} row {r} code {c} is {a:#04x}, "
                         f"golden {b:#04x}")
        for key in ("entropy", "exit", "dvfs"):
            if key in want:
                compared += 1
                if got.get(key) != want[key]:
                    equal = False
                    miss(f"command {pc} ({op}): {key} is {got.get(key)}, golden {want[key]}")
        compared += 1
        if got["cycles"] != want["cycles"]:
            miss(f"command {pc} ({op}): {got['cycles']} cycles on the RTL, "
                 f"{want['cycles']} in the cycle model")
        rows.append((pc, op, got["cycles"], want["cycles"], equal))
    if mismatch is None and len(got_cmds) > len(job["commands"]):
        extra = got_cmds[len(job["commands"])]
        miss(f"the RTL ran command {extra['pc']}, which the golden model did not")
    fin, want = result.get("final", {}), job["final"]
    for key in ("logits", "exit_layer", "label", "exit", "cycles", "commands"):
        compared += 1
        if fin.get(key) != want[key]:
            miss(f"at the end: {key} is {fin.get(key)}, golden {want[key]}")
    status = result.get("status", {})
    if status.get("error", 0):
        miss(f"the RTL stopped with error {status.get('error_name')} at command "
             f"{status.get('error_pc')}")
    return Comparison(rows, mismatch, compared)


def write_job(path, job):
    path.write_text(json.dumps(job))


def read_json(path):
    with open(path) as f:
        return json.load(f)


@dataclass
class SystemRun:
    """What :func:`run_system` returns: the results read through the buses (one per job, as
    far as the simulation got), the build and run times (``run_cocotb``'s), the path of the
    waveform file, and the simulator's failure message (``None`` if it ran to the end)."""

    results: list
    timing: dict
    waves: str | None
    failure: str | None


def accelerator_for(lay, small=False):
    """The :class:`~hw.top.system.Accelerator` that runs layout ``lay``: its memory map and the
    top's default limits, or (``small``) the registered n = 4 block's parameters; ``max_len``
    and ``max_k`` widened for an image that needs more (the 384-wide default image:
    :func:`sim.tape_run.top_kwargs`)."""
    from sim.tape_run import top_kwargs

    widen = {k: v for k, v in top_kwargs(lay, small=small).items() if k in ("max_len", "max_k")}
    return _accelerator(lay.memmap, lay.fmt, bool(small), tuple(sorted(widen.items())))


@functools.lru_cache(maxsize=4)
def _accelerator(memmap, fmt, small, widen):
    # One object per design, so that sim.runner converts it to Verilog once per process.
    from hw.top.system import Accelerator
    from hw.top.top import _MEMMAP_KEYS, _TINY

    kwargs = {k: v for k, v in _TINY.items() if k not in _MEMMAP_KEYS} if small else {}
    return Accelerator(memmap=memmap, fmt=fmt, **{**kwargs, **dict(widen)})


def small_memmap():
    """The memory map of the registered accelerator block (n = 4, small memories)."""
    from hw.top.top import _MEMMAP_KEYS, _TINY

    return MemoryMap(**{k: _TINY[k] for k in _MEMMAP_KEYS})


def run_system(accelerator, jobs, *, simulator="icarus", waves=False, backpressure=0.3,
               step=True, seed=1):
    """Run ``jobs`` on ``accelerator``'s Verilog through ``sim/tb_system.py`` (test
    ``sentences``, mismatches recorded rather than raised). Returns a :class:`SystemRun`."""
    import tempfile

    from sim.runner import run_cocotb

    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, job in enumerate(jobs):
            p = Path(d) / f"job{i}.json"
            write_job(p, job)
            paths.append(str(p))
        result = Path(d) / "result.json"
        failure, timing = None, {}
        # The simulator's Python: warnings only (cocotb's INFO lines drown the report).
        quiet = {"COCOTB_LOG_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore"}
        saved = {k: os.environ.get(k) for k in quiet}
        os.environ.update(quiet)
        try:
            timing = run_cocotb(accelerator, "accelerator", "sim.tb_system",
                                simulator=simulator, testcase="sentences", waves=waves,
                                params={"jobs": paths, "result": str(result), "step": step,
                                        "backpressure": backpressure, "seed": seed,
                                        "fail_on_mismatch": False})
        except AssertionError as e:
            failure = str(e)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v
        results = read_json(result) if result.exists() else []
    return SystemRun(results, timing, timing.get("waves"), failure)
