"""Measurement noise of the records, estimated from repeated architectures, and the fidelity it allows.

Some architectures were trained or measured more than once. Their spread estimates how much a re-run of
the *same* architecture moves a target, and that spread caps what any surrogate can reach when scored against
single measurements: a perfect model's R² and Kendall τ are below 1. :func:`noise_ceiling` estimates that cap
by simulation, so a fit-quality table can be read against it.

Accuracy noise is additive (points of top-1); hardware and training-time noise is relative, so it is estimated
on log values (a σ of 0.02 = 2 %).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.targets import TARGET_NAMES, get_target

#: the robust σ divides the median absolute deviation by this (normal consistency constant)
_MAD_TO_SIGMA = 0.6744897501960817


@dataclass(frozen=True)
class NoiseEstimate:
    """Spread of repeated measurements of one target.

    Attributes:
        target: target name.
        relative: True when σ is relative (on log values), False when in the target's unit.
        n_groups: architectures measured more than once (with a value each time).
        n_residuals: degrees of freedom behind the estimate (sum over groups of size - 1).
        sigma_rms: root-mean-square estimate of one measurement's σ (sensitive to rare outliers).
        sigma_robust: median-absolute-deviation estimate (typical repeat spread, ignores outliers).
    """

    target: str
    relative: bool
    n_groups: int
    n_residuals: int
    sigma_rms: float
    sigma_robust: float


def is_relative(target: str) -> bool:
    """Whether ``target``'s noise is modelled as relative (every cost: device and training-time values)."""
    return get_target(target).is_cost


def _usable(y: FloatArray, log: bool) -> BoolArray:
    """Rows with a value (finite, and positive where logs are taken)."""
    return np.isfinite(y) & (y > 0) if log else np.isfinite(y)


def repeat_deviations(X: IntArray, y: FloatArray, *, log: bool = False) -> tuple[FloatArray, IntArray]:
    """Deviations of repeated measurements from their architecture's mean.

    Args:
        X: ``(n, 28)`` genes; y: ``(n,)`` values (NaN = missing, left out); log: use ``log(y)``.

    Returns:
        ``(d, k)``, both ``(m,)`` over the rows of architectures measured ``k >= 2`` times: ``d`` is the
        row's deviation from its group mean, ``k`` its group size. ``d`` has variance ``σ² (k - 1) / k``.
    """
    ok = _usable(y, log)
    ids = space.arch_id(np.asarray(X)[ok])
    v = np.log(y[ok]) if log else np.asarray(y, dtype=float)[ok]
    _, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
    k = counts[inv]
    rep = k >= 2
    means = np.bincount(inv, weights=v) / counts
    return (v - means[inv])[rep], k[rep].astype(np.int64)


def estimate_noise(X: IntArray, labels: dict[str, FloatArray]) -> dict[str, NoiseEstimate]:
    """Repeat-measurement noise per target (targets without repeats get NaN σ and ``n_groups = 0``)."""
    out = {}
    for t in TARGET_NAMES:
        if t not in labels:
            continue
        rel = is_relative(t)
        d, k = repeat_deviations(X, np.asarray(labels[t], dtype=float), log=rel)
        groups = int(np.sum(1.0 / k)) if k.size else 0
        dof = round(float(np.sum((k - 1.0) / k)))
        if dof == 0:
            out[t] = NoiseEstimate(t, rel, 0, 0, float("nan"), float("nan"))
            continue
        rms = float(np.sqrt(np.sum(d**2) / dof))  # pooled within-group variance
        robust = float(np.median(np.abs(d * np.sqrt(k / (k - 1.0)))) / _MAD_TO_SIGMA)
        out[t] = NoiseEstimate(t, rel, groups, dof, rms, robust)
    return out


def noise_ceiling(
    y: FloatArray, sigma: float, rng: np.random.Generator, *, relative: bool = False, n_draws: int = 100
) -> dict[str, float]:
    """Expected R² and Kendall τ of a *perfect* model scored against measurements with noise ``sigma``.

    The measured values ``y`` (NaN left out) are shrunk towards their mean so that signal + noise keeps their
    variance; then fresh noise is drawn ``n_draws`` times and each draw is scored against the noise-free
    values. With ``relative``, everything happens on ``log(y)``.

    Returns:
        ``{"r2": …, "kendall_tau": …, "sigma": sigma, "n": …}`` (NaN when ``sigma`` is NaN or n < 3).
    """
    v = np.asarray(y, dtype=float)
    v = v[_usable(v, relative)]
    n = v.size
    if n < 3 or not np.isfinite(sigma):
        return {"r2": float("nan"), "kendall_tau": float("nan"), "sigma": float(sigma), "n": float(n)}
    z = np.log(v) if relative else v
    var = float(z.var())
    shrink = np.sqrt(max(1.0 - sigma**2 / var, 0.0)) if var > 0 else 0.0
    true = z.mean() + (z - z.mean()) * shrink
    r2s, taus = [], []
    for _ in range(n_draws):
        meas = true + rng.normal(0.0, sigma, n)
        a, b = (np.exp(true), np.exp(meas)) if relative else (true, meas)
        ss = float(((b - b.mean()) ** 2).sum())
        r2s.append(1.0 - float(((b - a) ** 2).sum()) / ss if ss > 0 else float("nan"))
        taus.append(float(kendalltau(a, b)[0]))
    return {
        "r2": float(np.mean(r2s)),
        "kendall_tau": float(np.mean(taus)),
        "sigma": float(sigma),
        "n": float(n),
    }


def noise_caps(
    noise: Mapping[str, Mapping[str, Any]], labels: Mapping[str, FloatArray]
) -> dict[str, dict[str, float]]:
    """Per target in both: the R² / Kendall τ cap of a perfect model on ``labels`` and the repeat count.

    Args:
        noise: per target, a :class:`NoiseEstimate` as a dict (``sigma_rms``, ``relative``, ``n_groups``).
        labels: per target, the measured values the model is scored against.

    Returns:
        ``{target: {"cap_r2", "cap_kendall_tau", "n_groups"}}`` (seeded, so the same for the same input).
    """
    out: dict[str, dict[str, float]] = {}
    for t, est in noise.items():
        if t not in labels:
            continue
        rng = np.random.default_rng(0)
        cap = noise_ceiling(labels[t], est["sigma_rms"], rng, relative=est["relative"], n_draws=30)
        out[t] = {"cap_r2": cap["r2"], "cap_kendall_tau": cap["kendall_tau"], "n_groups": est["n_groups"]}
    return out


def noise_summary(
    X: IntArray,
    labels: dict[str, FloatArray],
    scored: Mapping[str, FloatArray],
    targets: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Repeat-measurement noise per target (from ``X``/``labels``) with the caps it puts on a model scored
    against ``scored`` (see :func:`noise_caps`); JSON-ready, stored in a fitted surrogate's metadata."""
    noise = {t: asdict(est) for t, est in estimate_noise(X, labels).items() if t in targets}
    caps = noise_caps(noise, scored)
    return {t: {**est, **caps[t]} for t, est in noise.items()}
