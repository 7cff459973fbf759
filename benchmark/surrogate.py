"""Surrogate ensembles per target, fitted on the dataset and compiled to lookup tables.

Two model kinds, chosen per target (why each: benchmark/SURROGATE.md):

- :class:`TreesModel` (accuracy): gradient-boosted trees of depth 3 on the 28 gene indices.
- :class:`AdditiveModel` (device throughput/latency and training time): hardware cost is close to additive
  over layers in *latency* space (:meth:`benchmark.targets.Target.to_latency_space`), so a ridge-regularised
  per-block lookup model (one weight per block configuration) captures most of it, and a small boosted model
  corrects the remaining multiplicative residual: ``latency = additive(x) * exp(residual(x))``.

The boosting library is a :class:`benchmark.boosters.BoosterBackend` (XGBoost by default, LightGBM
selectable). An ensemble has ``n_members`` members; member ``m`` is fitted on all training rows except fold
``m`` (its early-stopping set), so members differ in data as well as in seed, every record is held out by
exactly one member, and the out-of-fold predictions give an honest quality estimate and a calibration factor
for the ensemble standard deviation.

Depth-3 trees decide every leaf by at most 3 blocks, so each fitted ensemble is compiled *exactly* into
block-triple tables (:mod:`benchmark.tables`): prediction becomes a handful of array gathers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.boosters import ACCURACY_PRESET_NAMES, BACKENDS, BoosterBackend
from benchmark.coverage import GENES_KEY, TrainingCoverage
from benchmark.errors import NasoptError
from benchmark.metrics import fit_quality
from benchmark.tables import BLOCK_SIZES, FusedTables, Leaf, TripleTables, block_configs
from benchmark.targets import TARGET_NAMES, Target, get_target, is_target

MODEL_FORMAT_VERSION = 2
#: bases of the additive model's per-block lookup (see :class:`SurrogateConfig`)
ADDITIVE_BASES = ("onehot", "physical")
#: settings added after format 2: left out of the JSON (and so of the cache key) at their default
_OMITTED_WHEN_DEFAULT = {"additive_basis": "onehot"}


class SurrogateConfigError(NasoptError, ValueError):
    """An invalid surrogate configuration; the message names the field and the allowed values."""


@dataclass(frozen=True)
class SurrogateConfig:
    """Everything that decides a fitted surrogate (its hash keys the cache).

    Attributes:
        backend: ``"xgboost"`` or ``"lightgbm"``.
        n_members: ensemble size (>= 2; each member holds out one fold for early stopping).
        seed: seed of the fold assignment and of every member's boosting randomness.
        targets: targets to fit (default: all).
        device_model: ``"additive"`` (per-block lookup + boosted residual) or ``"trees"`` (plain boosting).
        early_stopping_rounds: rounds without improvement on the held-out fold before stopping.
        max_rounds: upper bound of boosting rounds.
        ridge: L2 penalty of the per-block lookup model (relative to the number of rows).
        accuracy_preset: hyperparameters the accuracy (and ``device_model="trees"``) boosting starts from:
            ``"tuned"`` (default, re-tuned by cross-validation) or ``"upstream"`` (Accel-NASBench's); the
            values live on each backend (:mod:`benchmark.boosters`).
        accuracy_params / residual_params: overrides merged into the defaults of the backend.
        accuracy_block_groups / residual_block_groups: how many blocks one tree path may touch (1-3);
            below 3, boosting runs with interaction constraints so the compiled tables stay small.
        split: training rows: ``"all"`` (every record), ``"default"`` (upstream train split) or
            ``"random"`` (seeded 80/10/10); with a split, quality is scored on its validation part.
        additive_basis: basis of the additive model's per-block lookup: ``"onehot"`` (default, one weight
            per block configuration, ridge ``ridge``) or ``"physical"`` (:mod:`benchmark.cost_features`:
            shared physical cost coefficients plus penalised per-block corrections; for devices with few
            measurements). Written to the JSON (and the cache key) only when not the default, so the keys
            of existing caches stay.
    """

    backend: str = "xgboost"
    n_members: int = 5
    seed: int = 0
    targets: tuple[str, ...] = TARGET_NAMES
    device_model: str = "additive"
    early_stopping_rounds: int = 100
    max_rounds: int = 20000
    ridge: float = 1e-4
    accuracy_block_groups: int = 3
    residual_block_groups: int = 2
    accuracy_preset: str = "tuned"
    accuracy_params: dict[str, Any] = field(default_factory=dict)
    residual_params: dict[str, Any] = field(default_factory=dict)
    split: str = "all"
    additive_basis: str = "onehot"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SurrogateConfigError(
                f"surrogate backend {self.backend!r}: choose {' or '.join(map(repr, BACKENDS))}"
            )
        if self.device_model not in ("additive", "trees"):
            raise SurrogateConfigError(f"device_model {self.device_model!r}: choose 'additive' or 'trees'")
        if self.n_members < 2:
            raise SurrogateConfigError(
                f"n_members must be >= 2 (ensemble std needs members), got {self.n_members}"
            )
        if self.accuracy_preset not in ACCURACY_PRESET_NAMES:
            raise SurrogateConfigError(
                f"accuracy_preset {self.accuracy_preset!r}: choose one of {sorted(ACCURACY_PRESET_NAMES)}"
            )
        if self.additive_basis not in ADDITIVE_BASES:
            raise SurrogateConfigError(
                f"additive_basis {self.additive_basis!r}: choose {' or '.join(map(repr, ADDITIVE_BASES))}"
            )
        if self.split not in ("all", "default", "random"):
            raise SurrogateConfigError(f"split {self.split!r}: choose 'all', 'default' or 'random'")
        for t in self.targets:
            get_target(t)
        for key, groups in (
            ("accuracy_block_groups", self.accuracy_block_groups),
            ("residual_block_groups", self.residual_block_groups),
        ):
            if groups not in (1, 2, 3):
                raise SurrogateConfigError(f"{key}={groups}: choose 1, 2 or 3")
        for key, params in (
            ("accuracy_params", self.accuracy_params),
            ("residual_params", self.residual_params),
        ):
            depth = params.get("max_depth", 3)
            if depth > 3:
                raise SurrogateConfigError(
                    f"{key}.max_depth={depth}: trees deeper than 3 cannot be compiled to block-triple "
                    f"tables; use <= 3"
                )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        for name, default in _OMITTED_WHEN_DEFAULT.items():
            if d[name] == default:
                del d[name]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SurrogateConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise SurrogateConfigError(
                f"unknown surrogate settings {sorted(unknown)}; known: {sorted(known)}"
            )
        d = dict(d)
        if "targets" in d:
            d["targets"] = tuple(d["targets"])
        return cls(**d)

    def key(self) -> str:
        """Stable short hash of the configuration."""
        import hashlib

        blob = json.dumps({"format": MODEL_FORMAT_VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def interaction_groups(group_size: int) -> list[list[int]]:
    """Feature groups that confine every tree path to ``group_size`` blocks (genes of those blocks)."""
    per_block = space.GENES_PER_BLOCK
    return [
        [per_block * b + j for b in blocks for j in range(per_block)]
        for blocks in combinations(range(space.N_BLOCKS), group_size)
    ]


@dataclass
class FittedTarget:
    """A compiled ensemble for one target.

    Attributes:
        kind: the model kind's name (:data:`MODEL_KINDS`: ``"trees"`` or ``"additive"``).
        channels: the model kind's table channels (``[trees]`` or ``[additive, residual]``).
        std_scale: calibration factor applied to the ensemble std (from out-of-fold errors).
        rounds: best boosting rounds per member.
        native: serialized native models per member (XGBoost UBJ bytes / LightGBM text).
    """

    target: str
    kind: str
    channels: list[TripleTables]
    std_scale: float
    rounds: list[int]
    native: list[bytes] = field(default_factory=list)

    def combine(self, channel_sums: FloatArray) -> FloatArray:
        """Member predictions ``(n, M)`` in target units from channel sums ``(n, n_channels, M)``."""
        return MODEL_KINDS[self.kind].combine(get_target(self.target), channel_sums)


class EnsembleModel(ABC):
    """One model kind: what the boosted members learn, which tables they compile to, and how the tables'
    channels combine into a prediction. :meth:`fit` is the shared cross-fitted ensemble loop."""

    #: name stored in the cache (``FittedTarget.kind``)
    kind: ClassVar[str]

    def __init__(self, target: Target, cfg: SurrogateConfig) -> None:
        self.target = target
        self.cfg = cfg
        self.backend: BoosterBackend = BACKENDS[cfg.backend]

    @property
    @abstractmethod
    def booster_params(self) -> dict[str, Any]:
        """Hyperparameters of the boosted members (the backend's defaults with the configured overrides)."""

    @property
    @abstractmethod
    def group_size(self) -> int:
        """How many blocks one tree path of a boosted member may touch (1-3)."""

    @abstractmethod
    def _start(self, cfgs: IntArray, y: FloatArray, ok: BoolArray) -> None:
        """Prepare a fit on block configurations ``cfgs (n, 8)`` and labels ``y (n,)`` (``ok``: finite)."""

    @abstractmethod
    def _member_label(self, m: int, y: FloatArray, fit: IntArray) -> FloatArray:
        """Label ``(n,)`` that member ``m`` boosts on; fits on rows ``fit`` what comes before boosting."""

    @abstractmethod
    def _to_target(self, m: int, rows: IntArray, boosted: FloatArray) -> FloatArray:
        """Member ``m``'s prediction in target units at ``rows`` from its boosted one ``(len(rows),)``."""

    @abstractmethod
    def compile(self, trees: TripleTables) -> list[TripleTables]:
        """The fitted target's channels, given the boosted members' tables ``trees``."""

    @staticmethod
    @abstractmethod
    def combine(target: Target, channel_sums: FloatArray) -> FloatArray:
        """Member predictions ``(n, M)`` in target units from channel sums ``(n, n_channels, M)``."""

    def fit(self, X: IntArray, y: FloatArray, folds: IntArray) -> tuple[FittedTarget, FloatArray, FloatArray]:
        """Fit the ensemble on rows with a finite label.

        Args:
            X: ``(n, 28)`` genes; y: ``(n,)`` labels (NaN = missing, skipped); folds: ``(n,)`` fold id per row
                in ``[0, n_members)``.

        Returns:
            the fitted target, out-of-fold predictions ``(n,)`` and the calibrated ensemble std at training
            rows ``(n,)`` (NaN where the label is missing).
        """
        ok = np.isfinite(y)
        rows = np.flatnonzero(ok)
        params = self.booster_params
        groups = interaction_groups(self.group_size) if self.group_size < 3 else None
        Xf = X.astype(np.float32)
        self._start(block_configs(X), y, ok)
        n_members = self.cfg.n_members
        leaves: list[Leaf] = []
        bases = np.zeros(n_members)
        rounds: list[int] = []
        native: list[bytes] = []
        oof = np.full(len(y), np.nan)
        for m in range(n_members):
            hold = rows[folds[rows] == m]
            fit = rows[folds[rows] != m]
            member = self.backend.fit_member(
                Xf,
                self._member_label(m, y, fit),
                fit,
                hold,
                params,
                seed=self.cfg.seed * 1000 + m,
                max_rounds=self.cfg.max_rounds,
                early_stopping_rounds=self.cfg.early_stopping_rounds,
                interaction_groups=groups,
            )
            for leaf in member.leaves:
                leaf.member = m
            leaves.extend(member.leaves)
            bases[m] = member.base_score
            rounds.append(member.rounds)
            native.append(member.native)
            oof[hold] = self._to_target(m, hold, member.holdout_prediction)
        trees = TripleTables.from_leaves(leaves, bases, group_size=self.group_size)
        fitted = FittedTarget(self.target.name, self.kind, self.compile(trees), 1.0, rounds, native)
        members = fitted_members(fitted, X[rows])
        std = np.full(len(y), np.nan)
        std[rows] = members.std(axis=1, ddof=1)
        # calibration: scale the ensemble std so its RMS matches the out-of-fold RMS error
        err = oof[rows] - y[rows]
        denom = float(np.sqrt(np.mean(std[rows] ** 2)))
        fitted.std_scale = float(np.sqrt(np.mean(err**2)) / denom) if denom > 0 else 1.0
        return fitted, oof, std * fitted.std_scale


class TreesModel(EnsembleModel):
    """Boosted trees on the genes, one channel (accuracy; every target with ``device_model="trees"``)."""

    kind = "trees"

    @property
    def booster_params(self) -> dict[str, Any]:
        return {**self.backend.accuracy_presets[self.cfg.accuracy_preset], **self.cfg.accuracy_params}

    @property
    def group_size(self) -> int:
        return self.cfg.residual_block_groups if self.target.is_cost else self.cfg.accuracy_block_groups

    def _start(self, cfgs: IntArray, y: FloatArray, ok: BoolArray) -> None:
        pass  # the members boost on the labels themselves

    def _member_label(self, m: int, y: FloatArray, fit: IntArray) -> FloatArray:
        return y

    def _to_target(self, m: int, rows: IntArray, boosted: FloatArray) -> FloatArray:
        return boosted

    def compile(self, trees: TripleTables) -> list[TripleTables]:
        return [trees]

    @staticmethod
    def combine(target: Target, channel_sums: FloatArray) -> FloatArray:
        return channel_sums[:, 0, :]


def _block_onehot(cfg: IntArray) -> FloatArray:
    """One-hot block configurations ``(n, sum_b C_b)`` from ``cfg (n, >= 7)``."""
    cols = [
        (cfg[:, b : b + 1] == np.arange(int(BLOCK_SIZES[b]))[None, :]).astype(float)
        for b in range(space.N_BLOCKS)
    ]
    return np.concatenate(cols, axis=1)


def _fit_block_additive(cfg: IntArray, z: FloatArray, ridge: float) -> tuple[list[FloatArray], float]:
    """Ridge fit of ``z ~ bias + sum_b w_b[cfg_b]``; returns per-block weights ``(C_b,)`` and the bias."""
    A = _block_onehot(cfg)
    mu = float(z.mean())
    lam = ridge * len(z)
    w = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ (z - mu))
    splits = np.cumsum(BLOCK_SIZES)[:-1]
    return [np.asarray(p) for p in np.split(w, splits)], mu


