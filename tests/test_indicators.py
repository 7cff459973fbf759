"""Indicators: hand-computed cases, invariants (hypothesis), incremental 2-D HV against pymoo."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pymoo.indicators.hv import HV

from optimizers import indicators as ind


def pymoo_hv(F: np.ndarray, ref: np.ndarray) -> float:
    """Reference: pymoo straight on the points that dominate the reference point."""
    pts = F[np.all(np.isfinite(F), axis=1)]
    pts = pts[np.all(pts < ref, axis=1)]
    return float(HV(ref_point=ref)(pts)) if len(pts) else 0.0


def point_sets(m: int, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[np.ndarray]:
    # a coarse grid makes ties and duplicates common
    elems = st.integers(0, 12).map(lambda v: v / 10.0)
    return st.integers(min_size, max_size).flatmap(lambda n: arrays(np.float64, (n, m), elements=elems))


# ------------------------------------------------------------------------------------------------ hand cases
def test_hypervolume_two_points_by_hand() -> None:
    F = np.array([[0.2, 0.6], [0.5, 0.3]])
    ref = np.array([1.0, 1.0])
    expected = (0.5 - 0.2) * (1 - 0.6) + (1 - 0.5) * (1 - 0.3)  # 0.12 + 0.35
    assert ind.hypervolume(F, ref) == pytest.approx(expected)
    assert ind.hypervolume_2d(F, ref) == pytest.approx(expected)
    h = ind.Hypervolume2D(ref)
    h.add(0.5, 0.3)
    assert h.add(0.2, 0.6) == pytest.approx(expected)
    np.testing.assert_allclose(ind.hypervolume_trace(F, ref), [0.32, expected])


def test_hypervolume_3d_by_hand() -> None:
    ref = np.ones(3)
    assert ind.hypervolume(np.array([[0.5, 0.5, 0.5]]), ref) == pytest.approx(0.125)
    # two boxes 0.5*0.5*1 and 1*1*0.5 overlapping in 0.5*0.5*0.5
    F = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.5]])
    assert ind.hypervolume(F, ref) == pytest.approx(0.25 + 0.5 - 0.125)


def test_points_outside_reference_nan_and_empty_contribute_nothing() -> None:
    ref = np.array([1.0, 1.0])
    base = np.array([[0.5, 0.5]])
    extra = np.array([[1.0, 0.0], [0.0, 1.2], [np.nan, 0.1]])
    assert ind.hypervolume(np.vstack([base, extra]), ref) == pytest.approx(0.25)
    assert ind.hypervolume(np.zeros((0, 2)), ref) == 0.0
    assert ind.hypervolume_trace(np.vstack([extra, base]), ref).tolist() == [0.0, 0.0, 0.0, 0.25]


def test_single_objective_hypervolume_is_distance_to_reference() -> None:
    F = np.array([[0.7], [0.3], [np.nan], [0.5], [1.5]])
    assert ind.hypervolume(F, [1.0]) == pytest.approx(0.7)
    np.testing.assert_allclose(ind.hypervolume_trace(F, [1.0]), [0.3, 0.7, 0.7, 0.7, 0.7])


def test_nondominated_mask_keeps_ties_drops_dominated_and_nan() -> None:
    F = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.5], [np.nan, 0.0], [0.0, 1.5]])
    assert ind.nondominated_mask(F).tolist() == [True, True, True, False, True, False, False]
    front = ind.pareto_front(F)
    np.testing.assert_array_equal(front, [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])


def test_igd_plus_by_hand() -> None:
    ref_front = np.array([[0.0, 1.0], [1.0, 0.0]])
    # d+((0,1), (0.5,0.5)) = |(0.5, 0)| = 0.5 and symmetric -> mean 0.5
    assert ind.igd_plus(np.array([[0.5, 0.5]]), ref_front) == pytest.approx(0.5)
    assert ind.igd_plus(ref_front, ref_front) == pytest.approx(0.0)
    # a point better than the reference front has distance 0 to it (that is the "+")
    assert ind.igd_plus(np.array([[-1.0, -1.0]]), ref_front) == pytest.approx(0.0)
    assert np.isnan(ind.igd_plus(np.full((1, 2), np.nan), ref_front))


def test_hv_ratio_by_hand() -> None:
    ref = np.array([1.0, 1.0])
    ref_front = np.array([[0.0, 0.5], [0.5, 0.0]])  # HV 0.75
    assert ind.hv_ratio(np.array([[0.5, 0.5]]), ref_front, ref) == pytest.approx(0.25 / 0.75)
    assert np.isnan(ind.hv_ratio(np.array([[0.5, 0.5]]), np.array([[2.0, 2.0]]), ref))


def test_best_so_far() -> None:
    v = np.array([np.nan, 3.0, 1.0, np.nan, 5.0])
    np.testing.assert_array_equal(ind.best_so_far(v), [np.nan, 3.0, 3.0, 3.0, 5.0])
    np.testing.assert_array_equal(ind.best_so_far(v, maximize=False), [np.nan, 3.0, 1.0, 1.0, 1.0])


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="ref_point must have one value per objective"):
        ind.hypervolume(np.zeros((2, 2)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="3 or more"):
        ind.hypervolume_trace(np.zeros((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="strictly increasing"):
        ind.anytime_indicators(np.zeros((4, 2)), np.ones(2), [2, 2])


# ------------------------------------------------------------------------------------------------ anytime
def test_anytime_indicators_match_prefix_recomputation_2d_and_3d() -> None:
    rng = np.random.default_rng(3)
    for m in (2, 3):
        F = rng.random((120, m)) * 1.1
        F[rng.random(120) < 0.1] = np.nan  # infeasible rows
        ref = np.ones(m)
        ref_front = ind.pareto_front(np.vstack([F[np.isfinite(F).all(axis=1)], rng.random((50, m)) * 0.5]))
        counts = [1, 5, 17, 60, 119, 120]
        ai = ind.anytime_indicators(F, ref, counts, ref_front=ref_front)
        for i, c in enumerate(counts):
            prefix = F[:c]
            assert ai.hv[i] == pytest.approx(pymoo_hv(prefix, ref), abs=1e-12)
            ok = prefix[np.isfinite(prefix).all(axis=1)]
            assert ai.front_size[i] == int(ind.nondominated_mask(ok).sum())
            if len(ok):
                assert ai.igd_plus[i] == pytest.approx(ind.igd_plus(ok, ref_front))
            assert ai.hv_ratio[i] <= 1.0 + 1e-12
        np.testing.assert_allclose(ai.hv_ratio, ai.hv / ind.hypervolume(ref_front, ref))


def test_anytime_front_size_counts_architectures_not_reevaluations() -> None:
    F = np.array([[0.2, 0.5], [0.2, 0.5], [0.5, 0.2], [0.2, 0.5]])
    distinct = np.array([True, True, True, False])  # row 1: another arch, same values; row 3: a re-evaluation
    ai = ind.anytime_indicators(F, np.ones(2), [1, 2, 3, 4], distinct=distinct)
    assert ai.front_size.tolist() == [1, 2, 3, 3]
    assert ai.hv[-1] == pytest.approx(ind.hypervolume(F, np.ones(2)))


def test_anytime_igd_only_where_asked() -> None:
    F = np.array([[0.5, 0.5], [0.2, 0.2], [0.1, 0.9]])
    ai = ind.anytime_indicators(F, np.ones(2), [1, 2, 3], ref_front=np.array([[0.0, 0.0]]), igd_at=[2])
    assert np.isnan(ai.igd_plus[0]) and np.isnan(ai.igd_plus[2])
    assert ai.igd_plus[1] == pytest.approx(np.hypot(0.2, 0.2))


# ------------------------------------------------------------------------------------------------ attainment
def test_attainment_surfaces_by_hand() -> None:
    a = np.array([[0.1, 0.8], [0.5, 0.4]])
    b = np.array([[0.3, 0.5]])
    # level 1: union front; level 2: the region both attain
    np.testing.assert_allclose(ind.attainment_surface_2d([a, b], 1), [[0.1, 0.8], [0.3, 0.5], [0.5, 0.4]])
    np.testing.assert_allclose(ind.attainment_surface_2d([a, b], 2), [[0.3, 0.8], [0.5, 0.5]])
    empty = np.zeros((0, 2))
    assert ind.attainment_surface_2d([a, empty], 2).shape == (0, 2)
    np.testing.assert_allclose(
        ind.staircase(np.array([[0.1, 0.8], [0.5, 0.4]])), [[0.1, 0.8], [0.5, 0.8], [0.5, 0.4]]
    )


@given(st.lists(point_sets(2, 1, 15), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None)
def test_level1_attainment_has_union_hypervolume(sets: list[np.ndarray]) -> None:
    ref = np.array([1.3, 1.3])
    surf = ind.attainment_surface_2d(sets, 1)
    assert ind.hypervolume(surf, ref) == pytest.approx(ind.hypervolume(np.vstack(sets), ref), abs=1e-12)
    # higher levels attain less
    k = len(sets)
    hvs = [ind.hypervolume(ind.attainment_surface_2d(sets, q), ref) for q in range(1, k + 1)]
    assert all(x >= y - 1e-12 for x, y in itertools.pairwise(hvs))


# ------------------------------------------------------------------------------------------------ properties
@given(point_sets(2))
@settings(max_examples=100, deadline=None)
def test_incremental_2d_hv_equals_pymoo_at_every_prefix(F: np.ndarray) -> None:
    ref = np.array([1.0, 1.1])
    trace = ind.hypervolume_trace(F, ref)
    for k in range(len(F)):
        assert trace[k] == pytest.approx(pymoo_hv(F[: k + 1], ref), abs=1e-12)
    if len(F):
        assert ind.hypervolume_2d(F, ref) == pytest.approx(trace[-1], abs=1e-12)
        assert ind.hypervolume(F, ref) == pytest.approx(trace[-1], abs=1e-12)


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_incremental_2d_hv_random_continuous_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    G = rng.random((60, 2)) * 1.2
    ref = np.ones(2)
    trace = ind.hypervolume_trace(G, ref)
    for k in (0, 9, 29, 59):
        assert trace[k] == pytest.approx(pymoo_hv(G[: k + 1], ref), abs=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_permutation_invariance_and_dominated_points(m: int) -> None:
    @given(point_sets(m, 1), st.integers(0, 2**32 - 1))
    @settings(max_examples=60, deadline=None)
    def check(F: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ref = np.full(m, 1.1)
        hv = ind.hypervolume(F, ref)
        perm = rng.permutation(len(F))
        assert ind.hypervolume(F[perm], ref) == pytest.approx(hv, abs=1e-12)
        np.testing.assert_array_equal(ind.nondominated_mask(F[perm]), ind.nondominated_mask(F)[perm])
        # a point weakly dominated by an existing one changes nothing
        worse = F[rng.integers(len(F))] + rng.random(m) * 0.3
        G = np.vstack([F, worse])
        assert ind.hypervolume(G, ref) == pytest.approx(hv, abs=1e-12)
        assert not ind.nondominated_mask(G)[-1] or np.any(np.all(worse == F, axis=1))
        if m == 2:
            assert ind.hypervolume_trace(G, ref)[-1] == pytest.approx(hv, abs=1e-12)

    check()


@given(point_sets(2, 1), point_sets(2, 1))
@settings(max_examples=80, deadline=None)
def test_hv_ratio_at_most_one_against_reference_front(F: np.ndarray, others: np.ndarray) -> None:
    ref = np.full(2, 1.1)
    ref_front = ind.pareto_front(np.vstack([F, others]))
    ratio = ind.hv_ratio(F, ref_front, ref)
    if np.isfinite(ratio):
        assert 0.0 <= ratio <= 1.0 + 1e-12
    assert ind.igd_plus(ref_front, ref_front) == pytest.approx(0.0, abs=1e-12)
    assert ind.igd_plus(F, ref_front) >= 0.0
