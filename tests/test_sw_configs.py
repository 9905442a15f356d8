"""The training configurations in configs/ load, and the quick one differs from the small one
only where it says it does."""

import dataclasses
from pathlib import Path

import pytest

from sw.train import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# The settings configs/quick.toml changes, with the values it documents.
QUICK_CHANGES = {("train", "augment"): 0, ("train", "epochs"): 1.0,
                 ("train", "ramp_epochs"): 0.02, ("train", "qat_weights_from"): 1.0,
                 ("train", "qat_acts_from"): 1.0}


def _flat(cfg):
    return {(section, key): value
            for section, values in dataclasses.asdict(cfg).items()
            for key, value in values.items()}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.student.hidden % 16 == 0 and cfg.student.emb_dim % 16 == 0


def test_quick_config_is_the_small_one_but_shorter():
    small = _flat(load_config(CONFIGS / "small.toml"))
    quick = _flat(load_config(CONFIGS / "quick.toml"))
    assert small.keys() == quick.keys()
    differ = {k for k in small if small[k] != quick[k]}
    assert differ == set(QUICK_CHANGES)
    for k, v in QUICK_CHANGES.items():
        assert quick[k] == v
