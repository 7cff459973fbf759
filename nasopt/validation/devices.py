"""Bring your own device: measure a few dozen architectures on any machine, fit a device surrogate, and use
its target (``latency_<NAME>`` / ``throughput_<NAME>``) wherever a built-in one works.

``nasopt device add NAME --backend cpu`` (or :func:`add_device`):

1. chooses architectures: a *covering design* first (:func:`covering_design`: every block x {e, k, l, se}
   level in few architectures, each level about equally often), then *active learning*
   (:func:`choose_next`): the candidates where the surrogate ensemble's members disagree most, relative to
   their mean, spread over different block configurations;
2. measures each with a measurement backend (:mod:`nasopt.validation.measure`, the dataset's protocol) and
   writes it at once as an Accel-NASBench record with its provenance (samples, protocol, environment) into
   the device directory (:mod:`benchmark.devices` owns its layout), so an interrupted ``add`` continues where
   it stopped and never measures an architecture twice; one ``add`` (or ``remove``) of a device runs at a
   time (:func:`device_lock`: a second one exits 2 with one line naming the first's PID);
3. fits the device surrogate (:func:`fit_device_surrogate`: the benchmark's additive model on the physical
   basis, ``SurrogateConfig(additive_basis="physical")``) and stores it with the device, with the
   normalisation box derived once from the measurements (kept on later refits, so hypervolumes stay
   comparable).

``main(argv)`` is ``nasopt device add|list|show|remove|export|import|check``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import devices as store
from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import ConfigurationError, NasoptError
from benchmark.tables import block_configs

#: architectures of the covering design when the budget allows (12 = lcm of 2, 3 and 4 levels: balanced)
COVER_SIZE = 12
#: fewest architectures that cover every level (block 5 has 4 layer choices)
MIN_COVER = int(space.CARDINALITIES.max())
#: measurements between two refits of the active-learning ensemble
AL_BATCH = 5
#: random candidates the active learner scores at every step
N_CANDIDATES = 2000
DEFAULT_BUDGET = 50
#: a measurement whose timed samples spread more than this (std / mean, after outlier rejection) was
#: disturbed, e.g. by another process's burst of load: it is taken again (see :func:`measure_quiet`). On this
#: machine's shared CPU, measurements above 5 % were 2x further from the surrogate (sd of the log ratio
#: 0.21 against 0.105, 400 architectures) and 20 % slower than predicted (README.md "Your own device")
MAX_SPREAD = 0.05
#: how often a disturbed measurement is taken again (the quietest of all attempts is kept)
QUIET_RETRIES = 2
#: seconds to wait before taking a disturbed measurement again
QUIET_PAUSE_S = 2.0
#: settings that make a device's measurements what they are (must match when an add is resumed)
PROTOCOL_SETTINGS = ("batch", "threads", "resolution", "warmup", "repeats", "passes", "precision")


class DeviceAddError(NasoptError, ValueError):
    """A ``device add`` that cannot run as asked (budget, settings that differ from the stored device)."""


class DeviceBusyError(DeviceAddError):
    """Another process is adding (or removing) the same device now; the message names its PID."""


# ------------------------------------------------------------------------------------------------------
# which architectures to measure
# ------------------------------------------------------------------------------------------------------
def covering_design(n: int, seed: int = 0) -> IntArray:
    """``n`` architectures ``(n, 28)`` in which every level of every gene (block x {e, k, l, se}) occurs,
    each about ``n / levels`` times (a balanced design: per gene, its levels cycled, then shuffled)."""
    if n < MIN_COVER:
        raise DeviceAddError(
            f"a budget of {n} cannot cover every block choice (block 5 has {MIN_COVER} layer choices); "
            f"use --budget {MIN_COVER} or more"
        )
    rng = np.random.default_rng([seed, 1])
    cols = [rng.permutation(np.resize(np.arange(int(c)), n)) for c in space.CARDINALITIES]
    X = np.stack(cols, axis=1).astype(np.int64)
    # distinct rows: a repeat is re-drawn in the gene with the most levels left to vary (still balanced)
    ids = space.arch_id(X)
    for _ in range(100):
        _, first = np.unique(ids, return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        if not len(dup):
            break
        j = int(rng.integers(space.N_GENES))
        swap = rng.integers(n, size=len(dup))
        X[dup, j], X[swap, j] = X[swap, j].copy(), X[dup, j].copy()
        ids = space.arch_id(X)
    return X


def missing_levels(X: IntArray) -> list[str]:
    """Gene levels that no row of ``X (n, 28)`` uses, as ``block3_e=6`` (empty: every level is covered)."""
    out = []
    for j in range(space.N_GENES):
        used = set(np.asarray(X)[:, j].tolist())
        for lvl in range(int(space.CARDINALITIES[j])):
            if lvl not in used:
                out.append(f"{space.gene_name(j)}={space.GENE_VALUES[j][lvl]}")
    return out


def candidate_pool(seed: int, step: int, n: int = N_CANDIDATES) -> IntArray:
    """Random candidates ``(n, 28)`` for active-learning step ``step`` (seeded by both)."""
    return space.sample(n, np.random.default_rng([seed, 2, step]))


def choose_next(
    model: Any, target: str, candidates: IntArray, k: int, exclude: IntArray | None = None
) -> IntArray:
    """Indices ``(k,)`` into ``candidates (m, 28)`` to measure next: greatest ensemble disagreement (std over
    mean), each pick discounting the candidates that share its block configurations (so a batch spreads).

    Deterministic: the same model and candidates give the same picks. ``exclude`` (``(e, 28)``: measured
    architectures) are never picked.
    """
    mean, std = model.predict(candidates, (target,))[target]
    score = np.where(mean > 0, std / np.maximum(mean, 1e-12), 0.0)
    if exclude is not None and len(exclude):
        score = np.where(np.isin(space.arch_id(candidates), space.arch_id(exclude)), -np.inf, score)
    cfg = block_configs(candidates)[:, : space.N_BLOCKS]
    picks: list[int] = []
    for _ in range(min(k, len(candidates))):
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            break
        picks.append(i)
        shared = (cfg == cfg[i]).sum(axis=1) / space.N_BLOCKS
        score = np.where(score > -np.inf, score * (1.0 - 0.5 * shared), score)
        score[i] = -np.inf
    return np.array(picks, dtype=np.int64)


def fit_device_surrogate(X: IntArray, y: FloatArray, target: str, seed: int = 0) -> Any:
    """The device surrogate of ``target`` on measurements ``X (n, 28)``, ``y (n,)``: the benchmark's additive
    model on the physical basis (5 members from 10 measurements, 2 below)."""
    from benchmark.surrogate import SurrogateConfig, fit_surrogate

    if len(X) < 2:
        raise DeviceAddError(f"{target}: {len(X)} measurement(s); fitting needs at least 2")
    # base_score 0: the residual is a log ratio around 0, and XGBoost's own intercept estimate for the
    # pseudo-Huber loss diverges on a few rows (-65.8 on 10 rows of a real device)
    cfg = SurrogateConfig(
        targets=(target,),
        additive_basis="physical",
        seed=seed,
        n_members=5 if len(X) >= 10 else 2,
        residual_params={"base_score": 0.0},
    )
    return fit_surrogate(np.asarray(X), {target: np.asarray(y, dtype=float)}, cfg)


def derive_box(y: FloatArray, predicted_extremes: FloatArray, maximize: bool) -> tuple[float, float]:
    """``(ideal, nadir)`` enclosing the measured ``y`` and the predicted values of the smallest and largest
    architecture, widened by 20 % and rounded to 2 significant digits."""
    v = np.concatenate([np.asarray(y, float), np.asarray(predicted_extremes, float)])
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = float(v.min()) / 1.2, float(v.max()) * 1.2

    def r2(x: float) -> float:
        return float(f"{x:.2g}")

    return (r2(hi), r2(lo)) if maximize else (r2(lo), r2(hi))


# ------------------------------------------------------------------------------------------------------
# a synthetic device (tests, demos): known additive cost + multiplicative noise, no network built
# ------------------------------------------------------------------------------------------------------
def synthetic_cost(X: IntArray, scale: float = 1.0) -> FloatArray:
    """The synthetic device's true latency ``(n,)`` in ms: additive over blocks on the physical features."""
    from benchmark.cost_features import block_features

    coef = np.array([6.0, 3.0, 2.0, 0.5, 0.05, 0.02]) * scale
    feats = block_features()
    cfg = block_configs(space.as_batch(X))
    return 0.3 * scale + np.sum([feats[b][cfg[:, b]] @ coef for b in range(space.N_BLOCKS)], axis=0)


