"""Statistics for comparing optimizers over seeds: summaries, t-intervals, rank-sum tests, Holm, ranks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps

from benchmark._typing import FloatArray


def _finite(x: ArrayLike) -> FloatArray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class Summary:
    """Summary of a sample (NaN/inf values dropped first).

    Attributes:
        n: number of finite values.
        median, q25, q75: median and quartiles (linear interpolation).
        mean: sample mean.
        ci_low, ci_high: two-sided Student-t confidence interval of the mean (NaN for ``n < 2``; equal to the
            mean when all values are equal).
    """

    n: int
    median: float
    q25: float
    q75: float
    mean: float
    ci_low: float
    ci_high: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}n": self.n,
            f"{prefix}median": self.median,
            f"{prefix}q25": self.q25,
            f"{prefix}q75": self.q75,
            f"{prefix}mean": self.mean,
            f"{prefix}ci_low": self.ci_low,
            f"{prefix}ci_high": self.ci_high,
        }


def t_interval(x: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student-t confidence interval of the mean of ``x (n,)``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a = _finite(x)
    n = a.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(a.mean())
    if n < 2:
        return mean, math.nan, math.nan
    sem = float(a.std(ddof=1)) / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return mean, mean - half, mean + half


def summarize(x: ArrayLike, confidence: float = 0.95) -> Summary:
    """Median, quartiles, mean and t-interval of ``x (n,)``."""
    a = _finite(x)
    if a.size == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan)
    q25, med, q75 = (float(v) for v in np.percentile(a, [25, 50, 75]))
    mean, lo, hi = t_interval(a, confidence)
    return Summary(int(a.size), med, q25, q75, mean, lo, hi)


def holm(pvalues: ArrayLike) -> FloatArray:
    """Holm-Bonferroni adjusted p-values (same order as given), shape ``(k,)``; NaN entries stay NaN and
    do not count towards the number of hypotheses."""
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    k = ok.size
    if k == 0:
        return out
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok].tolist()}")
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = (k - np.arange(k)) * p[order]
    adj = np.minimum(np.maximum.accumulate(adj), 1.0)
    out[order] = adj
    return out


@dataclass(frozen=True)
class RankSum:
    """Two-sided Wilcoxon rank-sum (Mann-Whitney U) test of ``a`` against ``b``.

    Attributes:
        p: two-sided p-value (NaN if either sample has no finite value).
        a12: Vargha-Delaney effect size P(A > B) + P(A = B)/2 (0.5 = no difference).
    """

    n_a: int
    n_b: int
    u: float
    p: float
    a12: float


#: up to this many ways of splitting the pooled sample, a rank-sum test with ties is computed exactly
EXACT_TIES_LIMIT = 5_000


def min_rank_sum_p(n_a: int, n_b: int) -> float:
    """The smallest p-value a two-sided rank-sum test of ``n_a`` against ``n_b`` values can give.

    Under the null every split of the pooled ranks is equally likely; the two most extreme splits (all of
    ``a`` below all of ``b``, or above) are the rarest outcome, so ``p >= 2 / C(n_a + n_b, n_a)`` (at most 1).
    NaN when a sample is empty. E.g. 3 against 3 runs: 0.1, so no test of 3 seeds reaches p < 0.05.
    """
    if n_a < 1 or n_b < 1:
        return math.nan
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def min_seeds_for(alpha: float, n_tests: int = 1) -> int:
    """The fewest runs per group (equal sizes) with which the smallest attainable Holm-corrected p of
    ``n_tests`` rank-sum tests lies below ``alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = 1
    while max(1, n_tests) * min_rank_sum_p(n, n) >= alpha:
        n += 1
    return n


