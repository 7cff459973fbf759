"""Search for a training proxy that ranks architectures like a reference scheme, at a fraction of its cost.

Given a reference training scheme, reference architectures and a :class:`~nasopt.proxy.space.ProxySpace`,
:func:`search` trains proxies (through a :class:`ProxyEvaluator`) and keeps the one with the highest Kendall
τ against the reference ranking whose cost -- total training time over the reference's, per run -- stays
within ``max_cost``. Two methods, charged the same way (every proxy a method evaluates costs it that proxy's
training time, even when the runs come from the shared cache):

- ``"bo"`` -- constrained expected improvement on GPs of τ and cost (:mod:`nasopt.proxy.bo`, BoTorch), after a
  small spread-out initial design;
- ``"grid"`` -- the paper's method: the space's full-factorial grid in a fixed order
  (:meth:`ProxySpace.points`, each knob from its highest level down, the first knob outermost), skipping
  points whose a-priori cost exceeds the bound, until the budget is spent.

τ comes with its uncertainty from :func:`nasopt.proxy.analyze.analyze`: a bootstrap interval over
architectures, and the reference's own seed-to-seed τ (repeated reference trainings), which caps any τ.

**State on disk** (``out_dir``): ``search.json`` (the configuration; a different one is refused),
``<method>/step_<i>.json`` -- written ``"proposed"`` before a proxy is trained and ``"done"`` with its
results after -- and the evaluator's cached runs. The search is a pure function of the finished steps, so an
interrupted search (even SIGKILL) run again continues where it stopped and retrains nothing that finished.

Evaluators: :class:`TrainingEvaluator` trains the reference architectures with
:func:`nasopt.validation.train.train` (one cached Accel-NASBench record per run); :class:`SyntheticEvaluator`
has a known τ/cost landscape (tests, trying the search out).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from benchmark import space as arch_space
from benchmark._io import atomic_write_text
from benchmark._typing import FloatArray, IntArray
from nasopt.proxy.analyze import MIN_ARCHITECTURES, ProxyDataError, SchemeResults, analyze
from nasopt.proxy.space import ProxySettings, ProxySpace, ProxySpaceError, nominal_cost
from nasopt.proxy.training import job_record as _job_record
from nasopt.proxy.training import train_job

if TYPE_CHECKING:
    from nasopt.validation.train.schemes import TrainScheme

METHODS = ("bo", "grid")
CONFIG_FILE = "search.json"
FORMAT = 1


class ProxySearchError(ProxySpaceError):
    """A proxy search that cannot run (bad budget or bound, a state of another configuration)."""


# ------------------------------------------------------------------------------------------- evaluators
class ProxyEvaluator(Protocol):
    """Trains (or simulates) the reference architectures with a scheme and reports per architecture top-1
    and training time. Implementations cache every run: asking twice costs nothing the second time."""

    #: the reference scheme's knobs as a point (for :func:`nominal_cost`)
    reference_point: ProxySettings
    #: share of a reference epoch's cost spent validating, and the per-step share of its training cost
    #: (for :func:`nominal_cost`)
    val_share: float
    step_share: float
    #: epochs validated at the end of a run by the reference and by a proxy (None: every epoch)
    reference_val_epochs: int | None
    proxy_val_epochs: int | None

    def n_architectures(self) -> int:
        """How many reference architectures there are."""
        ...

    def reference(self) -> SchemeResults:
        """The reference scheme's results ``(n, seeds)`` (NaN where an architecture lacks a seed)."""
        ...

    def evaluate(self, settings: ProxySettings) -> SchemeResults:
        """The proxy's results on the same architectures ``(n, 1)``."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the results depend on (JSON): a search resumes only with the same description."""
        ...


def _nominal(ev: ProxyEvaluator, s: ProxySettings) -> float:
    return nominal_cost(
        s,
        ev.reference_point,
        ev.val_share,
        ev.step_share,
        reference_val_epochs=ev.reference_val_epochs,
        proxy_val_epochs=ev.proxy_val_epochs,
    )


