"""Choose what to validate: candidates from search runs (their Pareto sets, a knee, the top-k) plus reference
architectures, each with the surrogate's predictions for every target.

Selection works in the problem's fixed normalised box (0 = ideal, 1 = nadir; :class:`ProblemInfo`), so
"spread along the front" means the same for every run of a problem. Architectures found by several runs are
one candidate (de-duplicated by :func:`benchmark.space.arch_id`) that remembers every run it came from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import ConfigurationError, NasoptError
from nasopt.analysis import normalized_objectives
from nasopt.rundir import Run, find_runs, read_run
from optimizers.base import ProblemInfo
from optimizers.indicators import nondominated_mask

SELECTIONS = ("pareto", "knee", "top-k", "all")


@dataclass(frozen=True)
class PublishedResult:
    """A model whose measured numbers are published but whose architecture is not (a context point only)."""

    name: str
    device: str
    values: dict[str, float]
    scheme: str
    source: str


#: The Accel-NASBench paper's searched models, as listed in its repository's evaluation README
#: (afzalxo/Accel-NASBench, ``anb_eval/README.md`` at commit 9204f4f, "No-proxy eval results"). Their
#: architectures are not published, so they are shown beside the fronts, never built or measured; their
#: accuracies come from full (not proxified) training, so they are not comparable with proxified predictions.
_ANB_SOURCE = "Accel-NASBench repository, anb_eval/README.md (commit 9204f4f), 'No-proxy eval results'"
PUBLISHED: dict[str, PublishedResult] = {
    p.name: p
    for p in (
        PublishedResult(
            "efficientnet-vck190-a",
            "vck190",
            {"accuracy": 77.568, "accuracy_int8": 76.966, "throughput_vck190": 2805.14},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-vck190-b",
            "vck190",
            {"accuracy": 76.656, "accuracy_int8": 76.300, "throughput_vck190": 4015.04},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-zcu102-a",
            "zcu102",
            {"accuracy": 77.698, "accuracy_int8": 77.432, "throughput_zcu102": 271.94},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-zcu102-b",
            "zcu102",
            {"accuracy": 76.602, "accuracy_int8": 76.314, "throughput_zcu102": 398.54},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-zcu102-c",
            "zcu102",
            {"accuracy": 75.048, "accuracy_int8": 74.794, "throughput_zcu102": 520.06},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-tpuv3-a",
            "tpuv3",
            {"accuracy": 77.921, "throughput_tpuv3": 1010.304},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-tpuv3-b",
            "tpuv3",
            {"accuracy": 77.348, "throughput_tpuv3": 1012.89},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-a100-a",
            "a100",
            {"accuracy": 77.81, "throughput_a100": 7734.21},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-a100-b",
            "a100",
            {"accuracy": 76.51, "throughput_a100": 11098.05},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-3090-a",
            "3090",
            {"accuracy": 77.358, "throughput_3090": 5988.54},
            "full",
            _ANB_SOURCE,
        ),
        PublishedResult(
            "efficientnet-3090-b",
            "3090",
            {"accuracy": 76.510, "throughput_3090": 7674.69},
            "full",
            _ANB_SOURCE,
        ),
    )
}


class CandidateError(NasoptError, ValueError):
    """Runs or settings from which no candidate set can be chosen (the message names which and why)."""


@dataclass(frozen=True)
class Candidate:
    """One architecture to validate.

    ``predicted`` maps every target to ``(mean, std)`` of the surrogate; ``runs`` are the run directories
    whose Pareto set held it (empty for a reference); ``reason`` is ``pareto``, ``knee``, ``top-k``, ``all``
    or ``reference:<name>``.
    """

    arch: str
    reason: str
    runs: tuple[str, ...] = ()
    predicted: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def genes(self) -> IntArray:
        return space.from_string(self.arch)

    @property
    def is_reference(self) -> bool:
        return self.reason.startswith("reference")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "reason": self.reason,
            "runs": list(self.runs),
            "predicted": {t: list(v) for t, v in self.predicted.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        return cls(
            str(d["arch"]),
            str(d["reason"]),
            tuple(d.get("runs", ())),
            {t: (float(v[0]), float(v[1])) for t, v in dict(d.get("predicted", {})).items()},
        )


def read_search_runs(paths: Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Every run below ``paths``, checked to be of one problem (one line naming the odd one out)."""
    dirs: list[Path] = []
    for p in paths:
        if not Path(p).exists():
            raise CandidateError(f"run directory {str(p)!r} does not exist")
        found = find_runs(Path(p))
        if not found:
            raise CandidateError(f"{p} holds no nasopt run (no trials.parquet below it)")
        dirs += found
    runs = [read_run(d) for d in dict.fromkeys(dirs)]
    first = runs[0]
    for r in runs[1:]:
        if r.info.objectives != first.info.objectives or r.info.constraints != first.info.constraints:
            raise CandidateError(
                f"{r.path} is a run of problem {r.problem!r} ({', '.join(r.info.objectives)}), but "
                f"{first.path} is of {first.problem!r} ({', '.join(first.info.objectives)}); "
                "validate one problem at a time"
            )
    return runs


