"""The accelerator's Verilog driven only through its buses (sim/tb_system.py) under Icarus:
tiny-image sentences that exit at layer 1, in the middle and never, from command 0 (EMBED, its
ReRAM section loaded over AXI), every command's act words, H, exit flag, DVFS decision and
cycles equal to the golden executor and the cycle model; the refusals (registers, loads, an
incomplete weight or ReRAM word, a token row beyond VOCAB_ROWS, an illegal command, the
watchdog)."""

import json

import pytest

from hw.memmap import MemoryMap
from hw.top.top import _MEMMAP_KEYS, _TINY
from sim.runner import require_simulator, run_cocotb
from sim.system_bench import (
    HardwareMismatch,
    accelerator_for,
    build_job,
    check_hardware,
    compare,
)
from sw.program.layout import lay_out
from sw.tiny_image import TINY_SENTENCES, build_tiny_image

_MM = MemoryMap(**{k: _TINY[k] for k in _MEMMAP_KEYS})


@pytest.fixture(scope="module")
def tiny3():
    # Seed 9 with three layers: sentence 0 exits at layer 1, sentence 5 at layer 2.
    img, _ = build_tiny_image(9, layers=3)
    return lay_out(img, _MM)


def _write(tmp_path, jobs):
    paths = []
    for i, job in enumerate(jobs):
        p = tmp_path / f"job{i}.json"
        p.write_text(json.dumps(job))
        paths.append(str(p))
    return paths


@pytest.mark.rtl
@pytest.mark.slow
def test_system_icarus(tiny3, tmp_path):
    require_simulator("icarus")
    jobs = [build_job(tiny3, TINY_SENTENCES[0]), build_job(tiny3, TINY_SENTENCES[5]),
            build_job(tiny3, TINY_SENTENCES[2], early_exit=False)]
    # The golden runs themselves: exits at 1, in the middle, never (every layer, then END).
    assert [(j["final"]["exit_layer"], j["final"]["exit"]) for j in jobs] == [
        (1, 1), (2, 1), (3, 0)]
    assert jobs[2]["commands"][-1]["op"] == "END"
    # Every program starts at EMBED, whose act words are compared like any other command's.
    for job in jobs:
        assert job["commands"][0]["pc"] == 0 and job["commands"][0]["op"] == "EMBED"
        assert job["commands"][0]["act"] and "reram" in job["loads"]
    result = tmp_path / "result.json"
    # The same design object as `edgebert sim --small` (converted to Verilog once per process).
    res = run_cocotb(accelerator_for(tiny3, small=True), "accelerator", "sim.tb_system",
                     params={"jobs": _write(tmp_path, jobs), "result": str(result)})
    assert res["tests"] == 2
    results = json.loads(result.read_text())
    assert len(results) == 3
    for job, got in zip(jobs, results, strict=True):
        cmp = compare(job, got)
        assert cmp.mismatch is None, cmp.mismatch
        assert len(cmp.rows) == len(job["commands"]) and all(r[4] for r in cmp.rows)
        assert got["final"]["label"] == job["final"]["label"]


def test_compare_names_the_first_difference(tiny3):
    job = build_job(tiny3, TINY_SENTENCES[0])
    # A perfect result made from the job, then one code changed.
    got = {"commands": [{k: v for k, v in c.items() if k not in ("op", "layer", "logits",
                                                                   "logits_words")}
                        for c in json.loads(json.dumps(job["commands"]))],
           "final": {k: job["final"][k] for k in ("logits", "exit_layer", "label", "exit",
                                                  "cycles", "commands")},
           "status": {"error": 0}}
    assert compare(job, got).mismatch is None
    first = next(c for c in got["commands"] if "act" in c)
    word = next(iter(first["act"]))
    first["act"][word] ^= 0x5 << 8  # row 0, code 1
    cmp = compare(job, got)
    want = job["commands"][0]
    assert cmp.mismatch.startswith(f"command {first['pc']} ({want['op']}): act word {word} "
                                   f"row 0 code 1 is ")
    assert [r[4] for r in cmp.rows].count(False) == 1


def test_refuses_other_hardware_and_programs_that_do_not_fit(tiny3):
    from hw.regmap import RegisterMap

    job = build_job(tiny3, TINY_SENTENCES[0])
    rm = RegisterMap(memmap=_MM, fmt=tiny3.fmt)
    regs = {r.name: r.reset for r in rm if r.name in ("MAGIC", "VERSION", "CFG_FORMAT")
            or r.name.startswith("CFG_DEPTH_")}
    check_hardware(regs, job)
    with pytest.raises(HardwareMismatch, match=r"^MAGIC reads 0x00000000, not 0x45425254"):
        check_hardware(dict(regs, MAGIC=0), job)
    with pytest.raises(HardwareMismatch, match=r"^the image was built for other hardware: "
                                               r"n = 4 \(hardware: 16\)$"):
        check_hardware(dict(regs, CFG_FORMAT=regs["CFG_FORMAT"] & ~0xFF | 16), job)
    with pytest.raises(HardwareMismatch, match=r"^the image needs \d+ words of the wval memory; "
                                               r"the hardware has 16$"):
        check_hardware(dict(regs, CFG_DEPTH_WVAL=16), job)
    small = lay_out(build_tiny_image(9, layers=3)[0],
                    MemoryMap(**{**{k: _TINY[k] for k in _MEMMAP_KEYS}, "prog_words": 40}))
    with pytest.raises(Exception, match=r"prog"):
        build_job(small, TINY_SENTENCES[2])
