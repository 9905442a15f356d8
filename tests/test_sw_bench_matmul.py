"""``edgebert bench matmul`` without simulators: the cycle-model table meets the targets."""

import json

from sw.cli import main


def test_model_table_meets_targets(capsys, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "matmul", "--simulators", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MISSES TARGET" not in text
    figures = json.loads(out.read_text())
    assert [r["shape"] for r in figures["model"]] == [
        "32x128x128", "32x128x512", "32x512x128", "128x768x768"]
    for row in figures["model"]:
        assert row["utilization"] >= 0.95
        assert row["block50_ratio"] <= 0.55
    assert figures["rtl"] == {}