@dataclass
class SyntheticEvaluator:
    """A known landscape: architecture ``i`` has a true quality ``z_i``; the reference measures it with
    seed noise ``ref_noise``; a proxy measures ``rho z_i + sqrt(1 - rho²) e_i`` with ``e_i`` fixed per
    architecture (so τ rises smoothly with ``rho``) and

        rho(s) = fidelity x exp(-((lr_peak - 0.25)/0.3)² - (log2(batch / 64)/2)²)
        fidelity = (epochs / E)^0.3 x (mean resolution / R)^0.5 x train_fraction^0.4

    (an interior optimum in the LR peak and the batch; more training helps with diminishing returns);
    training time ``t_i x nominal_cost(s) x 1.05`` with ``t_i`` per architecture. ``calls`` counts the
    proxies actually computed; ``log_file`` (optional) gets a line per computed proxy and ``delay_s`` makes
    each take that long (for resume tests)."""

    reference_point: ProxySettings
    n: int = 40
    seeds: int = 2
    ref_noise: float = 0.15
    val_share: float = 0.1
    step_share: float = 0.0
    seed: int = 0
    log_file: str | None = None
    delay_s: float = 0.0
    reference_val_epochs: int | None = None
    proxy_val_epochs: int | None = None
    calls: int = field(default=0, init=False)

    def _base(self) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
        rng = np.random.default_rng([self.seed, 17])
        X = arch_space.unique(arch_space.sample(self.n * 2, rng))[0][: self.n]
        z = rng.standard_normal(len(X))
        e = rng.standard_normal(len(X))
        t = rng.uniform(5.0, 15.0, len(X))
        return X, z, e, t

    def n_architectures(self) -> int:
        return self.n

    def rho(self, s: ProxySettings) -> float:
        """The proxy's correlation with the true quality (see the class docstring)."""
        r = self.reference_point
        fid = (
            (s.epochs / r.epochs) ** 0.3
            * (float(np.mean(s.resolutions())) / float(np.mean(r.resolutions()))) ** 0.5
            * (s.train_fraction / r.train_fraction) ** 0.4
        )
        shape = math.exp(-(((s.lr_peak - 0.25) / 0.3) ** 2) - (math.log2(s.batch_size / 64) / 2) ** 2)
        return float(min(0.999, fid * shape))

    def reference(self) -> SchemeResults:
        X, z, _, t = self._base()
        rng = np.random.default_rng([self.seed, 18])
        top1 = 70 + 5 * (z[:, None] + self.ref_noise * rng.standard_normal((len(X), self.seeds)))
        return SchemeResults("reference", X, top1, np.repeat(t[:, None], self.seeds, axis=1))

    def evaluate(self, settings: ProxySettings) -> SchemeResults:
        X, z, e, t = self._base()
        rho = self.rho(settings)
        top1 = 60 + 5 * (rho * z + math.sqrt(1 - rho * rho) * e)
        cost = t * _nominal(self, settings) * 1.05
        if self.delay_s:
            import time

            time.sleep(self.delay_s)
        self.calls += 1
        if self.log_file:
            with open(self.log_file, "a") as fh:
                fh.write(settings.key + "\n")
        return SchemeResults(f"proxy-{settings.key}", X, top1[:, None], cost[:, None])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "synthetic",
            "n": self.n,
            "seeds": self.seeds,
            "ref_noise": self.ref_noise,
            "seed": self.seed,
            "reference_point": self.reference_point.to_dict(),
        }


def stratified_architectures(
    n: int, seed: int = 0, *, skeleton: Any = None, resolution: int = 224, num_classes: int = 1000
) -> IntArray:
    """``(n, 28)`` architectures spanning the space: a uniform pool of ``50 n`` split into ``n`` MAC
    quantile strata, one drawn from each (MACs of ``skeleton`` at ``resolution``)."""
    from benchmark.macs import macs_params

    rng = np.random.default_rng([seed, 23])
    pool = arch_space.unique(arch_space.sample(50 * n, rng))[0]
    kw: dict[str, Any] = {"resolution": resolution, "num_classes": num_classes}
    if skeleton is not None:
        kw["skeleton"] = skeleton
    macs = np.asarray(macs_params(pool, **kw)[0])
    order = np.argsort(macs, kind="stable")
    strata = np.array_split(order, n)
    return np.stack([pool[s[int(rng.integers(len(s)))]] for s in strata])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = json.loads(path.read_text())
        return out
    except (OSError, ValueError):
        return None


