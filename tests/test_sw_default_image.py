"""The committed default image loads and reproduces the dev accuracy recorded in it."""

import json
import os
from pathlib import Path

import pytest

from sw.data import ENV_VAR, load_split
from sw.image import HwParams, image_bytes, read_image

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "sw" / "assets" / "sst2_default.ebimg"
METRICS = ROOT / "sw" / "assets" / "sst2_default.json"


def sst2_dir():
    for d in (os.environ.get(ENV_VAR), ROOT / ".." / "shared" / "data" / "sst2"):
        if d and (Path(d) / "dev.tsv").is_file():
            return Path(d)
    message = f"SST-2 not found: set {ENV_VAR} to the GLUE SST-2 directory"
    if os.environ.get("CI"):
        # CI has ../shared beside the checkout: a missing data set there is a failure, not a skip.
        pytest.fail(message)
    pytest.skip(message)


def test_default_image_reads_back_identically():
    img = read_image(IMAGE, hw=HwParams())
    assert image_bytes(img) == IMAGE.read_bytes()
    assert IMAGE.stat().st_size <= 2 * 1024 * 1024  # EdgeBERT's eNVM budget
    recorded = json.loads(METRICS.read_text())
    assert recorded["image_bytes"] == IMAGE.stat().st_size
    assert img.meta["metrics"]["dev_accuracy_all_layers"] == recorded["dev"]["accuracy_all_layers"]


@pytest.fixture(scope="module")
def dev_float():
    """The float fake-quant evaluation of the default image on SST-2 dev (computed once)."""
    from sw.commands.evaluate import evaluate_image

    img = read_image(IMAGE)
    return img, load_split(sst2_dir(), "dev"), evaluate_image(img, load_split(sst2_dir(), "dev"))


@pytest.mark.slow
def test_default_image_reproduces_recorded_dev_accuracy(dev_float):
    img, _, res = dev_float
    m = img.meta["metrics"]
    assert res["n"] == m["n_dev"] == 872
    assert res["accuracy_all_layers"] == m["dev_accuracy_all_layers"]
    assert res["accuracy_early_exit"] == m["dev_accuracy_early_exit"]
    assert res["avg_layers"] == m["dev_avg_layers"]


@pytest.mark.slow
def test_golden_executor_agrees_with_the_float_student_on_dev(dev_float):
    """What the chip computes (the golden executor running the compiled program) against the
    float fake-quant student on the same image, over the whole dev split: accuracies within
    half a point, predicted labels equal on at least 99 % of the sentences (all layers and with
    early exit), average exit layer within 0.05."""
    from sw.program.layout import lay_out
    from sw.program.run import golden_metrics

    img, dev, res = dev_float
    g = golden_metrics(lay_out(img), dev)
    assert abs(g["accuracy_all_layers"] - res["accuracy_all_layers"]) <= 0.005
    assert abs(g["accuracy_early_exit"] - res["accuracy_early_exit"]) <= 0.005
    assert (g["labels_all_layers"] == res["labels_all_layers"]).double().mean() >= 0.99
    assert (g["labels_early_exit"] == res["labels_early_exit"]).double().mean() >= 0.99
    assert abs(g["avg_layers"] - res["avg_layers"]) <= 0.05


def test_384_image_reads_back_and_fits_the_reram_budget():
    """The second committed image (the 384-wide student, issue 20): byte-identical read-back,
    its recorded summary matches it, and its ReRAM section (token table with masks and row
    pointers, position and segment tables) fits the 2 MB eNVM budget of the memory map."""
    from hw.memmap import MemoryMap
    from sw.program.layout import lay_out

    path = ROOT / "sw" / "assets" / "sst2_384.ebimg"
    img = read_image(path)
    assert image_bytes(img) == path.read_bytes()
    recorded = json.loads(path.with_suffix(".json").read_text())
    assert recorded["image_bytes"] == path.stat().st_size
    assert recorded["sections"] == img.section_bytes()
    c = img.meta["student_config"]
    assert (c["hidden"], c["emb_dim"], c["heads"], c["ffn"]) == (384, 384, 12, 1536)
    assert img.section_bytes()["reram"] <= MemoryMap(n=img.hw.n).reram_bytes == 2 * 1024 * 1024
    lay = lay_out(img)
    assert lay.memmap.reram_bytes == 2 * 1024 * 1024
