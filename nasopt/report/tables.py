"""The report's tables (pandas DataFrames) and their CSV files; the metric columns come from the registry."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasopt import stats
from nasopt.analysis import RunTrace
from nasopt.report.data import ProblemData
from nasopt.report.metrics import END, METRICS, PRIMARY, Checkpoint, Metric, checkpoint_names, metrics_for

#: the columns of an empty tests table
TESTS_COLUMNS = (
    "problem",
    "metric",
    "checkpoint",
    "optimizer",
    "best",
    "n",
    "median",
    "p",
    "p_holm",
    "a12_best_vs_group",
    "significant",
    "p_holm_min",
)
#: columns of p-values: written in scientific notation (every other float column with fixed decimals)
P_COLUMNS = ("p", "p_holm", "p_holm_min")
#: decimals of every other float column of the CSV files (enough to read every value back exactly)
CSV_DECIMALS = 15


@dataclass(frozen=True)
class ReportTables:
    """The report's tables.

    Attributes:
        runs: one row per run: final and checkpoint values, times, run facts.
        checkpoints: per problem x optimizer x metric x checkpoint: median, IQR, mean, t-CI.
        final: per problem x optimizer: final values (wide).
        tests: rank-sum tests against the best optimizer per problem, Holm-corrected.
        ranks: rank of each optimizer per problem (median final primary metric) and the average.
    """

    runs: pd.DataFrame
    checkpoints: pd.DataFrame
    final: pd.DataFrame
    tests: pd.DataFrame
    ranks: pd.DataFrame

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``<name>.csv`` per table into ``directory`` (created); returns name -> path."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("runs", "checkpoints", "final", "tests", "ranks"):
            paths[name] = directory / f"{name}.csv"
            csv_formatted(getattr(self, name)).to_csv(paths[name], index=name == "ranks")
        return paths


def csv_formatted(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every float column as text in one format per column: p-values (:data:`P_COLUMNS`) in
    scientific notation, the others with :data:`CSV_DECIMALS` decimals; missing values empty."""

    def fmt(spec: str) -> Any:
        return lambda x: "" if not np.isfinite(x) else format(float(x), spec)

    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            spec = ".15e" if col in P_COLUMNS else f".{CSV_DECIMALS}f"
            out[col] = out[col].map(fmt(spec))
    return out


def reached_checkpoints(traces: Sequence[RunTrace], checkpoints: Sequence[int]) -> list[int]:
    """The checkpoints at least one of ``traces`` reached (sorted); the others get no column."""
    n_max = max((t.n_evals for t in traces), default=0)
    return sorted({int(c) for c in checkpoints if c <= n_max})


def _costs(trace: RunTrace) -> dict[str, float]:
    """What a run cost: simulated GPU-hours, wall and optimizer seconds, optimizer share of the wall time."""
    wall, opt = trace.wall_time_s, trace.optimizer_time_s
    return {
        "sim_gpu_hours": trace.sim_time_s / 3600.0,
        "wall_time_s": wall,
        "optimizer_time_s": opt,
        "optimizer_overhead_pct": 100.0 * opt / wall if wall > 0 else math.nan,
    }


def runs_table(data: Mapping[str, ProblemData], checkpoints: Sequence[int]) -> pd.DataFrame:
    """One row per run: every metric at the end (and per checkpoint where the registry asks), the costs,
    the run-directory facts and the path."""
    rows = []
    reached = reached_checkpoints([t for p in data.values() for t in p.traces], checkpoints)
    for problem in data.values():
        for trace, facts in zip(problem.traces, problem.run_columns, strict=True):
            row: dict[str, Any] = {
                "problem": trace.problem,
                "optimizer": trace.label,
                "seed": trace.seed,
                "n_evals": trace.n_evals,
                "finished": trace.finished,
            }
            for m in METRICS:
                row[f"{m.name}_end"] = m.final(trace)
                if m.by_checkpoint:
                    row.update({f"{m.name}_{c}": m.at(trace, c) for c in reached})
            row.update(_costs(trace))
            row.update(facts)
            row["path"] = str(trace.path)
            rows.append(row)
    return pd.DataFrame(rows)


def checkpoints_table(
    data: Mapping[str, ProblemData], checkpoints: Sequence[int], confidence: float
) -> pd.DataFrame:
    """Per problem x optimizer x metric x checkpoint (and the end): summary over seeds."""
    rows = []
    for name, problem in data.items():
        metrics = metrics_for(problem.ref_front is not None)
        for label, traces in problem.by_label().items():
            for m in metrics:
                for c in checkpoint_names(checkpoints):
                    s = stats.summarize(np.array([m.at(t, c) for t in traces], dtype=float), confidence)
                    evals = float(np.median([t.n_evals for t in traces])) if c == END else float(c)
                    rows.append(
                        {
                            "problem": name,
                            "optimizer": label,
                            "metric": m.name,
                            "checkpoint": str(c),
                            "evals": evals,
                            "n_runs": len(traces),
                            **s.as_dict(),
                        }
                    )
    return pd.DataFrame(rows)