@dataclass
class TrainingEvaluator:
    """Trains the reference architectures with :func:`nasopt.validation.train.train` on CPU (or
    ``device``); every run is a directory with an Accel-NASBench record under ``out_dir/runs/<scheme
    folder>/`` and a finished one is read, never retrained.

    Args:
        scheme: the reference :class:`TrainScheme`; ``train_fraction`` its share of the training set.
        data: the ImageNet-layout folder (``train/``, ``val/``).
        archs: ``(n, 28)`` reference architectures (e.g. :func:`stratified_architectures`).
        reference_seeds: per seed, how many architectures (the first ones) the reference trains with it:
            ``{0: n, 1: 10}`` repeats ten for the seed-to-seed τ.
        proxy_seed: the seed proxies train with; None = the first reference seed (then a proxy run starts
            from the same initial weights and sees the data in the same order as that reference run, a
            shared noise that can lift τ; a seed of its own measures the proxy against the reference's
            seed means without it).
        skeleton: width multiplier or skeleton of the networks
            (:func:`nasopt.validation.train.run.as_skeleton`).
        threads: torch threads per training process; workers: training processes in parallel.
    """

    scheme: TrainScheme
    data: str
    archs: IntArray
    out_dir: str
    reference_seeds: Mapping[int, int] | None = None
    proxy_seed: int | None = None
    train_fraction: float = 1.0
    skeleton: Any = 0.25
    device: str = "cpu"
    threads: int | None = 1
    workers: int = 1
    val_share: float = 0.15
    step_share: float = 0.0
    verbose: bool = False
    reference_point: ProxySettings = field(init=False)
    reference_val_epochs: int | None = field(init=False)
    proxy_val_epochs: int | None = field(init=False)

    def __post_init__(self) -> None:
        from nasopt.proxy.space import reference_settings

        self.archs = arch_space.as_batch(self.archs)
        self.reference_point = reference_settings(self.scheme, self.train_fraction)
        # as the schemes validate: the reference its last validate_last epochs (None: all), a proxy the
        # epochs its record reads (ProxySettings.scheme)
        self.reference_val_epochs = self.scheme.validate_last
        self.proxy_val_epochs = self.scheme.top1_best_of_last
        n = len(self.archs)
        self.reference_seeds = dict(self.reference_seeds or {0: n})
        for s, k in self.reference_seeds.items():
            if not 0 < int(k) <= n:
                raise ProxySearchError(
                    f"reference_seeds: seed {s} would train {k} architectures; give 1..{n} "
                    f"(the size of the reference set)"
                )

    def n_architectures(self) -> int:
        return len(self.archs)

    @property
    def seed_of_proxies(self) -> int:
        """The seed proxies train with (``proxy_seed``, else the first reference seed)."""
        assert self.reference_seeds is not None
        return min(self.reference_seeds) if self.proxy_seed is None else int(self.proxy_seed)

    def _jobs(
        self, scheme: TrainScheme, fraction: float, folder: str, seeds: Mapping[int, int]
    ) -> list[dict[str, Any]]:
        return [
            {
                "arch": arch_space.to_string(self.archs[i]),
                "scheme": scheme.to_dict(),
                "data": {"root": self.data, "train_fraction": fraction},
                "out_dir": str(Path(self.out_dir) / "runs" / folder),
                "seed": int(seed),
                "skeleton": self.skeleton,
                "device": self.device,
                "threads": self.threads,
                "verbose": self.verbose,
            }
            for seed, k in sorted(seeds.items())
            for i in range(int(k))
        ]

    def _results(self, name: str, jobs: list[dict[str, Any]]) -> SchemeResults:
        todo = [j for j in jobs if _job_record(j) is None]
        if todo:
            if self.workers > 1 and len(todo) > 1:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(min(self.workers, len(todo)), mp_context=ctx) as pool:
                    list(pool.map(train_job, todo))
            else:
                for j in todo:
                    train_job(j)
        seeds = sorted({j["seed"] for j in jobs})
        col = {s: c for c, s in enumerate(seeds)}
        row = {arch_space.to_string(a): r for r, a in enumerate(self.archs)}
        top1 = np.full((len(self.archs), len(seeds)), np.nan)
        tt = np.full_like(top1, np.nan)
        for j in jobs:
            rec = _job_record(j)
            if rec is None:
                raise ProxyDataError(
                    f"{j['out_dir']}: the run of {j['arch']} seed {j['seed']} left no record"
                )
            r, c = row[j["arch"]], col[j["seed"]]
            top1[r, c] = float(rec["metrics"]["val_top1"])
            tt[r, c] = float(rec["metrics"]["train_time"])
        return SchemeResults(name, self.archs, top1, tt)

    def reference_jobs(self) -> list[dict[str, Any]]:
        assert self.reference_seeds is not None
        return self._jobs(self.scheme, self.train_fraction, "reference", self.reference_seeds)

    def reference(self) -> SchemeResults:
        return self._results("reference", self.reference_jobs())

    def proxy_jobs(self, settings: ProxySettings) -> list[dict[str, Any]]:
        n = len(self.archs)
        frac = settings.train_fraction
        return self._jobs(settings.scheme(self.scheme), frac, f"p{settings.key}", {self.seed_of_proxies: n})

    def evaluate(self, settings: ProxySettings) -> SchemeResults:
        return self._results(f"proxy-{settings.key}", self.proxy_jobs(settings))

    def describe(self) -> dict[str, Any]:
        extra = {} if self.proxy_seed is None else {"proxy_seed": int(self.proxy_seed)}
        return {
            **extra,
            "kind": "training",
            "scheme": self.scheme.to_dict(),
            "train_fraction": self.train_fraction,
            "data": str(Path(self.data).resolve()),
            "archs": [arch_space.to_string(a) for a in self.archs],
            "reference_seeds": {str(k): int(v) for k, v in sorted((self.reference_seeds or {}).items())},
            "skeleton": self.skeleton if isinstance(self.skeleton, (int, float)) else str(self.skeleton),
        }


