"""Training discovered architectures: schemes (smoke, proxified, full), ImageNet-layout data, a resumable
one-/many-process training run writing one directory (config, log, checkpoints, weights, record)."""

from __future__ import annotations

from nasopt.validation.train.data import DataConfig, DataLayoutError
from nasopt.validation.train.loop import Meter, evaluate, train_one_epoch
from nasopt.validation.train.run import RunExistsError, TrainingStopped, TrainResult, read_log, train
from nasopt.validation.train.schemes import FULL, PROXIFIED, SCHEMES, SMOKE, TrainScheme, get_scheme

__all__ = [
    "FULL",
    "PROXIFIED",
    "SCHEMES",
    "SMOKE",
    "DataConfig",
    "DataLayoutError",
    "Meter",
    "RunExistsError",
    "TrainResult",
    "TrainScheme",
    "TrainingStopped",
    "evaluate",
    "get_scheme",
    "read_log",
    "train",
    "train_one_epoch",
]
