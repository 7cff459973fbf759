"""Reference Pareto fronts: computed reproducibly from a benchmark, cached with their provenance.

A reference front is *not* a universal truth: it is the best set of trade-offs found for one problem on one
surrogate (identified by ``bench.digest``) trained on one dataset (its SHA-256). It is computed by
:func:`compute_reference_front` -- the non-dominated set of the union of

- architectures supplied by the caller (e.g. the Pareto sets of long optimizer runs, see
  :mod:`nasopt.fronts_cli`),
- a uniform random sample of the space plus EfficientNet-B0 and the smallest/largest architectures, and
- a Pareto local search on the oracle: every one-gene neighbour of every archive member is evaluated,
  repeatedly, until no archive member is left unexpanded (or the evaluation budget is spent); the archive
  holds the first ``layers`` non-dominated layers so that the search also walks just behind the front.

Fronts are stored as JSON (values, architectures, provenance) plus a CSV copy under
``<cache>/fronts/<problem>__<benchmark digest>.json`` where ``<cache>`` is ``$NASOPT_CACHE_DIR``, else
``$XDG_CACHE_HOME/nasopt``, else ``~/.cache/nasopt``. :func:`ensure_reference_front` recomputes a front
whenever the benchmark or dataset digest differs from the cached one. Hypervolume normalisation and
reference points are the problem's fixed constants; fronts never change them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import devices as user_devices
from benchmark import space
from benchmark._io import atomic_write_text, package_versions
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.api import Oracle
from benchmark.errors import NasoptError
from nasopt.evaluation import Evaluator
from nasopt.problems import Constraint, Problem
from optimizers import indicators
from optimizers.base import ProblemInfo

#: ``X (n, 28) -> (natural objective values (n, m), feasible (n,))``, deterministic (ensemble means).
FrontEvaluate = Callable[[IntArray], tuple[FloatArray, BoolArray]]

FORMAT_VERSION = 1
FRONTS_SUBDIR = "fronts"


class FrontCacheError(NasoptError, ValueError):
    """A cached front file is unreadable or does not match the problem; the message names file and fix."""


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------
def problem_evaluator(problem: Problem, oracle: Oracle) -> FrontEvaluate:
    """A :data:`FrontEvaluate` on ``oracle`` through :class:`nasopt.evaluation.Evaluator` (ensemble means;
    feasibility judged on them)."""
    evaluator = Evaluator(problem.with_eval_mode("mean"), oracle)

    def evaluate(X: IntArray) -> tuple[FloatArray, BoolArray]:
        batch = space.as_batch(X)
        if batch.shape[0] == 0:
            return np.zeros((0, problem.n_obj)), np.zeros(0, dtype=bool)
        ev = evaluator(batch)
        return ev.mean, ev.feasible

    return evaluate


def oracle_evaluator(
    oracle: Oracle, info: ProblemInfo, constraints: Sequence[Constraint | str] | None = None
) -> FrontEvaluate:
    """:func:`problem_evaluator` for a bare :class:`ProblemInfo`: its objectives with ``constraints``
    (default: ``info.constraints``), whose number must match ``info.n_constraints``."""
    cons = tuple(info.constraints if constraints is None else constraints)
    if len(cons) != info.n_constraints:
        raise ValueError(
            f"problem {info.name!r} declares {info.n_constraints} constraint(s) but {len(cons)} were given"
        )
    problem = Problem(info.name, tuple(info.objectives), tuple(Constraint.parse(c) for c in cons))
    return problem_evaluator(problem, oracle)


# --------------------------------------------------------------------------------------------------
# the front
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceFront:
    """A reference front in natural units with where it came from.

    Attributes:
        problem: problem name.
        objectives: objective targets, length ``m``.
        values: natural-unit objective values ``(k, m)`` of the front's architectures.
        archs: compact architecture strings (``space.to_strings``), length ``k``.
        provenance: benchmark/dataset digests, method and budget, seeds, creation time, versions.
        context: optional natural-unit points for plots, e.g. ``{"efficientnet_b0": [acc, thr]}``.
    """

    problem: str
    objectives: tuple[str, ...]
    values: FloatArray
    archs: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    context: dict[str, list[float]] = field(default_factory=dict)

    @property
    def benchmark_digest(self) -> str | None:
        d = self.provenance.get("benchmark_digest")
        return None if d is None else str(d)

    @property
    def dataset_digest(self) -> str | None:
        d = self.provenance.get("dataset_digest")
        return None if d is None else str(d)

    def normalized(self, info: ProblemInfo) -> FloatArray:
        """Front in the problem's normalised minimisation space ``(k, m)``."""
        if tuple(info.objectives) != tuple(self.objectives):
            raise ValueError(
                f"front of {self.problem!r} has objectives {self.objectives}, problem {info.name!r} has "
                f"{info.objectives}; recompute it with: nasopt fronts --problems {info.name}"
            )
        return info.normalize_natural(self.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "problem": self.problem,
            "objectives": list(self.objectives),
            "provenance": self.provenance,
            "context": self.context,
            "points": [
                {"arch": a, **{t: float(v) for t, v in zip(self.objectives, row, strict=True)}}
                for a, row in zip(self.archs, self.values.tolist(), strict=True)
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "<json>") -> ReferenceFront:
        try:
            if int(data.get("format_version", -1)) != FORMAT_VERSION:
                raise FrontCacheError(
                    f"{source}: front format version {data.get('format_version')!r}, "
                    f"expected {FORMAT_VERSION}; "
                    "recompute it with: nasopt fronts --force"
                )
            objectives = tuple(str(t) for t in data["objectives"])
            points = data["points"]
            values = np.array([[float(p[t]) for t in objectives] for p in points], dtype=float)
            return cls(
                problem=str(data["problem"]),
                objectives=objectives,
                values=values.reshape(len(points), len(objectives)),
                archs=tuple(str(p["arch"]) for p in points),
                provenance=dict(data.get("provenance", {})),
                context={str(k): [float(x) for x in v] for k, v in dict(data.get("context", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FrontCacheError):
                raise
            raise FrontCacheError(
                f"{source}: not a valid reference-front file ({exc!r}); "
                "delete it or run nasopt fronts --force"
            ) from exc


def _pareto_layers(F: FloatArray, layers: int) -> BoolArray:
    """Rows in the first ``layers`` non-dominated layers of ``F (n, m)`` (NaN rows excluded)."""
    return indicators.valid_rows(F) & (indicators.pareto_rank(F) < layers)


def _top_k(F: FloatArray, k: int) -> BoolArray:
    """Single objective: the ``k`` smallest finite values (ties at the boundary included)."""
    keep = np.zeros(F.shape[0], dtype=bool)
    ok = np.flatnonzero(np.isfinite(F[:, 0]))
    if ok.size == 0:
        return keep
    vals = F[ok, 0]
    cut = np.sort(vals)[min(k, vals.size) - 1]
    keep[ok[vals <= cut]] = True
    return keep


@dataclass(frozen=True)
class FrontSearchResult:
    """Output of :func:`compute_reference_front`: the front ``X (k, 28)``, ``values (k, m)`` natural units,
    and how many distinct architectures were evaluated."""

    X: IntArray
    values: FloatArray
    n_evaluated: int
    n_rounds: int
    exhausted: bool


def compute_reference_front(
    evaluate: FrontEvaluate,
    info: ProblemInfo,
    rng: np.random.Generator,
    *,
    seeds: Iterable[IntArray] = (),
    n_random: int = 20_000,
    max_evals: int = 400_000,
    layers: int = 2,
    single_objective_width: int = 64,
    batch_size: int = 50_000,
) -> FrontSearchResult:
    """Non-dominated feasible set of: ``seeds`` + a random sample + a Pareto local search on ``evaluate``.

    Args:
        evaluate: natural-unit objectives and feasibility of a batch (see :func:`oracle_evaluator`).
        info: the problem (objective senses, normalisation).
        rng: the only source of randomness (the random sample).
        seeds: extra architecture batches ``(n_i, 28)`` to include, e.g. long optimizer runs' results.
        n_random: uniform random architectures to start from.
        max_evals: stop expanding once this many distinct architectures were evaluated.
        layers: non-dominated layers kept in the local-search archive (multi-objective).
        single_objective_width: archive size for single-objective problems (best ``k`` points).
        batch_size: architectures per ``evaluate`` call.
    """
    m = info.n_obj
    seen: set[int] = set()
    archive_X = np.zeros((0, space.N_GENES), dtype=np.int64)
    archive_F = np.zeros((0, m))  # normalised minimisation, NaN rows never kept
    archive_vals = np.zeros((0, m))
    expanded: set[int] = set()
    n_eval = 0

    def select(F: FloatArray) -> BoolArray:
        return _top_k(F, single_objective_width) if m == 1 else _pareto_layers(F, layers)

    def absorb(X: IntArray) -> None:
        nonlocal archive_X, archive_F, archive_vals, n_eval
        if X.shape[0] == 0:
            return
        ids = space.arch_id(X)
        _, first = np.unique(ids, return_index=True)
        fresh = np.array([i for i in np.sort(first) if int(ids[i]) not in seen], dtype=np.int64)
        if fresh.size == 0:
            return
        X = X[fresh]
        seen.update(int(v) for v in ids[fresh])
        for start in range(0, X.shape[0], batch_size):
            chunk = X[start : start + batch_size]
            vals, feas = evaluate(chunk)
            vals = np.asarray(vals, dtype=float).reshape(chunk.shape[0], m)
            feas = np.asarray(feas, dtype=bool) & np.all(np.isfinite(vals), axis=1)
            n_eval += chunk.shape[0]
            F = info.normalize_natural(vals)
            F[~feas] = np.nan
            cX = np.vstack([archive_X, chunk[feas]])
            cF = np.vstack([archive_F, F[feas]])
            cV = np.vstack([archive_vals, vals[feas]])
            keep = select(cF)
            cX, cF, cV = cX[keep], cF[keep], cV[keep]
            # one architecture per distinct objective vector (the earliest found): ties add nothing to a front
            _, first_rows = np.unique(cF, axis=0, return_index=True)
            first_rows = np.sort(first_rows)
            archive_X, archive_F, archive_vals = cX[first_rows], cF[first_rows], cV[first_rows]

    starts = [np.asarray(s, dtype=np.int64).reshape(-1, space.N_GENES) for s in seeds]
    smallest = np.zeros((1, space.N_GENES), dtype=np.int64)
    largest = (space.CARDINALITIES - 1)[None, :].astype(np.int64)
    starts += [space.reference("efficientnet_b0")[None, :], smallest, largest, space.sample(n_random, rng)]
    absorb(np.vstack(starts))
    rounds = 0
    exhausted = False
    while n_eval < max_evals:
        ids = space.arch_id(archive_X)
        todo = np.array([i for i, v in enumerate(ids.tolist()) if v not in expanded], dtype=np.int64)
        if todo.size == 0:
            exhausted = True
            break
        room = max(1, (max_evals - n_eval) // space.N_NEIGHBOURS)
        todo = todo[:room]
        expanded.update(int(v) for v in ids[todo])
        rounds += 1
        absorb(space.neighbours_batch(archive_X[todo]))
    final = indicators.nondominated_mask(archive_F) if archive_F.shape[0] else np.zeros(0, dtype=bool)
    X, vals = archive_X[final], archive_vals[final]
    order = np.lexsort(info.normalize_natural(vals).T[::-1]) if X.shape[0] else np.zeros(0, dtype=int)
    return FrontSearchResult(X[order], vals[order], n_eval, rounds, exhausted)


# --------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$NASOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/nasopt``, else ``~/.cache/nasopt`` (not created)."""
    from benchmark.sources import cache_dir as _cache_dir

    return _cache_dir()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:40] or "none"


def front_path(problem: str, benchmark_digest: str, cache: str | Path | None = None) -> Path:
    """Where the front of ``problem`` on the benchmark ``benchmark_digest`` is cached (``.json``; the CSV copy
    sits next to it)."""
    root = Path(cache) if cache is not None else cache_dir()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", benchmark_digest)
    if len(name) > 40:  # a digest qualified by user-device surrogates: a short hash keeps it unique
        name = f"{name[:27]}-{hashlib.sha256(benchmark_digest.encode()).hexdigest()[:12]}"
    return root / FRONTS_SUBDIR / f"{_safe(problem)}__{_safe(name)}.json"


def save_reference_front(front: ReferenceFront, cache: str | Path | None = None) -> Path:
    """Write ``front`` as JSON (and a CSV copy) atomically into the cache; returns the JSON path."""
    digest = front.benchmark_digest
    if not digest:
        raise ValueError(f"front of {front.problem!r} has no provenance['benchmark_digest']; cannot cache it")
    path = front_path(front.problem, digest, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(front.to_json(), indent=1, sort_keys=False) + "\n")
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", *front.objectives])
    for a, row in zip(front.archs, front.values.tolist(), strict=True):
        w.writerow([a, *(repr(float(v)) for v in row)])
    atomic_write_text(path.with_suffix(".csv"), buf.getvalue())
    return path


def load_reference_front(
    problem: str,
    benchmark_digest: str,
    *,
    dataset_digest: str | None = None,
    cache: str | Path | None = None,
) -> ReferenceFront | None:
    """The cached front of ``problem`` for this benchmark (and dataset, if given), or None if there is none
    or it was computed on something else."""
    path = front_path(problem, benchmark_digest, cache)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FrontCacheError(
            f"{path}: not valid JSON ({exc}); delete it or run nasopt fronts --force"
        ) from exc
    front = ReferenceFront.from_json(data, str(path))
    if front.problem != problem or front.benchmark_digest != benchmark_digest:
        return None
    if dataset_digest is not None and front.dataset_digest not in (None, dataset_digest):
        return None
    return front


def build_reference_front(
    info: ProblemInfo,
    evaluate: FrontEvaluate,
    *,
    benchmark_digest: str,
    dataset_digest: str | None,
    seed: int = 0,
    seeds: Iterable[IntArray] = (),
    seed_sources: Sequence[str] = (),
    n_random: int = 20_000,
    max_evals: int = 400_000,
    layers: int = 2,
) -> ReferenceFront:
    """Compute the front of ``info`` (see :func:`compute_reference_front`, rng = ``default_rng(seed)``)
    and wrap it with its provenance and EfficientNet-B0's values for context."""
    rng = np.random.default_rng(seed)
    res = compute_reference_front(
        evaluate, info, rng, seeds=seeds, n_random=n_random, max_evals=max_evals, layers=layers
    )
    b0_vals, b0_feas = evaluate(space.reference("efficientnet_b0")[None, :])
    provenance: dict[str, Any] = {
        "benchmark_digest": benchmark_digest,
        "dataset_digest": dataset_digest,
        "method": (
            "non-dominated feasible set (ensemble means) of the union of: supplied architectures "
            f"({', '.join(seed_sources) or 'none'}), {n_random} uniform random architectures, "
            "EfficientNet-B0, "
            f"the smallest and largest architecture, and a Pareto local search over one-gene neighbours "
            f"(archive = first {layers} non-dominated layers; single objective: best 64)"
        ),
        "seed": seed,
        "n_random": n_random,
        "max_evals": max_evals,
        "layers": layers,
        "n_evaluated": res.n_evaluated,
        "local_search_rounds": res.n_rounds,
        "local_search_converged": res.exhausted,
        "seed_sources": list(seed_sources),
        "ideal": list(info.ideal),
        "nadir": list(info.nadir),
        "ref_point": list(info.ref_point),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": dict(package_versions()),
        "command": _command(info),
    }
    devices = user_devices.provenance(_problem_targets(info))
    if devices:  # the device surrogates behind user targets (their stamps are in the benchmark digest)
        provenance["user_devices"] = devices
    context: dict[str, list[float]] = {}
    if bool(b0_feas[0]) or info.n_constraints == 0:
        context["efficientnet_b0"] = [float(v) for v in np.asarray(b0_vals, dtype=float)[0]]
    return ReferenceFront(
        problem=info.name,
        objectives=tuple(info.objectives),
        values=res.values,
        archs=tuple(space.to_strings(res.X)) if res.X.shape[0] else (),
        provenance=provenance,
        context=context,
    )


def _problem_targets(info: ProblemInfo) -> list[str]:
    """Objective and constraint targets of ``info``."""
    return [*info.objectives, *(Constraint.parse(c).target for c in info.constraints)]


def _command(info: ProblemInfo) -> str:
    """The ``nasopt fronts`` line that recomputes the front of ``info`` (a custom problem with its
    definition)."""
    from nasopt.problems import PROBLEMS

    cmd = "nasopt fronts --problems " + info.name
    if info.name in PROBLEMS and tuple(PROBLEMS[info.name].objectives) == tuple(info.objectives):
        return cmd
    cmd += " --objectives " + ",".join(info.objectives)
    return cmd + "".join(f" --constraint '{c}'" for c in info.constraints)


def front_digest(benchmark_digest: str, info: ProblemInfo) -> str:
    """The digest a front of ``info`` on an oracle with ``benchmark_digest`` is cached under: the oracle's,
    extended by the surrogate of every user-device target of the problem (as a run of it records it,
    :func:`benchmark.devices.qualified_digest`); the oracle's own for built-in targets."""
    return user_devices.qualified_digest(benchmark_digest, _problem_targets(info))


def ensure_reference_front(
    info: ProblemInfo,
    evaluate: FrontEvaluate,
    *,
    benchmark_digest: str,
    dataset_digest: str | None = None,
    cache: str | Path | None = None,
    force: bool = False,
    **kwargs: Any,
) -> tuple[ReferenceFront, bool]:
    """The cached front if it matches this benchmark and dataset, else a freshly computed and cached one.

    Returns ``(front, recomputed)``. ``kwargs`` go to :func:`build_reference_front`.
    """
    if not force:
        cached = load_reference_front(info.name, benchmark_digest, dataset_digest=dataset_digest, cache=cache)
        if cached is not None and tuple(cached.objectives) == tuple(info.objectives):
            return cached, False
    front = build_reference_front(
        info, evaluate, benchmark_digest=benchmark_digest, dataset_digest=dataset_digest, **kwargs
    )
    save_reference_front(front, cache)
    return front, True


def front_hypervolume(front: ReferenceFront, info: ProblemInfo) -> float:
    """Hypervolume of a reference front in the problem's fixed normalised space."""
    return indicators.hypervolume(front.normalized(info), np.asarray(info.ref_point, dtype=float))


__all__ = [
    "FrontCacheError",
    "FrontEvaluate",
    "FrontSearchResult",
    "ReferenceFront",
    "build_reference_front",
    "cache_dir",
    "compute_reference_front",
    "ensure_reference_front",
    "front_digest",
    "front_hypervolume",
    "front_path",
    "load_reference_front",
    "oracle_evaluator",
    "problem_evaluator",
    "save_reference_front",
]
