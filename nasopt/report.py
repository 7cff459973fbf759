"""Comparison report over any set of run directories: Markdown + CSV tables + PNG figures.

``build_report(["multirun/2024-06-01"], "report")`` finds every run below the given directories, computes
per-run anytime indicators (hypervolume in the problem's fixed normalised space, HV ratio and IGD+ against a
cached reference front if asked, best feasible accuracy, Pareto-set size) and writes::

    report/report.md              the report (tables + figures, per problem)
    report/tables/runs.csv        one row per run: final and checkpoint values, times
    report/tables/checkpoints.csv per problem x optimizer x metric x checkpoint: median, IQR, mean, t-CI
    report/tables/final.csv       per problem x optimizer: final values (wide)
    report/tables/tests.csv       rank-sum tests against the best optimizer per problem, Holm-corrected
    report/tables/ranks.csv       rank of each optimizer per problem (median final HV) and the average
    report/figures/*.png          anytime curves, final-HV box plots, median attainment surfaces

The optimizer label of a run is its optimizer name (or ``label_keys`` joined from its config).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmark import space
from nasopt import stats
from nasopt.analysis import (
    Run,
    RunTrace,
    analyze_run,
    denormalize,
    eval_grid,
    load_runs,
    step_values,
    target_label,
)
from nasopt.fronts import ReferenceFront, load_reference_front
from optimizers import indicators
from optimizers.base import ProblemInfo

FloatArray = NDArray[np.float64]

DEFAULT_CHECKPOINTS: tuple[int, ...] = (50, 100, 300, 1000, 1500)
#: metric -> (display name, larger is better)
METRICS: dict[str, tuple[str, bool]] = {
    "hv": ("HV", True),
    "hv_ratio": ("HV ratio", True),
    "igd_plus": ("IGD+", False),
    "best_accuracy": ("best feasible accuracy (%)", True),
    "front_size": ("Pareto-set size", True),
}
END = "end"


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


# --------------------------------------------------------------------------------------------------
# per-problem data
# --------------------------------------------------------------------------------------------------
@dataclass
class ProblemData:
    """Everything the report knows about one problem."""

    info: ProblemInfo
    runs: list[Run]
    traces: list[RunTrace]
    ref_front: ReferenceFront | None = None
    ref_hv: float = math.nan
    context: ContextPoints | None = None

    @property
    def labels(self) -> list[str]:
        return sorted({t.label for t in self.traces})

    def by_label(self) -> dict[str, list[RunTrace]]:
        out: dict[str, list[RunTrace]] = {lab: [] for lab in self.labels}
        for t in self.traces:
            out[t.label].append(t)
        for lst in out.values():
            lst.sort(key=lambda tr: tr.seed)
        return out


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


def _value_at(trace: RunTrace, metric: str, checkpoint: int | str) -> float:
    if checkpoint == END:
        return trace.final(metric)
    return trace.at(metric, int(checkpoint))


def _checkpoint_names(checkpoints: Sequence[int]) -> list[int | str]:
    return [*sorted(set(int(c) for c in checkpoints)), END]


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------
def _runs_table(data: Mapping[str, ProblemData], checkpoints: Sequence[int]) -> pd.DataFrame:
    rows = []
    for pd_ in data.values():
        for tr, run in zip(pd_.traces, pd_.runs, strict=True):
            row: dict[str, Any] = {
                "problem": tr.problem,
                "optimizer": tr.label,
                "seed": tr.seed,
                "n_evals": tr.n_evals,
                "finished": tr.finished,
                "hv_end": tr.final("hv"),
            }
            for c in checkpoints:
                row[f"hv_{c}"] = tr.at("hv", c)
            row.update(
                {
                    "hv_ratio_end": tr.final("hv_ratio"),
                    "igd_plus_end": tr.final("igd_plus"),
                    "best_accuracy_end": tr.final("best_accuracy"),
                    "front_size_end": tr.final("front_size"),
                    "sim_gpu_hours": tr.sim_time_s / 3600.0,
                    "wall_time_s": tr.wall_time_s,
                    "optimizer_time_s": tr.optimizer_time_s,
                    "optimizer_overhead_pct": 100.0 * tr.optimizer_time_s / tr.wall_time_s
                    if tr.wall_time_s > 0
                    else math.nan,
                    "summary_hypervolume": float(run.summary.get("hypervolume", math.nan) or math.nan),
                    "benchmark_digest": run.benchmark_digest or "",
                    "path": str(tr.path),
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _checkpoints_table(
    data: Mapping[str, ProblemData], checkpoints: Sequence[int], confidence: float
) -> pd.DataFrame:
    rows = []
    for name, pd_ in data.items():
        metrics = ["hv", "best_accuracy", "front_size"]
        if pd_.ref_front is not None:
            metrics[1:1] = ["hv_ratio", "igd_plus"]
        for label, traces in pd_.by_label().items():
            for metric in metrics:
                for c in _checkpoint_names(checkpoints):
                    vals = np.array([_value_at(t, metric, c) for t in traces], dtype=float)
                    s = stats.summarize(vals, confidence)
                    evals = float(np.median([t.n_evals for t in traces])) if c == END else float(c)
                    rows.append(
                        {
                            "problem": name,
                            "optimizer": label,
                            "metric": metric,
                            "checkpoint": str(c),
                            "evals": evals,
                            "n_runs": len(traces),
                            **s.as_dict(),
                        }
                    )
    return pd.DataFrame(rows)


def _final_table(data: Mapping[str, ProblemData], confidence: float) -> pd.DataFrame:
    rows = []
    for name, pd_ in data.items():
        for label, traces in pd_.by_label().items():
            row: dict[str, Any] = {
                "problem": name,
                "optimizer": label,
                "n_runs": len(traces),
                "n_finished": sum(t.finished for t in traces),
                "evals_median": float(np.median([t.n_evals for t in traces])),
            }
            metrics = ["hv", "best_accuracy", "front_size"]
            if pd_.ref_front is not None:
                metrics += ["hv_ratio", "igd_plus"]
            for metric in metrics:
                s = stats.summarize([t.final(metric) for t in traces], confidence)
                d = s.as_dict(prefix=f"{metric}_")
                d.pop(f"{metric}_n")
                row.update(d)
            wall = np.array([t.wall_time_s for t in traces])
            opt = np.array([t.optimizer_time_s for t in traces])
            row["sim_gpu_hours_median"] = float(np.median([t.sim_time_s / 3600.0 for t in traces]))
            row["wall_time_s_median"] = float(np.nanmedian(wall)) if np.isfinite(wall).any() else math.nan
            row["optimizer_time_s_median"] = float(np.nanmedian(opt)) if np.isfinite(opt).any() else math.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = np.where(wall > 0, 100.0 * opt / wall, np.nan)
            row["optimizer_overhead_pct_median"] = (
                float(np.nanmedian(pct)) if np.isfinite(pct).any() else math.nan
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _tests_table(data: Mapping[str, ProblemData], checkpoints: Sequence[int], alpha: float) -> pd.DataFrame:
    frames = []
    for name, pd_ in data.items():
        groups_by_label = pd_.by_label()
        if len(groups_by_label) < 2:
            continue
        families: list[tuple[str, int | str]] = [("hv", c) for c in _checkpoint_names(checkpoints)]
        families.append(("best_accuracy", END))
        if pd_.ref_front is not None:
            families.append(("igd_plus", END))
        for metric, c in families:
            groups = {
                lab: np.array([_value_at(t, metric, c) for t in trs], dtype=float)
                for lab, trs in groups_by_label.items()
            }
            groups = {k: v for k, v in groups.items() if np.isfinite(v).any()}
            if len(groups) < 2:
                continue
            df = stats.compare_to_best(groups, higher_is_better=METRICS[metric][1], alpha=alpha)
            df.insert(0, "checkpoint", str(c))
            df.insert(0, "metric", metric)
            df.insert(0, "problem", name)
            frames.append(df.rename(columns={"group": "optimizer"}))
    if not frames:
        return pd.DataFrame(
            columns=[
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
            ]
        )
    return pd.concat(frames, ignore_index=True)


def _ranks_table(final: pd.DataFrame) -> pd.DataFrame:
    if final.empty:
        return pd.DataFrame()
    scores = final.pivot(index="problem", columns="optimizer", values="hv_median")
    ranks = stats.average_ranks(scores, higher_is_better=True)
    ranks.index.name = "problem"
    return ranks


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
def _colors(labels: Iterable[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    labs = sorted(set(labels))
    cmap = colormaps["tab10" if len(labs) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labs)}


def _bands(M: FloatArray, min_active: float = 0.5) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Median and quartiles over rows of ``M (runs, points)``; NaN where fewer than ``min_active`` of the
    runs have a value."""
    active = np.isfinite(M).sum(axis=0)
    enough = active >= max(1, math.ceil(min_active * M.shape[0]))
    out = np.full((3, M.shape[1]), np.nan)
    if enough.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, enough] = np.nanpercentile(M[:, enough], [50, 25, 75], axis=0)
    return out[0], out[1], out[2]