# ------------------------------------------------------------------------------------------------ search
@dataclass(frozen=True)
class Step:
    """One proxy a method evaluated: its settings, τ (with the 95 % bootstrap interval over
    architectures), its cost (seconds, and as a fraction of the reference's), whether it met the bound."""

    index: int
    settings: ProxySettings
    tau: float
    tau_ci: tuple[float, float]
    cost_s: float
    cost_fraction: float
    nominal_cost: float
    feasible: bool
    top_k: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "done",
            "index": self.index,
            "settings": self.settings.to_dict(),
            "key": self.settings.key,
            "tau": self.tau,
            "tau_ci": list(self.tau_ci),
            "cost_s": self.cost_s,
            "cost_fraction": self.cost_fraction,
            "nominal_cost": self.nominal_cost,
            "feasible": self.feasible,
            "top_k": self.top_k,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        return cls(
            index=int(d["index"]),
            settings=ProxySettings.from_dict(d["settings"]),
            tau=float(d["tau"]),
            tau_ci=(float(d["tau_ci"][0]), float(d["tau_ci"][1])),
            cost_s=float(d["cost_s"]),
            cost_fraction=float(d["cost_fraction"]),
            nominal_cost=float(d["nominal_cost"]),
            feasible=bool(d["feasible"]),
            top_k={str(k): float(v) for k, v in d["top_k"].items()},
        )


