"""The proxy search space: which knobs of a reference training scheme a proxy may turn down, and to what.

A :class:`ProxySpace` holds, per knob, the levels a proxy may take; a :class:`ProxySettings` is one point
(one level per knob) and turns a reference :class:`~nasopt.validation.train.schemes.TrainScheme` into the
proxy's scheme (:meth:`ProxySettings.scheme`) plus a training-set fraction. Knobs:

- ``epochs`` -- training epochs (the learning-rate schedule is stretched to them);
- ``min_res`` / ``max_res`` / ``ramp`` -- progressive resizing: ``min_res`` first, ``max_res`` from epoch
  ``ramp`` x (epochs - 1) on (a fraction; the ramp lasts a quarter of the run before it), ignored when both
  resolutions agree;
- ``train_fraction`` -- the class-stratified share of the training images (``DataConfig.train_fraction``);
- ``batch_size`` -- the global batch; the learning rate scales linearly (``TrainScheme.peak_lr``);
- ``lr_peak`` -- the epoch of the peak learning rate as a fraction of the epochs.

:meth:`ProxySpace.check` refuses a space whose levels reach past the reference (more epochs, a higher
resolution, more data): such a "proxy" would cost more than the reference it stands in for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark._typing import FloatArray
from benchmark.errors import ConfigurationError

if TYPE_CHECKING:
    from nasopt.validation.train.schemes import TrainScheme

#: the knobs, in the order of a settings vector (and of the grid's nesting, outermost first)
KNOBS: tuple[str, ...] = ("epochs", "min_res", "max_res", "ramp", "train_fraction", "batch_size", "lr_peak")
_INT_KNOBS = frozenset({"epochs", "min_res", "max_res", "batch_size"})
#: relative cost of validating one image against training on one (a forward pass against forward + backward)
VAL_WEIGHT = 1.0 / 3.0


class ProxySpaceError(ConfigurationError):
    """A proxy space, settings or search configuration that cannot be used."""


@dataclass(frozen=True)
class ProxySettings:
    """One proxy: a value per knob (see the module docstring)."""

    epochs: int
    min_res: int
    max_res: int
    ramp: float = 1.0
    train_fraction: float = 1.0
    batch_size: int = 64
    lr_peak: float = 0.25

    def __post_init__(self) -> None:
        for name in KNOBS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ProxySpaceError(f"proxy setting {name} must be a positive number, got {v!r}")
            if name in _INT_KNOBS:
                if int(v) != v:
                    raise ProxySpaceError(f"proxy setting {name} must be an integer, got {v!r}")
                object.__setattr__(self, name, int(v))
            else:
                object.__setattr__(self, name, float(v))
        if self.min_res > self.max_res:
            raise ProxySpaceError(f"proxy setting min_res={self.min_res} exceeds max_res={self.max_res}")
        if self.train_fraction > 1.0 or self.ramp > 1.0 or self.lr_peak > 1.0:
            raise ProxySpaceError(
                f"proxy settings train_fraction, ramp and lr_peak are fractions in (0, 1], got "
                f"{self.train_fraction}, {self.ramp}, {self.lr_peak}"
            )
        if self.min_res == self.max_res:
            object.__setattr__(self, "ramp", 1.0)  # no ramp: one canonical point

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KNOBS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProxySettings:
        unknown = sorted(set(d) - set(KNOBS))
        if unknown:
            raise ProxySpaceError(f"unknown proxy setting(s) {', '.join(unknown)}; known: {', '.join(KNOBS)}")
        return cls(**dict(d))

    @property
    def key(self) -> str:
        """8 hex digits of the settings (names a cache folder)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def ramp_epochs(self) -> tuple[int, int]:
        """``(ramp_start, ramp_end)`` of the scheme: max_res from epoch ``round(ramp x (epochs - 1))`` (so
        ``ramp = 1`` trains the last epoch at max_res), the ramp a quarter of the run before it."""
        end = max(1, round(self.ramp * (self.epochs - 1)))
        return max(0, end - max(1, round(self.epochs / 4))), end

    def scheme(self, reference: TrainScheme) -> TrainScheme:
        """The reference scheme with this proxy's knobs (named ``proxy``; the fingerprint tells proxies
        apart)."""
        start, end = self.ramp_epochs()
        return reference.with_overrides(
            {
                "name": "proxy",
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "min_res": self.min_res,
                "max_res": self.max_res,
                "ramp_start": start,
                "ramp_end": end,
                "lr_peak_epoch": self.lr_peak * self.epochs,
                "top1_best_of_last": min(reference.top1_best_of_last, self.epochs),
                # a proxy's record reads only its last epochs: validating earlier ones is cost for nothing
                "validate_last": min(reference.top1_best_of_last, self.epochs),
            }
        )

    def resolutions(self) -> list[int]:
        """Training resolution of every epoch (as ``TrainScheme.resolution_at`` with res_step 1)."""
        start, end = self.ramp_epochs()
        out = []
        for e in range(self.epochs):
            if e <= start:
                out.append(self.min_res)
            elif e >= end:
                out.append(self.max_res)
            else:
                out.append(round(self.min_res + (self.max_res - self.min_res) * (e - start) / (end - start)))
        return out