class SyntheticDevice:
    """A stand-in backend with a known additive cost and ``noise`` relative spread per repeat
    (``--backend synthetic``; ``delay``: seconds each measurement takes, to test interruption)."""

    name = "synthetic"

    def __init__(
        self,
        *,
        metric: str = "latency",
        device_name: str = "synthetic",
        noise: float = 0.01,
        delay: float = 0.0,
        repeats: int = 10,
        seed: int = 0,
        **_ignored: Any,
    ) -> None:
        self.metric, self.device_name, self.noise, self.delay = metric, device_name, noise, delay
        self.repeats, self.seed = repeats, seed
        self.calls = 0

    def check_available(self) -> None:
        return None

    def protocol(self) -> Any:
        from nasopt.validation.measure import Protocol

        return Protocol(
            "synthetic", self.metric, 1, 224, "fp32", 0, self.repeats, 1, 1, (("noise", self.noise),)
        )

    def measure(self, arch: Any) -> Any:
        from nasopt.validation.measure import Measurement
        from nasopt.validation.measure.stats import summarize

        genes = space.parse(arch)
        if self.delay:
            time.sleep(self.delay)
        self.calls += 1
        rng = np.random.default_rng([self.seed, int(space.arch_id(genes[None, :])[0]) % (2**32), self.calls])
        lat = float(synthetic_cost(genes[None, :])[0]) * np.exp(rng.normal(0.0, self.noise))
        per = lat * np.exp(rng.normal(0.0, self.noise / 3, self.repeats))
        samples = per if self.metric == "latency" else 1000.0 / per
        st = summarize(samples)
        return Measurement(
            space.to_string(genes),
            self.device_name,
            self.metric,
            store.UNITS[self.metric],
            st.mean,
            st.std,
            st.median,
            st.robust_std,
            st.n_kept,
            st.n_rejected,
            tuple(float(s) for s in samples),
            self.protocol(),
            {"device": "synthetic", "runtime": "synthetic additive cost"},
        )


