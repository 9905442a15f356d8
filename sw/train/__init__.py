"""The EdgeBERT training and compression recipe ([S4]).

Stage 1 (backbone): the embeddings, the shared layer and the last off-ramp learn from the
teacher's cached logits (temperature-softened KL) and the labels, with the adaptive-span
penalty; movement or magnitude pruning (unstructured or 1 x n blocks) follows the cubic
schedule, together with embedding magnitude pruning; AdaptivFloat quantization-aware training
starts with the weights and ends with weights and activations.
Stage 2 (off-ramps): the backbone is frozen and the other off-ramps learn, quantized.
Then: activation-bias calibration, the entropy-threshold sweep, the exit-layer predictor and
the DVFS table, all chosen on a held-out slice of the training set and reported on dev.

Checkpoints are safetensors files holding the model, optimizer, pruning scores and RNG state;
rerunning the same command resumes from the last one and gives the same result.

Modules: :mod:`~sw.train.config` (configuration), :mod:`~sw.train.data` (data preparation),
:mod:`~sw.train.losses`, :mod:`~sw.train.calibrate` (evaluation and calibration),
:mod:`~sw.train.exits` (threshold, exit predictor, DVFS table, metrics),
:mod:`~sw.train.checkpoint`, :mod:`~sw.train.average` (the weight mean of a run's last steps,
``train.average_from``), :mod:`~sw.train.loop` (:func:`train`) and :mod:`~sw.train.soup` (the
weight mean of finished runs, ``edgebert train --soup``).
"""

from sw.train.calibrate import calibrate, evaluate_logits
from sw.train.checkpoint import load_student, save_student
from sw.train.config import RecipeConfig, TrainConfig, load_config
from sw.train.data import prune_vocab
from sw.train.exits import choose_threshold, dvfs_table, exit_predictor, sweep_thresholds
from sw.train.loop import train

__all__ = ["TrainConfig", "RecipeConfig", "load_config", "train", "evaluate_logits",
           "calibrate", "sweep_thresholds", "choose_threshold", "exit_predictor", "dvfs_table",
           "prune_vocab", "save_student", "load_student"]
