"""Statistics: Holm on known p-values, t-intervals (by hand and coverage), rank-sum tests, ranks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from nasopt import stats


def test_holm_known_values() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone: 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.9]), [1.0, 1.0])
    out = stats.holm([0.01, np.nan, 0.02])  # NaN is not a hypothesis
    np.testing.assert_allclose(out, [0.02, np.nan, 0.02])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([1.5])


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_holm_properties(ps: list[float]) -> None:
    p = np.array(ps)
    adj = stats.holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    assert np.all(adj <= np.minimum(p * len(p), 1.0) + 1e-15)  # never worse than Bonferroni
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # order preserved


def test_t_interval_by_hand() -> None:
    mean, lo, hi = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4} * s / sqrt(n)
    assert mean == 3.0
    assert lo == pytest.approx(3.0 - half) and hi == pytest.approx(3.0 + half)
    m1, lo1, hi1 = stats.t_interval([7.0])
    assert m1 == 7.0 and math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(v) for v in stats.t_interval([]))


def test_t_interval_coverage_on_normal_samples() -> None:
    rng = np.random.default_rng(12345)
    samples = rng.normal(10.0, 3.0, size=(4000, 8))
    hits = 0
    for row in samples:
        _, lo, hi = stats.t_interval(row, 0.95)
        hits += lo <= 10.0 <= hi
    coverage = hits / len(samples)
    # binomial sd at n=4000 is ~0.0035: 0.95 +- 4 sd
    assert 0.935 <= coverage <= 0.965
    hits90 = sum(lo <= 10.0 <= hi for _, lo, hi in (stats.t_interval(r, 0.90) for r in samples[:2000]))
    assert 0.87 <= hits90 / 2000 <= 0.93


def test_summarize_quartiles_and_nan() -> None:
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, np.nan, np.inf])
    assert s.n == 4
    assert (s.median, s.q25, s.q75, s.mean) == (2.5, 1.75, 3.25, 2.5)
    assert stats.summarize([]).n == 0


def test_rank_sum_matches_scipy_and_effect_size() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 31), rng.normal(0.0, 1.0, 31)
    r = stats.rank_sum(a, b)
    ref = sps.mannwhitneyu(a, b, alternative="two-sided")
    assert r.p == pytest.approx(ref.pvalue)
    assert r.a12 == pytest.approx(ref.statistic / (31 * 31))
    sep = stats.rank_sum([5, 6, 7, 8, 9], [0, 1, 2, 3, 4])
    assert sep.a12 == 1.0 and sep.p < 0.01
    same = stats.rank_sum([1.0, 1.0], [1.0, 1.0])
    assert same.p == 1.0 and same.a12 == 0.5
    assert math.isnan(stats.rank_sum([], [1.0]).p)


def test_smallest_attainable_rank_sum_p() -> None:
    assert stats.min_rank_sum_p(3, 3) == pytest.approx(0.1)
    assert stats.min_rank_sum_p(4, 4) == pytest.approx(2 / 70)
    assert stats.min_rank_sum_p(1, 1) == 1.0 and math.isnan(stats.min_rank_sum_p(0, 3))
    assert stats.rank_sum([0, 1, 2], [3, 4, 5]).p == pytest.approx(stats.min_rank_sum_p(3, 3))
    assert stats.min_seeds_for(0.05) == 4 and stats.min_seeds_for(0.05, n_tests=2) == 5


def test_rank_sum_with_ties_never_goes_below_the_smallest_attainable_p() -> None:
    """scipy's asymptotic p for 3 tied against 3 tied values is 0.047: "significant" with 3 seeds."""
    assert stats.rank_sum([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]).p == pytest.approx(0.1)
    rng = np.random.default_rng(3)
    for _ in range(30):
        na, nb = (int(v) for v in rng.integers(2, 7, 2))
        a, b = rng.integers(0, 3, na).astype(float), rng.integers(1, 4, nb).astype(float)
        r = stats.rank_sum(a, b)
        assert r.p >= stats.min_rank_sum_p(na, nb) - 1e-12
        if not (np.all(a == a[0]) and np.all(b == a[0])):  # the exact p, as scipy's permutation test gives
            ref = sps.mannwhitneyu(a, b, method=sps.PermutationMethod(n_resamples=math.comb(na + nb, na)))
            assert r.p == pytest.approx(ref.pvalue)


def test_compare_to_best_picks_best_median_and_holm_corrects() -> None:
    rng = np.random.default_rng(1)
    groups = {
        "good": rng.normal(0.9, 0.01, 31),
        "close": rng.normal(0.899, 0.01, 31),
        "bad": rng.normal(0.5, 0.01, 31),
    }
    df = stats.compare_to_best(groups, higher_is_better=True)
    assert df["group"].tolist()[0] == "good"
    assert set(df["best"]) == {"good"}
    row = df.set_index("group")
    assert bool(row.loc["bad", "significant"]) and row.loc["bad", "a12_best_vs_group"] == 1.0
    assert not bool(row.loc["close", "significant"])
    raw = row.loc[["close", "bad"], "p"].to_numpy()
    np.testing.assert_allclose(row.loc[["close", "bad"], "p_holm"].to_numpy(), stats.holm(raw))
    # lower is better flips the winner
    assert stats.compare_to_best(groups, higher_is_better=False)["group"].iloc[0] == "bad"


def test_average_ranks() -> None:
    scores = pd.DataFrame(
        {"a": [0.9, 0.5, 0.7], "b": [0.8, 0.6, 0.7], "c": [0.1, np.nan, 0.2]}, index=["p1", "p2", "p3"]
    )
    ranks = stats.average_ranks(scores)
    r = ranks.to_numpy(dtype=float)
    assert list(ranks.index) == ["p1", "p2", "p3", "average"]
    assert r[0].tolist() == [1.0, 2.0, 3.0]
    assert r[1, 0] == 2.0 and r[1, 1] == 1.0 and math.isnan(r[1, 2])
    assert r[2, 0] == 1.5 and r[2, 1] == 1.5  # ties averaged
    assert r[3].tolist() == pytest.approx([1.5, 1.5, 3.0])
