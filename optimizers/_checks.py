"""Argument, ``tell`` and saved-state checks shared by the optimizers; each error names the setting and fix.

Hyperparameter and state checks raise :class:`benchmark.errors.ConfigurationError` (a ``ValueError``);
malformed ``ask``/``tell`` arguments, a mistake of the calling loop rather than of a setting, raise a plain
``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError, plain

if TYPE_CHECKING:
    from optimizers.base import Optimizer


def check_int(owner: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; otherwise an error naming ``owner``'s hyperparameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigurationError(f"{owner}: hyperparameter {name} must be an integer, got {plain(value)}")
    v = int(value)
    if v < low or (high is not None and v > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigurationError(f"{owner}: hyperparameter {name}={v} must be {allowed}")
    return v


def check_float(
    owner: str,
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a float in ``[low, high]`` (``open_low``/``open_high``: without that end; never NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigurationError(f"{owner}: hyperparameter {name} must be a number, got {plain(value)}")
    v = float(value)
    above = v > low if open_low else v >= low
    below = v < high if open_high else v <= high
    if not (above and below):
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ConfigurationError(f"{owner}: hyperparameter {name}={v} must be in {interval}")
    return v


def check_non_negative(owner: str, name: str, value: Any) -> float:
    """``value`` as a finite float ``>= 0``."""
    return check_float(owner, name, value, 0.0, math.inf, open_high=True)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``value`` as a bool (only ``True``/``False`` accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigurationError(f"{owner}: hyperparameter {name} must be true or false, got {plain(value)}")
    return bool(value)


def check_ask(owner: str, n: Any) -> int:
    """Validate the batch size given to ``ask``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{owner}.ask(n): n must be a non-negative integer, got {plain(n)}")
    return int(n)


def check_tell_shapes(
    X: IntArray, F: FloatArray, feasible: BoolArray | None, n_obj: int
) -> tuple[IntArray, FloatArray, BoolArray]:
    """Shapes of a ``tell``: ``X (n, 28)``, ``F (n, n_obj)`` (``(n,)`` for one objective), ``feasible (n,)``.

    Returns ``(X, F, feasible)`` with ``feasible`` False for rows with a NaN objective.
    """
    X = np.asarray(X, dtype=np.int64)
    F = np.asarray(F, dtype=np.float64)
    if F.ndim == 1:
        F = F[:, None]
    if X.ndim != 2 or X.shape[1] != space.N_GENES:
        raise ValueError(f"tell(): X must have shape (n, {space.N_GENES}), got {X.shape}")
    if F.shape != (X.shape[0], n_obj):
        raise ValueError(f"tell(): F must have shape ({X.shape[0]}, {n_obj}), got {F.shape}")
    fe = np.ones(X.shape[0], dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool)
    if fe.shape != (X.shape[0],):
        raise ValueError(f"tell(): feasible must have shape ({X.shape[0]},), got {fe.shape}")
    failed = np.isnan(F).any(axis=1)
    return X, F, fe & ~failed


def check_tell(
    opt: Optimizer, X: IntArray, F: FloatArray, feasible: BoolArray | None
) -> tuple[IntArray, FloatArray, BoolArray, BoolArray]:
    """Shapes and gene values of a ``tell``; returns ``(X, F, feasible, failed)``.

    ``feasible`` is False for failed rows; ``failed`` ``(n,)`` marks rows with any NaN objective.
    """
    X, F, fe = check_tell_shapes(X, F, feasible, opt.problem.n_obj)
    try:
        space.validate(X)
    except space.InvalidArchitectureError as exc:
        raise ValueError(
            f"{type(opt).__name__}.tell(): X holds an architecture outside the space: {exc}"
        ) from exc
    failed: BoolArray = np.asarray(np.isnan(F).any(axis=1), dtype=bool)
    return X, F, fe, failed


def _same(got: Any, want: Any) -> bool:
    """Equal after a JSON round trip: ints and floats compare by value, lists equal tuples, dicts by key."""
    if isinstance(want, Mapping):
        return (
            isinstance(got, Mapping)
            and set(map(str, got)) == set(map(str, want))
            and all(_same(got[k], v) for k, v in want.items())
        )
    if isinstance(want, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        return float(got) == want
    same: bool = got == want
    return same


def check_state(owner: str, state: Any, expected: Mapping[str, Any]) -> None:
    """Raise a ConfigurationError if a saved state was made by a differently configured optimizer.

    ``expected`` maps keys of ``state`` to the values this optimizer has; the first difference is named.
    """
    if not isinstance(state, Mapping):
        raise ConfigurationError(
            f"{owner}.load_state(): expected the dict returned by state(), got {type(state).__name__}"
        )
    for key, want in expected.items():
        got = state.get(key)
        if not _same(got, want):
            raise ConfigurationError(
                f"{owner}.load_state(): the state was saved with {key}={plain(got)} but this optimizer has "
                f"{key}={plain(want)}; build the optimizer with the same settings as the one that saved it"
            )


__all__ = [
    "check_ask",
    "check_bool",
    "check_float",
    "check_int",
    "check_non_negative",
    "check_state",
    "check_tell",
    "check_tell_shapes",
    "plain",
]
