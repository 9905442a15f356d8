"""The top's sentences without a Python testbench in the loop: a generated Verilog bench that
plays a stimulus tape, and a comparison of what it dumps with the golden trace.

cocotb calls into Python at every command and every host write, and needs the design built
with every signal visible to VPI, which costs Verilator most of its speed. Here the bench is
plain Verilog-2005 (``module tb``, generated from the top's port list), so Verilator builds it
with ``--binary`` (no VPI) and Icarus runs it as well:

* **Tapes** (``$readmemh`` files, written per run; the build does not depend on the image):
  one per host port with that port's payloads in order (address, data and byte enables packed
  as the port takes them), and a control tape of 64-bit records ``op[63:60] arg[59:56]
  value[55:0]``: *write the next ``value`` payloads of port ``arg``* (one per cycle), *clear
  the next ``value`` act words of the clear tape* (zeros, every byte enabled: the words the
  last sentence wrote), *set input ``arg`` to ``value``* (the ports' configuration), *start at
  pc ``value[15:0]`` and wait for ``done``, at most ``value[55:16]`` cycles* (twice the
  model's cycles plus 1,000: a hang ends the run with ``T``), *finish*. Tape depths have room
  to spare (a memory's size, or sixteen times it for what is written per sentence), so the
  bench, and its build, stay the same across images of one memory map and runs of up to a few
  hundred sentences.
* **Dump** (``dump.txt``): at every cycle in which ``cmd_done`` is high, a ``C`` line with the
  command's pc, counters, H and exit flag, DVFS decision, then a ``W`` line per act word that
  the check tape lists for that command (every bank's word, read hierarchically from the top's
  act memories at that instant); at ``done`` a ``D`` line with the error, error pc, exit layer
  and totals; ``T`` if the run passes its cycle limit.

:func:`compare_dump` holds the dump to the cases of :func:`sim.top_bench.sentence_case` as
integers, exactly as :mod:`sim.tb_top` does under cocotb (same words, same counters), and
raises :class:`TapeMismatch` at the first difference.
"""

import re
import subprocess
import time
from pathlib import Path

__all__ = ["TapeMismatch", "tapes", "tb_verilog", "build", "run", "compare_dump",
           "HOST_PORTS", "CMD_FIELDS", "host_payload"]

HOST_PORTS = ("wmask", "wval", "wbias", "reram", "act", "aux", "desc", "prog")
CONFIG = ("act_mask_base", "act_value_base", "act_bias_base", "vocab_rows", "seg_rows",
          "pos_rows")
CMD_FIELDS = ("cmd_pc", "cmd_cycles", "cmd_mac", "cmd_skipped", "cmd_stall", "cmd_act_reads",
              "cmd_act_writes", "cmd_aux_reads", "cmd_reram_reads", "entropy", "entropy_exit",
              "dvfs_bin", "dvfs_layer", "vcode", "fcode")
DONE_FIELDS = ("error", "error_pc", "exit_layer", "total_cycles", "total_reram_reads")
_OP_WRITE, _OP_CONFIG, _OP_START, _OP_FINISH, _OP_CLEAR = range(5)
_END = 1 << 31          # check-tape marker: the end of one command's words


class TapeMismatch(AssertionError):
    """The RTL's dump differs from the golden trace or the cycle model."""


def _ports(verilog):
    """``{name: (direction, width)}`` of ``module top``'s ports."""
    head = verilog[verilog.index("module top("):]
    head = head[:head.index("endmodule")]
    out = {}
    for d, w, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", head,
                                 re.M):
        out[name] = (d, int(w) + 1 if w else 1)
    return out


def host_payload(setup, port, addr, word):
    """The payload of host port ``port`` that writes ``word`` at ``addr``, as
    :func:`sim.top_bench.bench_setup` describes the ports: the address in the low bits, the
    data above it and, on the ports with byte enables, every byte enabled."""
    bits = setup["addr_bits"][port]
    value = int(addr) | int(word) << bits
    if port in setup.get("en", {}):
        data_bits, en_bits = setup["en"][port]
        value |= ((1 << en_bits) - 1) << (bits + data_bits)
    return value