def nominal_cost(
    settings: ProxySettings,
    reference: ProxySettings,
    val_share: float = 0.1,
    step_share: float = 0.0,
    *,
    reference_val_epochs: int | None = None,
    proxy_val_epochs: int | None = None,
) -> float:
    """A-priori cost of a proxy as a fraction of the reference's. Per epoch: training pixels (images x
    resolution²) with weight ``1 - step_share``, optimizer steps (images / batch) with weight
    ``step_share`` (the per-step overhead that dominates small networks on CPU), both relative to a
    reference epoch; plus a validation pass costing ``val_share`` of a reference epoch for every epoch
    the run validates: the last ``reference_val_epochs`` / ``proxy_val_epochs`` of the reference / the
    proxy (None: every epoch; a proxy validates only the epochs its record reads,
    ``TrainScheme.top1_best_of_last``)."""
    ref_px = reference.train_fraction * float(np.mean(np.square(reference.resolutions())))
    ref_steps = reference.train_fraction / reference.batch_size

    def total(s: ProxySettings, val_epochs: int | None) -> float:
        px = sum(s.train_fraction * r * r for r in s.resolutions()) / ref_px
        steps = s.epochs * (s.train_fraction / s.batch_size) / ref_steps
        validated = s.epochs if val_epochs is None else min(s.epochs, val_epochs)
        return float((1.0 - step_share) * px + step_share * steps + validated * val_share)

    return total(settings, proxy_val_epochs) / total(reference, reference_val_epochs)


