"""What the report knows per problem: its runs' indicator traces, reference front and context points.

This is the report's only reader of run directories: every use of the run-reading API
(``nasopt.rundir.read_runs``, ``Run``, ``nasopt.analysis.analyze_run``) is in this module.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import FloatArray
from benchmark.errors import NasoptError
from nasopt.analysis import RunTrace, analyze_run, eval_grid
from nasopt.fronts import ReferenceFront, load_reference_front
from nasopt.report.metrics import HV_RATIO
from nasopt.rundir import Run, analysis_columns, read_runs
from optimizers import indicators
from optimizers.base import ProblemInfo


class ReportError(NasoptError, ValueError):
    """The runs given to the report cannot be compared as they are; the message says how to split them."""


# --------------------------------------------------------------------------------------------------
# context points for the front plots
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContextPoints:
    """Points drawn behind the fronts, natural units.

    Attributes:
        measured: measured objective values ``(n, m)`` (e.g. the Accel-NASBench records), or None.
        b0: EfficientNet-B0's objective values ``(m,)``, or None.
        measured_label, b0_label: legend texts.
    """

    measured: FloatArray | None = None
    b0: FloatArray | None = None
    measured_label: str = "Accel-NASBench measured"
    b0_label: str = "EfficientNet-B0"


#: a mapping problem name -> points, or a callable ``(problem info) -> points or None``
ContextSource = Mapping[str, ContextPoints] | Callable[[ProblemInfo], ContextPoints | None]


def dataset_context(dataset: Any) -> Callable[[ProblemInfo], ContextPoints | None]:
    """Context from a ``benchmark.dataset.Dataset`` (``.X (n, 28)``, ``.labels[target] (n,)``): its measured
    points and, if the dataset holds it, EfficientNet-B0's measured values."""
    b0_id = int(space.arch_id(space.reference("efficientnet_b0"))[0])

    def context(info: ProblemInfo) -> ContextPoints | None:
        if not all(t in dataset.labels for t in info.objectives):
            return None
        vals = np.column_stack([np.asarray(dataset.labels[t], dtype=float) for t in info.objectives])
        ok = np.all(np.isfinite(vals), axis=1)
        ids = space.arch_id(np.asarray(dataset.X))
        hits = np.flatnonzero((ids == b0_id) & ok)
        b0 = vals[hits].mean(axis=0) if hits.size else None
        return ContextPoints(
            measured=vals[ok],
            b0=b0,
            measured_label=f"Accel-NASBench measured (n={int(ok.sum())})",
            b0_label="EfficientNet-B0 (measured)",
        )

    return context


def _resolve_context(source: ContextSource | None, info: ProblemInfo) -> ContextPoints | None:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(info.name)
    return source(info)


# --------------------------------------------------------------------------------------------------
# per-problem data
# --------------------------------------------------------------------------------------------------
@dataclass
class ProblemData:
    """Everything the report knows about one problem.

    Attributes:
        info: the problem's fixed constants.
        traces: one indicator trace per run (sorted by run directory).
        run_columns: per trace, the run-directory facts ``runs.csv`` shows (``summary_hypervolume``,
            ``benchmark_digest``).
        ref_front, ref_hv: the reference front and its HV (NaN without a front).
        context: points drawn behind the fronts, or None.
    """

    info: ProblemInfo
    traces: list[RunTrace]
    run_columns: list[dict[str, Any]]
    ref_front: ReferenceFront | None = None
    ref_hv: float = math.nan
    context: ContextPoints | None = None

    @property
    def labels(self) -> list[str]:
        return sorted({t.label for t in self.traces})

    def by_label(self) -> dict[str, list[RunTrace]]:
        """Traces per optimizer label (sorted), each list sorted by seed."""
        out: dict[str, list[RunTrace]] = {lab: [] for lab in self.labels}
        for t in self.traces:
            out[t.label].append(t)
        for lst in out.values():
            lst.sort(key=lambda tr: tr.seed)
        return out


def _run_columns(run: Run) -> dict[str, Any]:
    return {
        "summary_hypervolume": float(run.summary.get("hypervolume", math.nan) or math.nan),
        "benchmark_digest": run.benchmark_digest or "",
    }


def _check_one_definition(name: str, runs: Sequence[Run]) -> None:
    defs = {
        (r.info.objectives, r.info.ideal, r.info.nadir, r.info.ref_point, r.info.n_constraints) for r in runs
    }
    if len(defs) > 1:
        raise ReportError(
            f"runs of problem {name!r} use {len(defs)} different definitions (objectives/normalisation/"
            "constraints); compare them in separate reports or give custom problems their own names"
        )


