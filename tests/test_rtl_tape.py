"""The tape bench (:mod:`sim.tape_bench`): the top's Verilog played by a generated Verilog bench,
its dump held to the golden trace and the cycle model. Tiny image with three layers: sentences
that exit at layer 1, at layer 2 and never, on Icarus and on Verilator (the simulator of the
n = 16 runs, `python -m sim.top_default`); and the comparison catches what it must."""

import copy
import re
from inspect import signature

import pytest

from hw.memmap import MemoryMap
from hw.reram import external_verilog, hex_image
from hw.top.top import _MEMMAP_KEYS, _TINY, Top
from hw.verilog_out import to_verilog
from sim import tape_bench
from sim.runner import BUILD_ROOT, require_simulator
from sim.tape_run import sentence_cases, tape_engine, top_for, top_kwargs
from sim.top_bench import bench_setup
from sw.program.layout import lay_out
from sw.tiny_image import TINY_SENTENCES, build_tiny_image
from tests.test_sw_default_image import ROOT

_MM = MemoryMap(**{k: _TINY[k] for k in _MEMMAP_KEYS})


@pytest.fixture(scope="module")
def tiny():
    img, _ = build_tiny_image(9, layers=3)
    lay = lay_out(img, _MM)
    cases = (sentence_cases(lay, [TINY_SENTENCES[0], TINY_SENTENCES[5]], early_exit=True)
             + sentence_cases(lay, [TINY_SENTENCES[2]], early_exit=False))
    top, _ = top_for(lay, small=True)
    # The engine the bench is set up from without building a top is the built top's.
    assert tape_engine(lay, small=True) == top.engine_config
    setup = bench_setup(lay, tape_engine(lay, small=True), preload=("aux", "desc"))
    setup["sentences"] = [c for _, c, _ in cases]
    # The golden runs themselves: exits at layer 1, at 2, never (END after layer 3).
    assert [c["exit_layer"] for c in setup["sentences"]] == [1, 2, 3]
    assert setup["sentences"][2]["commands"][-1]["op"] == "END"
    return lay, setup, to_verilog(top, name="top") + external_verilog()


def _play(tiny, simulator, tmp_path):
    lay, setup, text = tiny
    run_dir = tmp_path / simulator
    depths = tape_bench.tapes(setup, run_dir)
    (run_dir / "reram.hex").write_text(hex_image(lay.images["reram"],
                                                 lay.memmap.reram_word_bytes))
    build_dir = (BUILD_ROOT / simulator / "tape-tiny").resolve()
    exe, _ = tape_bench.build(text, build_dir, lay.n, depths, simulator)
    dump, _ = tape_bench.run(exe, run_dir, simulator)
    return dump


def _check(setup, dump):
    got = tape_bench.compare_dump(dump, setup["sentences"])
    assert len(got) == 3
    for g, case in zip(got, setup["sentences"], strict=True):
        assert [c["pc"] for c in g["commands"]] == case["executed"]
        assert g["cycles"] == sum(c["cycles"] for c in case["commands"]) > 0
        assert g["compared_words"] == sum(len(c.get("words", {})) for c in case["commands"]) > 0
    return got


@pytest.fixture(scope="module")
def icarus_dump(tiny, tmp_path_factory):
    require_simulator("icarus")
    return _play(tiny, "icarus", tmp_path_factory.mktemp("tape"))


@pytest.mark.rtl
@pytest.mark.slow
def test_tape_icarus(tiny, icarus_dump):
    _check(tiny[1], icarus_dump)


@pytest.mark.rtl
@pytest.mark.slow
def test_tape_verilator(tiny, tmp_path):
    require_simulator("verilator")
    _check(tiny[1], _play(tiny, "verilator", tmp_path))


@pytest.mark.rtl
@pytest.mark.slow
def test_tape_comparison_catches_differences(tiny, icarus_dump):
    setup = tiny[1]

    def mutated(edit):
        s = copy.deepcopy(setup["sentences"])
        edit(s)
        return s

    def flip_word(s):
        cmd = next(c for c in s[1]["commands"] if c.get("words"))
        word = next(iter(cmd["words"]))
        cmd["words"][word][3] ^= 1 << 5
        return cmd["pc"], word

    s = copy.deepcopy(setup["sentences"])
    pc, word = flip_word(s)
    with pytest.raises(tape_bench.TapeMismatch,
                       match=rf"sentence 1 command {pc} .*act word {word} bank 3"):
        tape_bench.compare_dump(icarus_dump, s)
    with pytest.raises(tape_bench.TapeMismatch, match="sentence 0 command 0 .*cmd_cycles"):
        tape_bench.compare_dump(icarus_dump, mutated(
            lambda s: s[0]["commands"][0].update(cycles=s[0]["commands"][0]["cycles"] + 1)))
    with pytest.raises(tape_bench.TapeMismatch, match="sentence 2: exit layer 3, golden 2"):
        tape_bench.compare_dump(icarus_dump, mutated(lambda s: s[2].update(exit_layer=2)))
    with pytest.raises(tape_bench.TapeMismatch, match="goes on after the last sentence"):
        tape_bench.compare_dump(icarus_dump, setup["sentences"][:2])
    with pytest.raises(tape_bench.TapeMismatch, match="dump has ''"):
        tape_bench.compare_dump(icarus_dump.splitlines()[0] + "\n", setup["sentences"])


