"""Readable run summaries: the summary's Pareto set as a table, the end-of-run text the runner prints, and
the count of extrapolated evaluations the summary records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from benchmark.coverage import extrapolated
from benchmark.targets import get_target


def _unit(target: str) -> str:
    try:
        return get_target(target).unit
    except KeyError:
        return ""


def pareto_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """The summary's Pareto set as a table: ``arch``, ``eval``, then ``target [unit]`` columns."""
    rows = list(summary.get("pareto_set", []))
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    targets = [c for c in df.columns if c not in ("arch", "eval_index")]
    out = pd.DataFrame({"arch": df["arch"], "eval": df["eval_index"]})
    for t in targets:
        unit = _unit(t)
        out[f"{t} [{unit}]" if unit else t] = df[t]
    return out


def extrapolated_counts(
    table: pd.DataFrame, targets: tuple[str, ...] | list[str], ranges: Mapping[str, tuple[float, float]]
) -> dict[str, int]:
    """Per target with a measured range: how many evaluations of the trial ``table`` were predicted outside
    it by more than their std (:func:`benchmark.coverage.extrapolated`; constraint targets, which have no
    std column, by their mean alone). ``{}`` for an oracle without measured data."""
    from nasopt.rundir import mean_column, std_column

    out: dict[str, int] = {}
    for t in targets:
        if t not in ranges or mean_column(t) not in table.columns:
            continue
        mean = table[mean_column(t)].to_numpy(np.float64)
        std = table[std_column(t)].to_numpy(np.float64) if std_column(t) in table.columns else 0.0 * mean
        out[t] = int(extrapolated(mean, std, *ranges[t]).sum())
    return out


def _fmt_seconds(s: float) -> str:
    if not np.isfinite(s):
        return "n/a"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def format_summary(summary: Mapping[str, Any], max_rows: int = 40) -> str:
    """Readable end-of-run summary: header lines and the Pareto set in natural units."""
    budget = summary.get("budget", {})
    limits = []
    if budget.get("max_evals") is not None:
        limits.append(f"{budget['max_evals']} evals")
    if budget.get("max_sim_time_s") is not None:
        limits.append(f"{_fmt_seconds(float(budget['max_sim_time_s']))} simulated")
    status = "finished" if summary.get("finished") else "NOT finished (run it again to resume)"
    if summary.get("interrupted"):
        status += f" - stopped by {summary['interrupted']}"
    best = summary.get("best_feasible_accuracy")
    lines = [
        f"problem {summary.get('problem')}  optimizer {summary.get('optimizer')}  "
        f"seed {summary.get('seed')}  [{status}]",
        f"evaluations {summary.get('n_evals')} (budget {' / '.join(limits) or '?'}; "
        f"ended by {budget.get('exhausted_by') or '-'}), "
        f"duplicates {summary.get('n_duplicates', 0)}, feasible {summary.get('n_feasible', 'n/a')}",
        f"simulated training {_fmt_seconds(float(summary.get('sim_time_s', float('nan'))))}, "
        f"wall {_fmt_seconds(float(summary.get('wall_time_s', float('nan'))))}",
        f"hypervolume {float(summary.get('hypervolume', float('nan'))):.4f}  best feasible accuracy "
        f"{'n/a' if best is None else f'{best:.2f} %'}",
    ]
    extra = {t: c for t, c in summary.get("extrapolated_evaluations", {}).items() if c}
    if extra:
        lines.append(
            "extrapolated (predicted outside the measured range by > 1 std): "
            + ", ".join(f"{t} {c} of {summary.get('n_evals')}" for t, c in extra.items())
        )
    table = pareto_table(summary)
    if table.empty:
        lines.append("Pareto set: empty (no feasible evaluation)")
    else:
        shown = table.head(max_rows)
        lines.append(f"Pareto set ({len(table)} architecture{'s' if len(table) != 1 else ''}):")
        with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 80):
            lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if len(table) > max_rows:
            lines.append(f"... {len(table) - max_rows} more in summary.json")
    return "\n".join(lines)


__all__ = ["extrapolated_counts", "format_summary", "pareto_table"]