def make_device_backend(backend: str, metric: str, device_name: str, settings: dict[str, Any]) -> Any:
    """A measurement backend (the registry's, or ``synthetic``) with the device's settings."""
    if backend == "synthetic":
        return SyntheticDevice(metric=metric, device_name=device_name, **settings)
    from nasopt.validation.measure import make_backend

    allowed = {k: v for k, v in settings.items() if k in PROTOCOL_SETTINGS}
    b = make_backend(backend, metric=metric, device_name=device_name, **allowed)
    b.check_available()
    return b


def measure_quiet(
    backend: Any,
    genes: IntArray,
    *,
    max_spread: float = MAX_SPREAD,
    retries: int = QUIET_RETRIES,
    pause_s: float | None = None,
) -> tuple[Any, list[float]]:
    """Measure ``genes`` until the samples' relative spread (std / mean) is at most ``max_spread``, at most
    ``1 + retries`` times, ``pause_s`` apart (default :data:`QUIET_PAUSE_S`); returns the quietest
    measurement and every attempt's spread.

    A shared machine's load comes in bursts: a measurement taken in one is slow and spread out, and its own
    spread says so. ``max_spread <= 0`` or ``retries = 0``: one attempt, as a plain measurement."""
    best: Any = None
    spreads: list[float] = []
    for attempt in range(1 + max(0, retries)):
        if attempt:
            time.sleep(QUIET_PAUSE_S if pause_s is None else pause_s)
        m = backend.measure(genes)
        spread = float(m.std / m.mean) if m.mean else float("inf")
        spreads.append(spread)
        if best is None or spread < min(spreads[:-1]):
            best = m
        if max_spread <= 0 or spread <= max_spread:
            break
    return best, spreads


# ------------------------------------------------------------------------------------------------------
# device add
# ------------------------------------------------------------------------------------------------------
@dataclass
class AddResult:
    """What one ``add`` did: measured (this call) and total counts, the stop reason, the fit, the timing."""

    name: str
    target: str
    n_measured_now: int
    n_total: int
    stopped: str
    fit: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def _say(msg: str) -> None:
    print(f"[nasopt.device] {msg}", file=sys.stderr, flush=True)


def _settings_info(backend: str, metric: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"backend": backend, "metric": metric, "settings": dict(sorted(settings.items()))}