def _pow2(k):
    return 1 << max(0, k - 1).bit_length()


def tapes(setup, directory):
    """Write the tapes of ``setup`` (:func:`sim.top_bench.bench_setup` plus ``"sentences"``,
    as :mod:`sim.tb_top` takes it) into ``directory``; return the depths the bench needs
    (``{"ctl": ..., "chk": ..., port: ...}``, powers of two)."""
    bits = setup["addr_bits"]
    payload = {p: [] for p in HOST_PORTS}
    ctl, chk, clr = [], [], []

    def write(port, items):
        if not items:
            return
        payload[port].extend(host_payload(setup, port, a, w) for a, w in items)
        ctl.append(_OP_WRITE << 60 | HOST_PORTS.index(port) << 56 | len(items))

    for mem in ("wmask", "wval", "wbias"):
        write(mem, [(a, w) for a, w in enumerate(setup["weights"][mem]) if w])
    for mem, words in setup.get("preload", {}).items():   # memories the Verilog leaves zero
        write(mem, [(a, w) for a, w in enumerate(words) if w])
    if "reram" in setup:
        write("reram", [(a, w) for a, w in enumerate(setup["reram"]) if w])
    for i, name in enumerate(CONFIG):
        ctl.append(_OP_CONFIG << 60 | i << 56 | setup["config"][name])
    dirty = set()
    for case in setup["sentences"]:
        if dirty:   # zero the act words the last sentence wrote (addresses only)
            clr.extend(sorted(dirty))
            ctl.append(_OP_CLEAR << 60 | len(dirty))
        dirty = {int(w) for c in case["commands"] for w in c.get("words", {})}
        write("prog", list(enumerate(case["prog"])))
        write("aux", [(int(k), v) for k, v in case["tokens"].items()])
        # The sentence's cycle limit: twice the model's cycles plus slack (a hang is reported
        # as "T", never waited out).
        limit = 2 * sum(c["cycles"] for c in case["commands"]) + 1000
        ctl.append(_OP_START << 60 | limit << 16 | 0)
        for c in case["commands"]:
            chk.extend(int(w) for w in c.get("words", {}))
            chk.append(_END)
    ctl.append(_OP_FINISH << 60)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Depths with room to spare, so that the bench (and its build) stays the same across
    # images of one memory map and runs of a few dozen sentences: a memory's own size for the
    # ports loaded once, more for those written per sentence (act: the words to clear).
    floor = {"ctl": 1 << 12, "chk": 1 << 17, "clr": 1 << 18}
    per_sentence = {"aux": 16, "prog": 16}
    for p in HOST_PORTS:
        loaded = p in per_sentence or p in setup.get("preload", {}) or \
            p in ("wmask", "wval", "wbias") or (p == "reram" and "reram" in setup)
        floor[p] = (1 << bits[p]) * per_sentence.get(p, 1) if loaded else 1
    depths = {}
    for name, rows, width in (("ctl", ctl, 16), ("chk", chk, 8), ("clr", clr, 8),
                              *((p, payload[p], None) for p in HOST_PORTS)):
        digits = width or max(1, max((v.bit_length() for v in rows), default=1) + 3 >> 2)
        (directory / f"tape_{name}.hex").write_text(
            "".join(f"{v:0{digits}x}\n" for v in rows) or "0\n")
        depths[name] = max(_pow2(len(rows)), floor[name])
    # A cleared act word: its address, zero data, every byte enabled.
    depths["clear_en"] = host_payload(setup, "act", 0, 0)
    return depths


