"""The Accel-NASBench oracle: one object, batched queries with uncertainty, and a simulated cost.

    bench = load_benchmark()                       # finds the data, loads (or fits once) the surrogates
    preds = bench.query(X, ["accuracy", "throughput_a100"])   # X: (n, 28) -> {target: (mean, std, value)}
    bench.query_one("e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k3l1+")
    bench.cost(X)                                  # simulated training seconds, (n,)

The cache lives in ``<cache dir>/surrogates/<dataset sha256[:16]>-<config key>/`` (native models, compiled
tables, ``meta.json`` with the SHA-256 of every file). A stale, incompatible, truncated or edited cache is
refitted with one message naming the file, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from benchmark import devices as user_devices
from benchmark import space
from benchmark._io import package_versions
from benchmark._typing import FloatArray
from benchmark.api import TargetPrediction
from benchmark.macs import macs_params
from benchmark.noise import noise_summary
from benchmark.surrogate import (
    MODEL_FORMAT_VERSION,
    SurrogateCacheError,
    SurrogateConfig,
    SurrogateModel,
    fit_surrogate,
)
from benchmark.targets import TARGET_NAMES, TARGETS, check_targets, get_target


class Benchmark:
    """Batched surrogate benchmark over the MnasNet space (implements :class:`benchmark.api.Oracle`).

    Construct with :func:`load_benchmark`; the constructor itself only wraps a fitted model.
    """

    def __init__(self, model: SurrogateModel, dataset_sha256: str, cache_path: Path | None = None) -> None:
        self.model = model
        self.dataset_sha256 = dataset_sha256
        self.cache_path = cache_path

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.model.targets)

    @property
    def digest(self) -> str:
        """Identifies data + surrogate configuration (provenance of every result)."""
        return f"anb-{self.dataset_sha256[:16]}-{self.model.config.key()}"

    @property
    def dataset_digest(self) -> str:
        return self.dataset_sha256

    @property
    def fit_quality(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = self.model.meta.get("quality", {})
        return out

    @property
    def noise(self) -> dict[str, dict[str, Any]]:
        """Per target: repeat-measurement noise of the data and the R² / τ cap it puts on
        :attr:`fit_quality` (see :func:`benchmark.noise.noise_summary`); empty for surrogates fitted before
        it existed."""
        out: dict[str, dict[str, Any]] = self.model.meta.get("noise", {})
        return out

    def query(
        self,
        X: ArrayLike,
        targets: str | list[str] | tuple[str, ...] | None = None,
        *,
        noisy: bool = False,
        rng: np.random.Generator | None = None,
    ) -> dict[str, TargetPrediction]:
        """Predict ``targets`` (None = all fitted) for ``X (n, 28)``: mean, std, observed value, ``(n,)``.

        ``noisy=True`` draws each value from a normal with the ensemble's calibrated mean and std using
        ``rng`` (required); costs (device and training-time values) are clipped to stay positive.
        """
        names = self.targets if targets is None else check_targets(targets)
        if noisy and not isinstance(rng, np.random.Generator):
            raise ValueError(
                "noisy queries need rng=numpy.random.Generator(...) (e.g. np.random.default_rng(0))"
            )
        batch = space.as_batch(X)
        user = [n for n in names if n not in self.model.targets and n not in TARGETS]
        own = tuple(n for n in names if n not in user)
        preds = self.model.predict(batch, own) if own else {}
        for name in user:  # a user device's target: its own surrogate (benchmark.devices)
            preds[name] = user_devices.predict(name, batch)
        out = {}
        for name in names:
            mean, std = preds[name]
            if noisy:
                assert rng is not None
                value = mean + std * rng.standard_normal(mean.shape)
                if get_target(name).is_cost:
                    value = np.maximum(value, 1e-6 * mean)
            else:
                value = mean
            out[name] = TargetPrediction(mean, std, value)
        return out

    def query_one(
        self, arch: Any, targets: str | list[str] | tuple[str, ...] | None = None
    ) -> dict[str, tuple[float, float]]:
        """One architecture (string, upstream dict or 28 genes) -> ``{target: (mean, std)}``."""
        x = space.parse(arch)
        res = self.query(x[None, :], targets)
        return {k: (float(v.mean[0]), float(v.std[0])) for k, v in res.items()}

    def cost(self, X: ArrayLike) -> FloatArray:
        """Simulated training seconds per architecture ``(n,)`` (the surrogate's ``train_time`` mean)."""
        return self.query(X, ["train_time"])["train_time"].mean

    def macs_params(self, X: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Analytic MACs and parameters (millions), ``(n,)`` each."""
        return macs_params(X)


def surrogate_cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding fitted surrogates."""
    from benchmark.sources import cache_dir as default_cache

    return Path(cache_dir) if cache_dir is not None else default_cache() / "surrogates"


def _config_from(config: SurrogateConfig | Mapping[str, Any] | None) -> SurrogateConfig:
    if config is None:
        return SurrogateConfig()
    if isinstance(config, SurrogateConfig):
        return config
    return SurrogateConfig.from_json(dict(config))


def _print(msg: str) -> None:
    print(f"[nasopt.bench] {msg}", file=sys.stderr, flush=True)


def load_benchmark(
    dataset: str | os.PathLike[str] | None = None,
    *,
    config: SurrogateConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refit: bool = False,
    download: bool = True,
    verbose: bool = True,
    exclude: ArrayLike | None = None,
    **config_overrides: Any,
) -> Benchmark:
    """Find the data, then load the fitted surrogate from the cache or fit it once and cache it.

    Args:
        dataset: archive/directory of records (else ``NASOPT_DATASET``, the user cache, a download).
        config: surrogate configuration (:class:`SurrogateConfig` or a mapping); ``config_overrides``
            are merged into it (e.g. ``backend="lightgbm"``).
        cache_dir: where fitted surrogates live (default ``<user cache>/surrogates``).
        refit: ignore any cached fit.
        verbose: print what happens (fit time, cache hits) to stderr.
        exclude: architectures ``(k, 28)`` (e.g. a test set) whose records are left out of the training (and
            scoring) rows, matched by :func:`benchmark.space.arch_id`; if any record is left out, the fit is
            cached under a digest of the data *and* the excluded architectures, and its ``meta["excluded"]``
            says how many records and architectures went.
    """
    import hashlib

    from benchmark.dataset import DatasetError, read_records
    from benchmark.sources import resolve_dataset, resolve_split_dir
    from benchmark.splits import make_split

    base = _config_from(config)
    if config_overrides:
        base = SurrogateConfig.from_json({**base.to_json(), **config_overrides})
    say: Callable[[str], None] = _print if verbose else (lambda _m: None)
    source = resolve_dataset(dataset, download=download)
    # an archive's digest is the sha256 of its bytes: a cache hit needs no parsing of the records
    data = None
    if source.is_file():
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
    else:
        data = read_records(source)
        sha = data.sha256
    keep = None
    excluded: dict[str, int] = {}
    if exclude is not None:
        if data is None:
            data = read_records(source)
        ids = space.arch_id(data.X)
        drop = np.isin(ids, space.arch_id(exclude))
        if drop.all():
            raise DatasetError(
                f"every record of {source} is of an excluded (test) architecture: nothing is left to train "
                f"on; train on other records"
            )
        if drop.any():
            keep = ~drop
            gone = np.unique(ids[drop])
            excluded = {"n_records": int(drop.sum()), "n_architectures": len(gone)}
            sha = hashlib.sha256(f"{sha} without ".encode() + gone.astype("<i8").tobytes()).hexdigest()
            say(
                f"leaving {excluded['n_records']} records ({excluded['n_architectures']} architectures) out "
                f"of the training data: they are in the excluded (test) set"
            )
    root = surrogate_cache_root(cache_dir)
    path = root / f"{sha[:16]}-{base.key()}"
    if path.exists() and not refit:
        problem = _check_cache(path, sha, base)
        if problem is None:
            try:
                model = SurrogateModel.load(path)
                return Benchmark(model, sha, path)
            except SurrogateCacheError as exc:
                problem = str(exc)
        say(f"cached surrogate at {path}: {problem}; refitting")
    if data is None:
        data = read_records(source)
    t0 = time.perf_counter()
    rows = np.arange(len(data))
    score_X = score_labels = None
    if base.split != "all":
        split = make_split(data, base.split, seed=base.seed, split_dir=resolve_split_dir(data.source))
        rows = split.train
        val = split.val if keep is None else split.val[keep[split.val]]
        score_X = data.X[val]
        score_labels = {k: v[val] for k, v in data.labels.items()}
    if keep is not None:
        rows = rows[keep[rows]]
    say(
        f"fitting surrogates for {len(base.targets)} targets on {len(rows)} records "
        f"({base.backend}, {base.n_members} members; first use only) ..."
    )
    model = fit_surrogate(
        data.X[rows],
        {k: v[rows] for k, v in data.labels.items()},
        base,
        score_X=score_X,
        score_labels=score_labels,
        progress=say,
    )
    elapsed = time.perf_counter() - t0
    scored = score_labels if score_labels is not None else {k: v[rows] for k, v in data.labels.items()}
    kept = data if keep is None else data.subset(keep)
    model.meta.update(
        {
            "noise": noise_summary(kept.X, dict(kept.labels), scored, base.targets),
            "dataset_sha256": sha,
            "dataset_source": data.source,
            "n_records": len(kept),
            "feature_order": [space.gene_name(j) for j in range(space.N_GENES)],
            "versions": package_versions(),
            "fit_total_seconds": elapsed,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    say(f"fitted in {elapsed:.1f} s; caching at {path}")
    if excluded:
        model.meta["excluded"] = {**excluded, "source_dataset_sha256": data.sha256}
    _write_atomically(model, path)
    return Benchmark(model, sha, path)


def _check_cache(path: Path, sha: str, cfg: SurrogateConfig) -> str | None:
    """None if the cache at ``path`` is for this data and configuration, else why not (the files themselves
    are verified against their integrity record by :meth:`SurrogateModel.load`)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"meta.json incomplete or corrupt ({type(exc).__name__})"
    if not isinstance(meta, dict):
        return "meta.json corrupt (not a JSON object)"
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        return f"of another format ({meta.get('format_version')}; this nasopt writes {MODEL_FORMAT_VERSION})"
    if meta.get("dataset_sha256") != sha:
        return "stale (fitted on different data)"
    try:
        if SurrogateConfig.from_json(meta.get("config", {})) != cfg:
            return "fitted for a different configuration"
    except (ValueError, TypeError, AttributeError) as exc:
        return f"meta.json has an incompatible 'config' ({exc})"
    if not (path / "tables.npz").is_file():
        return "incomplete (tables.npz missing)"
    return None


def _write_atomically(model: SurrogateModel, path: Path) -> None:
    """Write the cache into a temporary sibling, then swap it in with renames.

    A process killed at any point leaves either the old entry, the new one or none (refitted next time), never
    a mix. Concurrent writers of one key are safe: whoever renames last wins, and the entries are identical
    (the fit is deterministic).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    old: Path | None = None
    try:
        model.save(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=".old-", dir=path.parent))
            with contextlib.suppress(FileNotFoundError):  # another writer moved it first
                os.replace(path, old)  # onto an empty directory: allowed on POSIX
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():
                raise
            # another process put a complete entry there meanwhile: keep it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["TARGET_NAMES", "Benchmark", "load_benchmark", "surrogate_cache_root"]