def _resume_settings(
    name: str, backend: str | None, metric: str | None, settings: dict[str, Any]
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Backend, metric and settings of the add: the stored ones when the device exists (given ones must
    match), else the given ones (a backend is required)."""
    path = store.device_dir(name)
    if (path / store.DEVICE_FILE).is_file():
        dev = store.read_device(name)
        info = dev.info
        stored = dict(info.get("settings", {}))
        given = {k: v for k, v in settings.items() if v is not None}
        clash = [
            f"{k}={given[k]!r} (stored {stored.get(k)!r})"
            for k in given
            if k in stored and stored[k] != given[k]
        ]
        if backend is not None and backend != info["backend"]:
            clash.insert(0, f"backend={backend!r} (stored {info['backend']!r})")
        if metric is not None and metric != info["metric"]:
            clash.insert(0, f"metric={metric!r} (stored {info['metric']!r})")
        if clash:
            raise DeviceAddError(
                f"device {name!r} exists with other settings: {', '.join(clash)}; continue it with its own "
                f"settings, or add a new device (or nasopt device remove {name})"
            )
        return info["backend"], info["metric"], {**stored, **given}, info
    store.check_device_name(name)
    if backend is None:
        raise DeviceAddError(f"new device {name!r}: give --backend (cpu, onnxruntime, torch-cpu, cuda)")
    return backend, metric or "latency", {k: v for k, v in settings.items() if v is not None}, {}


def _check_protocol(name: str, stored: dict[str, Any], now: dict[str, Any]) -> None:
    """:class:`DeviceAddError` naming every protocol field (e.g. the thread count ``all`` resolves to on
    another machine) in which ``now`` differs from the device's ``stored`` protocol."""
    now = json.loads(json.dumps(now))
    diff = [f"{k} {now[k]!r} (stored {stored.get(k)!r})" for k in sorted(now) if now[k] != stored.get(k)]
    if diff:
        raise DeviceAddError(
            f"device {name!r} would be measured with another protocol here: {', '.join(diff)}; continue it "
            f"where it was measured, or add a new device (nasopt device add NEW_NAME ...)"
        )


def add_device(
    name: str,
    backend: str | None = None,
    *,
    metric: str | None = None,
    budget: int | None = None,
    until_tau: float | None = None,
    seed: int = 0,
    cover: int | None = None,
    batch_size: int = AL_BATCH,
    measure_backend: Any = None,
    verbose: bool = True,
    max_spread: float = MAX_SPREAD,
    **settings: Any,
) -> AddResult:
    """Add (or continue adding) the device ``name``; see the module docstring.

    Args:
        backend: measurement backend (``cpu`` = ``onnxruntime``, ``torch-cpu``, ``cuda``, ``synthetic``).
        metric: ``latency`` (default) or ``throughput``.
        budget: measurements in all (default 50 with neither this nor ``until_tau``; 200 with ``until_tau``).
        until_tau: stop once the surrogate's out-of-fold Kendall τ reaches this (checked at every refit).
        seed: seeds the design and the candidates (the same seed and measurements give the same choices).
        cover: size of the covering design (default ``min(budget, 12)``).
        measure_backend: an object with ``measure(genes) -> Measurement`` (instead of building one).
        max_spread: a measurement whose samples spread more (std / mean) is taken again, twice at most, and
            the quietest kept (:func:`measure_quiet`; 0: never); the spreads go to its provenance.
        settings: protocol settings (``batch``, ``threads``, ``resolution``, ``warmup``, ``repeats``,
            ``passes``; ``noise``/``delay`` for ``synthetic``), stored with the device.

    Raises:
        DeviceBusyError: another process is adding this device now (it holds ``<device>/.lock``; the
            message names its PID). Nothing waits: run the command again once it has finished.
    """
    path = store.device_dir(name)
    if not (path / store.DEVICE_FILE).is_file():
        store.check_device_name(name)  # before anything is created
    path.mkdir(parents=True, exist_ok=True)
    with device_lock(name, "add"):
        try:
            return _add_locked(
                name,
                backend,
                metric=metric,
                budget=budget,
                until_tau=until_tau,
                seed=seed,
                cover=cover,
                batch_size=batch_size,
                measure_backend=measure_backend,
                verbose=verbose,
                max_spread=max_spread,
                **settings,
            )
        finally:
            if not (path / store.DEVICE_FILE).is_file():  # refused before anything was stored
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def device_lock(name: str, command: str) -> Iterator[None]:
    """Hold the device's lock (``<device>/.lock``, :func:`nasopt.rundir.locked`: released by the OS when the
    process dies) for ``nasopt device <command>``; :class:`DeviceBusyError` naming the holder's PID when
    another process holds it (no waiting). The device directory must exist."""
    from nasopt.rundir import RunDirBusyError, locked

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(locked(store.device_dir(name), {"command": f"nasopt device {command} {name}"}))
    except RunDirBusyError as exc:
        holder = exc.holder or {}
        pid = holder.get("pid")
        what = holder.get("command", "nasopt device add")
        raise DeviceBusyError(
            f"device {name!r} is in use by another process (PID {pid if pid else '?'}: {what}); wait for "
            f"it to finish (or stop it), then run this again: an add continues where it stopped"
        ) from None
    with stack:
        yield


def _add_locked(
    name: str,
    backend: str | None,
    *,
    metric: str | None,
    budget: int | None,
    until_tau: float | None,
    seed: int,
    cover: int | None,
    batch_size: int,
    measure_backend: Any,
    verbose: bool,
    max_spread: float,
    **settings: Any,
) -> AddResult:
    """:func:`add_device` under the device's lock."""
    from benchmark.targets import get_target, register_target
    from nasopt.validation.records import write_record

    say = _say if verbose else (lambda _m: None)
    runtime_only = {k: settings.pop(k) for k in ("delay",) if k in settings}  # not part of the protocol
    if settings.get("threads") in (0, "0"):
        settings["threads"] = "all"  # one spelling of every core (resolved per measurement, recorded)
    backend, metric, settings, info = _resume_settings(name, backend, metric, settings)
    if metric not in store.METRICS:
        raise ConfigurationError(f"--metric {metric!r}: choose latency or throughput")
    if until_tau is not None and not 0.0 < until_tau < 1.0:
        raise ConfigurationError(f"--until-tau {until_tau}: choose a Kendall tau between 0 and 1")
    budget = budget if budget is not None else (200 if until_tau is not None else DEFAULT_BUDGET)
    n_cover = min(budget, COVER_SIZE) if cover is None else cover
    design = covering_design(max(n_cover, MIN_COVER) if budget >= MIN_COVER else budget, seed)
    target = store.target_name(name, metric)
    path = store.device_dir(name)
    records = path / store.RECORDS_DIR
    mb = measure_backend or make_device_backend(backend, metric, name, {**settings, **runtime_only})
    # continuing: the new measurements must mean what the stored ones do
    if info.get("protocol") is not None and hasattr(mb, "protocol"):
        _check_protocol(name, info["protocol"], mb.protocol().to_dict())
    if not info:
        info = {
            "name": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **_settings_info(backend, metric, settings),
            "protocol": mb.protocol().to_dict(),
            "seed": seed,
            "normalization": None,
        }
        store.write_device(path, info)
    register_target(store.read_device(name).as_target())
    X, y, _ = store.read_device_records(records, target)
    say(f"{name}: {len(X)} measurement(s) stored in {records}; budget {budget}")
    timing = {"measure": 0.0, "fit": 0.0}
    n_now = 0
    stopped = "budget"
    model = None

    def measure_one(genes: IntArray) -> None:
        nonlocal X, y, n_now
        t0 = time.perf_counter()
        m, spreads = measure_quiet(mb, genes, max_spread=max_spread)
        timing["measure"] += time.perf_counter() - t0
        prov = {"device": name, "phase": phase, "spreads": spreads, "max_spread": max_spread}
        write_record(records, genes, [m], extra_provenance=prov)
        X = np.concatenate([X, genes[None, :]])
        y = np.append(y, m.mean)
        n_now += 1
        again = f"  ({len(spreads)} attempts: spread {', '.join(f'{v:.1%}' for v in spreads)})"
        say(
            f"[{len(X)}/{budget}] {phase:<7} {m.arch}  {m.mean:.4g} ± {m.std:.2g} {m.unit}"
            + (again if len(spreads) > 1 else "")
        )

    phase = "cover"
    for genes in design:
        if len(X) >= budget:
            break
        if len(X) and np.isin(space.arch_id(genes[None, :]), space.arch_id(X))[0]:
            continue  # measured before an interruption
        measure_one(genes)
    phase = "active"
    while len(X) >= 2:
        t0 = time.perf_counter()
        model = fit_device_surrogate(X, y, target, seed)
        timing["fit"] += time.perf_counter() - t0
        tau = float(model.meta["oof_quality"][target]["kendall_tau"])
        if until_tau is not None and len(X) >= 10 and tau >= until_tau:
            stopped = f"out-of-fold tau {tau:.3f} >= {until_tau}"
            break
        if len(X) >= budget:
            break
        k = min(batch_size, budget - len(X))
        cands = candidate_pool(seed, len(X))
        for i in choose_next(model, target, cands, k, exclude=X):
            measure_one(cands[i])
    if model is None:
        raise DeviceAddError(f"device {name!r}: {len(X)} measurement(s) so far; fitting needs at least 2")
    model.meta.update({"device": name, "backend": backend, "n_records": len(X)})
    t0 = time.perf_counter()
    from benchmark.oracle import _write_atomically

    _write_atomically(model, path / store.SURROGATE_DIR)
    timing["save"] = time.perf_counter() - t0
    q = model.meta["oof_quality"][target]
    fit = {
        "n_train": len(X),
        "kendall_tau": float(q["kendall_tau"]),
        "r2": float(q["r2"]),
        "mape_in_sample": float(np.mean(np.abs(_in_sample(model, X, target) - y) / y)),
        "within_1std": float(q["within_1std"]),
        "scored_on": "out-of-fold",
    }
    info = store.read_device(name).info
    if info.get("normalization") is None:  # derived once, then kept
        extremes = np.stack([np.zeros(space.N_GENES, np.int64), space.CARDINALITIES - 1])
        pred = model.predict(extremes, (target,))[target][0]
        ideal, nadir = derive_box(y, pred, get_target(target).maximize)
        info["normalization"] = {"ideal": ideal, "nadir": nadir, "derived_from": f"{len(X)} measurements"}
    env = _first_environment(records)
    info.update({"fit": fit, "environment": env, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})
    store.write_device(path, info)
    say(f"{target}: fitted on {len(X)} measurements, out-of-fold tau {fit['kendall_tau']:.3f} ({stopped})")
    return AddResult(name, target, n_now, len(X), stopped, fit, timing)


def _in_sample(model: Any, X: IntArray, target: str) -> FloatArray:
    """The fitted model's predictions at its training rows (for the stored MAPE; in-sample)."""
    return np.asarray(model.predict(X, (target,))[target][0])


def _first_environment(records: Path) -> dict[str, Any]:
    """The environment of the device's first measurement (``result_0.provenance.json``)."""
    try:
        prov = json.loads((records / "result_0.provenance.json").read_text())
        env: dict[str, Any] = prov["measurements"][0].get("environment", {})
        return env
    except (OSError, ValueError, KeyError, IndexError):
        return {}


# ------------------------------------------------------------------------------------------------------
# predicted vs measured
# ------------------------------------------------------------------------------------------------------
def predicted_vs_measured(
    name: str,
    archs: Sequence[Any] | IntArray,
    *,
    measure_backend: Any = None,
    verbose: bool = True,
    max_spread: float = MAX_SPREAD,
) -> dict[str, Any]:
    """Measure ``archs`` on the device (as ``add`` does, :func:`measure_quiet`) and compare with its
    surrogate: Kendall τ, MAPE, share of measured values within one predicted std, per-architecture rows
    (with each measurement's spread). The measurements are not added to the device."""
    from scipy.stats import kendalltau

    dev = store.read_device(name)
    X = space.as_batch(np.asarray([space.parse(a) for a in archs]))
    mean, std = store.predict(dev.target, X)
    mb = measure_backend or make_device_backend(
        dev.info["backend"], dev.metric, name, dict(dev.info.get("settings", {}))
    )
    meas = []
    spread = []
    for i, genes in enumerate(X):
        m, spreads = measure_quiet(mb, genes, max_spread=max_spread)
        meas.append(m.mean)
        spread.append(min(spreads))
        if verbose:
            _say(f"[{i + 1}/{len(X)}] {m.arch} measured {m.mean:.4g} predicted {mean[i]:.4g} ± {std[i]:.2g}")
    y = np.array(meas)
    err = mean - y
    return {
        "target": dev.target,
        "n": len(y),
        "kendall_tau": float(kendalltau(mean, y)[0]) if len(y) > 1 else float("nan"),
        "mape": float(np.mean(np.abs(err) / y)),
        "within_1std": float(np.mean(np.abs(err) <= std)),
        "rows": [
            {"arch": s, "predicted": float(p), "std": float(sd), "measured": float(v), "spread": sp}
            for s, p, sd, v, sp in zip(space.to_strings(X), mean, std, y, spread, strict=True)
        ],
    }


# ------------------------------------------------------------------------------------------------------
# list / show / remove / export / import
# ------------------------------------------------------------------------------------------------------
def export_device(name: str, out: str | os.PathLike[str]) -> Path:
    """The device's records (+ provenance and ``device.json``) as ``.tar.gz``: ``<NAME>/result_N.json`` as
    in the upstream archive, readable by :func:`benchmark.dataset.read_records` and :func:`import_device`."""
    dev = store.read_device(name)
    out = Path(out)
    if out.exists():
        raise DeviceAddError(f"{out} exists; choose another output file")
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(dev.path / store.DEVICE_FILE, arcname=f"{name}/{store.DEVICE_FILE}")
        for p in sorted(dev.records_dir.glob("result_*.json")):
            tar.add(p, arcname=f"{name}/{p.name}")
    os.replace(tmp, out)
    return out


def import_device(archive: str | os.PathLike[str], name: str | None = None, *, seed: int = 0) -> Any:
    """A device from an :func:`export_device` archive (records + ``device.json``), refitted here; the
    normalisation box travels with it. Returns the :class:`benchmark.devices.UserDevice`."""
    from benchmark.targets import register_target

    src = Path(archive)
    if not src.is_file():
        raise DeviceAddError(f"{src}: no such archive; give a .tar.gz written by nasopt device export")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(src, "r:gz") as tar:
            for m in tar.getmembers():
                base = posix_base(m.name)
                if m.isfile() and (base == store.DEVICE_FILE or base.startswith("result_")):
                    fh = tar.extractfile(m)
                    if fh is not None:
                        files[base] = fh.read()
    except (OSError, tarfile.TarError) as exc:
        raise DeviceAddError(f"{src}: not a readable .tar.gz ({type(exc).__name__}: {exc})") from exc
    if store.DEVICE_FILE not in files:
        raise DeviceAddError(f"{src} holds no {store.DEVICE_FILE}; export devices with nasopt device export")
    info = json.loads(files.pop(store.DEVICE_FILE))
    old = info["name"]
    new = name or old
    store.check_device_name(new)
    path = store.device_dir(new)
    if path.exists():
        raise DeviceAddError(
            f"device {new!r} exists already; import under another name (--name) or remove it"
        )
    records = path / store.RECORDS_DIR
    records.mkdir(parents=True)
    old_t, new_t = store.target_name(old, info["metric"]), store.target_name(new, info["metric"])
    for base, data in files.items():
        if base.endswith(".json") and not base.endswith(".provenance.json"):
            rec = json.loads(data)
            perf = rec.get("platform_perf", {})
            if old_t in perf:
                perf[new_t] = perf.pop(old_t)
            data = json.dumps(rec, indent=1).encode()
        (records / base).write_bytes(data)
    info.update({"name": new, "imported_from": str(src), "fit": {}})
    store.write_device(path, info)
    dev = store.read_device(new)
    register_target(dev.as_target())
    X, y, _ = store.read_device_records(records, new_t)
    model = fit_device_surrogate(X, y, new_t, seed)
    from benchmark.oracle import _write_atomically

    _write_atomically(model, path / store.SURROGATE_DIR)
    q = model.meta["oof_quality"][new_t]
    info["fit"] = {
        "n_train": len(X),
        "kendall_tau": float(q["kendall_tau"]),
        "r2": float(q["r2"]),
        "within_1std": float(q["within_1std"]),
        "scored_on": "out-of-fold",
    }
    store.write_device(path, info)
    return store.read_device(new)


def posix_base(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt device", description="Add your own device as a benchmark target"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "add",
        help="measure architectures, fit the device surrogate, register its target",
        description="Measure architectures on a device, fit its surrogate and register latency_NAME (or "
        "throughput_NAME). Interrupted, it continues where it stopped. One add per device at a time: a "
        "second one exits 2 naming the PID of the first (nothing waits).",
    )
    p.add_argument("name", help="device name (lower case, digits, '_'): the target is latency_NAME")
    p.add_argument("--backend", help="cpu (= onnxruntime), onnxruntime, torch-cpu, cuda, synthetic")
    p.add_argument("--metric", choices=store.METRICS)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", type=int, help=f"measurements in all (default {DEFAULT_BUDGET})")
    g.add_argument("--until-tau", type=float, help="stop at this out-of-fold Kendall tau (at most 200)")
    p.add_argument(
        "--threads",
        type=_threads_arg,
        help="host threads of the CPU backends: a count, or all (= 0, the default: every core this "
        "process may use; the count is recorded with every measurement)",
    )
    for opt, what in (
        ("batch", "images per forward pass (default: the backend's, 1 for latency)"),
        ("resolution", "input resolution (default 224)"),
        ("warmup", "untimed passes first"),
        ("repeats", "timed samples per architecture"),
        ("passes", "forward passes per sample"),
    ):
        p.add_argument(f"--{opt}", type=int, help=what)
    p.add_argument("--noise", type=float, help="synthetic backend: relative noise per measurement")
    p.add_argument("--delay", type=float, help="synthetic backend: seconds per measurement")
    p.add_argument(
        "--max-spread",
        type=float,
        default=MAX_SPREAD,
        help=f"take a measurement again (twice at most) when its samples spread more than this, std / mean "
        f"(default {MAX_SPREAD}: a burst of load from another process; 0: never)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cover", type=int, help=f"covering-design size (default min(budget, {COVER_SIZE}))")
    sub.add_parser("list", help="the user devices")
    p = sub.add_parser("show", help="one device: settings, environment, fit, box")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("remove", help="delete a device (its records and surrogate)")
    p.add_argument("name")
    p = sub.add_parser("export", help="the device's records as a .tar.gz (upstream layout)")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p = sub.add_parser("import", help="a device from an exported .tar.gz (refitted here)")
    p.add_argument("archive")
    p.add_argument("--name", help="import under another name")
    p = sub.add_parser("check", help="measure architectures and compare with the device surrogate")
    p.add_argument("name")
    p.add_argument("--archs", required=True, help="file: JSON list of compact strings, or one per line")
    p.add_argument("--json", action="store_true")
    return ap


def _threads_arg(text: str) -> int | str:
    """``--threads``: a positive count, or ``all`` / ``0`` (every core) as ``"all"``."""
    from nasopt.validation.measure.base import ALL_THREADS

    if text.strip().lower() in (ALL_THREADS, "0"):
        return ALL_THREADS
    if text.strip().isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: give a thread count (1, 2, ...) or all")


def _cmd_add(args: argparse.Namespace) -> int:
    settings = {
        k: getattr(args, k)
        for k in (*PROTOCOL_SETTINGS[:-1], "noise", "delay")
        if getattr(args, k, None) is not None
    }
    res = add_device(
        args.name,
        args.backend,
        metric=args.metric,
        budget=args.budget,
        until_tau=args.until_tau,
        seed=args.seed,
        cover=args.cover,
        max_spread=args.max_spread,
        **settings,
    )
    f = res.fit
    print(
        f"{res.target}: {res.n_total} measurements ({res.n_measured_now} now; stopped: {res.stopped}); "
        f"out-of-fold tau {f['kendall_tau']:.3f}, R2 {f['r2']:.3f}; "
        f"measuring {res.seconds['measure']:.1f} s, fitting {res.seconds['fit']:.1f} s"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    names = store.device_names()
    if not names:
        print(f"no user devices in {store.devices_root()} (add one: nasopt device add NAME --backend cpu)")
    for n in names:
        dev = store.read_device(n)
        f = dev.info.get("fit", {})
        print(
            f"{dev.target:<28} {dev.info.get('backend'):<12} n={f.get('n_train', 0):<4} "
            f"tau={f.get('kendall_tau', float('nan')):.3f}{'' if dev.fitted else '  (not fitted yet)'}"
        )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    dev = store.read_device(args.name)
    X, y, _ = store.read_device_records(dev.records_dir, dev.target)
    if args.json:
        print(json.dumps({**dev.info, "path": str(dev.path), "n_records": len(X)}, indent=1))
        return 0
    i = dev.info
    env = i.get("environment", {})
    print(f"{dev.target}  ({dev.path})")
    print(f"  backend {i.get('backend')}, settings {i.get('settings')}")
    print(
        f"  environment: {env.get('cpu', '?')}, {env.get('runtime', '?')}, threads {env.get('threads', '?')}"
    )
    print(
        f"  records: {len(X)}"
        + (f", {y.min():.4g} .. {y.max():.4g} {store.UNITS[dev.metric]}" if len(y) else "")
    )
    if dev.normalization:
        print(f"  normalisation box (ideal, nadir): {dev.normalization[0]:g}, {dev.normalization[1]:g}")
    f = i.get("fit") or {}
    if f:
        print(
            f"  fit: n={f.get('n_train')} out-of-fold tau {f.get('kendall_tau', float('nan')):.3f} "
            f"R2 {f.get('r2', float('nan')):.3f} within 1 std {f.get('within_1std', float('nan')):.2f}"
        )
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    print(f"removed {remove_device(args.name)}")
    return 0


def remove_device(name: str) -> Path:
    """:func:`benchmark.devices.remove_device` under the device's lock (refused while an add runs)."""
    store.read_device(name)  # a missing device: its own line
    with device_lock(name, "remove"):
        return store.remove_device(name)


def _cmd_export(args: argparse.Namespace) -> int:
    out = export_device(args.name, args.out)
    print(f"wrote {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    dev = import_device(args.archive, args.name)
    print(f"imported {dev.target} into {dev.path} (out-of-fold tau {dev.info['fit']['kendall_tau']:.3f})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from nasopt.validation.cli import _read_archs

    res = predicted_vs_measured(args.name, _read_archs(args.archs))
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(
        f"{res['target']} on {res['n']} architectures: tau {res['kendall_tau']:.3f}, MAPE "
        f"{100 * res['mape']:.1f} %, within 1 std {res['within_1std']:.2f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt device``; returns the exit code (2 with one line for a user error)."""
    args = _parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "add": _cmd_add,
        "list": _cmd_list,
        "show": _cmd_show,
        "remove": _cmd_remove,
        "export": _cmd_export,
        "import": _cmd_import,
        "check": _cmd_check,
    }
    try:
        return handlers[args.cmd](args)
    except NasoptError as exc:
        print(f"nasopt device {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"nasopt device {args.cmd}: interrupted; run it again to continue (nothing is measured twice)",
            file=sys.stderr,
        )
        return 130
