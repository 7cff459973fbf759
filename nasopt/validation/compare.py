"""Predicted versus measured: per pair of (measured quantity, predicted target) the ranking agreement
(Kendall τ, Spearman ρ), and -- when both are the same quantity on the same hardware -- the error (MAE, bias)
and the calibration of the predicted std (share of measurements within 1 and 2 σ); plus the predicted and
the measured Pareto fronts of the candidates and plain-words verdicts.

A measurement on other hardware than the prediction's (this CPU against the ZCU102 column, a Fashion-MNIST
smoke training against ImageNet accuracy) is compared by ranking only: its absolute values are not
comparable, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

from benchmark._typing import FloatArray
from benchmark.targets import TARGETS
from optimizers.base import ProblemInfo
from optimizers.indicators import hypervolume, nondominated_mask


@dataclass(frozen=True)
class Pairing:
    """A measured quantity (``latency_cpu``) compared with a predicted target (``latency_zcu102``)."""

    measured: str
    predicted: str
    absolute: bool
    maximize: bool

    @property
    def label(self) -> str:
        return self.measured if self.measured == self.predicted else f"{self.measured} vs {self.predicted}"


@dataclass(frozen=True)
class Agreement:
    """How well ``n`` predictions of one pairing agree with the measurements (NaN where not defined)."""

    pairing: Pairing
    n: int
    kendall_tau: float
    spearman: float
    mae: float
    bias: float
    within_1sd: float
    within_2sd: float
    best_predicted_measured_rank: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(asdict(self.pairing))
        del d["pairing"]
        return d


def _kind(name: str) -> str:
    return name.split("_", 1)[0]


def pair_targets(
    measured: Sequence[str],
    predicted: Sequence[str],
    info: ProblemInfo | None = None,
    overrides: Mapping[str, str] | None = None,
    comparable: Mapping[str, bool] | None = None,
) -> list[Pairing]:
    """Pair every measured quantity with a predicted target: the one named in ``overrides``, else the same
    name, else the problem's objective of the same kind (latency / throughput / accuracy), else the first
    predicted target of that kind. ``comparable[m] = False`` forces ranking-only (e.g. accuracy trained on
    another dataset)."""
    over = dict(overrides or {})
    out: list[Pairing] = []
    for m in measured:
        if m in over:
            p = over[m]
        elif m in predicted:
            p = m
        else:
            same_kind = [t for t in (info.objectives if info else ()) if _kind(t) == _kind(m)]
            same_kind += [t for t in predicted if _kind(t) == _kind(m)]
            if not same_kind:
                continue
            p = same_kind[0]
        if p not in TARGETS:
            continue
        absolute = (m == p) and (comparable or {}).get(m, True)
        out.append(Pairing(m, p, absolute, TARGETS[p].maximize))
    return out


def agreement(
    pairing: Pairing, pred_mean: FloatArray, pred_std: FloatArray, measured: FloatArray
) -> Agreement:
    """Agreement of ``(n,)`` predictions (mean, std) with ``(n,)`` measurements (NaN rows left out)."""
    ok = np.isfinite(pred_mean) & np.isfinite(measured)
    mu, sd, y = pred_mean[ok], pred_std[ok], measured[ok]
    n = int(ok.sum())
    nan = float("nan")
    tau = float(kendalltau(mu, y)[0]) if n >= 3 else nan
    rho = float(spearmanr(mu, y)[0]) if n >= 3 else nan
    best_rank = -1
    if n:
        sign = -1.0 if pairing.maximize else 1.0
        best = int(np.argmin(sign * mu))
        best_rank = int(np.sum(sign * y < sign * y[best])) + 1
    if not pairing.absolute or n == 0:
        return Agreement(pairing, n, tau, rho, nan, nan, nan, nan, best_rank)
    err = y - mu
    z = np.abs(err) / np.where(sd > 0, sd, np.nan)
    return Agreement(
        pairing,
        n,
        tau,
        rho,
        float(np.mean(np.abs(err))),
        float(np.mean(err)),
        float(np.mean(z <= 1.0)),
        float(np.mean(z <= 2.0)),
        best_rank,
    )


@dataclass(frozen=True)
class FrontComparison:
    """The candidates' predicted and measured Pareto fronts over the problem's objectives.

    ``absolute``: every objective was measured as itself, so both fronts lie in the problem's normalised box
    and their hypervolumes compare; otherwise the measured HV is in a box spanning the measured values
    (a ranking-level comparison only).
    """

    objectives: tuple[str, ...]
    measured_names: tuple[str, ...]
    absolute: bool
    predicted_front: tuple[int, ...]
    measured_front: tuple[int, ...]
    hv_predicted: float
    hv_measured: float

    @property
    def shared(self) -> int:
        return len(set(self.predicted_front) & set(self.measured_front))


def compare_fronts(
    info: ProblemInfo,
    pairings: Sequence[Pairing],
    predicted: Mapping[str, FloatArray],
    measured: Mapping[str, FloatArray],
) -> FrontComparison | None:
    """Fronts of the candidates with values for every objective (None when an objective was not measured)."""
    by_pred: dict[str, Pairing] = {}
    for p in pairings:  # per objective, the measurement of the same quantity when there is one
        if p.measured in measured and (p.predicted not in by_pred or p.absolute):
            by_pred[p.predicted] = p
    if not all(t in by_pred for t in info.objectives):
        return None
    names = tuple(by_pred[t].measured for t in info.objectives)
    P = np.column_stack([predicted[t] for t in info.objectives])
    M = np.column_stack([measured[n] for n in names])
    ok = np.all(np.isfinite(P), axis=1) & np.all(np.isfinite(M), axis=1)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    absolute = all(by_pred[t].absolute for t in info.objectives)
    Pn = info.normalize_natural(P[idx])
    if absolute:
        Mn = info.normalize_natural(M[idx])
        ref = np.asarray(info.ref_point, dtype=float)
        hv_m = hypervolume(Mn, ref)
    else:
        internal = info.to_internal(M[idx])
        lo, hi = internal.min(axis=0), internal.max(axis=0)
        Mn = (internal - lo) / np.where(hi > lo, hi - lo, 1.0)
        hv_m = hypervolume(Mn, np.full(len(info.objectives), 1.1))
    hv_p = hypervolume(Pn, np.asarray(info.ref_point, dtype=float))
    return FrontComparison(
        info.objectives,
        names,
        absolute,
        tuple(int(i) for i in idx[nondominated_mask(Pn)]),
        tuple(int(i) for i in idx[nondominated_mask(Mn)]),
        float(hv_p),
        float(hv_m),
    )


def verdicts(agreements: Sequence[Agreement], arch_names: Sequence[str] | None = None) -> list[str]:
    """Plain-words summaries, one per pairing."""
    out = []
    for a in agreements:
        p = a.pairing
        if a.n < 2:
            out.append(f"{p.label}: fewer than 2 candidates were measured; nothing to compare.")
            continue
        best = "highest" if p.maximize else "lowest"
        s = (
            f"{p.label}: the candidate predicted {best} is measured "
            f"{_ordinal(a.best_predicted_measured_rank)} of "
            f"{a.n}; Kendall τ = {_fmt(a.kendall_tau)}"
        )
        if p.absolute:
            s += (
                f", MAE {_fmt(a.mae)} {TARGETS[p.predicted].unit}, bias {_fmt(a.bias, signed=True)}; "
                f"{_pct(a.within_1sd)} of the measurements lie within 1 predicted σ "
                f"({_pct(a.within_2sd)} within 2σ; 68 % / 95 % if the σ were calibrated)."
            )
        else:
            s += (
                ". Measured on other hardware or data than the prediction, so only the ranking compares; "
                "absolute values do not."
            )
        out.append(s)
    return out


def _ordinal(k: int) -> str:
    if k < 1:
        return "–"
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _fmt(x: float, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "–"
    mag = abs(x)
    digits = 3 if mag < 10 else (2 if mag < 100 else 1 if mag < 1000 else 0)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:.0f} %"
