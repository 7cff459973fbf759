"""Protocol conformance of every registered ask/tell optimizer (see ``optimizers/base.py``).

Add an optimizer by appending its registry name to ``CONFORMANCE_OPTIMIZERS`` and, if its defaults are slow,
small hyperparameters to ``FAST_PARAMS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optimizer_fixtures import (
    PROBLEM_NAMES,
    evaluate,
    load_state_tree,
    make_problem,
    run_loop,
    save_state_tree,
)

from benchmark import space
from benchmark.synthetic import SyntheticBenchmark
from optimizers import make_optimizer, optimizer_class
from optimizers.base import Optimizer

CONFORMANCE_OPTIMIZERS: list[str] = ["rs", "re", "nsga2", "reinforce", "bo"]

#: small settings per optimizer so the suite stays fast
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "rs": {},
    "re": {"population_size": 20, "sample_size": 10},
    "nsga2": {"population_size": 12},
    # tiny candidate pools, few MC samples, capped fits and history (see tests/test_bo.py for BO's own tests)
    "bo": {
        "n_init": 6,
        "n_random": 20,
        "n_mutants": 1,
        "n_anchors": 3,
        "n_block_anchors": 0,
        "local_steps": 0,
        "greedy_pool": 4,
        "mc_samples": 4,
        "screen_samples": 2,
        "max_baseline": 4,
        "fit_maxiter": 10,
        "max_history": 30,
        "refit_every": 4,
    },
}

#: optimizers expected to beat random sampling
LEARNING = [name for name in CONFORMANCE_OPTIMIZERS if name != "rs"]
#: ... and to beat it in hypervolume: those that search for a front (``multi_objective``), not scalarisers
#: such as REINFORCE, whose single reward targets one trade-off
FRONT_LEARNING = [name for name in LEARNING if optimizer_class(name).multi_objective]

#: evaluation budget of the progress tests per optimizer (default 600)
PROGRESS_EVALS: dict[str, int] = {"bo": 60}

BATCHES = [1, 7, 3, 16, 2]

BENCH = SyntheticBenchmark()


def build(name: str, problem_name: str, seed: int, **extra: Any) -> Optimizer:
    params = {**FAST_PARAMS.get(name, {}), **extra}
    return make_optimizer(name, make_problem(problem_name), np.random.default_rng(seed), **params)


def rounds(opt: Optimizer, problem_name: str, sizes: list[int]) -> list[np.ndarray]:
    """Ask/evaluate/tell once per size; returns the proposals of each round."""
    problem = make_problem(problem_name)
    out = []
    for n in sizes:
        X = opt.ask(n)
        opt.tell(X, evaluate(BENCH, problem, X), np.ones(n, dtype=bool))
        out.append(X)
    return out


def some_failed(X: np.ndarray) -> np.ndarray:
    return space.arch_id(X) % 5 == 0


def some_infeasible(X: np.ndarray, F: np.ndarray) -> np.ndarray:
    return space.arch_id(X) % 3 != 0


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
@pytest.mark.parametrize("name", CONFORMANCE_OPTIMIZERS)
def test_proposals_are_valid_batches(name: str, problem_name: str) -> None:
    opt = build(name, problem_name, seed=0)
    problem = make_problem(problem_name)
    for n in [1, 7, 1, 16, 5, 30, 7]:
        X = opt.ask(n)
        assert isinstance(X, np.ndarray)
        assert X.shape == (n, 28)
        assert X.dtype == np.int64
        assert space.is_valid(X).all()
        opt.tell(X, evaluate(BENCH, problem, X))  # feasible omitted = all feasible


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
@pytest.mark.parametrize("name", CONFORMANCE_OPTIMIZERS)
def test_same_seed_same_proposals(name: str, problem_name: str) -> None:
    a = rounds(build(name, problem_name, seed=11), problem_name, BATCHES * 4)
    b = rounds(build(name, problem_name, seed=11), problem_name, BATCHES * 4)
    for xa, xb in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
    c = rounds(build(name, problem_name, seed=12), problem_name, BATCHES * 4)
    assert not all(np.array_equal(xa, xc) for xa, xc in zip(a, c, strict=True)), (
        "different seeds gave identical runs"
    )


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
@pytest.mark.parametrize("name", CONFORMANCE_OPTIMIZERS)
def test_state_round_trip_through_files(name: str, problem_name: str, tmp_path: Path) -> None:
    orig = build(name, problem_name, seed=5)
    for k, warmup in enumerate([BATCHES, BATCHES * 3]):
        rounds(orig, problem_name, warmup)
        directory = tmp_path / f"ckpt{k}"
        save_state_tree(orig.state(), directory)
        twin = build(name, problem_name, seed=999)
        twin.load_state(load_state_tree(directory))
        after_orig = rounds(orig, problem_name, BATCHES * 2)
        after_twin = rounds(twin, problem_name, BATCHES * 2)
        for xo, xt in zip(after_orig, after_twin, strict=True):
            np.testing.assert_array_equal(xo, xt)


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
@pytest.mark.parametrize("name", CONFORMANCE_OPTIMIZERS)
def test_tolerates_infeasible_and_failed(name: str, problem_name: str) -> None:
    problem = make_problem(problem_name)
    opt = build(name, problem_name, seed=2)
    X, F, fe = run_loop(
        opt, BENCH, problem, 120, [1, 7, 16], feasible_fn=some_infeasible, fail_fn=some_failed
    )
    assert np.isnan(F).any() and (~fe).any() and fe.any()
    assert space.is_valid(X).all()
    # everything failing / everything infeasible must not break it either
    X, _, _ = run_loop(opt, BENCH, problem, 60, [7, 1], fail_fn=lambda X: np.ones(len(X), dtype=bool))
    X2, _, _ = run_loop(
        opt, BENCH, problem, 60, [5, 16], feasible_fn=lambda X, F: np.zeros(len(X), dtype=bool)
    )
    assert space.is_valid(X).all() and space.is_valid(X2).all()
    assert opt.ask(7).shape == (7, 28)


@pytest.mark.parametrize("name", CONFORMANCE_OPTIMIZERS)
def test_tell_with_wrong_shapes_raises(name: str) -> None:
    problem = make_problem("acc_a100")
    opt = build(name, "acc_a100", seed=0)
    X = opt.ask(4)
    F = evaluate(BENCH, problem, X)
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


@pytest.mark.parametrize("name", LEARNING)
def test_beats_random_sampling_single_objective(name: str) -> None:
    problem = make_problem("acc")
    opt = build(name, "acc", seed=3)
    _, F, _ = run_loop(opt, BENCH, problem, PROGRESS_EVALS.get(name, 600), 10)
    random_acc = -evaluate(BENCH, problem, space.sample(2000, np.random.default_rng(0)))[:, 0]
    best = -F[:, 0].min()
    assert best > np.percentile(random_acc, 99), (best, np.percentile(random_acc, [50, 99]))


@pytest.mark.parametrize("problem_name", ["acc_a100", "acc_a100_zcu102"])
@pytest.mark.parametrize("name", FRONT_LEARNING)
def test_beats_random_sampling_multi_objective(name: str, problem_name: str) -> None:
    from pymoo.indicators.hv import HV

    problem = make_problem(problem_name)
    hv = HV(ref_point=np.asarray(problem.ref_point))
    n_evals = PROGRESS_EVALS.get(name, 600)
    opt = build(name, problem_name, seed=3)
    _, F, _ = run_loop(opt, BENCH, problem, n_evals, 10)
    found = hv(problem.normalize(F))
    # hypervolume of plain random samples of the same size: median of five draws
    random_hvs = [
        hv(problem.normalize(evaluate(BENCH, problem, space.sample(n_evals, np.random.default_rng(s)))))
        for s in range(5)
    ]
    assert found > np.median(random_hvs), (found, random_hvs)