def _metric_for_curves(info: ProblemInfo) -> tuple[str, str]:
    if info.n_obj == 1 and info.objectives[0] == "accuracy":
        return "best_accuracy", "best feasible top-1 accuracy (%)"
    return "hv", "hypervolume (normalised, unitless)"


def _curves(
    traces: Sequence[RunTrace], metric: str, axis: str, grid: FloatArray, before: float
) -> FloatArray:
    M = np.full((len(traces), grid.size), np.nan)
    for r, t in enumerate(traces):
        y = np.asarray(getattr(t, metric), dtype=float)
        if axis == "evals":
            x = t.counts.astype(float)
            end = float(t.n_evals)
        else:
            x = t.sim_hours
            end = float(t.sim_time_s / 3600.0)
        v = step_values(x, y, grid, before=before)
        v[grid > end + 1e-12] = np.nan
        M[r] = v
    return M


def _fig_anytime(pd_: ProblemData, colors: Mapping[str, Any], path: Path, checkpoints: Sequence[int]) -> Path:
    from matplotlib.figure import Figure

    metric, ylabel = _metric_for_curves(pd_.info)
    before = 0.0 if metric in ("hv", "front_size") else math.nan
    groups = pd_.by_label()
    n_max = max(t.n_evals for t in pd_.traces)
    t_max = max(t.sim_time_s for t in pd_.traces) / 3600.0
    egrid = np.unique(np.concatenate([np.linspace(1, n_max, 300), [c for c in checkpoints if c <= n_max]]))
    tgrid = np.linspace(0.0, t_max, 300)
    finals = {lab: float(np.nanmedian([t.final(metric) for t in trs])) for lab, trs in groups.items()}
    order = sorted(groups, key=lambda lab: -finals[lab] if np.isfinite(finals[lab]) else math.inf)

    fig = Figure(figsize=(13, 5), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, axis, grid, xlabel in (
        (axes[0], "evals", egrid, "evaluations"),
        (axes[1], "time", tgrid, "simulated training time (GPU-hours)"),
    ):
        for lab in order:
            M = _curves(groups[lab], metric, axis, grid, before)
            med, lo, hi = _bands(M)
            c = colors[lab]
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, linewidth=0, step="post")
            ax.step(
                grid,
                med,
                where="post",
                color=c,
                linewidth=2.0,
                label=f"{lab}  (final median {finals[lab]:.4g}, n={len(groups[lab])})",
            )
        if metric == "hv" and np.isfinite(pd_.ref_hv):
            ax.axhline(pd_.ref_hv, color="black", linestyle="--", linewidth=1.2, label="reference front HV")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    for c in checkpoints:
        if c <= n_max:
            axes[0].axvline(c, color="grey", linestyle=":", linewidth=0.8)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(loc="lower right", fontsize=9, framealpha=0.9, title="median and IQR over seeds")
    objs = ", ".join(
        f"{'max' if mx else 'min'} {t}" for t, mx in zip(pd_.info.objectives, pd_.info.maximize, strict=True)
    )
    fig.suptitle(f"{pd_.info.name}: anytime performance ({objs}); curves stop where < half the runs go on")
    fig.savefig(path)
    return path


