"""Compact memory initialisation in the generated Verilog (hw/verilog_out.py)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.verilog_out import MIN_RUN, compact_zero_init, to_verilog
from sim.runner import require_simulator


def test_zero_runs_become_loops_and_other_words_stay():
    lines = ["  initial begin"]
    lines += [f"    mem[{i}] = 8'h00;" for i in range(10)]
    lines += ["    mem[10] = 8'h2a;"]
    lines += [f"    mem[{i}] = 8'h00;" for i in range(11, 11 + MIN_RUN - 1)]   # too short
    lines += [f"    other[{i}] = 16'h0000;" for i in range(0, 20)]
    lines += ["  end"]
    out = compact_zero_init("\n".join(lines)).split("\n")
    assert out[:5] == ["  initial begin", "    begin : edgebert_zero_init_0", "      integer i;",
                       "      for (i = 0; i < 10; i = i + 1) mem[i] = 8'h0;", "    end"]
    assert out[5] == "    mem[10] = 8'h2a;"
    assert out[6:6 + MIN_RUN - 1] == lines[12:12 + MIN_RUN - 1]
    assert out[6 + MIN_RUN - 1:] == [
        "    begin : edgebert_zero_init_1", "      integer i;",
        "      for (i = 0; i < 20; i = i + 1) other[i] = 16'h0;", "    end", "  end"]
    # A gap in the indices ends a run.
    gap = "\n".join(f"    m[{i}] = 4'h0;" for i in [*range(8), *range(9, 17)])
    assert compact_zero_init(gap).count("for (i = ") == 2


class _Mem(wiring.Component):
    a: In(8)
    d: Out(8)

    def elaborate(self, platform):
        m = Module()
        init = [0] * 100 + [0x5a] + [0] * 155
        m.submodules.mem = mem = Memory(shape=8, depth=256, init=init)
        rp = mem.read_port(domain="comb")
        m.d.comb += [rp.addr.eq(self.a), self.d.eq(rp.data)]
        return m


def test_compacted_verilog_reads_the_same_under_icarus(tmp_path):
    import subprocess

    require_simulator("icarus")
    text = to_verilog(_Mem(), name="memtop")
    assert text.count("for (i = ") == 2 and "8'h5a" in text and len(text.splitlines()) < 120
    tb = tmp_path / "tb.v"
    tb.write_text("""module tb; reg [7:0] a; wire [7:0] d;
memtop dut(.a(a), .d(d));
integer k;
initial for (k = 0; k < 256; k = k + 1) begin a = k; #1 $display("%0d %0d", k, d); end
endmodule
""")
    (tmp_path / "memtop.v").write_text(text)
    subprocess.run(["iverilog", "-o", str(tmp_path / "sim"), str(tb), str(tmp_path / "memtop.v")],
                   check=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True, capture_output=True,
                         text=True).stdout.split("\n")
    vals = {int(k): int(v) for k, v in (line.split() for line in out if line.strip()
                                        and line.split()[0].isdigit())}
    assert vals == {k: (0x5a if k == 100 else 0) for k in range(256)}