@dataclass(frozen=True)
class SearchResult:
    """A method's search: its steps in order, what it spent (seconds and reference-cost units) and the
    reference it was measured against."""

    method: str
    steps: tuple[Step, ...]
    reference_cost_s: float
    spent_s: float
    budget: float
    max_cost: float
    seed_tau_reference: tuple[float, ...]

    @property
    def spent(self) -> float:
        """Search cost in reference-cost units (1 = training every reference architecture once)."""
        return self.spent_s / self.reference_cost_s

    @property
    def best(self) -> Step | None:
        """The feasible step with the highest τ (the first of equals; an undefined τ never wins), or None."""
        ok = [s for s in self.steps if s.feasible and math.isfinite(s.tau)]
        return max(ok, key=lambda s: (s.tau, -s.index)) if ok else None

    def _spent_after(self) -> list[float]:
        """Reference-cost units spent by the end of each step ``(len(steps),)``."""
        return list(itertools.accumulate(s.cost_s / self.reference_cost_s for s in self.steps))

    def best_within(self, spent: float) -> Step | None:
        """The best feasible step among those finished with at most ``spent`` reference-cost units."""
        ok = [
            s
            for s, acc in zip(self.steps, self._spent_after(), strict=True)
            if acc <= spent + 1e-12 and s.feasible and math.isfinite(s.tau)
        ]
        return max(ok, key=lambda s: (s.tau, -s.index)) if ok else None

    def first_reaching(self, tau: float) -> float | None:
        """Reference-cost units spent by the end of the first feasible step with a τ of at least ``tau``
        (the cost of reaching it); None if no step did."""
        for s, acc in zip(self.steps, self._spent_after(), strict=True):
            if s.feasible and s.tau >= tau - 1e-12:
                return acc
        return None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "method": self.method,
            "budget": self.budget,
            "max_cost": self.max_cost,
            "reference_cost_s": self.reference_cost_s,
            "spent_s": self.spent_s,
            "spent": self.spent,
            "seed_tau_reference": list(self.seed_tau_reference),
            "best": best.to_dict() if best else None,
            "steps": [s.to_dict() for s in self.steps],
        }


def cost_fraction(reference: SchemeResults, proxy: SchemeResults) -> float:
    """Proxy cost over reference cost per run: sums over architectures of the seed-mean training time
    (so repeated reference seeds do not inflate the reference's cost)."""
    ids = np.intersect1d(arch_space.arch_id(reference.X), arch_space.arch_id(proxy.X))
    r, p = reference.aligned(ids), proxy.aligned(ids)
    return float(np.nansum(np.nanmean(p.train_time, axis=1)) / np.nansum(np.nanmean(r.train_time, axis=1)))


def reference_cost_s(reference: SchemeResults) -> float:
    """Seconds of one reference training of every architecture (seed-mean per architecture)."""
    return float(np.nansum(np.nanmean(reference.train_time, axis=1)))


def _config(
    evaluator: ProxyEvaluator,
    space: ProxySpace,
    method: str,
    budget: float,
    max_cost: float,
    seed: int,
    n_init: int,
    acquisition: str,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "evaluator": evaluator.describe(),
        "space": space.to_dict(),
        "max_cost": max_cost,
        "seed": seed,
        "bo": {"n_init": n_init, "acquisition": acquisition},
        # the budget and method may change between calls (a larger budget continues a search)
    }


def check_search(
    evaluator: ProxyEvaluator, method: str, budget: float, max_cost: float, n_init: int, acquisition: str
) -> None:
    """One-line :class:`ProxySearchError` for settings that cannot give a meaningful search."""
    from nasopt.proxy.bo import ACQUISITIONS

    if method not in METHODS:
        raise ProxySearchError(f"proxy search method {method!r}: choose one of {', '.join(METHODS)}")
    if not (isinstance(max_cost, (int, float)) and 0.0 < max_cost < 1.0):
        raise ProxySearchError(
            f"max_cost={max_cost!r} must be in (0, 1): the proxy's cost as a fraction of the reference's "
            f"(>= 1 allows a proxy costlier than the reference)"
        )
    if not (isinstance(budget, (int, float)) and budget > 0 and math.isfinite(budget)):
        raise ProxySearchError(f"budget={budget!r} must be a positive number of reference-cost units")
    if evaluator.n_architectures() < MIN_ARCHITECTURES:
        raise ProxySearchError(
            f"{evaluator.n_architectures()} reference architectures are too few for a meaningful Kendall τ; "
            f"give at least {MIN_ARCHITECTURES} (30 or more for intervals narrow enough to choose by)"
        )
    if acquisition not in ACQUISITIONS:
        raise ProxySearchError(f"acquisition={acquisition!r}: choose one of {', '.join(ACQUISITIONS)}")
    if n_init < 1:
        raise ProxySearchError(f"n_init={n_init!r} must be at least 1")


