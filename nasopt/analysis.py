"""Reading run directories and turning trial tables into indicator traces.

A run directory (written by the runner) holds ``trials.parquet`` (one row per evaluation), ``config.yaml``
and ``summary.json``; see the runner for the exact contract. This module finds such directories
(single runs or Hydra multirun sweeps), loads them, and computes per-run anytime indicators in the
problem's fixed normalised space (0 = ideal, 1 = nadir, fixed reference point), independent of the data.

Problem constants come from :func:`get_problem_info`, which uses ``nasopt.problems.get_problem(name).info``;
tests and callers with their own problems pass ``ProblemInfo`` objects explicitly instead.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmark.targets import TARGETS
from optimizers import indicators
from optimizers.base import ProblemInfo

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

TRIALS_FILE = "trials.parquet"
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
#: Columns of the trial table this module needs besides the objective columns.
BASE_COLUMNS = ("eval_index", "feasible", "duplicate", "sim_time_s", "wall_time_s", "optimizer_time_s")


class RunFormatError(ValueError):
    """A run directory does not follow the run-directory contract; the message names the file and field."""


# --------------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------------
def get_problem_info(
    name: str,
    problems: Mapping[str, ProblemInfo] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ProblemInfo:
    """Fixed constants of a problem: ``problems[name]`` if given; else the run config's ``problem`` section
    (custom problems) or the named problem, both through ``nasopt.problems``."""
    if problems is not None and name in problems:
        return problems[name]
    from nasopt.problems import ProblemError, get_problem, problem_from_config

    pcfg = None if config is None else config.get("problem")
    if isinstance(pcfg, Mapping) and str(pcfg.get("name", name)) == name:
        try:
            return problem_from_config(pcfg).info
        except ProblemError:
            pass
    try:
        return get_problem(name).info
    except KeyError as exc:  # UnknownProblemError
        raise LookupError(
            f"problem {name!r} is neither a named problem nor defined in the run's config.yaml; "
            "pass its ProblemInfo explicitly (problems={...})"
        ) from exc


def maximize_signs(info: ProblemInfo) -> FloatArray:
    """``-1`` for maximised objectives, ``+1`` for minimised ones, shape ``(m,)``."""
    return np.where(np.asarray(info.maximize, dtype=bool), -1.0, 1.0)


def normalize_natural(info: ProblemInfo, values: FloatArray) -> FloatArray:
    """Natural-unit objective values ``(n, m)`` to the problem's normalised minimisation space ``(n, m)``."""
    v = np.asarray(values, dtype=np.float64)
    return info.normalize(v * maximize_signs(info)[None, :])


def denormalize(info: ProblemInfo, F: FloatArray) -> FloatArray:
    """Normalised minimisation values ``(n, m)`` back to natural units ``(n, m)``."""
    ideal = np.asarray(info.ideal, dtype=float)
    nadir = np.asarray(info.nadir, dtype=float)
    internal = np.asarray(F, dtype=float) * (nadir - ideal) + ideal
    return info.to_natural(internal)


def target_label(name: str) -> str:
    """Axis label with unit, e.g. ``"accuracy (%)"``, ``"throughput_a100 (img/s)"``."""
    t = TARGETS.get(name)
    return f"{name} ({t.unit})" if t is not None and t.unit else name


