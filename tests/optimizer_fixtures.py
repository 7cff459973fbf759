"""Test helpers for optimizers: small problems on the synthetic oracle, an ask/tell loop, state files.

Only for tests; the real runner lives elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.synthetic import SyntheticBenchmark
from optimizers.base import BoolArray, FloatArray, IntArray, Optimizer, ProblemInfo, StateTree

#: name -> (targets, maximize, ideal, nadir) in internal minimisation units (F = -value for maximised targets)
_PROBLEMS: dict[str, tuple[tuple[str, ...], tuple[bool, ...], tuple[float, ...], tuple[float, ...]]] = {
    "acc": (("accuracy",), (True,), (-70.0,), (-45.0,)),
    "acc_a100": (("accuracy", "throughput_a100"), (True, True), (-70.0, -2000.0), (-45.0, 0.0)),
    "acc_a100_zcu102": (
        ("accuracy", "throughput_a100", "latency_zcu102"),
        (True, True, False),
        (-70.0, -2000.0, 0.0),
        (-45.0, 0.0, 25.0),
    ),
}
PROBLEM_NAMES: tuple[str, ...] = tuple(_PROBLEMS)


def make_problem(name: str) -> ProblemInfo:
    """A :class:`ProblemInfo` for ``"acc"`` (1 objective), ``"acc_a100"`` (2) or ``"acc_a100_zcu102"`` (3)."""
    targets, maximize, ideal, nadir = _PROBLEMS[name]
    return ProblemInfo(
        name=name,
        objectives=targets,
        maximize=maximize,
        ideal=ideal,
        nadir=nadir,
        ref_point=tuple(1.1 for _ in targets),
    )


def evaluate(bench: SyntheticBenchmark, problem: ProblemInfo, X: IntArray) -> FloatArray:
    """Objectives ``(n, m)`` in internal minimisation units."""
    preds = bench.query(X, list(problem.objectives))
    cols = [
        -preds[t].value if mx else preds[t].value
        for t, mx in zip(problem.objectives, problem.maximize, strict=True)
    ]
    return np.stack(cols, axis=1).astype(np.float64)


FeasibleFn = Callable[[IntArray, FloatArray], BoolArray]
FailFn = Callable[[IntArray], BoolArray]


def run_loop(
    opt: Optimizer,
    bench: SyntheticBenchmark,
    problem: ProblemInfo,
    n_evals: int,
    batch: int | list[int],
    *,
    feasible_fn: FeasibleFn | None = None,
    fail_fn: FailFn | None = None,
) -> tuple[IntArray, FloatArray, BoolArray]:
    """Ask -> query -> tell until ``n_evals``; returns all ``X (N, 28)``, ``F (N, m)``, ``feasible (N,)``.

    ``batch`` is a size or a list of sizes used cyclically. ``feasible_fn(X, F)`` marks feasible rows;
    ``fail_fn(X)`` marks failed evaluations (their F row becomes NaN and feasible False).
    """
    sizes = [batch] if isinstance(batch, int) else list(batch)
    Xs: list[IntArray] = []
    Fs: list[FloatArray] = []
    fes: list[BoolArray] = []
    done = 0
    i = 0
    while done < n_evals:
        n = min(sizes[i % len(sizes)], n_evals - done)
        i += 1
        X = opt.ask(n)
        F = evaluate(bench, problem, X)
        fe = np.ones(n, dtype=bool) if feasible_fn is None else np.asarray(feasible_fn(X, F), dtype=bool)
        if fail_fn is not None:
            failed = np.asarray(fail_fn(X), dtype=bool)
            F[failed] = np.nan
            fe = fe & ~failed
        opt.tell(X, F, fe)
        Xs.append(X)
        Fs.append(F)
        fes.append(fe)
        done += n
    return np.concatenate(Xs), np.concatenate(Fs), np.concatenate(fes)


# --- state files: arrays to .npz, everything else to strict JSON ------------------------------------------
_ARRAY_KEY = "__npz__"


def _split(node: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if isinstance(node, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = node
        return {_ARRAY_KEY: key}
    if isinstance(node, dict):
        for k in node:
            if not isinstance(k, str):
                raise TypeError(f"state key {path}/{k!r} is not a string")
        return {k: _split(v, arrays, f"{path}/{k}") for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_split(v, arrays, f"{path}/{i}") for i, v in enumerate(node)]
    if node is None or isinstance(node, (bool, int, float, str)):
        if isinstance(node, np.generic):  # e.g. np.float64 subclasses float
            raise TypeError(f"state leaf {path} is a numpy scalar {type(node).__name__}; use a Python scalar")
        return node
    raise TypeError(
        f"state leaf {path} has type {type(node).__name__}; only JSON values and numpy arrays are allowed"
    )


def _join(node: Any, arrays: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {_ARRAY_KEY}:
            return np.array(arrays[node[_ARRAY_KEY]])
        return {k: _join(v, arrays) for k, v in node.items()}
    if isinstance(node, list):
        return [_join(v, arrays) for v in node]
    return node


def save_state_tree(state: StateTree, directory: Path) -> None:
    """Write ``state`` to ``directory/state.json`` + ``directory/arrays.npz`` (no pickle)."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays, "")
    for key, arr in arrays.items():
        if arr.dtype == object:
            raise TypeError(f"state array {key} has dtype object; it cannot be stored without pickle")
    (directory / "state.json").write_text(json.dumps(tree, allow_nan=False))
    np.savez(directory / "arrays.npz", **arrays)  # type: ignore[arg-type]


def load_state_tree(directory: Path) -> StateTree:
    """Read what :func:`save_state_tree` wrote."""
    tree = json.loads((directory / "state.json").read_text())
    with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
        out: StateTree = _join(tree, arrays)
    return out