@dataclass(frozen=True)
class ProxySpace:
    """Levels of every knob (see the module docstring); frozen, JSON round-trips by :meth:`to_dict`."""

    epochs: tuple[int, ...]
    min_res: tuple[int, ...]
    max_res: tuple[int, ...]
    ramp: tuple[float, ...] = (1.0,)
    train_fraction: tuple[float, ...] = (1.0,)
    batch_size: tuple[int, ...] = (64,)
    lr_peak: tuple[float, ...] = (0.25,)

    def __post_init__(self) -> None:
        for name in KNOBS:
            raw = getattr(self, name)
            levels = (raw,) if isinstance(raw, (int, float)) else tuple(raw)
            if not levels:
                raise ProxySpaceError(f"proxy space knob {name} has no levels; give at least one")
            try:
                conv = tuple(
                    getattr(ProxySettings(**{**_PLACEHOLDER, name: v}), name) for v in sorted(set(levels))
                )
            except ProxySpaceError as exc:
                raise ProxySpaceError(f"proxy space knob {name}: {exc}") from None
            object.__setattr__(self, name, conv)
        if min(self.min_res) > max(self.max_res):
            raise ProxySpaceError(
                f"proxy space: every min_res level exceeds every max_res level "
                f"({self.min_res} > {self.max_res})"
            )

    def levels(self) -> dict[str, tuple[float, ...]]:
        return {k: getattr(self, k) for k in KNOBS}

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.levels().items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProxySpace:
        unknown = sorted(set(d) - set(KNOBS))
        if unknown:
            raise ProxySpaceError(
                f"unknown proxy space knob(s) {', '.join(unknown)}; known: {', '.join(KNOBS)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, Sequence) else v for k, v in d.items()})

    @classmethod
    def around(cls, reference: TrainScheme, train_fraction: float = 1.0) -> ProxySpace:
        """A default space below a reference scheme: 1/8-3/4 of its epochs, 1/2-1 of its resolution,
        1/4-1 of its data, half to twice its batch, the LR peak at 10-40 % of the run."""
        e = reference.epochs
        epochs = sorted({max(1, round(e * f)) for f in (0.125, 0.25, 0.375, 0.5, 0.75)} - {e} or {1})
        r = reference.max_res
        res = sorted({max(8, round(r * f / 8) * 8) for f in (0.5, 0.75, 1.0)})
        return cls(
            epochs=tuple(epochs),
            min_res=tuple(res),
            max_res=tuple(x for x in res if x >= res[len(res) // 2]),
            ramp=(0.5, 0.75, 1.0),
            train_fraction=tuple(train_fraction * f for f in (0.25, 0.5, 0.75, 1.0)),
            batch_size=tuple(
                sorted({max(1, reference.batch_size // 2), reference.batch_size, reference.batch_size * 2})
            ),
            lr_peak=(0.1, 0.25, 0.4),
        )

    def check(self, reference: TrainScheme, train_fraction: float = 1.0) -> None:
        """Refuse levels past the reference (a proxy that trains longer, larger or on more data than the
        reference would cost more than it): one-line :class:`ProxySpaceError`."""
        over = []
        if max(self.epochs) > reference.epochs:
            over.append(f"epochs up to {max(self.epochs)} > the reference's {reference.epochs}")
        if max(self.max_res) > reference.max_res:
            over.append(f"max_res up to {max(self.max_res)} > the reference's {reference.max_res}")
        if max(self.train_fraction) > train_fraction + 1e-12:
            over.append(f"train_fraction up to {max(self.train_fraction)} > the reference's {train_fraction}")
        if over:
            raise ProxySpaceError(
                "proxy space allows a proxy costlier than the reference ("
                + "; ".join(over)
                + "); lower those levels to at most the reference's"
            )

    def points(self) -> list[ProxySettings]:
        """Every valid point (min_res <= max_res), without duplicates, in grid order: the full factorial
        in knob order (:data:`KNOBS`, the first outermost), each knob's levels from high to low."""
        seen: dict[ProxySettings, None] = {}
        for combo in itertools.product(*(sorted(getattr(self, k), reverse=True) for k in KNOBS)):
            v = dict(zip(KNOBS, combo, strict=True))
            if v["min_res"] <= v["max_res"]:
                seen.setdefault(ProxySettings(**v), None)
        return list(seen)

    def encode(self, points: Sequence[ProxySettings]) -> FloatArray:
        """``(n, 7)`` positions in ``[0, 1]``: per knob the rank of the point's level among the knob's
        levels (0 = lowest; a single-level knob is 0)."""
        out = np.zeros((len(points), len(KNOBS)), dtype=np.float64)
        for j, k in enumerate(KNOBS):
            lv = getattr(self, k)
            if len(lv) < 2:
                continue
            idx = {v: i for i, v in enumerate(lv)}
            for i, p in enumerate(points):
                val = getattr(p, k)
                # ramp is canonicalised to 1.0 without a ramp, which may not be a level: nearest level
                pos = idx.get(val, int(np.argmin([abs(x - val) for x in lv])))
                out[i, j] = pos / (len(lv) - 1)
        return out


_PLACEHOLDER: dict[str, Any] = {"epochs": 1, "min_res": 1, "max_res": 10**6}


def reference_settings(reference: TrainScheme, train_fraction: float = 1.0) -> ProxySettings:
    """The reference scheme seen as a point of the knobs (for :func:`nominal_cost`)."""
    ramp = reference.ramp_end / reference.epochs if reference.min_res != reference.max_res else 1.0
    return ProxySettings(
        epochs=reference.epochs,
        min_res=reference.min_res,
        max_res=reference.max_res,
        ramp=min(1.0, ramp),
        train_fraction=train_fraction,
        batch_size=reference.batch_size,
        lr_peak=min(1.0, max(1e-9, reference.lr_peak_epoch / reference.epochs)),
    )


def replace(settings: ProxySettings, **changes: Any) -> ProxySettings:
    """A copy of ``settings`` with some knobs changed."""
    return dataclasses.replace(settings, **changes)
