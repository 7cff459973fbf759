"""Comparison report over any set of run directories: Markdown + CSV tables + PNG figures.

``build_report(["multirun/2024-06-01"], "report")`` finds every run below the given directories, computes
per-run anytime indicators (the metrics of :data:`nasopt.report.metrics.METRICS`: hypervolume in the
problem's fixed normalised space, HV ratio and IGD+ against a cached reference front if asked, best feasible
accuracy, Pareto-set size) and writes::

    report/report.md              the report (tables + figures, per problem)
    report/tables/runs.csv        one row per run: final and checkpoint values, times
    report/tables/checkpoints.csv per problem x optimizer x metric x checkpoint: median, IQR, mean, t-CI
    report/tables/final.csv       per problem x optimizer: final values (wide)
    report/tables/tests.csv       rank-sum tests against the best optimizer per problem, Holm-corrected
    report/tables/ranks.csv       rank of each optimizer per problem (median final HV) and the average
    report/figures/*.png          anytime curves, final-HV box plots, median attainment surfaces

The optimizer label of a run is its optimizer name (or ``label_keys`` joined from its config).

Modules: ``data`` (runs per problem, reference fronts, notes), ``metrics`` (the metric registry),
``tables``, ``figures`` (one function per plot), ``markdown``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigurationError
from nasopt.fronts import ReferenceFront
from nasopt.report.data import (
    ContextPoints,
    ContextSource,
    ReportError,
    dataset_context,
    load_problem_data,
)
from nasopt.report.figures import write_figures
from nasopt.report.markdown import render_markdown
from nasopt.report.tables import compute_tables
from optimizers.base import ProblemInfo

DEFAULT_CHECKPOINTS: tuple[int, ...] = (50, 100, 300, 1000, 1500)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote (paths) and the tables it computed."""

    out: Path
    markdown: Path
    tables: dict[str, Path]
    figures: list[Path]
    runs: pd.DataFrame
    checkpoints: pd.DataFrame
    final: pd.DataFrame
    tests: pd.DataFrame
    ranks: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def build_report(
    paths: Iterable[str | Path],
    out: str | Path,
    *,
    checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
    reference_fronts: bool | Mapping[str, ReferenceFront] = False,
    context: ContextSource | None = None,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
    cache: str | Path | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
    figures: bool = True,
    curve_points: int = 150,
) -> ReportResult:
    """Find the runs below ``paths`` and write the report into ``out`` (see the module docstring).

    Args:
        paths: run directories or directories containing them (Hydra multirun sweeps).
        out: output directory (created).
        checkpoints: evaluation counts at which HV is tabulated (plus the end of each run).
        reference_fronts: True to use the cached reference fronts matching the runs' benchmark digest
            (``nasopt fronts``), or a mapping problem -> front; enables HV ratio and IGD+.
        context: measured points and EfficientNet-B0 for the front plots (see :class:`ContextPoints`).
        problems: ProblemInfo per problem name (default: ``nasopt.problems``).
        label_keys: dotted config keys that make up the optimizer label (default: the optimizer name).
        cache: cache directory for reference fronts (default: the user cache).
        confidence: level of the t-intervals; alpha: significance level of the Holm-corrected tests.
        figures: False to skip the PNGs.
        curve_points: evaluation counts sampled for the anytime curves (plus the checkpoints).
    """
    out = Path(out)
    cps = sorted({int(c) for c in checkpoints})
    if any(c < 1 for c in cps):
        raise ConfigurationError(f"checkpoints must be positive numbers of evaluations, got {cps}")
    data, notes = load_problem_data(
        paths,
        checkpoints=cps,
        reference_fronts=reference_fronts,
        context=context,
        problems=problems,
        label_keys=label_keys,
        cache=cache,
        curve_points=curve_points,
    )
    tables = compute_tables(data, cps, confidence=confidence, alpha=alpha)
    table_paths = tables.write(out / "tables")
    figure_paths = write_figures(data, out / "figures", cps) if figures else {}
    markdown = render_markdown(
        data, tables, figure_paths, out, cps, notes, confidence=confidence, alpha=alpha
    )
    md_path = out / "report.md"
    md_path.write_text(markdown, encoding="utf-8")
    return ReportResult(
        out,
        md_path,
        table_paths,
        [p for paths_of in figure_paths.values() for p in paths_of],
        tables.runs,
        tables.checkpoints,
        tables.final,
        tables.tests,
        tables.ranks,
        notes,
    )


__all__ = [
    "DEFAULT_CHECKPOINTS",
    "ContextPoints",
    "ContextSource",
    "ReportError",
    "ReportResult",
    "build_report",
    "dataset_context",
]