def test_tape_bench_needs_the_tops_ports():
    text = "module top(clk, start);\n  input clk;\n  input start;\nendmodule\n"
    with pytest.raises(ValueError, match="lacks the ports .*cmd_pc"):
        tape_bench.tb_verilog(text, 4, {"ctl": 1, "chk": 1})


@pytest.mark.rtl
@pytest.mark.slow
def test_compare_with_the_tape_bench(tmp_path, capsys, monkeypatch):
    require_simulator("icarus")
    import sim.tape_run
    from sw.cli import main

    path = ROOT / "sw" / "assets" / "tiny3.ebimg"
    argv = ["compare", str(path), "--small", "--bench", "tape", "--sentence", TINY_SENTENCES[0]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^ +(\d+)  (\w+) +([\d,]+) +([\d,]+)  (equal|DIFFER)", out, re.M)
    # From EMBED (command 0) to the exit at layer 1 (command 18), every count equal.
    assert [int(r[0]) for r in rows] == list(range(19))
    assert rows[0][1] == "EMBED" and rows[-1][1] == "ENTROPY"
    assert all(r[2] == r[3] and r[4] == "equal" for r in rows)
    assert re.search(r"exit layer 1 \(golden 1\), ([\d,]+) RTL cycles \(model \1\)", out)
    assert "1 of 1 sentence(s) bit-exact on icarus, tape bench" in out

    def differ(*a, **k):
        raise tape_bench.TapeMismatch("sentence 0 command 2 (MATMUL): act word 5 bank 1 is 80, "
                                      "golden 0")
    monkeypatch.setattr(sim.tape_run, "run_cases", differ)
    assert main(argv) == 1
    assert "MISMATCH: sentence 0 command 2 (MATMUL): act word 5 bank 1" in capsys.readouterr().out


@pytest.mark.rtl
@pytest.mark.slow
def test_tape_bench_stops_a_sentence_past_its_cycle_limit(tiny, tmp_path):
    # The tape gives each sentence twice its modelled cycles plus 1,000. A case whose model
    # claims 10 cycles a command gets a limit the real run passes: the bench stops it, and
    # the comparison (with the true case) reports where.
    require_simulator("icarus")
    lay, setup, text = tiny
    case = setup["sentences"][2]
    short = copy.deepcopy(case)
    for c in short["commands"]:
        c["cycles"] = 10
    limit = 2 * 10 * len(short["commands"]) + 1000
    dump = _play((lay, {**setup, "sentences": [short]}, text), "icarus", tmp_path)
    assert dump.splitlines()[-1] == "T"
    with pytest.raises(tape_bench.TapeMismatch, match="passed the cycle limit before command"):
        tape_bench.compare_dump(dump, [case])
    # The commands before the limit were compared, and they ran in fewer cycles than it.
    done = [line for line in dump.splitlines() if line.startswith("C ")]
    assert 0 < len(done) < len(case["commands"])
    assert sum(c["cycles"] for c in case["commands"][:len(done)]) <= limit


def test_top_kwargs_widen_max_len_and_max_k_for_a_larger_image():
    """An image whose E or H is wider than the top's max_len, or whose FFN is wider than its
    max_k (the 384-wide student on the n = 16 top: 384 > 256, 1,536 > 1,024), gets a top with
    max_len = its widest row and max_k = its largest K: otherwise its EMBED, LAYERNORM and
    FFN-2 MATMUL would stop with UNIT_ERROR. Images within the defaults keep the default top
    (and its cached Verilog). No top is built here (an unused one would warn)."""
    img, _ = build_tiny_image(9, layers=3)
    lay = lay_out(img, _MM)
    kwargs = top_kwargs(lay, small=True)
    assert (kwargs["max_len"], kwargs["max_k"]) == (_TINY["max_len"], _TINY["max_k"])
    assert "max_len" not in top_kwargs(lay) and "max_k" not in top_kwargs(lay)

    def widened(**config):
        wide = copy.copy(lay)
        wide.config = {**lay.config, **config}
        return top_kwargs(wide, small=True)

    kwargs = widened(hidden=2 * _TINY["max_len"] + 16)
    # H is a LayerNorm row and the K of most matrices.
    assert kwargs["max_len"] == kwargs["max_k"] == 2 * _TINY["max_len"] + 16
    assert widened(emb_dim=_TINY["max_len"] + 32)["max_len"] == _TINY["max_len"] + 32
    kwargs = widened(ffn=2 * _TINY["max_k"])
    assert (kwargs["max_len"], kwargs["max_k"]) == (_TINY["max_len"], 2 * _TINY["max_k"])
    assert tape_engine(lay, small=True).max_k == _TINY["max_k"]
    assert tape_engine(lay).max_k == signature(Top).parameters["max_k"].default
