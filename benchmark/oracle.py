"""The Accel-NASBench oracle: one object, batched queries with uncertainty, and a simulated cost.

    bench = load_benchmark()                       # finds the data, loads (or fits once) the surrogates
    preds = bench.query(X, ["accuracy", "throughput_a100"])   # X: (n, 28) -> {target: (mean, std, value)}
    bench.query_one("e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k3l1+")
    bench.cost(X)                                  # simulated training seconds, (n,)

The cache lives in ``<cache dir>/surrogates/<dataset sha256[:16]>-<config key>/`` (native models, compiled
tables, ``meta.json`` with the SHA-256 of every file). A stale, incompatible, truncated or edited cache is
refitted with one message naming the file, never a crash. :func:`list_cache` and :func:`prune_cache`
(``nasopt bench cache list|prune``) show and remove entries; temporary folders left by killed writers
(``.tmp-<pid>@<host>@…``) are removed on the next fit or prune, never while their writer runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from benchmark import built, space
from benchmark import devices as user_devices
from benchmark._io import package_versions, pid_alive
from benchmark._typing import FloatArray, IntArray
from benchmark.api import TargetPrediction
from benchmark.built import BuiltInfo
from benchmark.coverage import TrainingCoverage
from benchmark.errors import ConfigurationError
from benchmark.macs import macs_params
from benchmark.noise import noise_summary
from benchmark.surrogate import (
    MODEL_FORMAT_VERSION,
    CacheEntry,
    SurrogateCacheError,
    SurrogateConfig,
    SurrogateModel,
    describe_cache_entry,
    fit_surrogate,
)
from benchmark.targets import TARGET_NAMES, TARGETS, check_targets, get_target


class Benchmark:
    """Batched surrogate benchmark over the MnasNet space (implements :class:`benchmark.api.Oracle`).

    Construct with :func:`load_benchmark`; the constructor itself only wraps a fitted model.
    """

    def __init__(
        self,
        model: SurrogateModel,
        dataset_sha256: str,
        cache_path: Path | None = None,
        built: BuiltInfo | None = None,
    ) -> None:
        self.model = model
        self.dataset_sha256 = dataset_sha256
        self.cache_path = cache_path
        #: the metadata of a built benchmark (``nasopt benchmark build``); None for the Accel-NASBench data
        self.built = built

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.model.targets)

    @property
    def digest(self) -> str:
        """Identifies data + surrogate configuration (provenance of every result); a built benchmark's starts
        with its name instead of ``anb``."""
        b = getattr(self, "built", None)  # (a Benchmark made without __init__, as some tests do, has none)
        prefix = "anb" if b is None else b.name
        return f"{prefix}-{self.dataset_sha256[:16]}-{self.model.config.key()}"

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

    @property
    def coverage(self) -> TrainingCoverage | None:
        """What the training records cover (:mod:`benchmark.coverage`); None for a model built without."""
        return self.model.coverage

    @property
    def measured_ranges(self) -> dict[str, tuple[float, float]]:
        """Per fitted target: ``(min, max)`` over the training records (:func:`.api.measured_ranges`)."""
        cov = self.model.coverage
        return {} if cov is None else {t: cov.ranges[t] for t in self.targets if t in cov.ranges}

    def distance_to_data(self, X: ArrayLike) -> IntArray:
        """Gene Hamming distance ``(n,)`` from each of ``X (n, 28)`` to the nearest training architecture
        (0: measured; :meth:`benchmark.coverage.TrainingCoverage.distance`)."""
        if self.model.coverage is None:
            raise ValueError("this surrogate has no training-coverage record; refit it")
        return self.model.coverage.distance(space.as_batch(X))

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
        Whether a prediction extrapolates past the training records: :attr:`coverage`
        (``coverage.extrapolated(target, mean, std)``, ``coverage.distance(X)``).
        """
        names = self.targets if targets is None else check_targets(targets)
        b = getattr(self, "built", None)
        if b is not None:  # a built benchmark answers only the targets it has data for
            b.check_targets(names)
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
        """Analytic MACs and parameters (millions), ``(n,)`` each (a built benchmark's: counted for its
        skeleton, input resolution and class count)."""
        b = getattr(self, "built", None)
        if b is not None:
            return macs_params(X, skeleton=b.skeleton, resolution=b.resolution, num_classes=b.num_classes)
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
    extra: str | os.PathLike[str] | None = None,
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
        extra: more records (an archive or a directory of ``result_N.json``, e.g. your own measurements of a
            built-in target) added to the *training* rows; records of architectures in the scoring rows are
            left out of them, so the held-out quality stays honest. The fit is cached under a digest of both.
    """
    import hashlib

    from benchmark.dataset import DatasetError, read_records
    from benchmark.sources import resolve_dataset, resolve_split_dir
    from benchmark.splits import make_split

    base = _config_from(config)
    if config_overrides:
        base = SurrogateConfig.from_json({**base.to_json(), **config_overrides})
    say: Callable[[str], None] = _print if verbose else (lambda _m: None)
    source = built.redirect(resolve_dataset(dataset, download=download))
    info = built.read_info(source)  # a built benchmark (nasopt benchmark build): its own targets
    own: tuple[str, ...] = ()
    if info is None:
        built.forget_boxes()
    else:
        built.register(info)
        own = info.extra_targets
        if base.targets == TARGET_NAMES:  # the default: every target the benchmark has
            base = SurrogateConfig.from_json({**base.to_json(), "targets": list(info.target_names)})
        else:
            info.check_targets(base.targets)
        if config is None and "additive_basis" not in config_overrides:
            # hundreds of records, not thousands, and measurements of a shared machine: the non-negative
            # physical basis (as for a user device) instead of one free weight per block configuration
            base = SurrogateConfig.from_json(
                {
                    **base.to_json(),
                    "additive_basis": "physical",
                    "residual_params": {"base_score": 0.0, **base.residual_params},
                }
            )
        if base.split == "default":
            raise built.BuiltBenchmarkError(
                f"the built benchmark {info.name!r} has no upstream default split; use split=all or "
                f"split=random"
            )
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
            data = _read(source, info)
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
    extra_data = None
    if extra is not None:
        extra_data = read_records(extra, targets=own)
        if len(extra_data) == 0:
            raise DatasetError(f"--extra {extra} holds no result_N.json record")
        sha = hashlib.sha256(f"{sha} with {extra_data.sha256}".encode()).hexdigest()
    root = surrogate_cache_root(cache_dir)
    path = root / f"{sha[:16]}-{base.key()}"
    if path.exists() and not refit:
        problem = _check_cache(path, sha, base)
        if problem is None:
            try:
                model = SurrogateModel.load(path)
                with contextlib.suppress(OSError):  # "last used" of `nasopt bench cache list|prune`
                    os.utime(path)
                return Benchmark(model, sha, path, info)
            except SurrogateCacheError as exc:
                problem = str(exc)
        say(f"cached surrogate at {path}: {problem}; refitting")
    if data is None:
        data = _read(source, info)
    t0 = time.perf_counter()
    rows = np.arange(len(data))
    score_X = score_labels = None
    split_meta: dict[str, Any] = {"name": base.split}
    if base.split != "all":
        split_dir = resolve_split_dir(data.source)
        split = make_split(data, base.split, seed=base.seed, split_dir=split_dir)
        rows = split.train
        val = split.val if keep is None else split.val[keep[split.val]]
        score_X = data.X[val]
        score_labels = {k: v[val] for k, v in data.labels.items()}
        files = str(split_dir) if split_dir is not None and base.split == "default" else None
        split_meta.update({"dir": files, "n_val": len(val)})
        if base.split == "random":
            split_meta["seed"] = base.seed
    if keep is not None:
        rows = rows[keep[rows]]
    train_X, train_labels = data.X[rows], {k: v[rows] for k, v in data.labels.items()}
    if extra_data is not None:
        scored_ids = space.arch_id(score_X) if score_X is not None else np.zeros(0, dtype=np.int64)
        if exclude is not None:
            scored_ids = np.concatenate([scored_ids, space.arch_id(exclude)])
        use = ~np.isin(space.arch_id(extra_data.X), scored_ids)
        train_X = np.concatenate([train_X, extra_data.X[use]])
        train_labels = {k: np.concatenate([v, extra_data.labels[k][use]]) for k, v in train_labels.items()}
        split_meta["extra"] = {
            "source": extra_data.source,
            "sha256": extra_data.sha256,
            "n_records": int(use.sum()),
            "n_left_out_scored": int((~use).sum()),
        }
        say(
            f"adding {int(use.sum())} extra training records from {extra_data.source}"
            + (f" ({int((~use).sum())} left out: their architectures are scored)" if (~use).any() else "")
        )
    split_meta["n_train"] = len(train_X)
    say(
        f"fitting surrogates for {len(base.targets)} targets on {len(train_X)} records "
        f"({base.backend}, {base.n_members} members; first use only) ..."
    )
    model = fit_surrogate(
        train_X,
        train_labels,
        base,
        score_X=score_X,
        score_labels=score_labels,
        progress=say,
    )
    elapsed = time.perf_counter() - t0
    scored = score_labels if score_labels is not None else train_labels
    kept = data if keep is None else data.subset(keep)
    model.meta.update(
        {
            "noise": noise_summary(kept.X, dict(kept.labels), scored, base.targets),
            "dataset_sha256": sha,
            "dataset_source": data.source,
            "split": split_meta,
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
    try:
        leftovers = _write_atomically(model, path)
    except OSError as exc:  # a full disk, a read-only cache: the fit is in memory, only its cache is lost
        _print(
            f"could not cache the fitted surrogate in {path.parent} ({exc.strerror or exc}); using it "
            f"uncached (it is fitted again next time): free space there, or set NASOPT_CACHE_DIR elsewhere"
        )
        return Benchmark(model, sha, None, info)
    if leftovers:
        say(f"removed {len(leftovers)} temporary folder(s) left in {root} by killed fits")
    return Benchmark(model, sha, path, info)


def _read(source: Path, info: BuiltInfo | None) -> Any:
    """The records of ``source`` (:func:`benchmark.dataset.read_records`); a built benchmark's are first
    checked against the checksums of its metadata, and read with its own targets."""
    from benchmark.dataset import _read_archive, read_records

    if info is None:
        return read_records(source)
    entries, _ = _read_archive(source)
    prefix = f"{source}:"
    built.verify(info, [(where.removeprefix(prefix), raw) for _name, where, raw in entries])
    return read_records(source, targets=info.extra_targets)


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


def _write_atomically(model: SurrogateModel, path: Path) -> list[Path]:
    """Write the cache into a temporary sibling, then swap it in with renames; first remove the temporary
    folders killed writers left (:func:`leftover_temporaries`) and return them.

    A process killed at any point leaves either the old entry, the new one or none (refitted next time), never
    a mix. Concurrent writers of one key are safe: whoever renames last wins, and the entries are identical
    (the fit is deterministic).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    gone = remove_leftover_temporaries(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix("tmp"), dir=path.parent))
    old: Path | None = None
    try:
        model.save(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix("old"), dir=path.parent))
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
    return gone


