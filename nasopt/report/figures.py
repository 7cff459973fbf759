"""The report's PNG figures, one function per plot (matplotlib is imported only when drawing)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark._typing import FloatArray
from nasopt.analysis import RunTrace, step_values, target_label
from nasopt.report.data import ProblemData
from nasopt.report.metrics import HV, PRIMARY, Metric, plotted_metric
from optimizers import indicators
from optimizers.base import ProblemInfo


def label_colors(labels: Iterable[str]) -> dict[str, Any]:
    """One colour per distinct label (sorted), the same in every figure."""
    from matplotlib import colormaps

    labs = sorted(set(labels))
    cmap = colormaps["tab10" if len(labs) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labs)}


#: how the anytime figure treats runs of different lengths (also said in its title and the report text)
HOLD_NOTE = (
    "a run that ended (its budget reached, or stopped early) keeps its last value to the end of the axis, "
    "so a median never falls because runs drop out"
)


def _quantiles(M: FloatArray, qs: Sequence[float], higher_is_better: bool) -> FloatArray:
    """Quantiles ``(len(qs), points)`` over the rows of ``M (runs, points)``, linear interpolation as
    ``np.percentile``. A NaN (a run with no value yet, e.g. no feasible point) ranks as the worst value: a
    quantile is NaN where it would depend on one. Non-decreasing rows give non-decreasing quantiles."""
    n = M.shape[0]
    missing = ~np.isfinite(M)
    n_missing = missing.sum(axis=0)
    worst = -np.inf if higher_is_better else np.inf
    S = np.sort(np.where(missing, worst, M), axis=0)  # missing first (higher is better) or last
    out = np.full((len(qs), M.shape[1]), np.nan)
    for i, q in enumerate(qs):
        pos = q * (n - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        frac = pos - lo
        ok = lo >= n_missing if higher_is_better else hi < n - n_missing
        with np.errstate(invalid="ignore"):
            val = S[lo] if frac == 0.0 else S[lo] + frac * (S[hi] - S[lo])
        out[i] = np.where(ok, val, np.nan)
    return out


def _curves(traces: Sequence[RunTrace], metric: Metric, axis: str, grid: FloatArray) -> FloatArray:
    """``metric`` of each run as a step function on ``grid`` ``(runs, points)``, against evaluations or
    simulated hours; after the run's end it holds its last value (:data:`HOLD_NOTE`)."""
    M = np.full((len(traces), grid.size), np.nan)
    for r, t in enumerate(traces):
        y = np.asarray(getattr(t, metric.trace), dtype=float)
        x = t.counts.astype(float) if axis == "evals" else t.sim_hours
        M[r] = step_values(x, y, grid, before=metric.curve_start)
    return M


def _run_end(trace: RunTrace, axis: str) -> float:
    """Where a run ends on the ``"evals"`` or ``"time"`` (simulated GPU-hours) axis."""
    return float(trace.n_evals) if axis == "evals" else float(trace.sim_time_s / 3600.0)


