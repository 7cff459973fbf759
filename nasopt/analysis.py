"""Turning trial tables into indicator traces: anytime hypervolume, HV ratio, IGD+, front size, best accuracy.

Runs are read by :mod:`nasopt.rundir` (``read_runs(paths, analysis_columns, ...)``). Indicators are computed
in the problem's fixed normalised space (0 = ideal, 1 = nadir, fixed reference point; see
:class:`optimizers.base.ProblemInfo`), independent of the data, through :mod:`optimizers.indicators`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.targets import get_target, is_target
from nasopt.incumbents import ACCURACY, Incumbents
from nasopt.rundir import Run, RunFormatError, mean_column
from optimizers import indicators
from optimizers.base import ProblemInfo


def target_label(name: str) -> str:
    """Axis label with unit, e.g. ``"accuracy (%)"``, ``"throughput_a100 (img/s)"``."""
    t = get_target(name) if is_target(name) else None
    return f"{name} ({t.unit})" if t is not None and t.unit else name


# --------------------------------------------------------------------------------------------------
# per-run indicators
# --------------------------------------------------------------------------------------------------
def objective_values(trials: pd.DataFrame, info: ProblemInfo) -> FloatArray:
    """Ensemble-mean objective values in natural units ``(n, m)`` from the ``mean_<target>`` columns."""
    cols = [mean_column(t) for t in info.objectives]
    missing = [c for c in cols if c not in trials.columns]
    if missing:
        raise RunFormatError(f"trial table lacks column(s) {missing} for problem {info.name!r}")
    return trials[cols].to_numpy(dtype=np.float64)


def feasible_mask(trials: pd.DataFrame) -> BoolArray:
    """``feasible`` column as bool ``(n,)`` (missing = all feasible)."""
    if "feasible" not in trials.columns:
        return np.ones(len(trials), dtype=bool)
    return np.asarray(trials["feasible"].to_numpy(dtype=bool, na_value=False), dtype=bool)


def normalized_objectives(trials: pd.DataFrame, info: ProblemInfo) -> FloatArray:
    """Normalised minimisation objectives ``(n, m)``; infeasible or failed rows are NaN."""
    F = info.normalize_natural(objective_values(trials, info))
    ok = feasible_mask(trials) & np.all(np.isfinite(F), axis=1)
    F[~ok] = np.nan
    return F


def final_hypervolume(trials: pd.DataFrame, info: ProblemInfo) -> float:
    """HV of the whole run's feasible set: what the runner writes as ``summary.json``'s ``hypervolume``
    (the same :class:`~nasopt.incumbents.Incumbents`)."""
    return Incumbents.from_table(trials, info).hypervolume


def _last(trials: pd.DataFrame, col: str) -> float:
    if col not in trials.columns or len(trials) == 0:
        return float("nan")
    return float(trials[col].iloc[-1])


@dataclass(frozen=True)
class RunTrace:
    """Anytime indicators of one run sampled at ``counts`` (1-based numbers of evaluations), each ``(k,)``.

    ``sim_hours``/``wall_s`` are the simulated GPU-hours / wall seconds used after ``counts[i]`` evaluations.
    ``front_norm``/``front_natural`` hold the final feasible non-dominated set ``(p, m)``.
    """

    problem: str
    label: str
    seed: int
    path: Path | None
    n_evals: int
    counts: IntArray
    hv: FloatArray
    hv_ratio: FloatArray
    igd_plus: FloatArray
    front_size: IntArray
    best_accuracy: FloatArray
    sim_hours: FloatArray
    wall_s: FloatArray
    front_norm: FloatArray
    front_natural: FloatArray
    wall_time_s: float
    optimizer_time_s: float
    sim_time_s: float
    finished: bool

    def at(self, metric: str, count: int) -> float:
        """``metric`` after ``count`` evaluations (NaN if the run is shorter than that)."""
        if count > self.n_evals or count < 1:
            return float("nan")
        values: NDArray[Any] = getattr(self, metric)
        i = int(np.searchsorted(self.counts, count, side="right")) - 1
        if i < 0 or self.counts[i] != count:
            raise KeyError(f"{metric} was not sampled at {count} evaluations; add it to the counts grid")
        return float(values[i])

    def final(self, metric: str) -> float:
        values: NDArray[Any] = getattr(self, metric)
        return float(values[-1]) if len(values) else float("nan")


def eval_grid(n_max: int, checkpoints: Sequence[int] = (), n_points: int = 150) -> IntArray:
    """Shared grid of evaluation counts in ``[1, n_max]``: ``n_points`` evenly spaced plus ``checkpoints``."""
    if n_max < 1:
        return np.zeros(0, dtype=np.int64)
    lin = np.round(np.linspace(1, n_max, max(2, n_points))).astype(np.int64)
    cps = np.asarray([c for c in checkpoints if 1 <= c <= n_max], dtype=np.int64)
    return np.unique(np.concatenate([lin, cps, [1, n_max]]).astype(np.int64))


def analyze_run(
    run: Run,
    info: ProblemInfo,
    grid: Sequence[int] | IntArray,
    *,
    ref_front_norm: FloatArray | None = None,
    igd_at: Sequence[int] | None = None,
) -> RunTrace:
    """Indicators of ``run`` after each count of ``grid`` (counts beyond the run are dropped; the run's
    final count is always included). IGD+ is computed at ``igd_at`` counts and at the end only, if given."""
    t = run.trials
    n = len(t)
    g = np.asarray(grid, dtype=np.int64)
    counts = np.unique(np.concatenate([g[(g >= 1) & (g <= n)], [n] if n else []]).astype(np.int64))
    F = normalized_objectives(t, info)
    distinct = ~t["duplicate"].to_numpy(dtype=bool) if "duplicate" in t.columns else None
    ref = np.asarray(info.ref_point, dtype=float)
    if n:
        igd_counts = None if igd_at is None else [*igd_at, n]
        ai = indicators.anytime_indicators(
            F, ref, counts, ref_front=ref_front_norm, distinct=distinct, igd_at=igd_counts
        )
        hv, ratio, igd, size, front = ai.hv, ai.hv_ratio, ai.igd_plus, ai.front_size, ai.front
    else:
        hv = ratio = igd = np.zeros(0)
        size = np.zeros(0, dtype=np.int64)
        front = np.zeros((0, info.n_obj))
    acc_col = mean_column(ACCURACY)
    if acc_col in t.columns:
        acc = t[acc_col].to_numpy(dtype=np.float64).copy()
        acc[~feasible_mask(t)] = np.nan
        best_acc = indicators.best_so_far(acc, maximize=True)[counts - 1] if n else np.zeros(0)
    else:
        best_acc = np.full(counts.size, np.nan)
    sim = t["sim_time_s"].to_numpy(dtype=np.float64)[counts - 1] / 3600.0 if n else np.zeros(0)
    wall = (
        t["wall_time_s"].to_numpy(dtype=np.float64)[counts - 1]
        if "wall_time_s" in t.columns and n
        else (np.full(counts.size, np.nan))
    )
    order = np.lexsort(front.T[::-1]) if front.shape[0] else np.zeros(0, dtype=np.int64)
    front = front[order]
    return RunTrace(
        problem=run.problem,
        label=run.label,
        seed=run.seed,
        path=run.path,
        n_evals=n,
        counts=counts,
        hv=hv,
        hv_ratio=ratio,
        igd_plus=igd,
        front_size=size,
        best_accuracy=best_acc,
        sim_hours=sim,
        wall_s=wall,
        front_norm=front,
        front_natural=info.denormalize(front),
        wall_time_s=_last(t, "wall_time_s"),
        optimizer_time_s=_last(t, "optimizer_time_s"),
        sim_time_s=_last(t, "sim_time_s"),
        finished=run.finished,
    )


def step_values(x: FloatArray, y: FloatArray, x_new: FloatArray, before: float = math.nan) -> FloatArray:
    """Right-continuous step function through ``(x[i], y[i])`` (x increasing) evaluated at ``x_new``:
    the ``y`` of the last ``x[i] <= x_new``, ``before`` left of ``x[0]`` (and everywhere if ``x`` is empty),
    ``y[-1]`` right of ``x[-1]``."""
    if len(x) == 0:
        return np.full(np.shape(x_new), before, dtype=np.float64)
    idx = np.searchsorted(np.asarray(x), np.asarray(x_new), side="right") - 1
    out = np.where(idx >= 0, np.asarray(y, dtype=float)[np.maximum(idx, 0)], before)
    return np.asarray(out, dtype=np.float64)


__all__ = [
    "RunTrace",
    "analyze_run",
    "eval_grid",
    "feasible_mask",
    "final_hypervolume",
    "normalized_objectives",
    "objective_values",
    "step_values",
    "target_label",
]