def finished_steps(out_dir: str | os.PathLike[str], method: str) -> int:
    """How many of ``method``'s steps in a search directory are finished: a :func:`search` with that
    ``max_steps`` reads them and trains nothing."""
    return len(_read_steps(Path(out_dir), method)[0])


def _step_path(out: Path, method: str, i: int) -> Path:
    return out / method / f"step_{i:04d}.json"


def _read_steps(out: Path, method: str) -> tuple[list[Step], ProxySettings | None]:
    """The finished steps in order, and the proposed-but-unfinished one after them (if any)."""
    steps: list[Step] = []
    i = 0
    while True:
        d = _read_json(_step_path(out, method, i))
        if d is None:
            return steps, None
        if d.get("status") != "done":
            return steps, ProxySettings.from_dict(d["settings"])
        steps.append(Step.from_dict(d))
        i += 1


def _propose(
    method: str,
    space: ProxySpace,
    evaluator: ProxyEvaluator,
    steps: Sequence[Step],
    max_cost: float,
    seed: int,
    n_init: int,
    acquisition: str,
) -> ProxySettings | None:
    done = {s.settings for s in steps}
    cands = [p for p in space.points() if p not in done]
    nominal = np.array([_nominal(evaluator, p) for p in cands])
    if method == "grid":
        for p, c in zip(cands, nominal, strict=True):
            if c <= max_cost:
                return p
        return None
    from nasopt.proxy import bo

    if not cands:
        return None
    if len(steps) < n_init:
        ok = [i for i, c in enumerate(nominal) if c <= max_cost] or list(range(len(cands)))
        rng = np.random.default_rng([seed, 29])
        pick = bo.initial_design(space.encode([cands[i] for i in ok]), n_init, rng)
        return cands[ok[pick[len(steps)]]] if len(steps) < len(pick) else cands[ok[0]]
    X = space.encode([s.settings for s in steps])
    # an undefined τ (a proxy that ranks nothing: every architecture at the same top-1) carries no ranking: 0
    tau = np.array([s.tau if math.isfinite(s.tau) else 0.0 for s in steps])
    resid = np.array(
        [math.log(max(s.cost_fraction, 1e-12)) - math.log(max(s.nominal_cost, 1e-12)) for s in steps]
    )
    feas = np.array([s.feasible for s in steps])
    acq = bo.acquisition_values(
        X,
        tau,
        resid,
        feas,
        space.encode(cands),
        np.log(np.maximum(nominal, 1e-12)),
        math.log(max_cost),
        acquisition,
    )
    return cands[int(np.argmax(acq))]


