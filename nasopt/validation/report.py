"""The validation report: ``report.md``, CSV tables and PNG figures of predicted versus measured, in the style
of ``nasopt report`` (its Markdown table helper; matplotlib imported only when drawing)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.targets import TARGETS
from nasopt.report.markdown import md_table
from nasopt.validation.candidates import PUBLISHED, Candidate
from nasopt.validation.compare import (
    Agreement,
    FrontComparison,
    Pairing,
    agreement,
    compare_fronts,
    pair_targets,
    verdicts,
)
from nasopt.validation.plan import REPORT_DIR, Collected, Plan
from optimizers.base import ProblemInfo


def problem_info(plan: Plan) -> ProblemInfo:
    """The plan's problem as a :class:`ProblemInfo` (stored as a plain dict in ``plan.json``)."""
    d = dict(plan.problem)
    for k in ("objectives", "maximize", "ideal", "nadir", "ref_point", "constraints", "log_scale"):
        if k in d:
            d[k] = tuple(d[k])
    return ProblemInfo(**d)


def analyse(
    plan: Plan, collected: Collected, overrides: dict[str, str] | None = None
) -> tuple[list[Agreement], FrontComparison | None, list[Pairing]]:
    """Agreements per pairing and the front comparison."""
    info = problem_info(plan)
    predicted_targets = sorted({t for c in plan.candidates for t in c.predicted})
    pairings = pair_targets(
        sorted(collected.values), predicted_targets, info, overrides, collected.comparable
    )
    mean = {
        t: np.array([c.predicted.get(t, (np.nan, np.nan))[0] for c in plan.candidates])
        for t in predicted_targets
    }
    std = {
        t: np.array([c.predicted.get(t, (np.nan, np.nan))[1] for c in plan.candidates])
        for t in predicted_targets
    }
    agreements = [
        agreement(p, mean[p.predicted], std[p.predicted], collected.values[p.measured]) for p in pairings
    ]
    fronts = compare_fronts(info, pairings, mean, collected.values)
    return agreements, fronts, pairings


