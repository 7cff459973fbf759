"""The one registry of the report's per-run metrics; every table, figure and Markdown section iterates it.

A metric is a trace of :class:`nasopt.analysis.RunTrace` (one value per sampled evaluation count). The
order of :data:`METRICS` is the order of the columns and rows of every table that lists metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasopt.analysis import RunTrace
from optimizers.base import ProblemInfo

#: the checkpoint name of "the end of each run"
END = "end"
#: a checkpoint: a number of evaluations or :data:`END`
Checkpoint = int | str


@dataclass(frozen=True)
class Metric:
    """One per-run indicator.

    Attributes:
        name: column/metric name in the tables (``hv_end``, ``hv_median``, ``metric == "hv"``).
        label: short display name (Markdown headers).
        axis_label: figure axis label (with unit).
        higher_is_better: the sense, used by the tests against the best optimizer.
        needs_reference_front: summarised, tested and shown only for problems with a reference front
            (``runs.csv`` has the column for every run, NaN without a front).
        trace: the :class:`RunTrace` attribute holding its values ``(k,)``.
        digits: decimals in the Markdown.
        by_checkpoint: tabulated per checkpoint in ``runs.csv`` and the Markdown, shown there with median
            [IQR] and mean ± CI, and tested at every checkpoint (else only at the end).
        tested: compared against the best optimizer with rank-sum tests.
        curve_start: the curve's value before the first evaluation (NaN: the curve starts with the data).
        objective: the objective whose best feasible value the metric is, if any; a problem with only
            that objective plots this metric instead of the HV.
    """

    name: str
    label: str
    axis_label: str
    higher_is_better: bool
    needs_reference_front: bool
    trace: str
    digits: int
    by_checkpoint: bool = False
    tested: bool = False
    curve_start: float = math.nan
    objective: str | None = None

    def at(self, trace: RunTrace, checkpoint: Checkpoint) -> float:
        """The value after ``checkpoint`` evaluations (NaN if the run is shorter), or at the run's end."""
        if checkpoint == END:
            return trace.final(self.trace)
        return trace.at(self.trace, int(checkpoint))

    def final(self, trace: RunTrace) -> float:
        """The value at the end of the run."""
        return trace.final(self.trace)

    def format(self, value: float) -> str:
        """``value`` with the metric's decimals, "–" if missing."""
        return format_number(value, self.digits)


HV = Metric(
    name="hv",
    label="HV",
    axis_label="hypervolume (normalised, unitless)",
    higher_is_better=True,
    needs_reference_front=False,
    trace="hv",
    digits=4,
    by_checkpoint=True,
    tested=True,
    curve_start=0.0,
)
HV_RATIO = Metric(
    name="hv_ratio",
    label="HV ratio",
    axis_label="HV / reference front HV",
    higher_is_better=True,
    needs_reference_front=True,
    trace="hv_ratio",
    digits=4,
)
METRICS: tuple[Metric, ...] = (
    HV,
    HV_RATIO,
    Metric(
        name="igd_plus",
        label="IGD+",
        axis_label="IGD+ to the reference front (normalised)",
        higher_is_better=False,
        needs_reference_front=True,
        trace="igd_plus",
        digits=4,
        tested=True,
    ),
    Metric(
        name="best_accuracy",
        label="best feasible acc. (%)",
        axis_label="best feasible top-1 accuracy (%)",
        higher_is_better=True,
        needs_reference_front=False,
        trace="best_accuracy",
        digits=2,
        tested=True,
        objective="accuracy",
    ),
    Metric(
        name="front_size",
        label="Pareto-set size",
        axis_label="Pareto-set size",
        higher_is_better=True,
        needs_reference_front=False,
        trace="front_size",
        digits=0,
        curve_start=0.0,
    ),
)
#: the metric that ranks optimizers and orders the tables and figures
PRIMARY = HV


def metrics_for(has_reference_front: bool) -> list[Metric]:
    """The metrics a problem with (or without) a reference front has, in registry order."""
    return [m for m in METRICS if has_reference_front or not m.needs_reference_front]


def plotted_metric(info: ProblemInfo) -> Metric:
    """The metric the figures show for a problem: the best value of its only objective if a metric traces
    it, else :data:`PRIMARY`."""
    for m in METRICS:
        if m.objective is not None and info.objectives == (m.objective,):
            return m
    return PRIMARY


def checkpoint_names(checkpoints: Sequence[int]) -> list[Checkpoint]:
    """The sorted distinct checkpoints followed by :data:`END`."""
    return [*sorted({int(c) for c in checkpoints}), END]


def format_number(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, "–" if missing or not finite."""
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


__all__ = [
    "END",
    "HV",
    "HV_RATIO",
    "METRICS",
    "PRIMARY",
    "Checkpoint",
    "Metric",
    "checkpoint_names",
    "format_number",
    "metrics_for",
    "plotted_metric",
]
