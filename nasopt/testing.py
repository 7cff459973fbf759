"""The optimizer conformance suite, shipped for plug-in authors, and the small fixtures it runs on.

Subclass :class:`OptimizerConformance` in a test module (the class name must start with ``Test``) and name the
optimizer; pytest then runs every protocol check on it (valid batches, determinism, a state round trip through
files, tolerance of failed and infeasible rows, argument checks, progress over random sampling)::

    from nasopt.testing import OptimizerConformance

    class TestMyOptimizer(OptimizerConformance):
        optimizer = MyOptimizer             # a class, a factory f(problem, rng, **params) or a registry name
        params = {"population_size": 10}    # small settings so the suite is fast

Everything runs on :class:`benchmark.synthetic.SyntheticBenchmark` (milliseconds per batch). This module
imports pytest; import it from tests only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.api import Oracle
from benchmark.synthetic import SyntheticBenchmark
from benchmark.targets import get_target
from nasopt.evaluation import Evaluator
from nasopt.problems import Problem
from optimizers import optimizer_class
from optimizers.base import Optimizer, ProblemInfo, StateTree
from optimizers.indicators import hypervolume

# --- fixtures: small problems, evaluation on an oracle, an ask/tell loop ------------------------------------
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
#: the fixture problems: 1, 2 and 3 objectives
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
        log_scale=tuple(get_target(t).is_device for t in targets),
    )


def evaluate_with_feasibility(
    oracle: Oracle, problem: ProblemInfo | Problem, X: IntArray
) -> tuple[FloatArray, BoolArray]:
    """Objectives ``F (n, m)`` of ``X (n, 28)`` in internal minimisation units and feasibility ``(n,)``.

    A real :class:`nasopt.problems.Problem` goes through :class:`nasopt.evaluation.Evaluator` (its
    constraints decide feasibility; failed rows are NaN); a bare :class:`ProblemInfo` is queried for its
    objectives directly and every row is feasible.
    """
    if isinstance(problem, Problem):
        ev = Evaluator(problem, oracle)(X)
        return ev.F, ev.feasible
    preds = oracle.query(X, list(problem.objectives))
    cols = [
        -preds[t].value if mx else preds[t].value
        for t, mx in zip(problem.objectives, problem.maximize, strict=True)
    ]
    return np.stack(cols, axis=1).astype(np.float64), np.ones(len(cols[0]), dtype=bool)


def evaluate(oracle: Oracle, problem: ProblemInfo | Problem, X: IntArray) -> FloatArray:
    """Objectives ``(n, m)`` of ``X (n, 28)`` in internal minimisation units (see
    :func:`evaluate_with_feasibility`)."""
    return evaluate_with_feasibility(oracle, problem, X)[0]


FeasibleFn = Callable[[IntArray, FloatArray], BoolArray]
FailFn = Callable[[IntArray], BoolArray]


def run_loop(
    opt: Optimizer,
    oracle: Oracle,
    problem: ProblemInfo | Problem,
    n_evals: int,
    batch: int | list[int],
    *,
    feasible_fn: FeasibleFn | None = None,
    fail_fn: FailFn | None = None,
) -> tuple[IntArray, FloatArray, BoolArray]:
    """Ask -> evaluate -> tell until ``n_evals``; returns all ``X (N, 28)``, ``F (N, m)``, ``feasible (N,)``.

    ``batch`` is a size or a list of sizes used cyclically. ``feasible_fn(X, F)`` marks feasible rows (on
    top of a real problem's constraints);
    ``fail_fn(X)`` marks failed evaluations (their F row becomes NaN and feasible False). Not the runner:
    no budget, records or checkpoints.
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
        F, fe = evaluate_with_feasibility(oracle, problem, X)
        if feasible_fn is not None:
            fe = fe & np.asarray(feasible_fn(X, F), dtype=bool)
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
    """Write ``state`` to ``directory/state.json`` + ``directory/arrays.npz`` (no pickle).

    Stricter than the runner's checkpoint writer on purpose: a numpy scalar leaf or an object array is an
    error, so an optimizer whose ``state()`` breaks the protocol fails here.
    """
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


# --- the conformance suite ------------------------------------------------------------------------------
def _some_failed(X: IntArray) -> BoolArray:
    return np.asarray(space.arch_id(X) % 5 == 0, dtype=bool)


def _some_infeasible(X: IntArray, F: FloatArray) -> BoolArray:
    return np.asarray(space.arch_id(X) % 3 != 0, dtype=bool)


#: ask sizes of the determinism and state tests, used cyclically
BATCHES = [1, 7, 3, 16, 2]


class OptimizerConformance:
    """Protocol checks for one ask/tell optimizer (see ``optimizers/base.py``); subclass it as ``Test...``.

    Class attributes:
        optimizer: the optimizer class, a factory ``f(problem, rng, **params)`` or a registry name.
        params: keyword arguments that keep the suite fast (small populations, few samples).
        beats_random: whether the optimizer must beat random sampling (best accuracy on one objective and,
            when its ``multi_objective`` is True, hypervolume on two and three objectives).
        progress_evals: evaluations of those progress tests.

    Override :meth:`make_optimizer` for anything the attributes cannot express.
    """

    optimizer: ClassVar[type[Optimizer] | Callable[..., Optimizer] | str | None] = None
    params: ClassVar[dict[str, Any]] = {}
    beats_random: ClassVar[bool] = True
    progress_evals: ClassVar[int] = 600
    oracle: ClassVar[Oracle] = SyntheticBenchmark()

    # --- hooks ----------------------------------------------------------------------------------------
    def make_optimizer(self, problem: ProblemInfo, rng: np.random.Generator, **extra: Any) -> Optimizer:
        """A fresh optimizer for ``problem`` seeded by ``rng`` with :attr:`params` (and ``extra``)."""
        spec = type(self).optimizer
        if spec is None:
            raise TypeError(f"{type(self).__name__}: set the class attribute 'optimizer' (a class or a name)")
        factory = optimizer_class(spec) if isinstance(spec, str) else spec
        return factory(problem, rng, **{**self.params, **extra})

    def optimizer_type(self) -> type[Optimizer]:
        """The class under test (used to read ``multi_objective``)."""
        return type(self.make_optimizer(make_problem("acc"), np.random.default_rng(0)))

    # --- helpers --------------------------------------------------------------------------------------
    def build(self, problem_name: str, seed: int) -> Optimizer:
        return self.make_optimizer(make_problem(problem_name), np.random.default_rng(seed))

    def rounds(self, opt: Optimizer, problem_name: str, sizes: list[int]) -> list[IntArray]:
        """Ask/evaluate/tell once per size; returns the proposals of each round."""
        problem = make_problem(problem_name)
        out = []
        for n in sizes:
            X = opt.ask(n)
            opt.tell(X, evaluate(self.oracle, problem, X), np.ones(n, dtype=bool))
            out.append(X)
        return out

    # --- the checks -----------------------------------------------------------------------------------
    @pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
    def test_proposals_are_valid_batches(self, problem_name: str) -> None:
        opt = self.build(problem_name, seed=0)
        problem = make_problem(problem_name)
        for n in [1, 7, 1, 16, 5, 30, 7]:
            X = opt.ask(n)
            assert isinstance(X, np.ndarray)
            assert X.shape == (n, 28)
            assert X.dtype == np.int64
            assert space.is_valid(X).all()
            opt.tell(X, evaluate(self.oracle, problem, X))  # feasible omitted = all feasible

    @pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
    def test_same_seed_same_proposals(self, problem_name: str) -> None:
        a = self.rounds(self.build(problem_name, seed=11), problem_name, BATCHES * 4)
        b = self.rounds(self.build(problem_name, seed=11), problem_name, BATCHES * 4)
        for xa, xb in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
        c = self.rounds(self.build(problem_name, seed=12), problem_name, BATCHES * 4)
        assert not all(np.array_equal(xa, xc) for xa, xc in zip(a, c, strict=True)), (
            "different seeds gave identical runs"
        )

    @pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
    def test_state_round_trip_through_files(self, problem_name: str, tmp_path: Path) -> None:
        orig = self.build(problem_name, seed=5)
        for k, warmup in enumerate([BATCHES, BATCHES * 3]):
            self.rounds(orig, problem_name, warmup)
            directory = tmp_path / f"ckpt{k}"
            save_state_tree(orig.state(), directory)
            twin = self.build(problem_name, seed=999)
            twin.load_state(load_state_tree(directory))
            after_orig = self.rounds(orig, problem_name, BATCHES * 2)
            after_twin = self.rounds(twin, problem_name, BATCHES * 2)
            for xo, xt in zip(after_orig, after_twin, strict=True):
                np.testing.assert_array_equal(xo, xt)

    @pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
    def test_tolerates_infeasible_and_failed(self, problem_name: str) -> None:
        problem = make_problem(problem_name)
        opt = self.build(problem_name, seed=2)
        X, F, fe = run_loop(
            opt, self.oracle, problem, 120, [1, 7, 16], feasible_fn=_some_infeasible, fail_fn=_some_failed
        )
        assert np.isnan(F).any() and (~fe).any() and fe.any()
        assert space.is_valid(X).all()
        # everything failing / everything infeasible must not break it either
        X, _, _ = run_loop(
            opt, self.oracle, problem, 60, [7, 1], fail_fn=lambda X: np.ones(len(X), dtype=bool)
        )
        X2, _, _ = run_loop(
            opt, self.oracle, problem, 60, [5, 16], feasible_fn=lambda X, F: np.zeros(len(X), dtype=bool)
        )
        assert space.is_valid(X).all() and space.is_valid(X2).all()
        assert opt.ask(7).shape == (7, 28)

    def test_tell_with_wrong_shapes_raises(self) -> None:
        problem = make_problem("acc_a100")
        opt = self.build("acc_a100", seed=0)
        X = opt.ask(4)
        F = evaluate(self.oracle, problem, X)
        with pytest.raises(ValueError, match="F must have shape"):
            opt.tell(X, F[:, :1])
        with pytest.raises(ValueError, match="F must have shape"):
            opt.tell(X, F[:3])
        with pytest.raises(ValueError, match="X must have shape"):
            opt.tell(X[:, :20], F)
        with pytest.raises(ValueError, match="feasible must have shape"):
            opt.tell(X, F, np.ones(3, dtype=bool))
        opt.tell(X, F, np.ones(4, dtype=bool))  # still usable afterwards
        assert opt.ask(2).shape == (2, 28)

    def test_beats_random_sampling_single_objective(self) -> None:
        if not self.beats_random:
            pytest.skip("beats_random is False for this optimizer")
        problem = make_problem("acc")
        opt = self.build("acc", seed=3)
        _, F, _ = run_loop(opt, self.oracle, problem, self.progress_evals, 10)
        random_acc = -evaluate(self.oracle, problem, space.sample(2000, np.random.default_rng(0)))[:, 0]
        best = -F[:, 0].min()
        assert best > np.percentile(random_acc, 99), (best, np.percentile(random_acc, [50, 99]))

    @pytest.mark.parametrize("problem_name", ["acc_a100", "acc_a100_zcu102"])
    def test_beats_random_sampling_multi_objective(self, problem_name: str) -> None:
        # only optimizers that search for a front, not scalarisers whose one reward targets one trade-off
        if not (self.beats_random and self.optimizer_type().multi_objective):
            pytest.skip("needs beats_random and a multi_objective optimizer")
        problem = make_problem(problem_name)
        ref = np.asarray(problem.ref_point)
        n_evals = self.progress_evals
        opt = self.build(problem_name, seed=3)
        _, F, _ = run_loop(opt, self.oracle, problem, n_evals, 10)
        found = hypervolume(problem.normalize(F), ref)
        # hypervolume of plain random samples of the same size: median of five draws
        random_hvs = [
            hypervolume(
                problem.normalize(
                    evaluate(self.oracle, problem, space.sample(n_evals, np.random.default_rng(s)))
                ),
                ref,
            )
            for s in range(5)
        ]
        assert found > np.median(random_hvs), (found, random_hvs)


__all__ = [
    "BATCHES",
    "PROBLEM_NAMES",
    "OptimizerConformance",
    "evaluate",
    "evaluate_with_feasibility",
    "load_state_tree",
    "make_problem",
    "run_loop",
    "save_state_tree",
]