# ---------------------------------------------------------------------------------------- cache upkeep
#: a temporary folder of a writer whose pid cannot be checked (other host, older name) is left this long
STALE_TEMP_SECONDS = 3600.0
_TEMP_NAME = re.compile(r"^\.(?:tmp|old)-(?:(\d+)@([^@]*)@)?")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _temp_prefix(kind: str) -> str:
    """Prefix of a writer's temporary folder: its pid and host, so a pruner can tell whether it still runs."""
    return f".{kind}-{os.getpid()}@{_host()}@"


def _age_s(path: Path, now: float) -> float:
    newest = path.stat().st_mtime
    with contextlib.suppress(OSError):
        for f in path.iterdir():
            newest = max(newest, f.stat().st_mtime)
    return now - newest


def leftover_temporaries(
    cache_dir: str | os.PathLike[str] | None = None, *, now: float | None = None
) -> list[Path]:
    """Temporary folders (``.tmp-*``, ``.old-*``) under the cache root whose writer is gone: its pid (same
    host) no longer runs, or, where that cannot be checked, the folder is older than
    :data:`STALE_TEMP_SECONDS`. A folder of a writer that runs now is never listed."""
    root = surrogate_cache_root(cache_dir)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    out = []
    for d in sorted(root.iterdir()):
        m = _TEMP_NAME.match(d.name)
        if m is None or not d.is_dir():
            continue
        try:
            if m.group(1) is not None and m.group(2) == _host():
                gone = not pid_alive(int(m.group(1)))
            else:
                gone = _age_s(d, now) > STALE_TEMP_SECONDS
        except OSError:  # removed meanwhile (its writer finished)
            continue
        if gone:
            out.append(d)
    return out


