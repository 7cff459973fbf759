"""Helpers shared by the built-in optimizers: argument checks, tell() validation and tournament winners.

Tournament winners follow one ordering everywhere: feasible individuals beat infeasible ones; within the
same feasibility class a single objective is compared directly (lower wins) and several objectives by
non-dominated rank, then crowding distance (larger wins) within the tournament: pymoo's non-dominated
sorting and crowding distance, or for many tournaments at once a vectorised equivalent of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from benchmark import space
from optimizers.base import BoolArray, FloatArray, IntArray, Optimizer

_NDS = NonDominatedSorting()
#: from this many tournaments on, :func:`multi_objective_winners` works on all of them at once
_VECTORISE_FROM = 8


# --- argument checks ------------------------------------------------------------------------------------
def check_int(owner: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; otherwise a ValueError naming ``owner``'s hyperparameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: hyperparameter {name} must be an integer, got {value!r}")
    v = int(value)
    if v < low or (high is not None and v > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{owner}: hyperparameter {name}={v} must be {allowed}")
    return v


def check_float(owner: str, name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in the closed interval ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}: hyperparameter {name} must be a number, got {value!r}")
    v = float(value)
    if not low <= v <= high:
        raise ValueError(f"{owner}: hyperparameter {name}={v} must be in [{low}, {high}]")
    return v


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``value`` as a bool (only ``True``/``False`` accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: hyperparameter {name} must be true or false, got {value!r}")
    return bool(value)


def check_ask(owner: str, n: Any) -> int:
    """Validate the batch size given to ``ask``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{owner}.ask(n): n must be a non-negative integer, got {n!r}")
    return int(n)


def check_tell(
    opt: Optimizer, X: IntArray, F: FloatArray, feasible: BoolArray | None
) -> tuple[IntArray, FloatArray, BoolArray, BoolArray]:
    """Shapes and gene values of a ``tell``; returns ``(X, F, feasible, failed)``.

    ``feasible`` is False for failed rows; ``failed`` ``(n,)`` marks rows with any NaN objective.
    """
    X, F, fe = Optimizer._check_tell(X, F, feasible, opt.problem.n_obj)
    try:
        space.validate(X)
    except space.InvalidArchitectureError as exc:
        raise ValueError(
            f"{type(opt).__name__}.tell(): X holds an architecture outside the space: {exc}"
        ) from exc
    failed: BoolArray = np.asarray(np.isnan(F).any(axis=1), dtype=bool)
    return X, F, fe, failed


def check_state(owner: str, state: Any, expected: dict[str, Any]) -> None:
    """Raise a ValueError if a saved state was made by a differently configured optimizer."""
    if not isinstance(state, dict):
        raise ValueError(
            f"{owner}.load_state(): expected the dict returned by state(), got {type(state).__name__}"
        )
    for key, want in expected.items():
        got = state.get(key)
        if isinstance(want, float) and isinstance(got, (int, float)):
            same = float(got) == want
        else:
            same = got == want
        if not same:
            raise ValueError(
                f"{owner}.load_state(): the state was saved with {key}={got!r} but this optimizer has "
                f"{key}={want!r}; build the optimizer with the same settings as the one that saved it"
            )


# --- tournament winners ---------------------------------------------------------------------------------
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


def multi_objective_winners(F: FloatArray, feasible: BoolArray, samples: IntArray) -> IntArray:
    """Winner of each tournament for several objectives: non-dominated rank, then crowding distance.

    Only feasible members compete when the tournament has any. The winner is the member of the sample's
    first non-dominated front with the largest crowding distance (pymoo's NSGA-II formula, computed within
    that front); ties go to the earlier entry of the sample. From 8 tournaments on it is vectorised over
    them; fewer go through :func:`multi_objective_winners_reference`, which calls pymoo per tournament
    (both give the same winners).

    Args:
        F: objectives (minimised) per population member, ``(p, m)``.
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
    # dominates[t, i, j]: competing member i dominates j
    le = np.all(Fs[:, :, None, :] <= Fs[:, None, :, :], axis=-1)
    lt = np.any(Fs[:, :, None, :] < Fs[:, None, :, :], axis=-1)
    dominates = le & lt & competing[:, :, None]
    front = competing & ~dominates.any(axis=1)  # (t, s)
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
    """Same as :func:`multi_objective_winners`, one tournament at a time with pymoo's sorting and crowding."""
    out = np.empty(samples.shape[0], dtype=np.int64)
    any_feasible: BoolArray = np.asarray(feasible[samples].any(axis=1), dtype=bool)
    for t in range(samples.shape[0]):
        cand = samples[t]
        if any_feasible[t]:
            cand = cand[feasible[cand]]
        Fc = F[cand]
        front = np.asarray(_NDS.do(Fc, only_non_dominated_front=True), dtype=np.int64)
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


def duplicated_rows(ids: IntArray, known: IntArray | set[int]) -> BoolArray:
    """Rows whose id is in ``known`` or repeats an earlier row of ``ids``, ``(n,)``."""
    seen = set(known.tolist()) if isinstance(known, np.ndarray) else set(known)
    out = np.zeros(ids.size, dtype=bool)
    for i, a in enumerate(ids.tolist()):
        if a in seen:
            out[i] = True
        else:
            seen.add(a)
    return out
