"""The report's Markdown: an introduction, the average ranks, then per problem the final results, the
by-checkpoint tables and the figures, then the notes. Metric columns come from the registry."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from nasopt import stats
from nasopt.analysis import target_label
from nasopt.report.data import ProblemData
from nasopt.report.figures import HOLD_NOTE
from nasopt.report.metrics import END, METRICS, PRIMARY, Metric, checkpoint_names, format_number, metrics_for
from nasopt.report.tables import ReportTables


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def format_p(p: float | None) -> str:
    """A p-value with three decimals ("< 0.001" below), "–" if missing: one format for a whole column."""
    if p is None or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 1e-3 else f"{p:.3f}"


def _count_range(counts: Sequence[int]) -> str:
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def too_few_seeds(family: pd.DataFrame, alpha: float) -> str | None:
    """Why no test of ``family`` (the rows of ``tests.csv`` of one problem, metric and checkpoint) can be
    significant whatever the values, in words, or None if one can."""
    if len(family) < 2 or "p_holm_min" not in family:
        return None
    p_holm_min = float(family["p_holm_min"].iloc[0])
    if not math.isfinite(p_holm_min) or p_holm_min < alpha:
        return None
    k = len(family) - 1
    runs = _count_range([int(n) for n in family["n"]])
    return (
        f"With {runs} runs per optimizer no rank-sum test can be significant: the smallest p a two-sided "
        f"Wilcoxon rank-sum test of these numbers of runs can give is {format_p(p_holm_min / k)}"
        + (f", {format_p(p_holm_min)} after Holm's correction for {k} comparisons" if k > 1 else "")
        + f", not below α = {alpha}. No tests are shown; at least {stats.min_seeds_for(alpha, k)} runs "
        "(seeds) per optimizer are needed."
    )


def _introduction(data: Mapping[str, ProblemData], confidence: float, alpha: float) -> list[str]:
    n_runs = sum(len(p.traces) for p in data.values())
    return [
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
        f"Anytime figures: median and IQR over seeds; with runs of different lengths, {HOLD_NOTE}.",
        "",
        "Tables: `tables/runs.csv`, `tables/checkpoints.csv`, `tables/final.csv`, `tables/tests.csv`, "
        "`tables/ranks.csv`.",
        "",
    ]


def _ranks_section(ranks: pd.DataFrame) -> list[str]:
    if ranks.empty:
        return []
    header = ["problem", *[str(c) for c in ranks.columns]]
    rows = [
        [str(idx), *[format_number(v, 2) for v in ranks.loc[idx].to_numpy(dtype=float)]]
        for idx in ranks.index
    ]
    return [f"## Average ranks (by median final {PRIMARY.label}; 1 = best)", "", md_table(header, rows), ""]


def _problem_header(name: str, problem: ProblemData) -> list[str]:
    info = problem.info
    objs = ", ".join(
        f"{target_label(t)} ({'max' if mx else 'min'})"
        for t, mx in zip(info.objectives, info.maximize, strict=True)
    )
    lines = [
        f"## Problem `{name}`",
        "",
        f"Objectives: {objs}; constraints: {info.n_constraints}; "
        f"reference point {list(info.ref_point)} (normalised). {len(problem.traces)} runs.",
    ]
    if problem.ref_front is not None:
        prov = problem.ref_front.provenance
        lines.append(
            f"Reference front: {len(problem.ref_front.values)} points, HV {problem.ref_hv:.4f}, benchmark "
            f"`{prov.get('benchmark_digest')}`, dataset `{prov.get('dataset_digest')}`, computed "
            f"{prov.get('created')} ({prov.get('n_evaluated')} architectures evaluated)."
        )
    return [*lines, ""]


def _metric_headers(m: Metric, confidence: float) -> list[str]:
    if m.by_checkpoint:
        return [f"final {m.label} median [IQR]", f"final {m.label} mean ± {int(confidence * 100)}% CI"]
    return [f"{m.label} median"]


def _metric_cells(m: Metric, row: pd.Series) -> list[str]:
    def v(stat: str) -> float:
        return float(row[f"{m.name}_{stat}"])

    if m.by_checkpoint:
        return [
            f"{m.format(v('median'))} [{m.format(v('q25'))}, {m.format(v('q75'))}]",
            f"{m.format(v('mean'))} ± {m.format((v('ci_high') - v('ci_low')) / 2)}",
        ]
    return [m.format(v("median"))]


def _final_section(
    name: str,
    problem: ProblemData,
    final: pd.DataFrame,
    tests: pd.DataFrame,
    confidence: float,
    alpha: float,
) -> list[str]:
    """Final results per optimizer, best first, with the Holm-corrected p-value against the best (or, when
    no test can be significant with so few runs, a sentence saying so instead)."""
    metrics = metrics_for(problem.ref_front is not None)
    t_end = tests[
        (tests["problem"] == name) & (tests["metric"] == PRIMARY.name) & (tests["checkpoint"] == END)
    ]
    p_of = dict(zip(t_end["optimizer"], t_end["p_holm"], strict=True))
    sig_of = dict(zip(t_end["optimizer"], t_end["significant"], strict=True))
    best = t_end["best"].iloc[0] if len(t_end) else (final["optimizer"].iloc[0] if len(final) else "")
    why_no_tests = too_few_seeds(t_end, alpha)
    header = ["optimizer", "runs"]
    for m in metrics:
        header += _metric_headers(m, confidence)
    header += ["sim. GPU-h", "wall s", "optimizer overhead"]
    if why_no_tests is None:
        header.append("p (Holm) vs best")
    rows = []
    for _, r in final.iterrows():
        lab = str(r["optimizer"])
        if lab == best:
            ptxt = "**best**"
        else:
            ptxt = format_p(float(p_of.get(lab, math.nan))) + (" *" if sig_of.get(lab, False) else "")
        row = [f"**{lab}**" if lab == best else lab, f"{int(r['n_runs'])}"]
        for m in metrics:
            row += _metric_cells(m, r)
        row += [
            format_number(r["sim_gpu_hours_median"], 1),
            format_number(r["wall_time_s_median"], 1),
            format_number(r["optimizer_overhead_pct_median"], 1) + " %",
        ]
        if why_no_tests is None:
            row.append(ptxt)
        rows.append(row)
    if why_no_tests is not None:
        return ["Final results:", "", md_table(header, rows), "", why_no_tests, ""]
    return ["Final results (* = significantly worse than the best):", "", md_table(header, rows), ""]


def _checkpoint_section(
    name: str,
    m: Metric,
    optimizers: Sequence[str],
    checkpoints_df: pd.DataFrame,
    checkpoints: Sequence[int],
    confidence: float,
) -> list[str]:
    """``m`` at every checkpoint some run reached, per optimizer: median [IQR], then mean ± CI."""
    sub = checkpoints_df[(checkpoints_df["problem"] == name) & (checkpoints_df["metric"] == m.name)]
    reached = [c for c in checkpoints if (sub[sub["checkpoint"] == str(c)]["n"] > 0).any()]
    cp_names = [str(c) for c in checkpoint_names(reached)]
    header = ["optimizer", *[f"{m.label} @ {c}" + (" evals" if c != END else "") for c in cp_names]]
    rows = []
    for lab in optimizers:
        row = [str(lab)]
        for c in cp_names:
            hit = sub[(sub["optimizer"] == lab) & (sub["checkpoint"] == c)]
            if hit.empty or int(hit["n"].iloc[0]) == 0:
                row.append("–")
            else:
                h = hit.iloc[0]
                half = (h["ci_high"] - h["ci_low"]) / 2
                row.append(
                    f"{m.format(h['median'])} [{m.format(h['q25'])}, {m.format(h['q75'])}]<br>"
                    f"{m.format(h['mean'])} ± {m.format(half)} (n={int(h['n'])})"
                )
        rows.append(row)
    unreached = sorted(set(checkpoints) - set(reached))
    left_out = (
        f" Left out: {', '.join(map(str, unreached))} evaluations (no run reached them)." if unreached else ""
    )
    return [
        f"{m.label} at checkpoints: median [IQR], then mean ± {round(confidence * 100)}% CI "
        f"(n = runs that reached the checkpoint).{left_out}",
        "",
        md_table(header, rows),
        "",
    ]


def render_markdown(
    data: Mapping[str, ProblemData],
    tables: ReportTables,
    figures: Mapping[str, list[Path]],
    out: Path,
    checkpoints: Sequence[int],
    notes: Sequence[str],
    *,
    confidence: float,
    alpha: float,
) -> str:
    """The whole report; figure links are relative to ``out``."""
    parts = _introduction(data, confidence, alpha) + _ranks_section(tables.ranks)
    if "final_boxes" in figures:
        parts += [f"![final results]({figures['final_boxes'][0].relative_to(out).as_posix()})", ""]
    for name, problem in data.items():
        parts += _problem_header(name, problem)
        final = tables.final[tables.final["problem"] == name].sort_values(
            f"{PRIMARY.name}_median", ascending=not PRIMARY.higher_is_better
        )
        parts += _final_section(name, problem, final, tables.tests, confidence, alpha)
        for m in METRICS:
            if m.by_checkpoint:
                parts += _checkpoint_section(
                    name, m, list(final["optimizer"]), tables.checkpoints, checkpoints, confidence
                )
        for fig in figures.get(name, []):
            parts += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


__all__ = ["format_p", "md_table", "render_markdown", "too_few_seeds"]