def candidates_table(plan: Plan, collected: Collected, pairings: Sequence[Pairing]) -> pd.DataFrame:
    """One row per candidate: why chosen, predicted mean/std of the paired targets, measured, z-score."""
    rows = []
    for i, c in enumerate(plan.candidates):
        row: dict[str, Any] = {"arch": c.arch, "reason": c.reason, "n_runs": len(c.runs)}
        for p in pairings:
            mu, sd = c.predicted.get(p.predicted, (math.nan, math.nan))
            y = float(collected.values[p.measured][i])
            row[f"pred_{p.predicted}"] = mu
            row[f"pred_std_{p.predicted}"] = sd
            row[f"meas_{p.measured}"] = y
            row[f"meas_std_{p.measured}"] = float(collected.stds[p.measured][i])
            row[f"z_{p.measured}"] = (y - mu) / sd if p.absolute and sd > 0 and math.isfinite(y) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _scatter(p: Pairing, c: Sequence[Candidate], collected: Collected, a: Agreement, path: Path) -> Path:
    from matplotlib.figure import Figure

    mu = np.array([x.predicted.get(p.predicted, (np.nan, np.nan))[0] for x in c])
    sd = np.array([x.predicted.get(p.predicted, (np.nan, np.nan))[1] for x in c])
    y = collected.values[p.measured]
    ysd = collected.stds[p.measured]
    ref = np.array([x.is_reference for x in c])
    fig = Figure(figsize=(6.2, 5.4), dpi=110, layout="constrained")
    ax = fig.subplots()
    for mask, color, label in ((~ref, "tab:blue", "candidates"), (ref, "tab:orange", "references")):
        if mask.any():
            ax.errorbar(
                mu[mask],
                y[mask],
                xerr=sd[mask],
                yerr=np.nan_to_num(ysd[mask]),
                fmt="o",
                color=color,
                ecolor=color,
                alpha=0.8,
                capsize=2,
                label=label,
            )
    ok = np.isfinite(mu) & np.isfinite(y)
    if p.absolute and ok.any():
        lo, hi = float(np.min([mu[ok].min(), y[ok].min()])), float(np.max([mu[ok].max(), y[ok].max()]))
        ax.plot([lo, hi], [lo, hi], color="0.3", linestyle="--", linewidth=1, label="measured = predicted")
    unit_p, unit_m = TARGETS[p.predicted].unit, TARGETS.get(p.measured, TARGETS[p.predicted]).unit
    ax.set_xlabel(f"predicted {p.predicted} ({unit_p}), ±1σ")
    ax.set_ylabel(f"measured {p.measured} ({unit_m if p.measured in TARGETS else unit_p})")
    kind = "values compare" if p.absolute else "other hardware or data: the ranking compares, values do not"
    ax.set_title(f"{p.label}: τ = {a.kendall_tau:.2f}, n = {a.n}\n({kind})", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(path)
    return path


def _fronts(
    info: ProblemInfo, c: Sequence[Candidate], collected: Collected, f: FrontComparison, path: Path
) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.8), dpi=110, layout="constrained")
    ax_p, ax_m = fig.subplots(1, 2)
    P = np.array([[x.predicted.get(t, (np.nan, np.nan))[0] for t in info.objectives] for x in c])
    M = np.column_stack([collected.values[n] for n in f.measured_names])
    for ax, V, front, title, names in (
        (ax_p, P, f.predicted_front, f"predicted (HV {f.hv_predicted:.3f})", info.objectives),
        (
            ax_m,
            M,
            f.measured_front,
            f"measured (HV {f.hv_measured:.3f}" + ("" if f.absolute else ", in the measured range") + ")",
            f.measured_names,
        ),
    ):
        ok = np.all(np.isfinite(V), axis=1)
        ref = np.array([x.is_reference for x in c])
        ax.scatter(V[ok & ~ref, 0], V[ok & ~ref, 1], color="0.55", s=18, label="candidates")
        if (ok & ref).any():
            ax.scatter(
                V[ok & ref, 0],
                V[ok & ref, 1],
                color="tab:orange",
                marker="D",
                s=30,
                label="references",
                zorder=3,
            )
        fr = np.array(sorted(front, key=lambda i: V[i, 0]))
        if fr.size:
            ax.plot(V[fr, 0], V[fr, 1], "o-", color="tab:red", label=f"front ({fr.size})")
        kind = "predicted" if ax is ax_p else "measured"
        ax.set_xlabel(f"{kind} {names[0]} ({_unit(names[0])})")
        ax.set_ylabel(f"{kind} {names[1]} ({_unit(names[1])})")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    if f.absolute:  # the paper's published models, where they measured the same quantities
        for pub in PUBLISHED.values():
            if all(t in pub.values for t in info.objectives):
                ax_m.scatter(*[pub.values[t] for t in info.objectives], marker="*", s=80, color="tab:green")
                ax_m.annotate(pub.name, [pub.values[t] for t in info.objectives], fontsize=7)
    fig.suptitle(
        f"{info.name}: {f.shared} of {len(f.predicted_front)} predicted-front candidates are on the "
        f"measured front",
        fontsize=10,
    )
    fig.savefig(path)
    return path


def _unit(name: str) -> str:
    """The unit of a target or of a measured quantity named like one (``latency_cpu`` -> ms)."""
    if name in TARGETS:
        return TARGETS[name].unit
    return {"latency": "ms", "throughput": "img/s", "accuracy": "%"}.get(name.split("_", 1)[0], "")


def _fmt(x: float) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return f"{x:.3f}"