def tb_verilog(top_verilog, n, depths):
    """The Verilog-2005 bench (``module tb``) for ``module top`` in ``top_verilog`` with ``n``
    act banks and tape ``depths`` (:func:`tapes`)."""
    ports = _ports(top_verilog)
    hosts = [p for p in HOST_PORTS if f"host_{p}__payload" in ports]
    missing = [f for f in (*CMD_FIELDS, *DONE_FIELDS, "cmd_done", "done", *CONFIG, "start",
                           "host_act__payload",
                           "start_pc") if f not in ports]
    if missing:
        raise ValueError(f"module top lacks the ports the tape bench drives or reads: {missing}")
    # Verilator runs without its timing (coroutine) support: its clock comes from _MAIN_CPP;
    # Icarus makes its own.
    lines = ["`timescale 1ns/1ps", "`ifdef VERILATOR", "module tb(input clk);", "`else",
             "module tb;", "  reg clk = 0;", "  always #5 clk = ~clk;", "`endif",
             "  reg rst = 1;", "  integer resets = 0;"]
    conns = []
    for name, (d, w) in ports.items():
        rng = f"[{w - 1}:0] " if w > 1 else ""
        if name not in ("clk", "rst"):
            lines.append(f"  {'reg' if d == 'input' else 'wire'} {rng}{name}"
                         f"{' = 0' if d == 'input' else ''};")
        conns.append(f".{name}({name})")
    lines.append(f"  top dut({', '.join(conns)});")
    for p in hosts:
        w = ports[f"host_{p}__payload"][1]
        lines.append(f"  reg [{w - 1}:0] tape_{p} [0:{depths[p] - 1}];")
        lines.append(f"  integer tp_{p};")
    lines += [f"  reg [63:0] ctl [0:{depths['ctl'] - 1}];",
              f"  reg [31:0] chk [0:{depths['chk'] - 1}];",
              f"  reg [31:0] clr [0:{depths['clr'] - 1}];", "  integer tp_clr;",
              "  reg [63:0] rec;", "  reg running, done_q;",
              "  integer fd, cp, kp, remaining, port, cycles, started;", "  reg [39:0] limit;",
              "  initial begin",
              '    $readmemh("tape_ctl.hex", ctl);', '    $readmemh("tape_chk.hex", chk);',
              '    $readmemh("tape_clr.hex", clr); tp_clr = 0;']
    lines += [f'    $readmemh("tape_{p}.hex", tape_{p}); tp_{p} = 0;' for p in hosts]
    lines += ['    fd = $fopen("dump.txt", "w");',
              "    cp = 0; kp = 0; remaining = 0; port = 0; cycles = 0; started = 0;",
              "    running = 0; done_q = 0;", "  end",
              "  always @(negedge clk) if (rst) begin",
              "    resets = resets + 1;", "    if (resets == 3) rst = 0;",
              "  end else begin",
              "    cycles = cycles + 1;",
              *(f"    host_{p}__valid = 0;" for p in hosts),
              "    start = 0;",
              "    if (running) begin",
              "      if (cmd_done) begin",
              '        $fwrite(fd, "C' + " %0d" * len(CMD_FIELDS) + '\\n", '
              + ", ".join(CMD_FIELDS) + ");",
              f"        while (kp < {depths['chk']} && chk[kp] != 32'h{_END:08x}) begin",
              '          $fwrite(fd, "W %0d' + " %h" * n + '\\n", chk[kp], '
              + ", ".join(f"dut.act{i}[chk[kp]]" for i in range(n)) + ");",
              "          kp = kp + 1;", "        end",
              "        kp = kp + 1;", "      end",
              "      if (done && !done_q) begin",
              '        $fwrite(fd, "D' + " %0d" * len(DONE_FIELDS) + ' %0d\\n", '
              + ", ".join(DONE_FIELDS) + ", cycles - started);",
              "        running = 0;", "      end",
              "      done_q = done;",
              "      if (cycles - started > limit) begin",
              '        $fwrite(fd, "T\\n"); $fclose(fd); $finish;', "      end",
              "    end else if (remaining > 0) begin",
              "      case (port)"]
    for i, p in enumerate(HOST_PORTS):
        if p in hosts:
            lines.append(f"        {i}: begin host_{p}__valid = 1; host_{p}__payload = "
                         f"tape_{p}[tp_{p}]; tp_{p} = tp_{p} + 1; end")
    act_w = ports["host_act__payload"][1]
    lines += [f"        15: begin host_act__valid = 1; host_act__payload = clr[tp_clr] | "
              f"{act_w}'h{depths['clear_en']:x}; tp_clr = tp_clr + 1; end",
              "      endcase", "      remaining = remaining - 1;",
              "    end else begin",
              "      rec = ctl[cp]; cp = cp + 1;",
              "      case (rec[63:60])",
              f"        {_OP_WRITE}: begin port = rec[59:56]; remaining = rec[31:0]; end",
              f"        {_OP_CLEAR}: begin port = 15; remaining = rec[31:0]; end",
              f"        {_OP_CONFIG}: case (rec[59:56])"]
    lines += [f"          {i}: {name} = rec[55:0];" for i, name in enumerate(CONFIG)]
    lines += ["        endcase",
              f"        {_OP_START}: begin start_pc = rec[15:0]; limit = rec[55:16]; start = 1; "
              "running = 1; "
              "done_q = 1; started = cycles; end",
              "        default: begin $fclose(fd); $finish; end",
              "      endcase", "    end", "  end", "endmodule", ""]
    return "\n".join(lines)