def remove_leftover_temporaries(cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove :func:`leftover_temporaries`; returns what was removed."""
    gone = leftover_temporaries(cache_dir)
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


def list_cache(cache_dir: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """Every cached surrogate under the cache root, most recently used first."""
    root = surrogate_cache_root(cache_dir)
    if not root.is_dir():
        return []
    entries = []
    for d in root.iterdir():
        if d.name.startswith(".") or not d.is_dir():
            continue
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            entries.append(describe_cache_entry(d))
    return sorted(entries, key=lambda e: (-e.last_used, e.key))


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_cache` removed (or, in a dry run, would remove).

    Attributes:
        entries: the cache entries; temporaries: folders left by killed writers.
        dry_run: True if nothing was removed; freed_bytes: their total size.
        kept: the entries that stay.
    """

    entries: list[CacheEntry]
    temporaries: list[Path]
    dry_run: bool
    freed_bytes: int
    kept: list[CacheEntry] = field(default_factory=list)


def prune_cache(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    older_than_days: float | None = None,
    keep: int | None = None,
    everything: bool = False,
    dry_run: bool = True,
    now: float | None = None,
) -> PruneResult:
    """Remove cache entries and the temporary folders of killed writers.

    Entries go if ``everything``, else if they pass every criterion given: last used more than
    ``older_than_days`` ago, and not among the ``keep`` most recently used. With no criterion only the
    leftover temporary folders go. ``dry_run`` (the default) removes nothing and says what would go.
    """
    if older_than_days is not None and not (older_than_days >= 0 and np.isfinite(older_than_days)):
        raise ConfigurationError(f"--older-than must be a number of days >= 0, got {older_than_days}")
    if keep is not None and keep < 0:
        raise ConfigurationError(f"--keep must be a number of entries >= 0, got {keep}")
    now = time.time() if now is None else now
    entries = list_cache(cache_dir)
    if everything:
        chosen = entries
    elif older_than_days is None and keep is None:
        chosen = []
    else:
        chosen = [
            e
            for i, e in enumerate(entries)
            if (older_than_days is None or now - e.last_used > older_than_days * 86400.0)
            and (keep is None or i >= keep)
        ]
    temps = leftover_temporaries(cache_dir, now=now)
    freed = sum(e.size_bytes for e in chosen)
    for d in temps:
        with contextlib.suppress(OSError):
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    if not dry_run:
        for e in chosen:
            shutil.rmtree(e.path, ignore_errors=True)
        for d in temps:
            shutil.rmtree(d, ignore_errors=True)
    kept = [e for e in entries if e not in chosen]
    return PruneResult(chosen, temps, dry_run, freed, kept)


__all__ = [
    "STALE_TEMP_SECONDS",
    "TARGET_NAMES",
    "Benchmark",
    "PruneResult",
    "leftover_temporaries",
    "list_cache",
    "load_benchmark",
    "prune_cache",
    "remove_leftover_temporaries",
    "surrogate_cache_root",
]
