"""Tournament selection: the winner of each tournament of population members, as regularized evolution uses.

One ordering everywhere: feasible members beat infeasible ones; within the same feasibility class a single
objective is compared directly (lower wins) and several objectives by non-dominated rank, then crowding
distance (larger wins) within the tournament: the first non-dominated front from
:func:`optimizers.indicators.nondominated_mask` and pymoo's NSGA-II crowding distance (for many tournaments
at once, a vectorised equivalent of it).
"""

from __future__ import annotations

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers.indicators import nondominated_mask

#: from this many tournaments on, :func:`multi_objective_winners` works on all of them at once
_VECTORISE_FROM = 8


def single_objective_winners(f: FloatArray, feasible: BoolArray, samples: IntArray) -> IntArray:
    """Winner of each tournament for one objective.

    Args:
        f: objective (minimised) per population member, ``(p,)``.
        feasible: per member, ``(p,)``; feasible members beat infeasible ones.
        samples: population indices competing in each tournament, ``(t, s)``.

    Returns:
        population index of each winner, ``(t,)`` (ties: the earlier entry of the sample).
    """
    order = np.lexsort((f, ~feasible))  # feasible first, then by f
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    best = np.argmin(position[samples], axis=1)
    out: IntArray = samples[np.arange(samples.shape[0]), best]
    return out


def _first_fronts(Fs: FloatArray, competing: BoolArray) -> BoolArray:
    """Members of each tournament's first non-dominated front among its competing members, ``(t, s)``.

    ``Fs`` ``(t, s, m)``. One :func:`nondominated_mask` call covers every tournament: two extra objectives
    ``+i`` and ``-i`` (``i`` the tournament) make members of different tournaments incomparable, and
    non-competing members are left out as NaN rows.
    """
    t, s, m = Fs.shape
    tour = np.repeat(np.arange(t, dtype=np.float64), s)[:, None]
    points = np.concatenate([Fs.reshape(t * s, m), tour, -tour], axis=1)
    points[~competing.reshape(-1)] = np.nan
    return nondominated_mask(points).reshape(t, s)


def multi_objective_winners(F: FloatArray, feasible: BoolArray, samples: IntArray) -> IntArray:
    """Winner of each tournament for several objectives: non-dominated rank, then crowding distance.

    Only feasible members compete when the tournament has any. The winner is the member of the sample's
    first non-dominated front with the largest crowding distance (pymoo's NSGA-II formula, computed within
    that front); ties go to the earlier entry of the sample. From 8 tournaments on it is vectorised over
    them; fewer go through :func:`multi_objective_winners_reference`, one tournament at a time (both give
    the same winners).

    Args:
        F: objectives (minimised, finite) per population member, ``(p, m)``.
        feasible: per member, ``(p,)``.
        samples: population indices competing in each tournament, ``(t, s)``.

    Returns:
        population index of each winner, ``(t,)``.
    """
    t = samples.shape[0]
    if t < _VECTORISE_FROM:  # numpy's per-call overhead dominates for a handful of tournaments
        return multi_objective_winners_reference(F, feasible, samples)
    m = F.shape[1]
    Fs = F[samples]  # (t, s, m)
    fe: BoolArray = np.asarray(feasible[samples], dtype=bool)  # (t, s)
    any_fe: BoolArray = np.asarray(fe.any(axis=1), dtype=bool)
    competing = np.where(any_fe[:, None], fe, True)
    front = _first_fronts(Fs, competing)  # (t, s)
    k = front.sum(axis=1)  # >= 1
    rows = np.arange(t)
    if np.all(k <= 2):  # pymoo: every member of a front of <= 2 points has infinite crowding distance
        first: IntArray = samples[rows, np.argmax(front, axis=1)]
        return first
    # crowding distance inside each front, term by term as pymoo's calc_crowding_distance
    key = np.where(front[:, :, None], Fs, np.inf)
    order = np.argsort(key, axis=1, kind="stable")  # front members first, ties in sample order
    v = np.take_along_axis(key, order, axis=1)  # (t, s, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = v[rows, k - 1] - v[:, 0]  # (t, m)
        norm = np.where(norm == 0, np.nan, norm)[:, None, :]
        prev = np.concatenate([np.full((t, 1, m), -np.inf), v[:, :-1]], axis=1)
        nxt = np.concatenate([v[:, 1:], np.full((t, 1, m), np.inf)], axis=1)
        to_last = (v - prev) / norm
        to_next = (nxt - v) / norm
    to_last[np.isnan(to_last)] = 0.0
    to_next[np.isnan(to_next)] = 0.0
    per_obj = np.empty_like(v)
    np.put_along_axis(per_obj, order, to_last + to_next, axis=1)
    crowding = np.sum(per_obj, axis=2) / m  # (t, s)
    crowding = np.where(front, crowding, -1.0)
    crowding[k <= 2] = np.where(front[k <= 2], np.inf, -1.0)
    out: IntArray = samples[rows, np.argmax(crowding, axis=1)]
    return out


def multi_objective_winners_reference(F: FloatArray, feasible: BoolArray, samples: IntArray) -> IntArray:
    """Same as :func:`multi_objective_winners`, one tournament at a time (pymoo's crowding distance)."""
    out = np.empty(samples.shape[0], dtype=np.int64)
    any_feasible: BoolArray = np.asarray(feasible[samples].any(axis=1), dtype=bool)
    for t in range(samples.shape[0]):
        cand = samples[t]
        if any_feasible[t]:
            cand = cand[feasible[cand]]
        Fc = F[cand]
        front = np.flatnonzero(nondominated_mask(Fc))
        if front.size <= 2:  # crowding is infinite for every member of a front of <= 2 points
            out[t] = cand[front[0]]
        else:
            crowding = calc_crowding_distance(Fc[front])
            out[t] = cand[front[int(np.argmax(crowding))]]
    return out


def tournament_winners(F: FloatArray, feasible: BoolArray, samples: IntArray) -> IntArray:
    """Dispatch to :func:`single_objective_winners` or :func:`multi_objective_winners` by ``F.shape[1]``."""
    if F.shape[1] == 1:
        return single_objective_winners(F[:, 0], feasible, samples)
    return multi_objective_winners(F, feasible, samples)


__all__ = [
    "multi_objective_winners",
    "multi_objective_winners_reference",
    "single_objective_winners",
    "tournament_winners",
]