def _reference_front(
    name: str,
    runs: Sequence[Run],
    reference_fronts: bool | Mapping[str, ReferenceFront],
    cache: str | Path | None,
    notes: list[str],
) -> ReferenceFront | None:
    if isinstance(reference_fronts, Mapping):
        return reference_fronts.get(name)
    if not reference_fronts:
        return None
    digests = {r.benchmark_digest for r in runs}
    if len(digests) != 1 or None in digests:
        notes.append(
            f"`{name}`: runs come from {len(digests)} different benchmark digests "
            f"({sorted(str(d) for d in digests)}); no reference front is used for this problem"
        )
        return None
    digest = str(next(iter(digests)))
    front = load_reference_front(name, digest, cache=cache)
    if front is None:
        notes.append(
            f"`{name}`: no cached reference front for benchmark `{digest}`; compute it with "
            f"`nasopt fronts --problems {name}` (on the same benchmark)"
        )
    return front


def _problem_data(
    name: str,
    runs: Sequence[Run],
    *,
    checkpoints: Sequence[int],
    reference_fronts: bool | Mapping[str, ReferenceFront],
    context: ContextSource | None,
    label_keys: Sequence[str],
    cache: str | Path | None,
    curve_points: int,
    notes: list[str],
) -> ProblemData:
    info = runs[0].info
    _check_one_definition(name, runs)
    modes = {r.info.eval_mode for r in runs}
    if len(modes) > 1 and not label_keys:
        notes.append(
            f"`{name}`: runs mix evaluation modes {sorted(modes)} under one label per optimizer; use "
            "--label-keys optimizer.name,problem.eval_mode to separate them"
        )
    ref_front = _reference_front(name, runs, reference_fronts, cache, notes)
    ref_norm = ref_front.normalized(info) if ref_front is not None else None
    ref_hv = (
        indicators.hypervolume(ref_norm, np.asarray(info.ref_point, dtype=float))
        if ref_norm is not None and len(ref_norm)
        else math.nan
    )
    grid = eval_grid(max(r.n_evals for r in runs), checkpoints, curve_points)
    traces = [analyze_run(r, info, grid, ref_front_norm=ref_norm, igd_at=checkpoints) for r in runs]
    unfinished = sum(not r.finished for r in runs)
    if unfinished:
        notes.append(
            f"`{name}`: {unfinished} of {len(runs)} runs are not finished (summary.json finished=false "
            "or missing); they are included with the evaluations they have"
        )
    if ref_norm is not None:
        best_ratio = max((HV_RATIO.final(t) for t in traces), default=math.nan)
        if np.isfinite(best_ratio) and best_ratio > 1.0 + 1e-9:
            notes.append(
                f"`{name}`: a run beats the reference front (HV ratio {best_ratio:.4f} > 1); "
                "recompute the front with more effort or include these runs"
            )
    columns = [_run_columns(r) for r in runs]
    return ProblemData(info, traces, columns, ref_front, ref_hv, _resolve_context(context, info))


def load_problem_data(
    paths: Iterable[str | Path],
    *,
    checkpoints: Sequence[int],
    reference_fronts: bool | Mapping[str, ReferenceFront] = False,
    context: ContextSource | None = None,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
    cache: str | Path | None = None,
    curve_points: int = 150,
) -> tuple[dict[str, ProblemData], list[str]]:
    """Find and analyse the runs below ``paths``, grouped by problem (sorted by name).

    Returns the data per problem and the notes for the reader (duplicate runs, unfinished runs, missing
    reference fronts, ...). See :func:`nasopt.report.build_report` for the arguments.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = read_runs(paths, analysis_columns, problems=problems, label_keys=label_keys)
    notes += [str(w.message) for w in caught]
    by_problem: dict[str, list[Run]] = {}
    for r in runs:
        by_problem.setdefault(r.problem, []).append(r)
    data = {
        name: _problem_data(
            name,
            by_problem[name],
            checkpoints=checkpoints,
            reference_fronts=reference_fronts,
            context=context,
            label_keys=label_keys,
            cache=cache,
            curve_points=curve_points,
            notes=notes,
        )
        for name in sorted(by_problem)
    }
    return data, notes


__all__ = [
    "ContextPoints",
    "ContextSource",
    "ProblemData",
    "ReportError",
    "dataset_context",
    "load_problem_data",
]