class AdditiveModel(EnsembleModel):
    """Per-block additive cost in latency space times a boosted multiplicative residual, two channels."""

    kind = "additive"

    @property
    def booster_params(self) -> dict[str, Any]:
        return {**self.backend.residual_params, **self.cfg.residual_params}

    @property
    def group_size(self) -> int:
        return self.cfg.residual_block_groups

    def _start(self, cfgs: IntArray, y: FloatArray, ok: BoolArray) -> None:
        self._cfgs = cfgs
        self._ok = ok
        self._z = self.target.to_latency_space(np.where(ok, y, 1.0))
        # per member: per-block weights (C_b,), bias, and the additive prediction (n,) in latency space
        self.block_weights: list[list[FloatArray]] = []
        self.block_bias: list[float] = []
        self._additive: list[FloatArray] = []

    def _member_label(self, m: int, y: FloatArray, fit: IntArray) -> FloatArray:
        cfgs, z = self._cfgs, self._z
        if self.cfg.additive_basis == "physical":
            from benchmark.cost_features import fit_physical_additive

            w, b = fit_physical_additive(cfgs[fit], z[fit])
        else:
            w, b = _fit_block_additive(cfgs[fit], z[fit], self.cfg.ridge)
        additive: FloatArray = b + np.sum([w[blk][cfgs[:, blk]] for blk in range(space.N_BLOCKS)], axis=0)
        if np.any(additive[self._ok] <= 0):
            raise FloatingPointError(
                f"{self.target.name}: additive model predicts non-positive cost; raise ridge"
            )
        self.block_weights.append(w)
        self.block_bias.append(b)
        self._additive.append(additive)
        return np.where(self._ok, np.log(np.maximum(z, 1e-12) / np.maximum(additive, 1e-12)), np.nan)

    def _to_target(self, m: int, rows: IntArray, boosted: FloatArray) -> FloatArray:
        return self.target.from_latency_space(self._additive[m][rows] * np.exp(boosted))

    def compile(self, trees: TripleTables) -> list[TripleTables]:
        members = range(len(self.block_weights))
        weights = [
            np.stack([self.block_weights[m][b] for m in members], axis=1) for b in range(space.N_BLOCKS)
        ]
        return [TripleTables.from_block_additive(weights, np.array(self.block_bias)), trees]

    @staticmethod
    def combine(target: Target, channel_sums: FloatArray) -> FloatArray:
        return target.from_latency_space(channel_sums[:, 0, :] * np.exp(channel_sums[:, 1, :]))