def write_report(
    vdir: str | os.PathLike[str],
    plan: Plan,
    collected: Collected,
    overrides: dict[str, str] | None = None,
    figures: bool = True,
) -> Path:
    """Write ``VDIR/report/`` (report.md, candidates.csv, agreement.csv, PNGs); returns report.md's path."""
    out = Path(vdir) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    info = problem_info(plan)
    agreements, fronts, pairings = analyse(plan, collected, overrides)
    cand = candidates_table(plan, collected, pairings)
    cand.to_csv(out / "candidates.csv", index=False, float_format="%.6g")
    pd.DataFrame([a.to_dict() for a in agreements]).to_csv(
        out / "agreement.csv", index=False, float_format="%.6g"
    )
    lines = [f"# Validation of {info.name}: predicted versus measured", ""]
    n_ref = sum(c.is_reference for c in plan.candidates)
    lines += [
        f"{len(plan.candidates) - n_ref} candidates from {len(plan.runs)} run(s) "
        f"(selection: {plan.settings.get('select')}), plus {n_ref} reference architecture(s); "
        f"{collected.n_done} of {len(plan.jobs)} jobs done.",
        "",
    ]
    lines += ["## Verdicts", ""] + [f"- {v}" for v in verdicts(agreements)] + [""]
    if agreements:
        lines += ["## Agreement per target", ""]
        lines.append(
            md_table(
                [
                    "measured",
                    "predicted",
                    "values compare",
                    "n",
                    "Kendall τ",
                    "Spearman",
                    "MAE",
                    "bias",
                    "within 1σ",
                    "within 2σ",
                ],
                [
                    [
                        a.pairing.measured,
                        a.pairing.predicted,
                        "yes" if a.pairing.absolute else "ranking only",
                        str(a.n),
                        _fmt(a.kendall_tau),
                        _fmt(a.spearman),
                        _fmt(a.mae),
                        _fmt(a.bias),
                        _fmt(a.within_1sd),
                        _fmt(a.within_2sd),
                    ]
                    for a in agreements
                ],
            )
        )
        lines += [
            "",
            "Calibration: with a calibrated σ, 68 % of measurements lie within 1σ and 95 % within 2σ "
            "of the prediction.",
            "",
        ]
    if fronts is not None:
        lines += [
            "## Fronts",
            "",
            f"Predicted front: {len(fronts.predicted_front)} candidates, HV {fronts.hv_predicted:.4f} "
            f"(the problem's normalised box). Measured front ({', '.join(fronts.measured_names)}): "
            f"{len(fronts.measured_front)} candidates, HV {fronts.hv_measured:.4f}"
            + (
                "."
                if fronts.absolute
                else " in a box spanning the measured values (other hardware/data: not comparable with the "
                "predicted HV)."
            )
            + f" {fronts.shared} candidate(s) are on both.",
            "",
        ]
    lines += ["## Candidates", ""]
    header = ["#", "arch", "reason"] + [
        h for p in pairings for h in (f"pred {p.predicted}", f"meas {p.measured}")
    ]
    rows = []
    for i, r in cand.iterrows():
        cells = [str(i), f"`{r['arch']}`", str(r["reason"])]
        for p in pairings:
            mu, sd = r[f"pred_{p.predicted}"], r[f"pred_std_{p.predicted}"]
            cells += [f"{mu:.4g} ± {sd:.2g}", _fmt_meas(r[f"meas_{p.measured}"], r[f"meas_std_{p.measured}"])]
        rows.append(cells)
    lines.append(md_table(header, rows))
    lines += [
        "",
        "Published models of the Accel-NASBench paper (measured, fully trained; architectures not "
        "published, so shown for context only): "
        + ", ".join(
            f"{p.name} ({', '.join(f'{k} {v:g}' for k, v in p.values.items())})" for p in PUBLISHED.values()
        )
        + f". Source: {next(iter(PUBLISHED.values())).source}.",
        "",
    ]
    if figures:
        lines += ["## Figures", ""]
        for p, a in zip(pairings, agreements, strict=True):
            name = f"scatter_{p.measured}.png"
            _scatter(p, plan.candidates, collected, a, out / name)
            lines.append(f"![{p.label}]({name})")
        if fronts is not None and len(info.objectives) == 2:
            _fronts(info, plan.candidates, collected, fronts, out / "fronts.png")
            lines.append("![fronts](fronts.png)")
        lines.append("")
    path = out / "report.md"
    from benchmark._io import atomic_write_text

    atomic_write_text(path, "\n".join(lines))
    return path


def _fmt_meas(y: float, sd: float) -> str:
    if not math.isfinite(y):
        return "–"
    return f"{y:.4g}" + (f" ± {sd:.2g}" if math.isfinite(sd) else "")
