"""Quality indicators of objective-vector sets: Pareto masks, hypervolume, HV ratio, IGD+, anytime traces.

Every function here works in *minimisation* space: rows of ``F`` are objective vectors ``(n, m)`` where
smaller is better in every column (a problem's normalised space, 0 = ideal, 1 = nadir, is the usual
input). Rows containing NaN are treated as missing (a failed or infeasible evaluation) and ignored.

Hypervolume and IGD+ are pymoo's (``pymoo.indicators.hv.HV``, ``pymoo.indicators.igd_plus.IGDPlus``).
For anytime curves with one or two objectives, :func:`hypervolume_trace` is an exact incremental
sweep (cost ``O(log n)`` amortised per point plus list insertion) that equals pymoo's value after every
evaluation; with three or more objectives :func:`anytime_indicators` calls pymoo only at the requested
checkpoints and only when the front changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import moocore
import numpy as np
from numpy.typing import ArrayLike
from pymoo.indicators.hv import HV
from pymoo.indicators.igd_plus import IGDPlus

from benchmark._typing import BoolArray, FloatArray, IntArray


def _as_points(F: ArrayLike, name: str = "F") -> FloatArray:
    arr = np.asarray(F, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an (n, m) array of objective vectors, got shape {np.shape(F)}")
    return arr


def _as_ref(ref_point: ArrayLike, m: int) -> FloatArray:
    ref = np.asarray(ref_point, dtype=np.float64).reshape(-1)
    if ref.shape != (m,):
        raise ValueError(f"ref_point must have one value per objective ({m}), got shape {ref.shape}")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"ref_point must be finite, got {ref.tolist()}")
    return ref


def valid_rows(F: ArrayLike) -> BoolArray:
    """Rows without NaN/inf, shape ``(n,)``."""
    arr = _as_points(F)
    return np.asarray(np.all(np.isfinite(arr), axis=1), dtype=bool)


def nondominated_mask(F: ArrayLike) -> BoolArray:
    """Rows of ``F (n, m)`` that no other row Pareto-dominates (minimisation), shape ``(n,)``.

    Dominance is strict (``<=`` everywhere and ``<`` somewhere), so identical rows are all kept.
    Rows with NaN/inf are never in the mask. Uses ``moocore.is_nondominated`` (pymoo's backend).
    """
    arr = _as_points(F)
    n, m = arr.shape
    finite = np.isfinite(arr)
    if m > 1 and n and finite.all():  # the common case, kept cheap: optimizers call this per tournament
        return np.asarray(moocore.is_nondominated(arr, keep_weakly=True), dtype=bool)
    out = np.zeros(n, dtype=bool)
    ok = np.flatnonzero(np.all(finite, axis=1))
    if ok.size == 0:
        return out
    P = arr[ok]
    if m == 1:
        out[ok] = P[:, 0] == P[:, 0].min()
        return out
    # moocore (the C library behind pymoo's hypervolume): O(n log n) for 2-3 objectives
    out[ok] = np.asarray(moocore.is_nondominated(P, keep_weakly=True), dtype=bool)
    return out


def pareto_rank(F: ArrayLike) -> IntArray:
    """Non-dominated layer of each row of ``F (n, m)`` (0 = the front, 1 = the front without layer 0, ...),
    shape ``(n,)``; rows with NaN/inf get ``n`` (in no layer). Uses ``moocore.pareto_rank``."""
    arr = _as_points(F)
    n = arr.shape[0]
    out = np.full(n, n, dtype=np.int64)
    ok = np.flatnonzero(np.all(np.isfinite(arr), axis=1))
    if ok.size:
        out[ok] = np.asarray(moocore.pareto_rank(arr[ok]), dtype=np.int64)
    return out


def pareto_front(F: ArrayLike) -> FloatArray:
    """The distinct non-dominated rows of ``F (n, m)``, sorted lexicographically, shape ``(k, m)``."""
    arr = _as_points(F)
    front = arr[nondominated_mask(arr)]
    if front.shape[0] == 0:
        return front
    return np.unique(front, axis=0)


def hypervolume(F: ArrayLike, ref_point: ArrayLike) -> float:
    """pymoo hypervolume of ``F (n, m)`` w.r.t. ``ref_point (m,)``; rows not strictly better than the
    reference point in every objective (and NaN rows) contribute nothing; an empty set has HV 0."""
    arr = _as_points(F)
    ref = _as_ref(ref_point, arr.shape[1])
    pts = arr[valid_rows(arr)]
    pts = pts[np.all(pts < ref[None, :], axis=1)]
    if pts.shape[0] == 0:
        return 0.0
    pts = pts[nondominated_mask(pts)]
    return float(HV(ref_point=ref)(pts))


def hypervolume_2d(F: ArrayLike, ref_point: ArrayLike) -> float:
    """Exact 2-objective hypervolume by a sorted sweep (no pymoo), ``F (n, 2)``, ``ref_point (2,)``."""
    arr = _as_points(F)
    if arr.shape[1] != 2:
        raise ValueError(f"hypervolume_2d needs 2 objectives, got {arr.shape[1]}")
    ref = _as_ref(ref_point, 2)
    pts = arr[valid_rows(arr)]
    pts = pts[np.all(pts < ref[None, :], axis=1)]
    if pts.shape[0] == 0:
        return 0.0
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    best = np.minimum.accumulate(pts[:, 1])
    # each point's strip spans x in [x_i, x_{i+1}) at height ref_y - (best y so far)
    x_next = np.append(pts[1:, 0], ref[0])
    return float(np.sum((x_next - pts[:, 0]) * (ref[1] - best)))


class Hypervolume2D:
    """Exact incremental 2-objective hypervolume: ``add`` points one at a time, read ``value``.

    Keeps the non-dominated staircase sorted by the first objective (second strictly decreasing), so
    adding a point costs a binary search plus the removal of the points it dominates.
    """

    def __init__(self, ref_point: ArrayLike) -> None:
        self.ref = _as_ref(ref_point, 2)
        self._xs: list[float] = []
        self._ys: list[float] = []
        self.value = 0.0

    def add(self, x: float, y: float) -> float:
        """Add the point ``(x, y)`` and return the new hypervolume (NaN/outside points change nothing)."""
        rx, ry = float(self.ref[0]), float(self.ref[1])
        if not (x < rx and y < ry):  # also False for NaN
            return self.value
        xs, ys = self._xs, self._ys
        i = bisect.bisect_left(xs, x)
        if i > 0 and ys[i - 1] <= y:
            return self.value  # dominated by the predecessor (x' < x, y' <= y)
        n = len(xs)
        if i < n and xs[i] == x and ys[i] <= y:
            return self.value  # same x, no worse y already present
        # points with x' >= x and y' >= y are dominated by the new one: a contiguous run from i
        j = i
        removed = 0.0
        while j < n and ys[j] >= y:
            x_next = xs[j + 1] if j + 1 < n else rx
            removed += (x_next - xs[j]) * (ry - ys[j])
            j += 1
        x_after = xs[j] if j < n else rx
        delta = (x_after - x) * (ry - y) - removed
        if i > 0:  # predecessor's strip now ends at x instead of at the old xs[i]
            old_next = xs[i] if i < n else rx
            delta -= (old_next - x) * (ry - ys[i - 1])
        xs[i:j] = [x]
        ys[i:j] = [y]
        self.value += delta
        return self.value

    @property
    def front(self) -> FloatArray:
        """The current staircase, shape ``(k, 2)``, sorted by the first objective."""
        return np.column_stack([self._xs, self._ys]) if self._xs else np.zeros((0, 2))


def hypervolume_trace(F: ArrayLike, ref_point: ArrayLike) -> FloatArray:
    """Hypervolume of every prefix ``F[:k+1]`` of a sequence ``F (n, m)``, shape ``(n,)``; exact for
    ``m <= 2`` (incremental sweep). NaN rows (failed/infeasible) leave the value unchanged."""
    arr = _as_points(F)
    n, m = arr.shape
    ref = _as_ref(ref_point, m)
    out = np.empty(n, dtype=np.float64)
    if m == 1:
        v = np.where(np.isfinite(arr[:, 0]) & (arr[:, 0] < ref[0]), ref[0] - arr[:, 0], 0.0)
        out[:] = np.maximum.accumulate(v) if n else v
        return out
    if m != 2:
        raise ValueError(
            f"hypervolume_trace is exact and incremental only for 1 or 2 objectives, got {m}; "
            "use anytime_indicators(...) with checkpoints for 3 or more"
        )
    hv = Hypervolume2D(ref)
    inside = np.all(arr < ref[None, :], axis=1)  # False for NaN rows
    value = 0.0
    xs, ys = arr[:, 0].tolist(), arr[:, 1].tolist()
    for k in range(n):
        if inside[k]:
            value = hv.add(xs[k], ys[k])
        out[k] = value
    return out


def igd_plus(F: ArrayLike, ref_front: ArrayLike) -> float:
    """pymoo IGD+ of ``F (n, m)`` to the reference front ``(r, m)`` (smaller is better); NaN if ``F`` has no
    valid row."""
    arr = _as_points(F)
    ref = _as_points(ref_front, "ref_front")
    if ref.shape[1] != arr.shape[1]:
        raise ValueError(f"ref_front has {ref.shape[1]} objectives but F has {arr.shape[1]}")
    if ref.shape[0] == 0:
        raise ValueError("ref_front is empty: IGD+ needs at least one reference point")
    pts = arr[valid_rows(arr)]
    if pts.shape[0] == 0:
        return float("nan")
    return float(IGDPlus(ref)(pts))


def hv_ratio(F: ArrayLike, ref_front: ArrayLike, ref_point: ArrayLike) -> float:
    """``HV(F) / HV(ref_front)`` with the same reference point (1 = as good as the reference front; can
    exceed 1 if ``F`` improves on it). NaN when the reference front has zero hypervolume."""
    denom = hypervolume(ref_front, ref_point)
    if denom <= 0.0:
        return float("nan")
    return hypervolume(F, ref_point) / denom


def best_so_far(values: ArrayLike, maximize: bool = True) -> FloatArray:
    """Running best of ``values (n,)`` ignoring NaN (NaN until the first finite value), shape ``(n,)``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return v.copy()
    fill = -np.inf if maximize else np.inf
    filled = np.where(np.isfinite(v), v, fill)
    acc = np.maximum.accumulate(filled) if maximize else np.minimum.accumulate(filled)
    return np.where(np.isfinite(acc), acc, np.nan)


@dataclass(frozen=True)
class AnytimeIndicators:
    """Indicators of the prefix of the first ``counts[i]`` evaluations, each shape ``(len(counts),)``.

    Attributes:
        counts: prefix lengths (evaluations), increasing, 1-based.
        hv: hypervolume of the valid rows in the prefix.
        front_size: number of distinct-architecture rows on the prefix's non-dominated set.
        igd_plus: IGD+ to the reference front (NaN everywhere if none was given).
        hv_ratio: ``hv / HV(reference front)`` (NaN everywhere if none was given).
        front: the non-dominated rows of the whole sequence ``(k, m)``.
    """

    counts: IntArray
    hv: FloatArray
    front_size: IntArray
    igd_plus: FloatArray
    hv_ratio: FloatArray
    front: FloatArray


def anytime_indicators(
    F: ArrayLike,
    ref_point: ArrayLike,
    counts: Sequence[int] | IntArray,
    *,
    ref_front: ArrayLike | None = None,
    distinct: ArrayLike | None = None,
    igd_at: Sequence[int] | None = None,
) -> AnytimeIndicators:
    """HV, front size, IGD+ and HV ratio of the prefixes ``F[:c]`` for each ``c`` in ``counts``.

    Args:
        F: objective sequence in evaluation order ``(n, m)``, minimisation; NaN rows are skipped (use NaN
            for infeasible or failed evaluations).
        ref_point: hypervolume reference point ``(m,)``.
        counts: increasing prefix lengths in ``[1, n]``.
        ref_front: optional reference front ``(r, m)`` for IGD+ and the HV ratio.
        distinct: optional bool ``(n,)``, False for re-evaluations of an architecture already seen (those
            rows are skipped so that ``front_size`` counts architectures, not evaluations).
        igd_at: if given, IGD+ is computed only at these counts (NaN at the others): IGD+ against a large
            reference front costs ``O(front * reference)`` per call.
    """
    arr = _as_points(F)
    n, m = arr.shape
    ref = _as_ref(ref_point, m)
    cnt = np.asarray(counts, dtype=np.int64).reshape(-1)
    if cnt.size and (cnt[0] < 1 or cnt[-1] > n or np.any(np.diff(cnt) <= 0)):
        raise ValueError(f"counts must be strictly increasing within [1, {n}], got {cnt.tolist()[:10]}...")
    use = valid_rows(arr)
    if distinct is not None:
        d = np.asarray(distinct, dtype=bool).reshape(-1)
        if d.shape != (n,):
            raise ValueError(f"distinct must have shape ({n},), got {d.shape}")
        use &= d
    rf = None if ref_front is None else _as_points(ref_front, "ref_front")
    ref_hv = hypervolume(rf, ref) if rf is not None and rf.shape[0] else float("nan")
    exact_trace = hypervolume_trace(np.where(use[:, None], arr, np.nan), ref) if m <= 2 else None

    hv = np.zeros(cnt.size)
    size = np.zeros(cnt.size, dtype=np.int64)
    igd = np.full(cnt.size, np.nan)
    front = np.zeros((0, m))
    want_igd = None if igd_at is None else {int(c) for c in igd_at}
    prev = 0
    cur_hv, cur_igd = 0.0, float("nan")
    igd_stale = True
    for i, c in enumerate(cnt.tolist()):
        new = arr[prev:c][use[prev:c]]
        prev = c
        if new.shape[0]:
            cand = np.vstack([front, new])
            mask = nondominated_mask(cand)
            if bool(mask[front.shape[0] :].any()):  # the front changed
                front = cand[mask]
                igd_stale = True
                if exact_trace is None:
                    cur_hv = hypervolume(front, ref)
        hv[i] = exact_trace[c - 1] if exact_trace is not None else cur_hv
        size[i] = front.shape[0]
        if rf is not None and rf.shape[0] and (want_igd is None or c in want_igd):
            if igd_stale:
                cur_igd = igd_plus(front, rf) if front.shape[0] else float("nan")
                igd_stale = False
            igd[i] = cur_igd
    ratio = hv / ref_hv if np.isfinite(ref_hv) and ref_hv > 0 else np.full(cnt.size, np.nan)
    # the rest of the sequence after the last count, for the final front
    rest = arr[prev:][use[prev:]]
    if rest.shape[0]:
        cand = np.vstack([front, rest])
        front = cand[nondominated_mask(cand)]
    return AnytimeIndicators(cnt, hv, size, igd, ratio, front)


def attainment_surface_2d(fronts: Sequence[ArrayLike], level: int) -> FloatArray:
    """The ``level``-attainment surface of ``k`` two-objective sets (minimisation): the boundary of the region
    weakly dominated by at least ``level`` of them (``level = ceil(k / 2)``: the median attainment surface).

    Args:
        fronts: ``k`` arrays ``(n_i, 2)`` (NaN rows ignored; an empty set attains nothing).
        level: ``1 <= level <= k``.

    Returns:
        The surface's vertices ``(p, 2)`` sorted by the first objective (second strictly decreasing); the
        surface is the staircase through them (horizontal step to the right of each vertex).
    """
    k = len(fronts)
    if not 1 <= level <= k:
        raise ValueError(f"level must be in [1, {k}] for {k} sets, got {level}")
    sets = [_as_points(f, "fronts[i]") for f in fronts]
    for s in sets:
        if s.shape[1] != 2:
            raise ValueError(f"attainment_surface_2d needs 2 objectives, got {s.shape[1]}")
    sets = [s[valid_rows(s)] for s in sets]
    xs = np.unique(np.concatenate([s[:, 0] for s in sets])) if any(s.shape[0] for s in sets) else np.zeros(0)
    if xs.size == 0:
        return np.zeros((0, 2))
    ys = np.full((k, xs.size), np.inf)
    for r, s in enumerate(sets):
        if s.shape[0] == 0:
            continue
        order = np.argsort(s[:, 0], kind="stable")
        sx, best = s[order, 0], np.minimum.accumulate(s[order, 1])
        idx = np.searchsorted(sx, xs, side="right") - 1
        ys[r] = np.where(idx >= 0, best[np.maximum(idx, 0)], np.inf)
    yq = np.sort(ys, axis=0)[level - 1]
    finite = np.isfinite(yq)
    xs, yq = xs[finite], yq[finite]
    if xs.size == 0:
        return np.zeros((0, 2))
    # keep the vertices where the staircase steps down
    step = np.concatenate([[True], yq[1:] < yq[:-1]])
    return np.column_stack([xs[step], yq[step]])


def staircase(vertices: ArrayLike) -> FloatArray:
    """Polyline ``(2p - 1, 2)`` drawing the attainment staircase through ``vertices (p, 2)`` (sorted by the
    first objective, minimisation): each vertex, then a corner at the next vertex's first coordinate."""
    v = _as_points(vertices, "vertices")
    if v.shape[0] <= 1:
        return v.copy()
    corners = np.column_stack([v[1:, 0], v[:-1, 1]])
    out = np.empty((2 * v.shape[0] - 1, v.shape[1]))
    out[0::2] = v
    out[1::2] = corners
    return out


__all__ = [
    "AnytimeIndicators",
    "Hypervolume2D",
    "anytime_indicators",
    "attainment_surface_2d",
    "best_so_far",
    "hv_ratio",
    "hypervolume",
    "hypervolume_2d",
    "hypervolume_trace",
    "igd_plus",
    "nondominated_mask",
    "pareto_front",
    "pareto_rank",
    "staircase",
    "valid_rows",
]