def anytime_bands(
    traces: Sequence[RunTrace], metric: Metric, axis: str, grid: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Median, 25% and 75% quantile over ``traces`` of ``metric`` on ``grid`` ``(points,)`` against
    ``axis`` (``"evals"`` or ``"time"``): what the anytime figure draws. Every run holds its last value
    after its end (:data:`HOLD_NOTE`), so for a metric a run never worsens the curves never worsen."""
    q = _quantiles(_curves(traces, metric, axis, grid), (0.5, 0.25, 0.75), metric.higher_is_better)
    return q[0], q[1], q[2]


def _median_final(traces: Sequence[RunTrace], metric: Metric) -> float:
    return float(np.nanmedian([metric.final(t) for t in traces]))


def _senses(info: ProblemInfo) -> list[str]:
    return ["higher is better" if mx else "lower is better" for mx in info.maximize]


def anytime(problem: ProblemData, colors: Mapping[str, Any], path: Path, checkpoints: Sequence[int]) -> Path:
    """Median and IQR over seeds of the plotted metric against evaluations and simulated GPU-hours."""
    from matplotlib.figure import Figure

    metric = plotted_metric(problem.info)
    groups = problem.by_label()
    n_max = max(t.n_evals for t in problem.traces)
    t_max = max(t.sim_time_s for t in problem.traces) / 3600.0
    egrid = np.unique(np.concatenate([np.linspace(1, n_max, 300), [c for c in checkpoints if c <= n_max]]))
    tgrid = np.linspace(0.0, t_max, 300)
    finals = {lab: _median_final(trs, metric) for lab, trs in groups.items()}
    order = sorted(groups, key=lambda lab: -finals[lab] if np.isfinite(finals[lab]) else math.inf)

    fig = Figure(figsize=(13, 5), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    held = False
    for ax, axis, grid, xlabel in (
        (axes[0], "evals", egrid, "evaluations"),
        (axes[1], "time", tgrid, "simulated training time (GPU-hours)"),
    ):
        for lab in order:
            med, lo, hi = anytime_bands(groups[lab], metric, axis, grid)
            c = colors[lab]
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, linewidth=0, step="post")
            ax.step(
                grid,
                med,
                where="post",
                color=c,
                linewidth=2.0,
                label=f"{lab}  (final median {metric.format(finals[lab])}, n={len(groups[lab])})",
            )
            ends = [_run_end(t, axis) for t in groups[lab]]
            first = min(ends)
            if first < max(ends):  # from here on the curves hold finished runs' last values
                at = min(int(np.searchsorted(grid, first, side="right")) - 1, grid.size - 1)
                ax.plot([first], [med[max(at, 0)]], marker="|", markersize=14, mew=2, color=c, linestyle="")
                held = True
        if metric is HV and np.isfinite(problem.ref_hv):
            ax.axhline(
                problem.ref_hv, color="black", linestyle="--", linewidth=1.2, label="reference front HV"
            )
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    for c in checkpoints:
        if c <= n_max:
            axes[0].axvline(c, color="grey", linestyle=":", linewidth=0.8)
    axes[0].set_ylabel(metric.axis_label)
    if held:
        axes[0].plot(
            [], [], marker="|", markersize=14, mew=2, color="grey", linestyle="", label="first run ends"
        )
    axes[0].legend(loc="lower right", fontsize=9, framealpha=0.9, title="median and IQR over seeds")
    info = problem.info
    objs = ", ".join(
        f"{'max' if mx else 'min'} {t}" for t, mx in zip(info.objectives, info.maximize, strict=True)
    )
    fig.suptitle(
        f"{info.name}: anytime performance ({objs})\n"
        "a run that ended keeps its last value to the end of the axis (medians do not fall as runs drop out)",
        fontsize=11,
    )
    fig.savefig(path)
    return path


def final_boxes(data: Mapping[str, ProblemData], colors: Mapping[str, Any], path: Path) -> Path:
    """One box plot per problem of the plotted metric's final value per run, best optimizer left."""
    from matplotlib.figure import Figure

    names = list(data)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig = Figure(figsize=(5.5 * ncol, 4.4 * nrow), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    rng = np.random.default_rng(0)  # jitter only
    for ax, name in zip(axes, names, strict=False):
        problem = data[name]
        metric = plotted_metric(problem.info)
        vals = {
            lab: np.array([metric.final(t) for t in trs], dtype=float)
            for lab, trs in problem.by_label().items()
        }
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
        if metric is HV and np.isfinite(problem.ref_hv):
            ax.axhline(
                problem.ref_hv, color="black", linestyle="--", linewidth=1.0, label="reference front HV"
            )
            ax.legend(loc="lower left", fontsize=8)
        ax.set_ylabel(f"final {metric.axis_label}")
        ax.set_title(f"{name} (best left)")
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Final result per run (box: median and IQR over seeds; dots: runs)")
    fig.savefig(path)
    return path


def measured_box(ax: Any, measured: FloatArray | None, i: int = 0, j: int = 1) -> Any:
    """Dashed box of the measured data's range of objectives ``i`` (x) and ``j`` (y), from the context's
    measured points ``(n, m)``, labelled "measured range": predictions outside it are extrapolated by the
    surrogate. Returns the patch (None without measured points)."""
    from matplotlib.patches import Rectangle

    if measured is None or not len(measured):
        return None
    lo = np.nanmin(measured[:, [i, j]], axis=0)
    hi = np.nanmax(measured[:, [i, j]], axis=0)
    box = Rectangle(
        (float(lo[0]), float(lo[1])),
        float(hi[0] - lo[0]),
        float(hi[1] - lo[1]),
        fill=False,
        edgecolor="0.35",
        linestyle=(0, (5, 3)),
        linewidth=1.1,
        label="measured range",
        zorder=1.5,
    )
    ax.add_patch(box)
    return box


def fronts_2d(problem: ProblemData, colors: Mapping[str, Any], path: Path) -> Path:
    """Median attainment surface per optimizer of a bi-objective problem, over the reference front and the
    context points, in natural units."""
    from matplotlib.figure import Figure

    info = problem.info
    fig = Figure(figsize=(8.5, 6.5), dpi=110, layout="constrained")
    ax = fig.subplots()
    ctx = problem.context
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
    measured_box(ax, None if ctx is None else ctx.measured)
    if problem.ref_front is not None and len(problem.ref_front.values):
        ref_norm = problem.ref_front.normalized(info)
        ref_norm = ref_norm[np.lexsort(ref_norm.T[::-1])]
        line = info.denormalize(indicators.staircase(ref_norm))
        ax.plot(
            line[:, 0],
            line[:, 1],
            color="black",
            linestyle="--",
            linewidth=1.3,
            label=f"reference front ({len(ref_norm)} pts)",
            zorder=2,
        )
    groups = problem.by_label()
    finals = {lab: _median_final(trs, PRIMARY) for lab, trs in groups.items()}
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
        line = info.denormalize(indicators.staircase(surf))
        pts = info.denormalize(surf)
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
    elif problem.ref_front is not None and "efficientnet_b0" in problem.ref_front.context:
        b0, b0_label = np.asarray(problem.ref_front.context["efficientnet_b0"]), "EfficientNet-B0 (surrogate)"
    if b0 is not None:
        ax.scatter(
            [b0[0]], [b0[1]], marker="*", s=260, color="gold", edgecolor="black", zorder=5, label=b0_label
        )
    if shown:  # frame the optimizers' surfaces (context points may lie far outside)
        allpts = info.denormalize(np.vstack(shown))
        if b0 is not None:
            allpts = np.vstack([allpts, b0[None, :2]])
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
        pad = 0.06 * np.maximum(hi - lo, 1e-9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    sense = _senses(info)
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


def fronts_nd(problem: ProblemData, colors: Mapping[str, Any], path: Path) -> Path:
    """Pooled final non-dominated set per optimizer of a problem with 3+ objectives, as 2-D projections."""
    from matplotlib.figure import Figure

    info = problem.info
    pairs = [(i, j) for i in range(info.n_obj) for j in range(i + 1, info.n_obj)]
    fig = Figure(figsize=(5.2 * len(pairs), 4.8), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(pairs), squeeze=False)).ravel()
    ref = np.asarray(info.ref_point, dtype=float)
    for lab, trs in sorted(problem.by_label().items()):
        pooled = np.vstack([t.front_norm for t in trs]) if trs else np.zeros((0, info.n_obj))
        pooled = pooled[indicators.nondominated_mask(pooled) & np.all(pooled < ref[None, :], axis=1)]
        nat = info.denormalize(pooled)
        for ax, (i, j) in zip(axes, pairs, strict=True):
            ax.scatter(
                nat[:, i],
                nat[:, j],
                s=10,
                color=colors[lab],
                alpha=0.7,
                label=f"{lab} ({len(trs)} runs pooled)",
            )
    sense = _senses(info)
    ctx = problem.context
    for ax, (i, j) in zip(axes, pairs, strict=True):
        measured_box(ax, None if ctx is None else ctx.measured, i, j)
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


def write_figures(
    data: Mapping[str, ProblemData], directory: Path, checkpoints: Sequence[int]
) -> dict[str, list[Path]]:
    """Draw every figure into ``directory`` (created): ``"final_boxes"`` -> [final.png] and, per problem,
    [anytime_<problem>.png, fronts_<problem>.png (2+ objectives)]."""
    directory.mkdir(parents=True, exist_ok=True)
    palette = label_colors(t.label for p in data.values() for t in p.traces)
    out = {"final_boxes": [final_boxes(data, palette, directory / "final.png")]}
    for name, problem in data.items():
        figs = [anytime(problem, palette, directory / f"anytime_{name}.png", checkpoints)]
        if problem.info.n_obj == 2:
            figs.append(fronts_2d(problem, palette, directory / f"fronts_{name}.png"))
        elif problem.info.n_obj >= 3:
            figs.append(fronts_nd(problem, palette, directory / f"fronts_{name}.png"))
        out[name] = figs
    return out


__all__ = [
    "HOLD_NOTE",
    "anytime",
    "anytime_bands",
    "final_boxes",
    "fronts_2d",
    "fronts_nd",
    "label_colors",
    "measured_box",
    "write_figures",
]