_MAIN_CPP = """\
// The tape bench's clock under Verilator (built without timing support): 10 ns period.
#include "Vtb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    VerilatedContext* ctx = new VerilatedContext;
    ctx->commandArgs(argc, argv);
    Vtb* tb = new Vtb{ctx};
    tb->clk = 0;
    tb->eval();
    while (!ctx->gotFinish()) {
        ctx->timeInc(5);
        tb->clk = !tb->clk;
        tb->eval();
    }
    tb->final();
    delete tb;
    delete ctx;
    return 0;
}
"""


def build(top_verilog, build_dir, n, depths, simulator="verilator", *, cxx_opt="-O1",
          jobs=2):
    """Build bench + top in ``build_dir`` (skipped when the sources are unchanged and the
    executable exists). Returns ``(executable, seconds)``; 0 s when reused."""
    from sim.runner import _check_simulator, _prepare_env, verilator_bin_dir

    _prepare_env(_check_simulator(simulator))
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    tb = tb_verilog(top_verilog, n, depths)
    exe = build_dir / ("obj/Vtb" if simulator == "verilator" else "tb.vvp")
    src = {"top.v": top_verilog, "tb.v": tb}
    if exe.exists() and all((build_dir / f).exists() and (build_dir / f).read_text() == t
                            for f, t in src.items()):
        return exe, 0.0
    for f, t in src.items():
        (build_dir / f).write_text(t)
    t0 = time.perf_counter()
    if simulator == "verilator":
        (build_dir / "main.cpp").write_text(_MAIN_CPP)
        cmd = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", "--build",
               "--no-timing", "-j", str(jobs),
               "--top-module", "tb", "-Wno-fatal", "-Wno-lint", "-O3", "--x-assign", "0",
               "--x-initial", "0", "-Mdir", "obj",
               "-MAKEFLAGS", f"OPT_FAST={cxx_opt} OPT_SLOW=-O0 OPT_GLOBAL={cxx_opt} "
               "CFG_CXXFLAGS_PCH_I=-include", "tb.v", "top.v", "main.cpp"]
    else:
        cmd = ["iverilog", "-g2005", "-s", "tb", "-o", "tb.vvp", "tb.v", "top.v"]
    r = subprocess.run(cmd, cwd=build_dir, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{simulator} build failed in {build_dir}:\n{r.stdout[-3000:]}"
                           f"\n{r.stderr[-3000:]}")
    return exe, time.perf_counter() - t0