# --------------------------------------------------------------------------------------------------
# run directories
# --------------------------------------------------------------------------------------------------
def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every directory at or below ``paths`` holding ``trials.parquet`` plus ``config.yaml`` or
    ``summary.json`` (single runs and Hydra multirun sweeps alike), sorted, without duplicates."""
    found: set[Path] = set()
    for p in paths:
        root = Path(p)
        if not root.exists():
            raise FileNotFoundError(f"run directory {str(root)!r} does not exist")
        if root.is_dir():
            candidates = list(root.rglob(TRIALS_FILE))
        else:
            candidates = [root] if root.name == TRIALS_FILE else []
        for trials in candidates:
            d = trials.parent
            if trials.is_file() and ((d / CONFIG_FILE).is_file() or (d / SUMMARY_FILE).is_file()):
                found.add(d.resolve())
    return sorted(found)


def _load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml  # PyYAML (what OmegaConf reads and writes with); much faster than OmegaConf.load

    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RunFormatError(f"{path}: not valid YAML ({exc})") from exc
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise RunFormatError(f"{path}: expected a mapping at the top level, got {type(cfg).__name__}")
    return {str(k): v for k, v in cfg.items()}


def config_get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``"a.b"`` (``default`` if any level is missing)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


@dataclass
class Run:
    """One loaded run directory.

    Attributes:
        path: the directory.
        problem, optimizer, seed: from ``summary.json`` (else ``config.yaml``).
        label: how the run is grouped in reports (the optimizer name unless ``label_keys`` were given).
        trials: the trial table (only the columns needed for analysis).
        summary: parsed ``summary.json`` (empty if the run has none yet).
        config: parsed ``config.yaml`` (empty if absent).
        info: the problem's fixed constants.
    """

    path: Path
    problem: str
    optimizer: str
    seed: int
    label: str
    trials: pd.DataFrame
    info: ProblemInfo
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_evals(self) -> int:
        return len(self.trials)

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished", False))

    @property
    def benchmark_digest(self) -> str | None:
        d = self.summary.get("benchmark_digest")
        return None if d is None else str(d)


def _meta(summary: Mapping[str, Any], config: Mapping[str, Any], key: str, path: Path) -> Any:
    if key in summary and summary[key] is not None:
        return summary[key]
    value = config_get(config, f"{key}.name") if key in ("problem", "optimizer") else config_get(config, key)
    if value is None and key in config and not isinstance(config[key], Mapping):
        value = config[key]
    if value is None:
        raise RunFormatError(
            f"run {path}: cannot tell its {key}: neither summary.json '{key}' nor config.yaml "
            f"'{key}.name' / '{key}' is set"
        )
    return value


def load_run(
    path: str | Path,
    *,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
    extra_columns: Sequence[str] = (),
) -> Run:
    """Load one run directory (only the trial-table columns analysis needs, plus ``extra_columns``).

    ``label_keys`` are dotted config keys (e.g. ``("optimizer.name", "optimizer.pop_size")``) joined into
    the run's label; by default the label is the optimizer name.
    """
    d = Path(path)
    summary: dict[str, Any] = {}
    if (d / SUMMARY_FILE).is_file():
        try:
            summary = json.loads((d / SUMMARY_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise RunFormatError(f"{d / SUMMARY_FILE}: not valid JSON ({exc})") from exc
    config = _load_config(d / CONFIG_FILE)
    if not config:
        config = _load_config(d / ".hydra" / CONFIG_FILE)
    problem = str(_meta(summary, config, "problem", d))
    optimizer = str(_meta(summary, config, "optimizer", d))
    seed = int(_meta(summary, config, "seed", d))
    info = get_problem_info(problem, problems, config)
    wanted = [*BASE_COLUMNS, *(f"mean_{t}" for t in info.objectives)]
    if "accuracy" not in info.objectives:
        wanted.append("mean_accuracy")
    wanted += [c for c in extra_columns if c not in wanted]
    import pyarrow.parquet as pq

    trials_path = d / TRIALS_FILE
    available = set(pq.read_schema(trials_path).names)
    missing = [f"mean_{t}" for t in info.objectives if f"mean_{t}" not in available]
    missing += [c for c in ("eval_index", "feasible", "sim_time_s") if c not in available]
    if missing:
        raise RunFormatError(
            f"{trials_path}: missing column(s) {missing} needed for problem {problem!r}; "
            "was it written by a different nasopt version?"
        )
    df = pd.read_parquet(trials_path, columns=[c for c in wanted if c in available])
    if len(df) and not np.all(np.diff(df["eval_index"].to_numpy()) > 0):
        df = df.sort_values("eval_index", kind="stable").reset_index(drop=True)
    if label_keys:
        parts = [str(config_get(config, k, summary.get(k.split(".")[0], "?"))) for k in label_keys]
        label = "/".join(parts)
    else:
        label = optimizer
    return Run(d, problem, optimizer, seed, label, df, info, summary, config)


def load_runs(
    paths: Iterable[str | Path],
    *,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
) -> list[Run]:
    """Find and load every run below ``paths`` (see :func:`find_run_dirs`)."""
    dirs = find_run_dirs(paths)
    if not dirs:
        raise FileNotFoundError(
            "no run directories (trials.parquet + config.yaml/summary.json) found below "
            f"{[str(p) for p in paths]}"
        )
    runs = [load_run(d, problems=problems, label_keys=label_keys) for d in dirs]
    seen: dict[tuple[str, str, int], Path] = {}
    for r in runs:
        key = (r.problem, r.label, r.seed)
        if key in seen:
            warnings.warn(
                f"two runs of problem {r.problem!r}, {r.label!r}, seed {r.seed}: {seen[key]} and {r.path}; "
                "both are counted (pass only one of them if one is a copy)",
                stacklevel=2,
            )
        seen[key] = r.path
    return runs


# --------------------------------------------------------------------------------------------------
# per-run indicators
# --------------------------------------------------------------------------------------------------
def objective_values(trials: pd.DataFrame, info: ProblemInfo) -> FloatArray:
    """Ensemble-mean objective values in natural units ``(n, m)`` from the ``mean_<target>`` columns."""
    cols = [f"mean_{t}" for t in info.objectives]
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
    F = normalize_natural(info, objective_values(trials, info))
    ok = feasible_mask(trials) & np.all(np.isfinite(F), axis=1)
    F[~ok] = np.nan
    return F


def final_hypervolume(trials: pd.DataFrame, info: ProblemInfo) -> float:
    """pymoo HV of the whole run's feasible set (what ``summary.json`` calls ``hypervolume``)."""
    return indicators.hypervolume(normalized_objectives(trials, info), np.asarray(info.ref_point))


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
    path: Path
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
    acc_col = "mean_accuracy"
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
        front_natural=denormalize(info, front),
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
    "Run",
    "RunFormatError",
    "RunTrace",
    "analyze_run",
    "config_get",
    "denormalize",
    "eval_grid",
    "feasible_mask",
    "final_hypervolume",
    "find_run_dirs",
    "get_problem_info",
    "load_run",
    "load_runs",
    "maximize_signs",
    "normalize_natural",
    "normalized_objectives",
    "objective_values",
    "step_values",
    "target_label",
]