def _fig_final_boxes(data: Mapping[str, ProblemData], colors: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    names = list(data)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig = Figure(figsize=(5.5 * ncol, 4.4 * nrow), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    rng = np.random.default_rng(0)  # jitter only
    for ax, name in zip(axes, names, strict=False):
        pd_ = data[name]
        metric, ylabel = _metric_for_curves(pd_.info)
        groups = pd_.by_label()
        vals = {lab: np.array([t.final(metric) for t in trs], dtype=float) for lab, trs in groups.items()}
        order = sorted(
            vals, key=lambda lab: -np.nanmedian(vals[lab]) if np.isfinite(vals[lab]).any() else math.inf
        )
        series = [vals[lab][np.isfinite(vals[lab])] for lab in order]
        bp = ax.boxplot(series, widths=0.6, patch_artist=True, showfliers=False)
        for patch, lab in zip(bp["boxes"], order, strict=True):
            patch.set_facecolor(colors[lab])
            patch.set_alpha(0.35)
        for med in bp["medians"]:
            med.set_color("black")
        for i, (lab, s) in enumerate(zip(order, series, strict=True)):
            ax.scatter(i + 1 + rng.uniform(-0.18, 0.18, s.size), s, s=10, color=colors[lab], zorder=3)
        ax.set_xticks(range(1, len(order) + 1), order, rotation=20)
        if metric == "hv" and np.isfinite(pd_.ref_hv):
            ax.axhline(pd_.ref_hv, color="black", linestyle="--", linewidth=1.0, label="reference front HV")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_ylabel(f"final {ylabel}")
        ax.set_title(f"{name} (best left)")
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Final result per run (box: median and IQR over seeds; dots: runs)")
    fig.savefig(path)
    return path


def _fig_fronts_2d(pd_: ProblemData, colors: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    info = pd_.info
    fig = Figure(figsize=(8.5, 6.5), dpi=110, layout="constrained")
    ax = fig.subplots()
    ctx = pd_.context
    if ctx is not None and ctx.measured is not None and len(ctx.measured):
        ax.scatter(
            ctx.measured[:, 0],
            ctx.measured[:, 1],
            s=5,
            color="0.6",
            alpha=0.45,
            linewidths=0,
            label=ctx.measured_label,
            zorder=1,
        )
    if pd_.ref_front is not None and len(pd_.ref_front.values):
        ref_norm = pd_.ref_front.normalized(info)
        ref_norm = ref_norm[np.lexsort(ref_norm.T[::-1])]
        line = denormalize(info, indicators.staircase(ref_norm))
        ax.plot(
            line[:, 0],
            line[:, 1],
            color="black",
            linestyle="--",
            linewidth=1.3,
            label=f"reference front ({len(ref_norm)} pts)",
            zorder=2,
        )
    groups = pd_.by_label()
    finals = {lab: float(np.nanmedian([t.final("hv") for t in trs])) for lab, trs in groups.items()}
    ref = np.asarray(info.ref_point, dtype=float)
    shown: list[FloatArray] = []
    for lab in sorted(groups, key=lambda lab: -finals[lab]):
        trs = groups[lab]
        level = math.ceil(len(trs) / 2)
        # only points better than the reference point count (and are drawn)
        inside = [t.front_norm[np.all(t.front_norm < ref[None, :], axis=1)] for t in trs]
        surf = indicators.attainment_surface_2d(inside, level)
        if surf.shape[0] == 0:
            continue
        shown.append(surf)
        line = denormalize(info, indicators.staircase(surf))
        pts = denormalize(info, surf)
        ax.plot(
            line[:, 0],
            line[:, 1],
            color=colors[lab],
            linewidth=2.0,
            zorder=3,
            label=f"{lab}: median attainment ({len(trs)} runs)",
        )
        ax.scatter(pts[:, 0], pts[:, 1], color=colors[lab], s=12, zorder=4)
    b0 = None
    b0_label = "EfficientNet-B0"
    if ctx is not None and ctx.b0 is not None:
        b0, b0_label = np.asarray(ctx.b0, dtype=float), ctx.b0_label
    elif pd_.ref_front is not None and "efficientnet_b0" in pd_.ref_front.context:
        b0, b0_label = np.asarray(pd_.ref_front.context["efficientnet_b0"]), "EfficientNet-B0 (surrogate)"
    if b0 is not None:
        ax.scatter(
            [b0[0]], [b0[1]], marker="*", s=260, color="gold", edgecolor="black", zorder=5, label=b0_label
        )
    if shown:  # frame the optimizers' surfaces (context points may lie far outside)
        allpts = denormalize(info, np.vstack(shown))
        if b0 is not None:
            allpts = np.vstack([allpts, b0[None, :2]])
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        pad = 0.06 * np.maximum(hi - lo, 1e-9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    sense = ["higher is better" if mx else "lower is better" for mx in info.maximize]
    ax.set_xlabel(f"{target_label(info.objectives[0])}, {sense[0]}")
    ax.set_ylabel(f"{target_label(info.objectives[1])}, {sense[1]}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8.5, loc="best", framealpha=0.9)
    ax.set_title(
        f"{info.name}: final fronts, median attainment surface over seeds\n"
        "(points beyond the HV reference point omitted)",
        fontsize=11,
    )
    fig.savefig(path)
    return path


def _fig_fronts_nd(pd_: ProblemData, colors: Mapping[str, Any], path: Path) -> Path:
    from matplotlib.figure import Figure

    info = pd_.info
    pairs = [(i, j) for i in range(info.n_obj) for j in range(i + 1, info.n_obj)]
    fig = Figure(figsize=(5.2 * len(pairs), 4.8), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(pairs), squeeze=False)).ravel()
    groups = pd_.by_label()
    ref = np.asarray(info.ref_point, dtype=float)
    for lab, trs in sorted(groups.items()):
        pooled = np.vstack([t.front_norm for t in trs]) if trs else np.zeros((0, info.n_obj))
        pooled = pooled[indicators.nondominated_mask(pooled) & np.all(pooled < ref[None, :], axis=1)]
        nat = denormalize(info, pooled)
        for ax, (i, j) in zip(axes, pairs, strict=True):
            ax.scatter(
                nat[:, i],
                nat[:, j],
                s=10,
                color=colors[lab],
                alpha=0.7,
                label=f"{lab} ({len(trs)} runs pooled)",
            )
    sense = ["higher is better" if mx else "lower is better" for mx in info.maximize]
    for ax, (i, j) in zip(axes, pairs, strict=True):
        ax.set_xlabel(f"{target_label(info.objectives[i])}, {sense[i]}")
        ax.set_ylabel(f"{target_label(info.objectives[j])}, {sense[j]}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{info.name}: non-dominated set of all runs' final fronts pooled per optimizer (2-D projections; "
        "points beyond the HV reference point omitted)"
    )
    fig.savefig(path)
    return path


# --------------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _markdown(
    data: Mapping[str, ProblemData],
    result_tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, list[Path]],
    out: Path,
    checkpoints: Sequence[int],
    notes: Sequence[str],
    confidence: float,
    alpha: float,
) -> str:
    final, cps, tests, ranks = (result_tables[k] for k in ("final", "checkpoints", "tests", "ranks"))
    n_runs = sum(len(p.traces) for p in data.values())
    parts = [
        "# nasopt comparison report",
        "",
        f"{n_runs} runs, {len(data)} problem(s): {', '.join(f'`{p}`' for p in data)}.",
        "",
        "HV is the hypervolume of a run's feasible evaluated set in the problem's fixed normalised "
        "objective space "
        "(0 = ideal, 1 = nadir; constants of the problem, independent of the data) with its fixed "
        "reference point; "
        "larger is better. All objective values are ensemble means. Medians with [25%, 75%] quantiles and "
        f"mean ± {round(confidence * 100)}% Student-t intervals are over seeds. Tests: two-sided Wilcoxon "
        f"rank-sum against the best optimizer (highest median) per problem, Holm-corrected, α = {alpha}; "
        "A12 = P(best > other).",
        "",
        "Tables: `tables/runs.csv`, `tables/checkpoints.csv`, `tables/final.csv`, `tables/tests.csv`, "
        "`tables/ranks.csv`.",
        "",
    ]
    if not ranks.empty:
        parts += ["## Average ranks (by median final HV; 1 = best)", ""]
        header = ["problem", *[str(c) for c in ranks.columns]]
        rows = [
            [str(idx), *[_fmt(v, 2) for v in ranks.loc[idx].to_numpy(dtype=float)]] for idx in ranks.index
        ]
        parts += [_md_table(header, rows), ""]
    if "final_boxes" in figures:
        parts += [f"![final results]({figures['final_boxes'][0].relative_to(out).as_posix()})", ""]
    for name, pd_ in data.items():
        info = pd_.info
        objs = ", ".join(
            f"{target_label(t)} ({'max' if mx else 'min'})"
            for t, mx in zip(info.objectives, info.maximize, strict=True)
        )
        parts += [
            f"## Problem `{name}`",
            "",
            f"Objectives: {objs}; constraints: {info.n_constraints}; "
            f"reference point {list(info.ref_point)} (normalised). {len(pd_.traces)} runs.",
        ]
        if pd_.ref_front is not None:
            prov = pd_.ref_front.provenance
            parts.append(
                f"Reference front: {len(pd_.ref_front.values)} points, HV {pd_.ref_hv:.4f}, benchmark "
                f"`{prov.get('benchmark_digest')}`, dataset `{prov.get('dataset_digest')}`, computed "
                f"{prov.get('created')} ({prov.get('n_evaluated')} architectures evaluated)."
            )
        parts.append("")
        fin = final[final["problem"] == name].copy()
        fin = fin.sort_values("hv_median", ascending=False)
        t_end = tests[(tests["problem"] == name) & (tests["metric"] == "hv") & (tests["checkpoint"] == END)]
        p_of = dict(zip(t_end["optimizer"], t_end["p_holm"], strict=True))
        sig_of = dict(zip(t_end["optimizer"], t_end["significant"], strict=True))
        best = t_end["best"].iloc[0] if len(t_end) else (fin["optimizer"].iloc[0] if len(fin) else "")
        header = [
            "optimizer",
            "runs",
            "final HV median [IQR]",
            f"final HV mean ± {int(confidence * 100)}% CI",
        ]
        if pd_.ref_front is not None:
            header += ["HV ratio median", "IGD+ median"]
        header += [
            "best feasible acc. (%) median",
            "Pareto-set size median",
            "sim. GPU-h",
            "wall s",
            "optimizer overhead",
            "p (Holm) vs best",
        ]
        rows = []
        for _, r in fin.iterrows():
            lab = str(r["optimizer"])
            if lab == best:
                ptxt = "**best**"
            else:
                ptxt = _fmt_p(float(p_of.get(lab, math.nan))) + (" *" if sig_of.get(lab, False) else "")
            row = [
                f"**{lab}**" if lab == best else lab,
                f"{int(r['n_runs'])}",
                f"{_fmt(r['hv_median'])} [{_fmt(r['hv_q25'])}, {_fmt(r['hv_q75'])}]",
                f"{_fmt(r['hv_mean'])} ± {_fmt((r['hv_ci_high'] - r['hv_ci_low']) / 2)}",
            ]
            if pd_.ref_front is not None:
                row += [_fmt(r["hv_ratio_median"]), _fmt(r["igd_plus_median"])]
            row += [
                _fmt(r["best_accuracy_median"], 2),
                _fmt(r["front_size_median"], 0),
                _fmt(r["sim_gpu_hours_median"], 1),
                _fmt(r["wall_time_s_median"], 1),
                _fmt(r["optimizer_overhead_pct_median"], 1) + " %",
                ptxt,
            ]
            rows.append(row)
        parts += ["Final results (* = significantly worse than the best):", "", _md_table(header, rows), ""]
        sub = cps[(cps["problem"] == name) & (cps["metric"] == "hv")]
        cp_names = [str(c) for c in _checkpoint_names(checkpoints)]
        header = ["optimizer", *[f"HV @ {c}" + (" evals" if c != END else "") for c in cp_names]]
        rows = []
        for lab in fin["optimizer"]:
            row = [str(lab)]
            for c in cp_names:
                hit = sub[(sub["optimizer"] == lab) & (sub["checkpoint"] == c)]
                if hit.empty or int(hit["n"].iloc[0]) == 0:
                    row.append("–")
                else:
                    h = hit.iloc[0]
                    half = (h["ci_high"] - h["ci_low"]) / 2
                    row.append(
                        f"{_fmt(h['median'])} [{_fmt(h['q25'])}, {_fmt(h['q75'])}]<br>"
                        f"{_fmt(h['mean'])} ± {_fmt(half)} (n={int(h['n'])})"
                    )
            rows.append(row)
        parts += [
            f"HV at checkpoints: median [IQR], then mean ± {round(confidence * 100)}% CI "
            "(n = runs that reached the checkpoint):",
            "",
            _md_table(header, rows),
            "",
        ]
        for fig in figures.get(name, []):
            parts += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------
def _resolve_context(source: ContextSource | None, info: ProblemInfo) -> ContextPoints | None:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(info.name)
    return source(info)


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
        raise ValueError(f"checkpoints must be positive numbers of evaluations, got {cps}")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(paths, problems=problems, label_keys=label_keys)
    notes += [str(w.message) for w in caught]

    by_problem: dict[str, list[Run]] = {}
    for r in runs:
        by_problem.setdefault(r.problem, []).append(r)
    data: dict[str, ProblemData] = {}
    for name in sorted(by_problem):
        prs = by_problem[name]
        info = prs[0].info
        defs = {
            (r.info.objectives, r.info.ideal, r.info.nadir, r.info.ref_point, r.info.n_constraints)
            for r in prs
        }
        if len(defs) > 1:
            raise ValueError(
                f"runs of problem {name!r} use {len(defs)} different definitions (objectives/normalisation/"
                "constraints); compare them in separate reports or give custom problems their own names"
            )
        modes = {r.info.eval_mode for r in prs}
        if len(modes) > 1 and not label_keys:
            notes.append(
                f"`{name}`: runs mix evaluation modes {sorted(modes)} under one label per optimizer; use "
                "--label-keys optimizer.name,problem.eval_mode to separate them"
            )
        ref_front: ReferenceFront | None = None
        if isinstance(reference_fronts, Mapping):
            ref_front = reference_fronts.get(name)
        elif reference_fronts:
            digests = {r.benchmark_digest for r in prs}
            if len(digests) != 1 or None in digests:
                notes.append(
                    f"`{name}`: runs come from {len(digests)} different benchmark digests "
                    f"({sorted(str(d) for d in digests)}); no reference front is used for this problem"
                )
            else:
                digest = str(next(iter(digests)))
                ref_front = load_reference_front(name, digest, cache=cache)
                if ref_front is None:
                    notes.append(
                        f"`{name}`: no cached reference front for benchmark `{digest}`; compute it with "
                        f"`nasopt fronts --problems {name}` (on the same benchmark)"
                    )
        ref_norm = ref_front.normalized(info) if ref_front is not None else None
        ref_hv = (
            indicators.hypervolume(ref_norm, np.asarray(info.ref_point, dtype=float))
            if ref_norm is not None and len(ref_norm)
            else math.nan
        )
        n_max = max(r.n_evals for r in prs)
        grid = eval_grid(n_max, cps, curve_points)
        traces = [analyze_run(r, info, grid, ref_front_norm=ref_norm, igd_at=cps) for r in prs]
        unfinished = sum(not r.finished for r in prs)
        if unfinished:
            notes.append(
                f"`{name}`: {unfinished} of {len(prs)} runs are not finished (summary.json finished=false "
                "or missing); they are included with the evaluations they have"
            )
        data[name] = ProblemData(info, prs, traces, ref_front, ref_hv, _resolve_context(context, info))
        if ref_front is not None and ref_norm is not None:
            best_ratio = max((t.final("hv_ratio") for t in traces), default=math.nan)
            if np.isfinite(best_ratio) and best_ratio > 1.0 + 1e-9:
                notes.append(
                    f"`{name}`: a run beats the reference front (HV ratio {best_ratio:.4f} > 1); "
                    "recompute the front with more effort or include these runs"
                )

    runs_df = _runs_table(data, cps)
    mism = runs_df[np.isfinite(runs_df["summary_hypervolume"])]
    bad = mism[~np.isclose(mism["hv_end"], mism["summary_hypervolume"], rtol=1e-6, atol=1e-9)]
    if len(bad):
        notes.append(
            f"{len(bad)} run(s) have a summary.json hypervolume different from the HV recomputed from "
            "trials.parquet "
            f"(e.g. {bad['path'].iloc[0]}: {bad['summary_hypervolume'].iloc[0]:.6g} vs "
            f"{bad['hv_end'].iloc[0]:.6g}); "
            "the report uses the recomputed value"
        )
    cps_df = _checkpoints_table(data, cps, confidence)
    final_df = _final_table(data, confidence)
    tests_df = _tests_table(data, cps, alpha)
    ranks_df = _ranks_table(final_df)

    tables_dir = out / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "runs": tables_dir / "runs.csv",
        "checkpoints": tables_dir / "checkpoints.csv",
        "final": tables_dir / "final.csv",
        "tests": tables_dir / "tests.csv",
        "ranks": tables_dir / "ranks.csv",
    }
    runs_df.to_csv(tables["runs"], index=False)
    cps_df.to_csv(tables["checkpoints"], index=False)
    final_df.to_csv(tables["final"], index=False)
    tests_df.to_csv(tables["tests"], index=False)
    ranks_df.to_csv(tables["ranks"], index=True)

    fig_paths: dict[str, list[Path]] = {}
    all_figs: list[Path] = []
    if figures:
        fig_dir = out / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        colors = _colors(t.label for p in data.values() for t in p.traces)
        fig_paths["final_boxes"] = [_fig_final_boxes(data, colors, fig_dir / "final.png")]
        for name, pd_ in data.items():
            figs = [_fig_anytime(pd_, colors, fig_dir / f"anytime_{name}.png", cps)]
            if pd_.info.n_obj == 2:
                figs.append(_fig_fronts_2d(pd_, colors, fig_dir / f"fronts_{name}.png"))
            elif pd_.info.n_obj >= 3:
                figs.append(_fig_fronts_nd(pd_, colors, fig_dir / f"fronts_{name}.png"))
            fig_paths[name] = figs
        all_figs = [p for lst in fig_paths.values() for p in lst]

    md = _markdown(
        data,
        {"final": final_df, "checkpoints": cps_df, "tests": tests_df, "ranks": ranks_df},
        fig_paths,
        out,
        cps,
        notes,
        confidence,
        alpha,
    )
    md_path = out / "report.md"
    md_path.write_text(md, encoding="utf-8")
    return ReportResult(out, md_path, tables, all_figs, runs_df, cps_df, final_df, tests_df, ranks_df, notes)


__all__ = [
    "DEFAULT_CHECKPOINTS",
    "METRICS",
    "ContextPoints",
    "ContextSource",
    "ProblemData",
    "ReportResult",
    "build_report",
    "dataset_context",
]