def search(
    evaluator: ProxyEvaluator,
    space: ProxySpace,
    out_dir: str | os.PathLike[str],
    *,
    method: str = "bo",
    budget: float = 1.0,
    max_cost: float = 0.25,
    seed: int = 0,
    n_init: int = 2,
    acquisition: str = "cei_per_cost",
    n_boot: int = 1000,
    max_steps: int | None = None,
) -> SearchResult:
    """Search ``space`` for the proxy with the highest τ against the reference with a cost fraction of at
    most ``max_cost``, until ``budget`` reference-cost units are spent (a step starts only while some budget
    is left, so the last may overshoot) or ``max_steps`` steps are done; resumes the state in ``out_dir``.
    """
    check_search(evaluator, method, budget, max_cost, n_init, acquisition)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _config(evaluator, space, method, budget, max_cost, seed, n_init, acquisition)
    cfg_path = out / CONFIG_FILE
    old = _read_json(cfg_path)
    if old is not None and old != json.loads(json.dumps(cfg)):
        diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != json.loads(json.dumps(cfg)).get(k))
        raise ProxySearchError(
            f"{cfg_path}: holds a search with other settings ({', '.join(diff)} differ); use another out_dir "
            f"or the same settings to resume it"
        )
    if old is None:
        atomic_write_text(cfg_path, json.dumps(cfg, indent=1) + "\n")
    ref = evaluator.reference()
    if int(np.isfinite(ref.mean_top1).sum()) < MIN_ARCHITECTURES:
        raise ProxySearchError(
            f"the reference results cover {int(np.isfinite(ref.mean_top1).sum())} architectures; at least "
            f"{MIN_ARCHITECTURES} are needed for a meaningful Kendall τ"
        )
    ref_s = reference_cost_s(ref)
    seed_tau: tuple[float, ...] = ()
    steps, pending = _read_steps(out, method)
    while max_steps is None or len(steps) < max_steps:
        spent = sum(s.cost_s for s in steps)
        if pending is None:
            if spent >= budget * ref_s:
                break
            pending = _propose(method, space, evaluator, steps, max_cost, seed, n_init, acquisition)
            if pending is None:
                break
            i = len(steps)
            path = _step_path(out, method, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                path, json.dumps({"status": "proposed", "index": i, "settings": pending.to_dict()}) + "\n"
            )
        res = evaluator.evaluate(pending)
        a = analyze(ref, res, n_boot=n_boot, seed=seed)
        seed_tau = a.seed_tau_reference
        frac = cost_fraction(ref, res)
        cost = float(np.nansum(np.nanmean(res.train_time, axis=1)))
        step = Step(
            index=len(steps),
            settings=pending,
            tau=a.kendall_tau,
            tau_ci=a.kendall_tau_ci,
            cost_s=cost,
            cost_fraction=frac,
            nominal_cost=_nominal(evaluator, pending),
            feasible=frac <= max_cost,
            top_k={str(k): v for k, v in a.top_k.items()},
        )
        atomic_write_text(_step_path(out, method, step.index), json.dumps(step.to_dict(), indent=1) + "\n")
        steps.append(step)
        pending = None
    if not seed_tau and ref.top1.shape[1] >= 2:
        seed_tau = analyze(ref, ref, n_boot=10).seed_tau_reference
    return SearchResult(
        method, tuple(steps), ref_s, float(sum(s.cost_s for s in steps)), budget, max_cost, seed_tau
    )