def _median_costs(traces: Sequence[RunTrace]) -> dict[str, float]:
    wall = np.array([t.wall_time_s for t in traces])
    opt = np.array([t.optimizer_time_s for t in traces])
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(wall > 0, 100.0 * opt / wall, np.nan)

    def nanmedian(x: np.ndarray) -> float:
        return float(np.nanmedian(x)) if np.isfinite(x).any() else math.nan

    return {
        "sim_gpu_hours_median": float(np.median([t.sim_time_s / 3600.0 for t in traces])),
        "wall_time_s_median": nanmedian(wall),
        "optimizer_time_s_median": nanmedian(opt),
        "optimizer_overhead_pct_median": nanmedian(pct),
    }


def final_table(data: Mapping[str, ProblemData], confidence: float) -> pd.DataFrame:
    """Per problem x optimizer: runs, evaluations, every metric's final summary (``<metric>_median`` ...),
    median costs."""
    rows = []
    for name, problem in data.items():
        metrics = metrics_for(problem.ref_front is not None)
        for label, traces in problem.by_label().items():
            row: dict[str, Any] = {
                "problem": name,
                "optimizer": label,
                "n_runs": len(traces),
                "n_finished": sum(t.finished for t in traces),
                "evals_median": float(np.median([t.n_evals for t in traces])),
            }
            for m in metrics:
                summary = stats.summarize([m.final(t) for t in traces], confidence)
                values = summary.as_dict(prefix=f"{m.name}_")
                values.pop(f"{m.name}_n")
                row.update(values)
            row.update(_median_costs(traces))
            rows.append(row)
    return pd.DataFrame(rows)


def _test_families(metrics: Sequence[Metric], checkpoints: Sequence[int]) -> list[tuple[Metric, Checkpoint]]:
    """The tested (metric, checkpoint) pairs: every checkpoint of a by-checkpoint metric, else the end."""
    families: list[tuple[Metric, Checkpoint]] = []
    for m in metrics:
        if m.tested:
            families += [(m, c) for c in (checkpoint_names(checkpoints) if m.by_checkpoint else [END])]
    return families


def tests_table(data: Mapping[str, ProblemData], checkpoints: Sequence[int], alpha: float) -> pd.DataFrame:
    """Rank-sum tests of every optimizer against the best one per problem, metric and checkpoint."""
    frames = []
    for name, problem in data.items():
        groups_by_label = problem.by_label()
        if len(groups_by_label) < 2:
            continue
        for m, c in _test_families(metrics_for(problem.ref_front is not None), checkpoints):
            groups = {
                lab: np.array([m.at(t, c) for t in trs], dtype=float) for lab, trs in groups_by_label.items()
            }
            groups = {k: v for k, v in groups.items() if np.isfinite(v).any()}
            if len(groups) < 2:
                continue
            df = stats.compare_to_best(groups, higher_is_better=m.higher_is_better, alpha=alpha)
            df["p_holm_min"] = smallest_holm_p(df)
            df.insert(0, "checkpoint", str(c))
            df.insert(0, "metric", m.name)
            df.insert(0, "problem", name)
            frames.append(df.rename(columns={"group": "optimizer"}))
    if not frames:
        return pd.DataFrame(columns=list(TESTS_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def smallest_holm_p(family: pd.DataFrame) -> float:
    """The smallest Holm-corrected p any test of ``family`` (rows of :func:`nasopt.stats.compare_to_best`)
    can reach with its numbers of runs: (number of tests) x the smallest attainable rank-sum p. At or above
    alpha, no test of the family can be significant whatever the values."""
    n_of = dict(zip(family["group"], family["n"], strict=True))
    best = str(family["best"].iloc[0])
    others = [g for g in n_of if g != best and n_of[g] > 0]
    if not others or n_of[best] < 1:
        return math.nan
    p_min = min(stats.min_rank_sum_p(int(n_of[best]), int(n_of[g])) for g in others)
    return min(1.0, len(others) * p_min)


def ranks_table(final: pd.DataFrame) -> pd.DataFrame:
    """Rank of each optimizer per problem by the median final primary metric, plus the average rank."""
    if final.empty:
        return pd.DataFrame()
    scores = final.pivot(index="problem", columns="optimizer", values=f"{PRIMARY.name}_median")
    ranks = stats.average_ranks(scores, higher_is_better=PRIMARY.higher_is_better)
    ranks.index.name = "problem"
    return ranks


def compute_tables(
    data: Mapping[str, ProblemData], checkpoints: Sequence[int], *, confidence: float, alpha: float
) -> ReportTables:
    """Every table of the report."""
    final = final_table(data, confidence)
    return ReportTables(
        runs=runs_table(data, checkpoints),
        checkpoints=checkpoints_table(data, checkpoints, confidence),
        final=final,
        tests=tests_table(data, checkpoints, alpha),
        ranks=ranks_table(final),
    )


__all__ = [
    "CSV_DECIMALS",
    "P_COLUMNS",
    "TESTS_COLUMNS",
    "ReportTables",
    "checkpoints_table",
    "compute_tables",
    "csv_formatted",
    "final_table",
    "ranks_table",
    "reached_checkpoints",
    "runs_table",
    "smallest_holm_p",
    "tests_table",
]