def run(exe, run_dir, simulator="verilator"):
    """Run the bench in ``run_dir`` (which holds the tapes); return ``(dump text, seconds)``."""
    run_dir = Path(run_dir)
    cmd = [str(exe)] if simulator == "verilator" else ["vvp", "-n", str(exe)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    dump = run_dir / "dump.txt"
    if r.returncode or not dump.exists():
        raise RuntimeError(f"the {simulator} bench failed (exit {r.returncode}):\n"
                           f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return dump.read_text(), wall


def compare_dump(dump, sentences):
    """Hold ``dump`` to the cases (:func:`sim.top_bench.sentence_case`) as integers; raise
    :class:`TapeMismatch` at the first difference. Returns per sentence ``{"cycles",
    "commands": [{"pc", "op", "cycles", "mac", ...}], "compared_words"}``."""
    lines = iter(dump.splitlines())
    out = []
    for s, case in enumerate(sentences):
        record, words_seen = [], 0
        for want in case["commands"]:
            line = next(lines, "")
            if line.startswith("T"):
                raise TapeMismatch(f"sentence {s}: the top passed the cycle limit before "
                                   f"command {want['pc']}")
            if not line.startswith("C "):
                raise TapeMismatch(f"sentence {s}: expected command {want['pc']} "
                                   f"({want['op']}), the dump has {line[:80]!r}")
            got = dict(zip(CMD_FIELDS, map(int, line.split()[1:]), strict=True))
            where = f"sentence {s} command {want['pc']} ({want['op']})"
            if got["cmd_pc"] != want["pc"]:
                raise TapeMismatch(f"sentence {s}: command {got['cmd_pc']} ran where the "
                                   f"golden executor ran {want['pc']} ({want['op']})")
            expect = {"cmd_cycles": want["cycles"], "cmd_mac": want["mac"],
                      "cmd_skipped": want["skipped"], "cmd_stall": want["stall"],
                      **{f"cmd_{p}": want["ports"][p] for p in (
                          "act_reads", "act_writes", "aux_reads", "reram_reads")}}
            if "entropy" in want:
                expect.update(entropy=want["entropy"][0], entropy_exit=want["entropy"][1])
            if "dvfs" in want:
                expect.update(zip(("dvfs_bin", "dvfs_layer", "vcode", "fcode"), want["dvfs"],
                                  strict=True))
            for k, v in expect.items():
                if got[k] != v:
                    raise TapeMismatch(f"{where}: {k} is {got[k]}, model/golden {v}")
            for word, banks in want.get("words", {}).items():
                line = next(lines, "")
                parts = line.split()
                if parts[:2] != ["W", str(int(word))]:
                    raise TapeMismatch(f"{where}: expected act word {word}, dump has "
                                       f"{line[:80]!r}")
                for i, (g, v) in enumerate(zip(parts[2:], banks, strict=True)):
                    if "x" in g.lower() or "z" in g.lower() or int(g, 16) != v:
                        raise TapeMismatch(f"{where}: act word {word} bank {i} is {g}, "
                                           f"golden {v:x}")
                words_seen += 1
            record.append({"pc": want["pc"], "op": want["op"],
                           **{k.removeprefix("cmd_"): got[k] for k in CMD_FIELDS[1:9]}})
        line = next(lines, "")
        if not line.startswith("D "):
            raise TapeMismatch(f"sentence {s}: after its {len(case['commands'])} commands the "
                               f"dump has {line[:80]!r}, not the end of the program")
        done = dict(zip((*DONE_FIELDS, "wall_cycles"), map(int, line.split()[1:]), strict=True))
        if done["error"]:
            raise TapeMismatch(f"sentence {s}: error {done['error']} at command "
                               f"{done['error_pc']}")
        if done["exit_layer"] != case["exit_layer"]:
            raise TapeMismatch(f"sentence {s}: exit layer {done['exit_layer']}, golden "
                               f"{case['exit_layer']}")
        total = sum(w["cycles"] for w in case["commands"])
        if done["total_cycles"] != total:
            raise TapeMismatch(f"sentence {s}: {done['total_cycles']} cycles, model {total}")
        reram = sum(w["ports"]["reram_reads"] for w in case["commands"])
        if done["total_reram_reads"] != reram:
            raise TapeMismatch(f"sentence {s}: {done['total_reram_reads']} ReRAM reads, "
                               f"model {reram}")
        out.append({"cycles": done["total_cycles"], "exit_layer": done["exit_layer"],
                    "commands": record, "compared_words": words_seen})
    rest = [line for line in lines if line.strip()]
    if rest:
        raise TapeMismatch(f"the dump goes on after the last sentence: {rest[0][:80]!r}")
    return out
