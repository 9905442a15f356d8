import json
import subprocess
import sys

from sw.perf.sfu import softmax_cycles


def test_bench_sfu_prints_and_writes_figures(tmp_path):
    out = tmp_path / "sfu.json"
    res = subprocess.run([sys.executable, "-m", "sw.cli", "bench", "sfu", "--rows", "200",
                          "--json", str(out)], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    units = [x.get("unit") for x in lines]
    assert units.count("softmax") == 2 and units.count("entropy") == 4
    assert "layernorm" in units
    report = json.loads(out.read_text())
    lanes = report["cycles_per_row"]["lanes"]
    assert report["cycles_per_row"]["softmax_64"] == softmax_cycles(64 // lanes, lanes)
    assert all(f["max_ulp"] <= 1 for f in report["accuracy"] if "max_ulp" in f)
