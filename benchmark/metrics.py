"""Fit-quality metrics of a surrogate against measured values."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from benchmark._typing import FloatArray

METRIC_NAMES = ("r2", "kendall_tau", "spearman", "mae", "rmse", "within_1std", "n")


def fit_quality(y_true: FloatArray, y_pred: FloatArray, y_std: FloatArray | None = None) -> dict[str, float]:
    """R², Kendall τ, Spearman ρ, MAE, RMSE, share of errors within one std (calibration), and n.

    Rows whose measured value is NaN (missing) are left out.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    t, p = y_true[ok], y_pred[ok]
    n = int(ok.sum())
    out: dict[str, float] = {"n": float(n)}
    if n < 2:
        out.update({k: float("nan") for k in METRIC_NAMES if k != "n"})
        return out
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum())
    out["r2"] = 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    out["kendall_tau"] = float(kendalltau(p, t)[0])
    out["spearman"] = float(spearmanr(p, t)[0])
    out["mae"] = float(np.abs(err).mean())
    out["rmse"] = float(np.sqrt((err**2).mean()))
    if y_std is not None:
        s = np.asarray(y_std, dtype=float)[ok]
        out["within_1std"] = float((np.abs(err) <= s).mean())
    else:
        out["within_1std"] = float("nan")
    return out


def format_quality_table(
    quality: dict[str, dict[str, Any]],
    title: str = "",
    caps: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A fixed-width table: one row per target; with ``caps`` (``{target: {"cap_r2", "cap_kendall_tau",
    "n_groups"}}``, see :func:`benchmark.noise.noise_caps`) two more columns give what a perfect model could
    reach."""
    head = f"{'target':<18} {'n':>5} {'R2':>7} {'tau':>7} {'rho':>7} {'MAE':>10} {'RMSE':>10} {'in 1sd':>7}"
    if caps is not None:
        head += f" {'R2 cap':>7} {'tau cap':>7}"
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    nan = float("nan")
    for target, q in quality.items():
        line = (
            f"{target:<18} {int(q.get('n', 0)):>5} {q.get('r2', nan):>7.4f} "
            f"{q.get('kendall_tau', nan):>7.4f} {q.get('spearman', nan):>7.4f} "
            f"{q.get('mae', nan):>10.4g} {q.get('rmse', nan):>10.4g} "
            f"{q.get('within_1std', nan):>7.2f}"
        )
        if caps is not None:
            c = caps.get(target, {})
            line += f" {c.get('cap_r2', nan):>7.4f} {c.get('cap_kendall_tau', nan):>7.4f}"
        lines.append(line)
    if caps is not None:
        groups = max((int(c.get("n_groups", 0)) for c in caps.values()), default=0)
        lines.append(
            "caps: R² and τ a perfect model would reach against these measurements if they scatter as much "
            f"as the repeated measurements in the data do ({groups} architectures measured twice or more; "
            "rough when that is few, NaN when none)"
        )
    return "\n".join(lines)