def pooled_front(runs: Sequence[Run]) -> tuple[IntArray, FloatArray, list[tuple[str, ...]]]:
    """The non-dominated set of the union of the runs' feasible evaluations: genes ``(p, 28)``, normalised
    objectives ``(p, m)`` and, per point, the runs that found it (de-duplicated by architecture)."""
    genes, F, origin = [], [], []
    for r in runs:
        Fn = normalized_objectives(r.trials, r.info)
        ok = np.all(np.isfinite(Fn), axis=1)
        if not ok.any():
            continue
        G = r.trials[[f"g{j}" for j in range(space.N_GENES)]].to_numpy(dtype=np.int64)[ok]
        front = nondominated_mask(Fn[ok])
        genes.append(G[front])
        F.append(Fn[ok][front])
        origin += [str(r.path)] * int(front.sum())
    if not genes:
        raise CandidateError("no run holds a feasible evaluation; nothing to validate")
    G_all, F_all = np.concatenate(genes), np.concatenate(F)
    ids = space.arch_id(G_all)
    found_by: dict[int, set[str]] = {}
    for i, o in zip(ids.tolist(), origin, strict=True):
        found_by.setdefault(i, set()).add(o)
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)
    G_u, F_u = G_all[first], F_all[first]
    keep = nondominated_mask(F_u)
    return G_u[keep], F_u[keep], [tuple(sorted(found_by[int(i)])) for i in ids[first][keep]]


def spread_subset(F: FloatArray, n: int) -> IntArray:
    """Indices of ``n`` points of ``F`` ``(p, m)`` spread along it: each objective's best point first, then
    greedily the point farthest from those chosen (max-min distance), in the normalised box."""
    p = len(F)
    if n >= p:
        return np.arange(p)
    chosen: list[int] = []
    for j in range(F.shape[1]):
        best = int(np.argmin(F[:, j]))
        if best not in chosen and len(chosen) < n:
            chosen.append(best)
    dist = np.min(np.linalg.norm(F[:, None, :] - F[None, chosen, :], axis=2), axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(F - F[nxt], axis=1))
    return np.array(sorted(chosen, key=lambda i: tuple(F[i])))


def knee_point(F: FloatArray) -> int:
    """The front point closest to the ideal corner (0, ..., 0) of the normalised box: the balanced choice."""
    return int(np.argmin(np.linalg.norm(F, axis=1)))


def select_candidates(
    runs: Sequence[Run],
    *,
    select: str = "pareto",
    n: int = 10,
    target: str | None = None,
    references: Sequence[str] = ("efficientnet_b0",),
) -> list[Candidate]:
    """Candidates from ``runs`` (without predictions; see :func:`attach_predictions`).

    ``pareto``: ``n`` points spread along the pooled front; ``knee``: its knee; ``top-k``: the ``n`` best
    feasible evaluations by ``target`` (default: the first objective); ``all``: the whole pooled front.
    ``references`` are named architectures (:data:`benchmark.space.REFERENCES`) added for context.
    """
    if select not in SELECTIONS:
        raise ConfigurationError(f"unknown selection {select!r}; choose one of {', '.join(SELECTIONS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigurationError(f"--n must be a positive integer, got {n!r}")
    unknown = [r for r in references if r.lower().replace("-", "_") not in space.REFERENCES]
    if unknown:
        raise ConfigurationError(
            f"unknown reference architecture(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(space.REFERENCES))}"
        )
    info: ProblemInfo = runs[0].info
    out: list[Candidate] = []
    if select == "top-k":
        tgt = target or info.objectives[0]
        if tgt not in info.objectives:
            raise ConfigurationError(
                f"top-k target {tgt!r} is not an objective of {info.name!r} ({', '.join(info.objectives)})"
            )
        j = info.objectives.index(tgt)
        rows: dict[int, tuple[float, IntArray, set[str]]] = {}
        for r in runs:
            Fn = normalized_objectives(r.trials, r.info)
            G = r.trials[[f"g{g}" for g in range(space.N_GENES)]].to_numpy(dtype=np.int64)
            for i in np.flatnonzero(np.all(np.isfinite(Fn), axis=1)):
                key = int(space.arch_id(G[i])[0])
                prev = rows.get(key)
                runs_of = (prev[2] if prev else set()) | {str(r.path)}
                rows[key] = (min(float(Fn[i, j]), prev[0]) if prev else float(Fn[i, j]), G[i], runs_of)
        best = sorted(rows.values(), key=lambda v: v[0])[:n]
        out = [Candidate(space.to_string(g), "top-k", tuple(sorted(o))) for _, g, o in best]
    else:
        G, F, origin = pooled_front(runs)
        if select == "knee":
            idx = np.array([knee_point(F)])
        elif select == "pareto":
            idx = spread_subset(F, n)
        else:
            idx = np.argsort(F[:, 0])
        out = [Candidate(space.to_string(G[i]), select, origin[i]) for i in idx]
    have = {c.arch for c in out}
    for name in references:
        arch = space.to_string(space.reference(name))
        if arch not in have:
            out.append(Candidate(arch, f"reference:{name.lower().replace('-', '_')}"))
            have.add(arch)
    return out


def attach_predictions(
    candidates: Sequence[Candidate], oracle: Any, targets: Sequence[str] | None = None
) -> list[Candidate]:
    """The candidates with the oracle's ``(mean, std)`` for ``targets`` (default: every target it has)."""
    if not candidates:
        return []
    X = space.from_strings([c.arch for c in candidates])
    preds = oracle.query(X, list(targets) if targets is not None else None)
    return [
        Candidate(
            c.arch, c.reason, c.runs, {t: (float(p.mean[i]), float(p.std[i])) for t, p in preds.items()}
        )
        for i, c in enumerate(candidates)
    ]


def oracle_of(run: Run) -> Any:
    """The oracle a run was searched on, rebuilt from its config (``benchmark.name`` and ``params``)."""
    from benchmark import make_benchmark

    bench = dict(run.config.get("benchmark") or {"name": "surrogate", "params": {}})
    return make_benchmark(str(bench.get("name", "surrogate")), **dict(bench.get("params") or {}))