def rank_sum(a: ArrayLike, b: ArrayLike) -> RankSum:
    """Two-sided Mann-Whitney U / Wilcoxon rank-sum test (scipy) with the A12 effect size.

    scipy's p is exact for small samples without ties and asymptotic otherwise; for small samples *with*
    ties (at most :data:`EXACT_TIES_LIMIT` splits) the exact permutation p is used instead, so that a p is
    never below :func:`min_rank_sum_p` (the asymptotic one can be: 3 tied against 3 tied values give 0.047).
    """
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return RankSum(int(x.size), int(y.size), math.nan, math.nan, math.nan)
    if np.all(x == x[0]) and np.all(y == x[0]):
        return RankSum(int(x.size), int(y.size), x.size * y.size / 2.0, 1.0, 0.5)
    pooled = np.concatenate([x, y])
    splits = math.comb(pooled.size, x.size)
    method: str | sps.PermutationMethod = "auto"
    if np.unique(pooled).size < pooled.size and splits <= EXACT_TIES_LIMIT:
        method = sps.PermutationMethod(n_resamples=splits)  # as many resamples as splits: exact
    res = sps.mannwhitneyu(x, y, alternative="two-sided", method=method)
    u = float(res.statistic)
    return RankSum(int(x.size), int(y.size), u, float(res.pvalue), u / (x.size * y.size))


def best_group(groups: Mapping[str, ArrayLike], higher_is_better: bool = True) -> str:
    """Name of the group with the best median (ties broken by the mean, then by name)."""
    scored: list[tuple[float, float, str]] = []
    for name, values in groups.items():
        a = _finite(values)
        if a.size == 0:
            continue
        sign = -1.0 if higher_is_better else 1.0
        scored.append((sign * float(np.median(a)), sign * float(a.mean()), name))
    if not scored:
        raise ValueError("best_group: no group has a finite value")
    return min(scored)[2]


def compare_to_best(
    groups: Mapping[str, ArrayLike], higher_is_better: bool = True, alpha: float = 0.05
) -> pd.DataFrame:
    """Rank-sum test of every group against the best one (by median), Holm-corrected over the family.

    Returns one row per group (the best first) with columns ``group, best, n, median, p, p_holm,
    a12_best_vs_group, significant`` (``p`` is NaN for the best group itself).
    """
    best = best_group(groups, higher_is_better)
    rows = []
    for name, values in groups.items():
        a = _finite(values)
        med = float(np.median(a)) if a.size else math.nan
        if name == best:
            rows.append(
                {"group": name, "best": best, "n": int(a.size), "median": med, "p": math.nan, "a12": 0.5}
            )
            continue
        rs = rank_sum(groups[best], values)
        rows.append({"group": name, "best": best, "n": int(a.size), "median": med, "p": rs.p, "a12": rs.a12})
    df = pd.DataFrame(rows)
    df["p_holm"] = holm(df["p"].to_numpy())
    df["significant"] = df["p_holm"] < alpha
    df = df.rename(columns={"a12": "a12_best_vs_group"})
    df["_is_best"] = df["group"] != best
    sign = -1.0 if higher_is_better else 1.0
    df["_key"] = sign * df["median"]
    df = (
        df.sort_values(["_is_best", "_key", "group"])
        .drop(columns=["_is_best", "_key"])
        .reset_index(drop=True)
    )
    return df[["group", "best", "n", "median", "p", "p_holm", "a12_best_vs_group", "significant"]]


def average_ranks(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Ranks of the columns (optimizers) within each row (problem), ties averaged; 1 = best.

    ``scores`` is problems x optimizers (e.g. median final HV); NaN cells are left out of that row's
    ranking. Returns the per-problem ranks plus an ``average`` row (mean over the problems where ranked).
    """
    sign = -1.0 if higher_is_better else 1.0
    ranks = scores.apply(
        lambda row: pd.Series(sps.rankdata(sign * row.dropna().to_numpy()), index=row.dropna().index).reindex(
            row.index
        ),
        axis=1,
    )
    ranks = ranks.astype(float)
    ranks.loc["average"] = ranks.mean(axis=0, skipna=True)
    return ranks


def summarize_groups(
    groups: Mapping[str, Sequence[float] | FloatArray], confidence: float = 0.95
) -> pd.DataFrame:
    """:func:`summarize` of each group, one row per group (index = group name)."""
    return pd.DataFrame({name: summarize(v, confidence).as_dict() for name, v in groups.items()}).T


__all__ = [
    "EXACT_TIES_LIMIT",
    "RankSum",
    "Summary",
    "average_ranks",
    "best_group",
    "compare_to_best",
    "holm",
    "min_rank_sum_p",
    "min_seeds_for",
    "rank_sum",
    "summarize",
    "summarize_groups",
    "t_interval",
]
