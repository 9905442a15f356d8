"""The committed images load and reproduce the dev accuracy recorded in them: the default
(the 384-wide student, configs/default.toml) and the small one (width 128, configs/small.toml,
quick to simulate)."""

import json
import os
from pathlib import Path

import pytest

from sw.data import ENV_VAR, load_split
from sw.image import HwParams, image_bytes, read_image

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "sw" / "assets" / "sst2_default.ebimg"
SMALL_IMAGE = ROOT / "sw" / "assets" / "sst2_small.ebimg"
IMAGES = {"default": IMAGE, "small": SMALL_IMAGE}


def sst2_dir():
    for d in (os.environ.get(ENV_VAR), ROOT / ".." / "shared" / "data" / "sst2"):
        if d and (Path(d) / "dev.tsv").is_file():
            return Path(d)
    message = f"SST-2 not found: set {ENV_VAR} to the GLUE SST-2 directory"
    if os.environ.get("CI"):
        # CI has ../shared beside the checkout: a missing data set there is a failure, not a skip.
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("name", IMAGES)
def test_image_reads_back_identically_and_fits_the_reram_budget(name):
    """Byte-identical read-back, the recorded summary matches the image, and its ReRAM section
    (token table with masks and row pointers, position and segment tables) fits EdgeBERT's
    2 MB eNVM budget, the memory map's ReRAM store."""
    from hw.memmap import MemoryMap
    from sw.program.layout import lay_out

    path = IMAGES[name]
    img = read_image(path, hw=HwParams())
    assert image_bytes(img) == path.read_bytes()
    recorded = json.loads(path.with_suffix(".json").read_text())
    assert recorded["image_bytes"] == path.stat().st_size
    assert recorded["sections"] == img.section_bytes()
    assert img.meta["metrics"]["dev_accuracy_all_layers"] == recorded["dev"]["accuracy_all_layers"]
    assert img.section_bytes()["reram"] <= MemoryMap(n=img.hw.n).reram_bytes == 2 * 1024 * 1024
    assert lay_out(img).memmap.reram_bytes == 2 * 1024 * 1024
    c = img.meta["student_config"]
    widths = {"default": (384, 384, 12, 1536), "small": (128, 128, 4, 512)}[name]
    assert (c["hidden"], c["emb_dim"], c["heads"], c["ffn"]) == widths


@pytest.fixture(scope="module", params=list(IMAGES))
def dev_float(request):
    """The float fake-quant evaluation of a committed image on SST-2 dev (computed once)."""
    from sw.commands.evaluate import evaluate_image

    img = read_image(IMAGES[request.param])
    dev = load_split(sst2_dir(), "dev")
    return img, dev, evaluate_image(img, dev)


@pytest.mark.slow
def test_image_reproduces_recorded_dev_accuracy(dev_float):
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
