"""Results of a search run: the in-memory :class:`RunResult`, reading run directories, readable summaries.

A run directory (see the runner) holds ``config.yaml``, ``trials.parquet`` (one row per evaluation),
``summary.json`` and ``checkpoint/``. :func:`load_run` reads one back into a :class:`RunResult`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.targets import get_target
from nasopt.problems import Problem, ProblemError, get_problem, problem_from_config

TRIALS_FILE = "trials.parquet"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoint"
ERROR_FILE = "error.txt"
#: Columns that hold wall-clock measurements (excluded when comparing runs for exactness).
WALL_CLOCK_COLUMNS = ("wall_time_s", "optimizer_time_s")


@dataclass
class RunResult:
    """One run: its trial table (one row per evaluation), summary and config.

    Attributes:
        trials: the trial table (columns per the run-directory format).
        summary: the ``summary.json`` content.
        config: the run's config as a plain dict.
        run_dir: where it lives (None for runs kept in memory only).
        problem: the problem (None if it cannot be rebuilt from the config).
        interrupted: signal name if the run stopped early on SIGINT/SIGTERM, else None.
    """

    trials: pd.DataFrame
    summary: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    problem: Problem | None = None
    interrupted: str | None = None

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished", False))

    @property
    def n_evals(self) -> int:
        return len(self.trials)

    @property
    def hypervolume(self) -> float:
        return float(self.summary.get("hypervolume", float("nan")))

    @property
    def pareto_set(self) -> pd.DataFrame:
        """The feasible non-dominated set (ensemble means, natural units), one row per architecture."""
        return pd.DataFrame(self.summary.get("pareto_set", []))

    def comparable_trials(self) -> pd.DataFrame:
        """The trial table without wall-clock columns (what must be identical between equal runs)."""
        return self.trials.drop(columns=[c for c in WALL_CLOCK_COLUMNS if c in self.trials.columns])

    def format(self) -> str:
        """Readable end-of-run summary (see :func:`format_summary`)."""
        return format_summary(self.summary)


def _problem_of(config: Mapping[str, Any], summary: Mapping[str, Any]) -> Problem | None:
    pcfg = config.get("problem")
    try:
        if isinstance(pcfg, Mapping):
            return problem_from_config(pcfg)
        name = summary.get("problem")
        return get_problem(str(name)) if name is not None else None
    except ProblemError:
        return None


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run directory (finished or not) into a :class:`RunResult`."""
    d = Path(run_dir)
    if not (d / TRIALS_FILE).is_file():
        hint = " (it failed: see error.txt)" if (d / ERROR_FILE).is_file() else ""
        raise FileNotFoundError(
            f"{d} holds no {TRIALS_FILE}; not a nasopt run directory or no results yet{hint}"
        )
    trials = pd.read_parquet(d / TRIALS_FILE)
    summary: dict[str, Any] = {}
    if (d / SUMMARY_FILE).is_file():
        summary = json.loads((d / SUMMARY_FILE).read_text(encoding="utf-8"))
    config: dict[str, Any] = {}
    if (d / CONFIG_FILE).is_file():
        from omegaconf import OmegaConf

        loaded = OmegaConf.to_container(OmegaConf.load(d / CONFIG_FILE), resolve=False)
        if isinstance(loaded, dict):
            config = {str(k): v for k, v in loaded.items()}
    return RunResult(trials, summary, config, d, _problem_of(config, summary))


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding ``trials.parquet`` and ``summary.json``) at or below ``root``, sorted."""
    r = Path(root)
    return sorted({p.parent for p in r.rglob(TRIALS_FILE) if (p.parent / SUMMARY_FILE).is_file()})


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