#: model kinds by ``FittedTarget.kind``
MODEL_KINDS: dict[str, type[EnsembleModel]] = {k.kind: k for k in (TreesModel, AdditiveModel)}


def model_for(target: str, cfg: SurrogateConfig) -> EnsembleModel:
    """The model kind that fits ``target`` under ``cfg``: additive for costs (unless
    ``device_model="trees"``), boosted trees otherwise."""
    t = get_target(target)
    kind = AdditiveModel if t.is_cost and cfg.device_model == "additive" else TreesModel
    return kind(t, cfg)


def fitted_members(fitted: FittedTarget, X: IntArray) -> FloatArray:
    """Member predictions ``(n, M)`` of one fitted target (reference path, not the fused hot path)."""
    cfgs = block_configs(X)
    ch = np.stack([c.predict_members(cfgs) for c in fitted.channels], axis=1)
    return fitted.combine(ch)


def assign_folds(n: int, n_members: int, rng: np.random.Generator) -> IntArray:
    """Balanced random fold ids ``(n,)`` in ``[0, n_members)``."""
    folds = np.arange(n) % n_members
    return rng.permutation(folds).astype(np.int64)


@dataclass
class SurrogateModel:
    """All fitted targets plus metadata; the query engine of :class:`benchmark.Benchmark`.

    ``coverage``: what the training records cover (measured ranges, architectures), for
    :mod:`benchmark.coverage`; set by :func:`fit_surrogate` and saved with the model.
    """

    config: SurrogateConfig
    targets: dict[str, FittedTarget]
    meta: dict[str, Any]
    coverage: TrainingCoverage | None = None

    def __post_init__(self) -> None:
        self._fused: dict[tuple[str, ...], tuple[FusedTables, list[tuple[str, int, int]]]] = {}

    def _engine(self, names: tuple[str, ...]) -> tuple[FusedTables, list[tuple[str, int, int]]]:
        if names not in self._fused:
            channels: list[TripleTables] = []
            layout = []
            for n in names:
                ft = self.targets[n]
                layout.append((n, len(channels), len(ft.channels)))
                channels.extend(ft.channels)
            self._fused[names] = (FusedTables(channels), layout)
        return self._fused[names]

    def predict(self, X: IntArray, names: tuple[str, ...]) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Mean and calibrated std ``(n,)`` per target for a validated batch ``X (n, 28)``."""
        missing = [n for n in names if n not in self.targets]
        if missing:
            raise KeyError(
                f"targets {missing} were not fitted in this surrogate (fitted: {sorted(self.targets)}); "
                f"refit with them in SurrogateConfig.targets"
            )
        engine, layout = self._engine(names)
        ch = engine.predict(block_configs(X))
        out = {}
        for n, start, count in layout:
            ft = self.targets[n]
            members = ft.combine(ch[:, start : start + count, :])
            out[n] = (members.mean(axis=1), members.std(axis=1, ddof=1) * ft.std_scale)
        return out

    # persistence -----------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write native models, the compiled tables (``tables.npz``) and ``meta.json`` into ``directory``.

        ``meta.json`` records an integrity section: the SHA-256 and size of every other file, and the SHA-256
        of its own content (without that section), so :meth:`load` detects a truncated or edited cache.
        """
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "models").mkdir(exist_ok=True)
        arrays: dict[str, NDArray[Any]] = {}
        targets_meta = {}
        files: dict[str, dict[str, Any]] = {}
        ext = BACKENDS[self.config.backend].model_suffix
        for name, ft in self.targets.items():
            for ci, ch in enumerate(ft.channels):
                arrays.update(ch.to_arrays(f"{name}/c{ci}/"))
            native_files = []
            for m, raw in enumerate(ft.native):
                fn = f"models/{name}_member{m}.{ext}"
                (directory / fn).write_bytes(raw)
                files[fn] = _file_record(raw)
                native_files.append(fn)
            targets_meta[name] = {
                "kind": ft.kind,
                "n_channels": len(ft.channels),
                "std_scale": ft.std_scale,
                "rounds": ft.rounds,
                "native_models": native_files,
            }
        if self.coverage is not None:
            arrays[GENES_KEY] = self.coverage.genes
        np.savez(directory / "tables.npz", **arrays)  # type: ignore[arg-type]
        files[TABLES_FILE] = _file_record((directory / TABLES_FILE).read_bytes())
        meta: dict[str, Any] = {
            **self.meta,
            **({COVERAGE_KEY: self.coverage.to_json()} if self.coverage is not None else {}),
            "config": self.config.to_json(),
            "targets": targets_meta,
            "format_version": MODEL_FORMAT_VERSION,
        }
        meta = json.loads(json.dumps(meta))  # the digest is over what load() will read back
        meta[INTEGRITY_KEY] = {"algorithm": "sha256", "files": files, "meta_sha256": _meta_digest(meta)}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> SurrogateModel:
        """Load from :meth:`save` output (JSON + ``.npz`` with ``allow_pickle=False``: never unpickles).

        Raises :class:`SurrogateCacheError` (naming the file and what is wrong) when a file is missing,
        unreadable, ill-typed, or differs from the integrity record written with it (truncated or edited), and
        for a cache written before that record or the training-coverage record existed.
        """
        meta = _read_meta(directory)
        config = _cache_field(lambda: SurrogateConfig.from_json(meta["config"]), "config")
        tmetas = _check_targets_meta(meta.get("targets"))
        files = _integrity_files(directory, meta)
        names = [TABLES_FILE] + [f for tm in tmetas.values() for f in tm.get("native_models", [])]
        targets = {}
        # the files are hashed in a thread while the tables are parsed; nothing is returned before both end
        with ThreadPoolExecutor(max_workers=1) as pool:
            verified = pool.submit(_verify_files, directory, names, files)
            try:
                with np.load(directory / TABLES_FILE, allow_pickle=False) as arrays:
                    for name, tm in tmetas.items():
                        channels = [
                            TripleTables.from_arrays(arrays, f"{name}/c{ci}/")
                            for ci in range(tm["n_channels"])
                        ]
                        targets[name] = FittedTarget(
                            name, tm["kind"], channels, float(tm["std_scale"]), list(tm["rounds"])
                        )
                    covered = np.asarray(arrays[GENES_KEY]) if GENES_KEY in arrays else None
            except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
                verified.result()  # a file that fails its check explains the failure better
                raise SurrogateCacheError(f"{TABLES_FILE} unreadable ({type(exc).__name__}: {exc})") from exc
            verified.result()
        coverage = _read_coverage(meta, covered)
        rest = {
            k: v
            for k, v in meta.items()
            if k not in ("config", "targets", "format_version", INTEGRITY_KEY, COVERAGE_KEY)
        }
        return cls(config, targets, rest, coverage)


