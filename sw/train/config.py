"""Training configuration: the ``[student]``, ``[prune]`` and ``[train]`` sections, from defaults,
a TOML file and ``section.key=value`` overrides."""

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hw.checks import check_count
from sw.compress import PruneConfig
from sw.student import StudentConfig

__all__ = ["CALIB_METHODS", "HIDDEN_NORMS", "HIDDEN_TARGETS", "RecipeConfig", "TrainConfig",
           "load_config"]

CALIB_METHODS = ("max", "percentile", "mse")
HIDDEN_TARGETS = ("tokens", "mean")
HIDDEN_NORMS = ("batch", "corpus")


@dataclass
class RecipeConfig:
    """Optimisation and recipe settings (the ``[train]`` section of a config file)."""

    seed: int = 0
    # The seed of the training order alone (-1: seed). Another order_seed resumed from a run's
    # checkpoint makes a branch of that run on the same data split and vocabulary.
    order_seed: int = -1
    batch_size: int = 64
    lr: float = 1e-3
    ramp_lr: float = 1e-3
    warmup: float = 0.05
    weight_decay: float = 0.01
    epochs: float = 3.0
    ramp_epochs: float = 0.5
    kd_temperature: float = 2.0
    kd_alpha: float = 0.9
    span_lambda: float = 0.02
    qat_weights_from: float = 0.6
    qat_acts_from: float = 0.92
    holdout: int = 1000
    holdout_min_words: int = 0
    train_limit: int = 0
    augment: int = 0
    hidden_beta: float = 0.0
    hidden_target: str = "tokens"
    # How the "tokens" state loss of a batch is normalised: "batch" divides its squared error by
    # the batch's own real tokens (each batch weighs the same, so a token of a batch of short
    # phrases weighs more than one of a batch of long sentences); "corpus" by the batch size
    # times the training set's mean tokens per sentence (every token weighs the same, however
    # the batches are cut). docs/training.md, "Every token weighs the same".
    hidden_norm: str = "batch"
    # Long sentences more often: each training example (augmentations included) of at least
    # long_min_tokens tokens ([CLS] and [SEP] counted) occurs long_repeat times in every pass
    # of the training order. The step count stays epochs x the examples (each counted once),
    # so only the mix of a run's batches changes. SST-2 dev sentences are 25.5 tokens long on
    # average, the training examples 15.5. docs/training.md, "Long sentences more often".
    long_repeat: int = 1
    long_min_tokens: int = 20
    # Mixed-length batches: each step's batch takes batch_mix examples from the next
    # length-sorted batch of the order (another length) and batch_size - batch_mix from its own;
    # 0 keeps whole batches of one length. Every run before the whole-batch fix (commit
    # ff6307d) drew such batches by accident: 9 from one batch and 23 from the next in most of
    # the default image's runs (batch_mix 9 or 23). A batch_mix = 9 pair gained nothing on dev
    # (docs/training.md, "Mixed-length batches").
    batch_mix: int = 0
    # Per-application state loss (TinyBERT's layer-wise loss at equal width): application i's
    # token states against the teacher's layer round((i + 1) * L_teacher / L) output, computed
    # by the fine-tuned teacher on each batch (no cache), weight layer_beta.
    layer_beta: float = 0.0
    vocab_min_count: int = 1
    pca_init: bool = True
    teacher_init_layer: int = 0
    teacher_init_examples: int = 512
    # A float student's state dict (torch.save) to start from instead of the initialisations
    # above, e.g. a float proxy's (scripts/proxy384.py): the same config and training set, so
    # the same kept vocabulary.
    init_from: str = ""
    # Tail weight averaging (sw/train/average.py): the backbone's weights averaged over every
    # step from this fraction of the backbone steps to the last; 1.0 keeps the last weights.
    # At least prune.end (the masks are final from there).
    average_from: float = 1.0
    # The faster training step (sw/train/fast.py): bfloat16 products in the linear layers,
    # 16-bit dropout draws, fused AdamW: about 1.5 times faster per step on AVX-512 BF16 CPUs,
    # 1.4 points less dev accuracy in two runs (docs/training.md); evaluation stays float32.
    fast: bool = False
    # The products' dtype in the fast step: "bfloat16" (above), or "float32" (only the dropout
    # draws and AdamW change: about 7 % faster per step, the same arithmetic for the products).
    fast_products: str = "bfloat16"
    ckpt_every: int = 200
    calib_examples: int = 512
    calib_method: str = "mse"
    calib_percentile: float = 99.99
    max_exit_loss: float = 1.0
    predictor_bins: int = 16
    dvfs_mhz: list = field(default_factory=lambda: [250, 500, 750, 1000])
    dvfs_mv: list = field(default_factory=lambda: [500, 600, 700, 800])

    def __post_init__(self):
        if self.calib_method not in CALIB_METHODS:
            raise ValueError(f"calib_method must be one of {CALIB_METHODS}, "
                             f"not {self.calib_method!r}")
        check_count("holdout_min_words", self.holdout_min_words, lo=0)
        if self.hidden_target not in HIDDEN_TARGETS:
            raise ValueError(f"hidden_target must be one of {HIDDEN_TARGETS}, "
                             f"not {self.hidden_target!r}")
        if self.hidden_norm not in HIDDEN_NORMS:
            raise ValueError(f"hidden_norm must be one of {HIDDEN_NORMS}, "
                             f"not {self.hidden_norm!r}")
        if self.hidden_norm == "corpus" and self.hidden_target != "tokens":
            raise ValueError("hidden_norm = \"corpus\" weighs tokens; it needs "
                             f"hidden_target = \"tokens\", not {self.hidden_target!r}")
        check_count("long_repeat", self.long_repeat)
        check_count("long_min_tokens", self.long_min_tokens)
        check_count("batch_mix", self.batch_mix, lo=0)
        if self.batch_mix >= self.batch_size:
            raise ValueError(f"batch_mix must be smaller than batch_size ({self.batch_size}), "
                             f"not {self.batch_mix!r}")
        for f in ("hidden_beta", "layer_beta"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0, not {getattr(self, f)!r}")
        if not isinstance(self.teacher_init_layer, int) or self.teacher_init_layer < 0:
            raise ValueError(f"teacher_init_layer must be 0 (off) or a teacher layer (1-based), "
                             f"not {self.teacher_init_layer!r}")
        check_count("augment", self.augment, lo=0)
        for f in ("batch_size", "holdout", "calib_examples", "predictor_bins", "ckpt_every",
                  "teacher_init_examples"):
            check_count(f, getattr(self, f))
        if self.epochs <= 0 or self.ramp_epochs < 0:
            raise ValueError(f"epochs must be > 0 and ramp_epochs >= 0, not {self.epochs!r}, "
                             f"{self.ramp_epochs!r}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise ValueError(f"kd_alpha must be in [0, 1], not {self.kd_alpha!r}")
        if not 0.0 <= self.qat_weights_from <= self.qat_acts_from <= 1.0:
            raise ValueError("need 0 <= qat_weights_from <= qat_acts_from <= 1")
        if not 0.0 <= self.average_from <= 1.0:
            raise ValueError(f"average_from must be in [0, 1], not {self.average_from!r}")
        if not isinstance(self.fast, bool):
            raise ValueError(f"fast must be true or false, not {self.fast!r}")
        if self.fast_products not in ("bfloat16", "float32"):
            raise ValueError("fast_products must be \"bfloat16\" or \"float32\", "
                             f"not {self.fast_products!r}")
        if len(self.dvfs_mhz) != len(self.dvfs_mv) or not self.dvfs_mhz:
            raise ValueError("dvfs_mhz and dvfs_mv must be non-empty lists of equal length")
        if sorted(self.dvfs_mhz) != list(self.dvfs_mhz):
            raise ValueError(f"dvfs_mhz must be ascending, not {self.dvfs_mhz!r}")


@dataclass
class TrainConfig:
    """Everything a run needs: ``[student]``, ``[prune]`` and ``[train]`` sections."""

    student: StudentConfig = field(default_factory=StudentConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    train: RecipeConfig = field(default_factory=RecipeConfig)

    def __post_init__(self):
        if self.train.average_from < self.prune.end:
            raise ValueError(f"train.average_from ({self.train.average_from}) must be at least "
                             f"prune.end ({self.prune.end}): the masks change until then")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        sections = {"student": StudentConfig, "prune": PruneConfig, "train": RecipeConfig}
        unknown = set(d) - set(sections)
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        out = {}
        for name, kind in sections.items():
            sec = dict(d.get(name, {}))
            known = {f.name for f in dataclasses.fields(kind)}
            bad = set(sec) - known
            if bad:
                raise ValueError(f"unknown keys in [{name}]: {sorted(bad)}")
            out[name] = kind(**sec)
        return cls(**out)


def _parse_value(text):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path=None, overrides=()):
    """Defaults, then the TOML file ``path``, then ``section.key=value`` overrides."""
    d = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        d = tomllib.loads(path.read_text())
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"override must look like section.key=value, not {item!r}")
        d.setdefault(section, {})[name] = _parse_value(value.strip())
    return TrainConfig.from_dict(d)
