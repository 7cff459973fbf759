"""Which observations the BO optimizer uses: training rows, search anchors and the acquisition baseline.

All choices rank rows by non-dominated sorting (:func:`optimizers.indicators.pareto_rank`) of normalised
minimisation values.
"""

from __future__ import annotations

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers.indicators import pareto_rank


def select_history(
    F_norm: FloatArray, feasible: BoolArray, max_rows: int
) -> BoolArray:
    """Rows to fit the GPs on, ``(n,)`` mask: all, or ``max_rows`` of them -- the best half (feasible first,
    by non-dominated rank, newest first) plus the most recent others. ``F_norm (n, m)`` may hold NaN rows."""
    n = F_norm.shape[0]
    if n <= max_rows:
        return np.ones(n, dtype=bool)
    ok = ~np.isnan(F_norm).any(axis=1)
    ranks = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for group in (ok & feasible, ok & ~feasible):
        idx = np.flatnonzero(group)
        if idx.size:
            ranks[idx] = pareto_rank(F_norm[idx])
    order = np.lexsort((-np.arange(n), ranks, ~(ok & feasible)))  # feasible first, by rank, newest first
    keep = np.zeros(n, dtype=bool)
    keep[order[: max_rows // 2]] = True
    recent = np.flatnonzero(~keep)[::-1][: max_rows - int(keep.sum())]
    keep[recent] = True
    return keep


def select_informative(X: IntArray, F_norm: FloatArray, feasible: BoolArray, max_rows: int) -> BoolArray:
    """Rows to fit the GPs on in the scaled mode, ``(n,)`` mask of at most ``max_rows``: the best half as in
    :func:`select_history` (feasible first, by rank, newest first -- the Pareto set and the ranks after
    it), then a quarter nearest to that set's front in genes (Hamming distance, newest first among equals),
    then an evenly spaced remainder of the other rows (every part of the run, deterministic).
    ``X (n, 28)``; ``F_norm (n, m)`` may hold NaN rows."""
    n = F_norm.shape[0]
    if n <= max_rows:
        return np.ones(n, dtype=bool)
    ok = ~np.isnan(F_norm).any(axis=1)
    ranks = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for group in (ok & feasible, ok & ~feasible):
        idx = np.flatnonzero(group)
        if idx.size:
            ranks[idx] = pareto_rank(F_norm[idx])
    order = np.lexsort((-np.arange(n), ranks, ~(ok & feasible)))
    keep = np.zeros(n, dtype=bool)
    core = order[: max_rows // 2]
    keep[core] = True
    front = core[ranks[core] == ranks[core].min()]
    rest = np.flatnonzero(~keep)
    dist = np.full(rest.size, space.N_GENES, dtype=np.int64)
    for chunk in np.array_split(front, max(1, front.size // 64)):
        d = (X[rest][:, None, :] != X[chunk][None, :, :]).sum(axis=2).min(axis=1)
        dist = np.minimum(dist, d)
    near = rest[np.lexsort((-rest, dist))[: max_rows // 4]]
    keep[near] = True
    rest = np.flatnonzero(~keep)
    k = max_rows - int(keep.sum())
    if k > 0 and rest.size:
        keep[rest[np.unique(np.linspace(0, rest.size - 1, k).round().astype(np.int64))]] = True
    return keep


def select_anchors(X: IntArray, F_norm: FloatArray, feasible: BoolArray, k: int) -> IntArray:
    """Up to ``k`` best architectures ``(<= k, 28)``: feasible (else all non-failed) rows of the lowest
    non-dominated ranks, newest first among equals."""
    ok = ~np.isnan(F_norm).any(axis=1)
    use = ok & feasible if (ok & feasible).any() else ok
    idx = np.flatnonzero(use)
    if idx.size == 0 or k == 0:
        return np.zeros((0, space.N_GENES), dtype=np.int64)
    ranks = pareto_rank(F_norm[idx])
    order = np.lexsort((-idx, ranks))[:k]
    out: IntArray = X[idx[order]]
    return out


def _spread(F: FloatArray, k: int) -> IntArray:
    """``k`` row indices of ``F (n, m)``: the per-objective minima, then each time the row farthest from
    the chosen ones (Euclidean), ties to the lower index."""
    chosen: list[int] = []
    for j in range(F.shape[1]):
        i = int(np.argmin(F[:, j]))
        if i not in chosen:
            chosen.append(i)
    chosen = chosen[:k]
    dist = np.min(np.linalg.norm(F[:, None, :] - F[chosen][None, :, :], axis=2), axis=1)
    while len(chosen) < k:
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(F - F[i], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def select_baseline(F: FloatArray, feasible: BoolArray, k: int) -> IntArray:
    """Row indices of at most ``k`` incumbents for the noisy-improvement baseline, ``(n, m)`` -> ``(<= k,)``.

    The feasible Pareto front first -- thinned to ``k`` evenly spread points when it is larger than ``k``
    (the per-objective extremes, then farthest-point selection in the normalised space) -- then further
    feasible ranks, then infeasible rows by rank.
    """
    out: list[IntArray] = []
    for group in (feasible, ~feasible):
        idx = np.flatnonzero(group)
        if idx.size == 0:
            continue
        ranks = pareto_rank(F[idx])
        front = idx[ranks == 0]
        if not out and front.size > k and F.shape[1] > 1:
            return np.sort(front[_spread(F[front], k)])
        out.append(idx[np.lexsort((idx, ranks))])
    result: IntArray = np.concatenate(out)[:k] if out else np.zeros(0, dtype=np.int64)
    return result


__all__ = ["select_anchors", "select_baseline", "select_history", "select_informative"]