class SurrogateCacheError(NasoptError, ValueError):
    """A cached surrogate is missing a file, unreadable, ill-typed, or fails its integrity check (truncated or
    edited since it was written); the message names the file and what is wrong. The oracle refits on it."""


#: files of a saved surrogate (besides ``models/``) and the key of the integrity section in ``meta.json``
META_FILE = "meta.json"
TABLES_FILE = "tables.npz"
INTEGRITY_KEY = "integrity"
#: key of the training-coverage record in ``meta.json`` (:class:`benchmark.coverage.TrainingCoverage`)
COVERAGE_KEY = "coverage"


def _read_coverage(meta: dict[str, Any], genes: IntArray | None) -> TrainingCoverage:
    """The training coverage saved in ``meta.json`` + ``tables.npz`` (``genes``: its training architectures,
    None if absent); a cache without it is refitted once."""
    if COVERAGE_KEY not in meta or genes is None:
        raise SurrogateCacheError(
            f"{META_FILE} has no training-coverage record (written by an older nasopt, before predictions "
            f"said when they extrapolate)"
        )
    return _cache_field(lambda: TrainingCoverage.from_json(meta[COVERAGE_KEY], genes), COVERAGE_KEY)


def _file_record(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _meta_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of ``meta`` without its integrity section, as canonical JSON."""
    body = {k: v for k, v in meta.items() if k != INTEGRITY_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _cache_field(get: Callable[[], Any], what: str) -> Any:
    try:
        return get()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SurrogateCacheError(f"{META_FILE}: bad {what!r} ({type(exc).__name__}: {exc})") from exc


def _read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SurrogateCacheError(f"{META_FILE} unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict):
        raise SurrogateCacheError(f"{META_FILE} is not a JSON object")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise SurrogateCacheError(f"surrogate format {meta.get('format_version')} != {MODEL_FORMAT_VERSION}")
    return meta


def _check_targets_meta(tmetas: Any) -> dict[str, dict[str, Any]]:
    """The ``targets`` section of ``meta.json``, every field type-checked."""
    if not isinstance(tmetas, dict) or not tmetas:
        raise SurrogateCacheError(f"{META_FILE}: 'targets' must be a non-empty object")

    def bad(name: str, key: str, want: str) -> SurrogateCacheError:
        return SurrogateCacheError(
            f"{META_FILE}: targets.{name}.{key} must be {want}, got {tmetas[name].get(key)!r}"
        )

    for name, tm in tmetas.items():
        if not is_target(name) or not isinstance(tm, dict):
            raise SurrogateCacheError(f"{META_FILE}: bad target entry {name!r}")
        kind = tm.get("kind")
        if kind not in MODEL_KINDS:
            raise SurrogateCacheError(f"{name}: unknown model kind {kind!r} (known: {sorted(MODEL_KINDS)})")
        n_ch = tm.get("n_channels")
        if type(n_ch) is not int or n_ch < 1:
            raise bad(name, "n_channels", "a positive integer")
        scale: Any = tm.get("std_scale")
        if type(scale) not in (int, float) or scale < 0:
            raise bad(name, "std_scale", "a number >= 0")
        rounds = tm.get("rounds")
        if not isinstance(rounds, list) or not all(type(r) is int for r in rounds):
            raise bad(name, "rounds", "a list of integers")
        files = tm.get("native_models", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise bad(name, "native_models", "a list of file names")
    return tmetas


def _integrity_files(directory: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-file records of ``meta``'s integrity section, after checking ``meta.json``'s own digest."""
    record = meta.get(INTEGRITY_KEY)
    if record is None:
        raise SurrogateCacheError(
            f"{META_FILE} has no integrity record (written by an older nasopt, before cache files were "
            f"checksummed)"
        )
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise SurrogateCacheError(f"{META_FILE}: its {INTEGRITY_KEY!r} section is malformed")
    if record.get("meta_sha256") != _meta_digest(meta):
        raise SurrogateCacheError(
            f"{META_FILE} was edited after it was written (its content no longer matches its SHA-256)"
        )
    return files


def _verify_file(directory: Path, fn: str, files: dict[str, dict[str, Any]]) -> None:
    """Check one cache file's size and SHA-256 against its record in ``files``."""
    rec = files.get(fn)
    if rec is None:
        raise SurrogateCacheError(f"{META_FILE}: no integrity record for {fn}")
    try:
        with open(directory / fn, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != rec.get("size"):
                raise SurrogateCacheError(
                    f"{fn} is truncated or replaced ({size} bytes; {rec.get('size')} were written)"
                )
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise SurrogateCacheError(f"{fn} unreadable ({type(exc).__name__}: {exc.strerror})") from exc
    if digest != rec.get("sha256"):
        raise SurrogateCacheError(f"{fn} was edited or corrupted after it was written (SHA-256 mismatch)")


def _verify_files(directory: Path, names: list[str], files: dict[str, dict[str, Any]]) -> None:
    for fn in names:
        _verify_file(directory, fn, files)


#: what a cache listing shows for a fact an entry's ``meta.json`` does not record (older caches)
UNKNOWN = "unknown"


@dataclass(frozen=True)
class CacheEntry:
    """One cached surrogate as ``nasopt bench cache list`` shows it (read from ``meta.json`` without checking
    the files: :meth:`SurrogateModel.load` does that on use).

    Attributes:
        key: directory name (``<dataset sha256[:16]>-<config key>``); path: the directory.
        dataset: path of the records it was fitted on; dataset_sha256: their digest (the archive's bytes).
        split: training rows (``all``, ``default``, ``random(seed=…)``) and, for ``default``, the split files.
        targets: the fitted targets; backend, n_members: the ensemble.
        size_bytes: the files' total size; created: when fitted (ISO time, as written).
        last_used: when last loaded or written (seconds since the epoch: the directory's mtime).
        problem: why the entry cannot be used (it is refitted on use), or None.
    """

    key: str
    path: Path
    dataset: str
    dataset_sha256: str
    split: str
    targets: tuple[str, ...]
    backend: str
    n_members: int | None
    size_bytes: int
    created: str
    last_used: float
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"], d["targets"] = str(self.path), list(self.targets)
        return d


def _split_text(meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    split = meta.get("split")
    if isinstance(split, dict) and isinstance(split.get("name"), str):
        name = split["name"]
        if name == "random":
            name = f"random(seed={split.get('seed')})"
        if split.get("dir"):
            name += f" ({split['dir']})"
        return str(name)
    if isinstance(cfg.get("split"), str):  # older caches: the configuration says which split
        return f"random(seed={cfg.get('seed')})" if cfg["split"] == "random" else str(cfg["split"])
    return UNKNOWN


def describe_cache_entry(directory: Path) -> CacheEntry:
    """What the entry in ``directory`` holds, from its ``meta.json`` (facts it lacks are :data:`UNKNOWN`)."""
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    last_used = directory.stat().st_mtime
    try:
        meta = _read_meta(directory)
        problem = None
    except SurrogateCacheError as exc:
        meta, problem = {}, str(exc)
        try:  # an entry of another format may still say what it was fitted on
            raw = json.loads((directory / META_FILE).read_text())
            meta = raw if isinstance(raw, dict) else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    cfg: dict[str, Any] = meta["config"] if isinstance(meta.get("config"), dict) else {}
    targets = meta.get("targets") if isinstance(meta.get("targets"), dict) else cfg.get("targets")
    members = cfg.get("n_members")

    def text(value: Any) -> str:
        return str(value) if isinstance(value, str) and value else UNKNOWN

    return CacheEntry(
        key=directory.name,
        path=directory,
        dataset=text(meta.get("dataset_source")),
        dataset_sha256=text(meta.get("dataset_sha256")),
        split=_split_text(meta, cfg),
        targets=tuple(str(t) for t in targets) if isinstance(targets, dict | list) else (),
        backend=text(cfg.get("backend")),
        n_members=members if type(members) is int else None,
        size_bytes=size,
        created=text(meta.get("created")),
        last_used=last_used,
        problem=problem,
    )


def fit_surrogate(
    X: IntArray,
    labels: dict[str, FloatArray],
    cfg: SurrogateConfig,
    *,
    score_X: IntArray | None = None,
    score_labels: dict[str, FloatArray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SurrogateModel:
    """Fit every configured target on ``X (n, 28)`` / ``labels`` and record fit-quality metrics.

    Quality is measured on ``score_X``/``score_labels`` when given (a validation split), else on the
    out-of-fold predictions (each record predicted by the member that did not train on it).
    """
    space.validate(X)
    rng = np.random.default_rng(cfg.seed)
    folds = assign_folds(len(X), cfg.n_members, rng)
    fitted: dict[str, FittedTarget] = {}
    quality: dict[str, dict[str, float]] = {}
    oof_quality: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    for name in cfg.targets:
        t0 = time.perf_counter()
        ft, oof, std = model_for(name, cfg).fit(X, labels[name], folds)
        timings[name] = time.perf_counter() - t0
        fitted[name] = ft
        oof_quality[name] = fit_quality(labels[name], oof, std)
        if progress is not None:
            progress(f"fitted {name} in {timings[name]:.1f} s ({ft.kind}, rounds {ft.rounds})")
    model = SurrogateModel(cfg, fitted, {}, TrainingCoverage.from_data(X, labels, cfg.targets))
    if score_X is not None and score_labels is not None and len(score_X):
        preds = model.predict(score_X, tuple(cfg.targets))
        for name in cfg.targets:
            mean, std = preds[name]
            quality[name] = fit_quality(score_labels[name], mean, std)
        scored_on = "validation split"
    else:
        quality = oof_quality
        scored_on = "out-of-fold (each record predicted by the member that did not train on it)"
    model.meta.update(
        {
            "quality": quality,
            "oof_quality": oof_quality,
            "quality_scored_on": scored_on,
            "fit_seconds": timings,
            "n_train": len(X),
        }
    )
    return model