def digest(obj: Any) -> str:
    """8 hex digits of a JSON value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]


__all__ = [
    "METHODS",
    "ProxyEvaluator",
    "ProxySearchError",
    "SearchResult",
    "Step",
    "SyntheticEvaluator",
    "TrainingEvaluator",
    "cost_fraction",
    "finished_steps",
    "reference_cost_s",
    "search",
    "stratified_architectures",
    "train_job",
]


# -------------------------------------------------------------------------------------------------- CLI
def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_result(r: SearchResult) -> str:
    """A method's steps and best proxy as text."""
    lines = [
        f"{r.method}: {len(r.steps)} proxies, spent {r.spent:.2f} of {r.budget:g} reference-cost units "
        f"(cost bound {r.max_cost:g} of the reference's)"
    ]
    for s in r.steps:
        lines.append(
            f"  {s.index:3d}  τ {s.tau:6.3f} [{s.tau_ci[0]:.3f}, {s.tau_ci[1]:.3f}]  "
            f"cost {s.cost_fraction:.3f}"
            f"{'' if s.feasible else ' (over)'}  {json.dumps(s.settings.to_dict())}"
        )
    b = r.best
    if b is None:
        lines.append("  no proxy within the cost bound yet")
    else:
        lines.append(
            f"  best: τ {b.tau:.3f} (95 % bootstrap {b.tau_ci[0]:.3f}-{b.tau_ci[1]:.3f}) at "
            f"{1 / b.cost_fraction:.2f}x less cost: {json.dumps(b.settings.to_dict())}"
        )
    if r.seed_tau_reference:
        lines.append(f"  reference seed-to-seed τ {np.mean(r.seed_tau_reference):.3f} (caps any proxy's τ)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``nasopt proxy search``: returns the exit code."""
    import argparse
    import sys

    from benchmark.errors import NasoptError

    ap = argparse.ArgumentParser(
        prog="nasopt proxy search",
        description="Search a training proxy whose ranking of architectures agrees with a reference scheme "
        "(Kendall τ) within a cost bound, by BO or grid search; resumable (state in --out)",
    )
    ap.add_argument("--out", required=True, help="search directory (state, cached training runs)")
    ap.add_argument("--data", help="training data: ImageNet-layout folder with train/ and val/")
    ap.add_argument("--synthetic", action="store_true", help="a synthetic landscape instead of training")
    ap.add_argument("--method", choices=METHODS, default="bo")
    ap.add_argument("--budget", type=float, default=1.0, help="search cost, in reference-cost units")
    ap.add_argument(
        "--max-cost", type=float, default=0.25, help="proxy cost bound, fraction of the reference"
    )
    ap.add_argument("--reference", default="smoke", help="reference scheme: smoke, proxified or full")
    ap.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="reference scheme override"
    )
    ap.add_argument("--train-fraction", type=float, default=1.0, help="the reference's share of the data")
    ap.add_argument("--archs", type=int, default=30, help="reference architectures (MAC-stratified)")
    ap.add_argument("--archs-file", help="reference architectures, one a line (instead of --archs)")
    ap.add_argument("--second-seed", type=int, default=10, help="architectures trained with a 2nd seed")
    ap.add_argument(
        "--proxy-seed", type=int, help="seed the proxies train with (default: the reference's first)"
    )
    ap.add_argument("--skeleton", type=float, default=0.25, help="width multiplier of the networks")
    ap.add_argument("--space", help="JSON file of knob levels (default: ProxySpace.around(reference))")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--val-share", type=float, default=0.15)
    ap.add_argument("--step-share", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-init", type=int, default=2)
    ap.add_argument("--acquisition", default="cei_per_cost", choices=["cei", "cei_per_cost"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        from nasopt.validation.train.schemes import get_scheme

        overrides = {}
        for item in args.set:
            k, sep, v = item.partition("=")
            if not sep:
                raise ProxySearchError(f"--set {item!r}: give FIELD=VALUE (a TrainScheme field)")
            overrides[k] = _parse_value(v)
        ref_scheme = get_scheme(args.reference, **overrides)
        if args.space:
            try:
                levels = json.loads(Path(args.space).read_text())
            except (OSError, ValueError) as exc:
                raise ProxySearchError(f"--space {args.space}: unreadable JSON ({exc})") from None
            space = ProxySpace.from_dict(levels)
        else:
            space = ProxySpace.around(ref_scheme, args.train_fraction)
        space.check(ref_scheme, args.train_fraction)
        ev: ProxyEvaluator
        if args.synthetic:
            from nasopt.proxy.space import reference_settings

            ev = SyntheticEvaluator(
                reference_settings(ref_scheme, args.train_fraction), n=args.archs, seed=args.seed
            )
        else:
            if not args.data:
                raise ProxySearchError("give --data DIR (a train/ + val/ image folder) or --synthetic")
            if args.archs_file:
                try:
                    lines = Path(args.archs_file).read_text().split("\n")
                except OSError as exc:
                    raise ProxySearchError(f"--archs-file {args.archs_file}: {exc.strerror}") from None
                archs = arch_space.from_strings([ln.strip() for ln in lines if ln.strip()])
            else:
                from nasopt.validation.train.run import as_skeleton

                archs = stratified_architectures(
                    args.archs, args.seed, skeleton=as_skeleton(args.skeleton), resolution=ref_scheme.val_res
                )
            n = len(archs)
            seeds = {0: n, 1: args.second_seed} if 0 < args.second_seed <= n else {0: n}
            ev = TrainingEvaluator(
                ref_scheme,
                args.data,
                archs,
                args.out,
                reference_seeds=seeds,
                proxy_seed=args.proxy_seed,
                train_fraction=args.train_fraction,
                skeleton=args.skeleton,
                device=args.device,
                threads=args.threads,
                workers=args.workers,
                val_share=args.val_share,
                step_share=args.step_share,
            )
        result = search(
            ev,
            space,
            args.out,
            method=args.method,
            budget=args.budget,
            max_cost=args.max_cost,
            seed=args.seed,
            n_init=args.n_init,
            acquisition=args.acquisition,
        )
    except NasoptError as exc:
        print(f"nasopt proxy search: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_result(result))
    return 0
