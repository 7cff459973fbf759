"""Training schemes (recipes): frozen dataclasses whose fields are every knob of a run, hashed into its id.

Three are named: ``smoke`` (a tiny CPU recipe for tests), ``proxified`` (exactly how Accel-NASBench trained
its networks) and ``full`` (an EfficientNet-style deployment recipe). The learning rate and the training
resolution are pure functions of the position in the run (:meth:`TrainScheme.lr_at`,
:meth:`TrainScheme.resolution_at`), so a resumed run needs no scheduler object to restore.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ConfigurationError

OPTIMIZERS = ("sgd", "rmsprop_tf")
SCHEDULES = ("triangular", "step")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class TrainScheme:
    """Every setting of a training recipe (the seed and the data are not part of it).

    Learning rates are given for ``lr_batch`` images and scaled linearly to ``batch_size`` (the *global*
    batch, summed over ranks). Resolutions are square sides in pixels.
    """

    name: str = "custom"
    epochs: int = 16
    batch_size: int = 2048
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.425
    lr_batch: int = 2048
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_bn_and_bias: bool = False
    rmsprop_eps: float = 1e-3
    rmsprop_alpha: float = 0.9
    label_smoothing: float = 0.1
    # learning-rate schedule: "triangular" (~0 -> peak at lr_peak_epoch -> 0 at the end, set every step)
    # or "step" (linear warm-up over warmup_epochs from warmup_lr, then x decay_rate every decay_epochs)
    schedule: str = "triangular"
    lr_peak_epoch: float = 2.0
    lr_start_factor: float = 1e-4
    warmup_epochs: float = 0.0
    warmup_lr: float = 1e-6
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    # resolution: min_res up to ramp_start, max_res from ramp_end, interpolated and rounded to res_step
    min_res: int = 160
    max_res: int = 192
    ramp_start: int = 11
    ramp_end: int = 13
    res_step: int = 32
    val_res: int = 256
    val_crop: float = 0.875
    # augmentation and regularisation
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    randaugment: str | None = None  # a timm RandAugment spec, e.g. "rand-m9-mstd0.5"
    random_erasing: float = 0.0
    drop_path_rate: float = 0.2
    dropout: float = 0.2
    activation: str = "relu"
    gate: str = "hardsigmoid"
    ema_decay: float | None = None
    # numerics (precision and channels_last apply on GPU; CPU trains in fp32, contiguous)
    precision: str = "fp16"
    channels_last: bool = True
    sync_bn: bool = False
    # evaluation and checkpoints
    top1_best_of_last: int = 3
    checkpoint_every_steps: int = 500
    #: validate only the last this many epochs (None = every epoch); at least ``top1_best_of_last``. Saves a
    #: validation pass per earlier epoch, which matters for short proxies; their log rows have NaN val_*
    validate_last: int | None = None

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> ConfigurationError:
            return ConfigurationError(
                f"scheme {self.name!r}: {name} must be {want}, got {getattr(self, name)!r}"
            )

        for name in (
            "epochs",
            "batch_size",
            "lr_batch",
            "min_res",
            "max_res",
            "val_res",
            "res_step",
            "top1_best_of_last",
            "checkpoint_every_steps",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "a positive integer")
        for name in (
            "lr",
            "momentum",
            "weight_decay",
            "label_smoothing",
            "lr_peak_epoch",
            "warmup_epochs",
            "warmup_lr",
            "decay_rate",
            "decay_epochs",
            "random_erasing",
            "rmsprop_eps",
            "rmsprop_alpha",
            "lr_start_factor",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(name, "a non-negative number")
            object.__setattr__(self, name, float(v))
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"one of {', '.join(PRECISIONS)}")
        if self.max_res < self.min_res:
            raise bad("max_res", f">= min_res ({self.min_res})")
        if self.ramp_end <= self.ramp_start:
            raise bad("ramp_end", f"> ramp_start ({self.ramp_start})")
        if not 0.0 < self.val_crop <= 1.0:
            raise bad("val_crop", "in (0, 1]")
        scale = tuple(float(s) for s in self.rrc_scale)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise bad("rrc_scale", "two numbers 0 < lo <= hi <= 1")
        object.__setattr__(self, "rrc_scale", scale)
        if self.validate_last is not None:
            v = self.validate_last
            if isinstance(v, bool) or not isinstance(v, int) or v < self.top1_best_of_last:
                want = f"null or an integer >= top1_best_of_last ({self.top1_best_of_last})"
                raise bad("validate_last", want)
        if self.ema_decay is not None and not 0.0 < float(self.ema_decay) < 1.0:
            raise bad("ema_decay", "null or in (0, 1)")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise bad("random_erasing", "in [0, 1]")

    # ---------------------------------------------------------------------------------------- schedules
    @property
    def peak_lr(self) -> float:
        """The learning rate scaled linearly to this scheme's global batch."""
        return self.lr * self.batch_size / self.lr_batch

    def _lr_at_epoch(self, t: float) -> float:
        peak = self.peak_lr
        if self.schedule == "triangular":
            xs = (0.0, self.lr_peak_epoch, float(self.epochs))
            ys = (self.lr_start_factor * peak, peak, 0.0)
            if t <= xs[1]:
                return ys[0] + (ys[1] - ys[0]) * (t / xs[1] if xs[1] > 0 else 1.0)
            return max(0.0, ys[1] + (ys[2] - ys[1]) * (t - xs[1]) / (xs[2] - xs[1]))
        if t < self.warmup_epochs:
            return self.warmup_lr + (peak - self.warmup_lr) * t / self.warmup_epochs
        return peak * self.decay_rate ** math.floor(t / self.decay_epochs)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Learning rate of step ``step`` (0-based) of epoch ``epoch``: set every step.

        Triangular: within an epoch the rate goes linearly from the epoch's start value to the next
        epoch's (both ends included, as the dataset's loop did); step decay: the rate at the fractional
        epoch ``epoch + step / steps_per_epoch`` (timm's per-update stepping).
        """
        if self.schedule == "triangular":
            frac = step / (steps_per_epoch - 1) if steps_per_epoch > 1 else 0.0
            a, b = self._lr_at_epoch(float(epoch)), self._lr_at_epoch(float(epoch + 1))
            return a + (b - a) * frac
        return self._lr_at_epoch(epoch + step / steps_per_epoch)

    def resolution_at(self, epoch: int) -> int:
        """Training resolution of ``epoch`` (progressive resizing; constant when min_res == max_res)."""
        if epoch <= self.ramp_start:
            return self.min_res
        if epoch >= self.ramp_end:
            return self.max_res
        x = self.min_res + (self.max_res - self.min_res) * (epoch - self.ramp_start) / (
            self.ramp_end - self.ramp_start
        )
        return round(x / self.res_step) * self.res_step  # round half to even, like numpy

    # ------------------------------------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values of every field (``validate_last`` only when set, so schemes that validate every
        epoch keep the fingerprints they had before the field existed)."""
        d = dataclasses.asdict(self)
        d["rrc_scale"] = list(self.rrc_scale)
        if d["validate_last"] is None:
            del d["validate_last"]
        return d

    def validates(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with a validation pass."""
        return self.validate_last is None or epoch >= self.epochs - self.validate_last

    def fingerprint(self) -> str:
        """8 hex digits of the sha256 of the settings (the name included): part of the run id."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainScheme:
        """A copy with some fields changed; an unknown field is a one-line :class:`ConfigurationError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigurationError(
                f"unknown scheme setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        values = dict(overrides)
        if "rrc_scale" in values:
            values["rrc_scale"] = tuple(values["rrc_scale"])
        return dataclasses.replace(self, **values)


#: Accel-NASBench's training recipe (issue 12 item 2); see README "Training" for the (no) deviations.
PROXIFIED = TrainScheme(name="proxified")

#: EfficientNet-style deployment recipe (timm's EfficientNet-B0 hyper-parameters, lr 0.024 per 256 images).
FULL = TrainScheme(
    name="full",
    epochs=450,
    batch_size=2048,
    optimizer="rmsprop_tf",
    lr=0.024,
    lr_batch=256,
    momentum=0.9,
    weight_decay=1e-5,
    rmsprop_eps=1e-3,
    rmsprop_alpha=0.9,
    schedule="step",
    warmup_epochs=5.0,
    warmup_lr=1e-6,
    decay_rate=0.97,
    decay_epochs=2.4,
    min_res=224,
    max_res=224,
    val_res=224,
    val_crop=0.875,
    randaugment="rand-m9-mstd0.5",
    random_erasing=0.2,
    activation="silu",
    gate="sigmoid",
    ema_decay=0.9999,
    top1_best_of_last=1,
)

#: A tiny recipe that learns on 32 px Fashion-MNIST in a CPU-minute (for tests and smoke runs).
SMOKE = TrainScheme(
    name="smoke",
    epochs=4,
    batch_size=50,
    lr=0.1,
    lr_batch=256,
    lr_peak_epoch=1.0,
    weight_decay=5e-5,
    min_res=32,
    max_res=32,
    val_res=32,
    val_crop=1.0,
    rrc_scale=(0.35, 1.0),
    drop_path_rate=0.0,
    dropout=0.0,
    precision="fp32",
    channels_last=False,
    top1_best_of_last=1,
    checkpoint_every_steps=10,
)

SCHEMES: dict[str, TrainScheme] = {s.name: s for s in (SMOKE, PROXIFIED, FULL)}


def get_scheme(name: str | TrainScheme, **overrides: Any) -> TrainScheme:
    """A named scheme (``smoke``, ``proxified``, ``full``) with optional overrides."""
    if isinstance(name, TrainScheme):
        base = name
    elif name in SCHEMES:
        base = SCHEMES[name]
    else:
        raise ConfigurationError(f"unknown training scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    return base.with_overrides(overrides) if overrides else base
