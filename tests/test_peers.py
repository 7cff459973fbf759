"""The peer adapters (Optuna samplers, pymoo MOEAs): resume by replay, MOEA/D's directions, registry use.

Their protocol checks are the conformance classes in tests/test_optimizer_conformance.py.
"""

from __future__ import annotations

import signal
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_resume as tr

from benchmark.errors import ConfigurationError
from benchmark.synthetic import SyntheticBenchmark
from nasopt.testing import evaluate, load_state_tree, make_problem, save_state_tree
from optimizers import make_optimizer
from optimizers.pymoo_peers import moead_directions

needs_optuna = pytest.mark.skipif(find_spec("optuna") is None, reason="optuna (extra 'peers') not installed")
ORACLE = SyntheticBenchmark()


def _rounds(opt: Any, problem_name: str, sizes: list[int]) -> list[np.ndarray]:
    problem = make_problem(problem_name)
    out = []
    for n in sizes:
        X = opt.ask(n)
        F = evaluate(ORACLE, problem, X)
        F[::5] = np.nan  # some failed
        opt.tell(X, F, np.arange(n) % 3 != 1)  # some infeasible
        out.append(X)
    return out


@pytest.mark.parametrize(
    ("name", "params"),
    [
        pytest.param("optuna_tpe", {}, marks=needs_optuna),
        pytest.param("optuna_nsga2", {"population_size": 8}, marks=needs_optuna),
        ("pymoo_moead", {"population_size": 8, "n_neighbors": 4}),
        ("pymoo_spea2", {"population_size": 8}),
    ],
)
def test_resume_at_a_batch_boundary_equals_uninterrupted_with_failed_and_infeasible_rows(
    name: str, params: dict[str, Any], tmp_path: Path
) -> None:
    problem = make_problem("acc_a100")
    whole = make_optimizer(name, problem, np.random.default_rng(3), **params)
    first = _rounds(whole, "acc_a100", [8] * 5)
    save_state_tree(whole.state(), tmp_path)
    rest_whole = _rounds(whole, "acc_a100", [8] * 4)
    resumed = make_optimizer(name, problem, np.random.default_rng(77), **params)
    resumed.load_state(load_state_tree(tmp_path))
    rest_resumed = _rounds(resumed, "acc_a100", [8] * 4)
    assert len(first) == 5
    for a, b in zip(rest_whole, rest_resumed, strict=True):
        np.testing.assert_array_equal(a, b)


@needs_optuna
def test_a_replay_that_diverges_is_refused_with_the_versions(tmp_path: Path) -> None:
    problem = make_problem("acc_a100")
    opt = make_optimizer("optuna_tpe", problem, np.random.default_rng(0), n_startup_trials=2)
    _rounds(opt, "acc_a100", [4, 4])
    state = opt.state()
    state["replay_asked"] = state["replay_asked"].copy()
    state["replay_asked"][5, 1] = 1 - state["replay_asked"][5, 1]  # gene 1 has two values: another proposal
    twin = make_optimizer("optuna_tpe", problem, np.random.default_rng(0), n_startup_trials=2)
    with pytest.raises(ConfigurationError, match=r"replaying the saved ask/tell history.*optuna"):
        twin.load_state(state)


@needs_optuna
def test_a_replayed_optimizer_keeps_its_log_and_can_be_saved_again(tmp_path: Path) -> None:
    problem = make_problem("acc_a100_zcu102")
    opt = make_optimizer("optuna_nsga2", problem, np.random.default_rng(1), population_size=6)
    _rounds(opt, "acc_a100_zcu102", [6, 6, 3])
    twin = make_optimizer("optuna_nsga2", problem, np.random.default_rng(2), population_size=6)
    twin.load_state(opt.state())
    again = make_optimizer("optuna_nsga2", problem, np.random.default_rng(3), population_size=6)
    again.load_state(twin.state())
    np.testing.assert_array_equal(opt.ask(9), again.ask(9))


@pytest.mark.parametrize(("n_obj", "size", "expected"), [(1, 12, 12), (2, 50, 50), (3, 50, 45), (3, 55, 55)])
def test_moead_directions_follow_the_population_size(n_obj: int, size: int, expected: int) -> None:
    W = moead_directions(n_obj, size)
    assert W.shape == (expected, n_obj)
    np.testing.assert_allclose(W.sum(axis=1), 1.0)
    assert len(np.unique(W, axis=0)) == (1 if n_obj == 1 else expected)


def test_moead_reports_its_directions_and_gives_one_generation_per_batch() -> None:
    opt = make_optimizer("pymoo_moead", make_problem("acc_a100_zcu102"), np.random.default_rng(0))
    assert opt.hyperparameters()["n_directions"] == 45
    assert opt.preferred_batch_size == 45


def test_ga_scalarises_several_objectives_by_their_normalised_mean() -> None:
    problem = make_problem("acc_a100")
    opt = make_optimizer("pymoo_ga", problem, np.random.default_rng(0))
    assert not opt.multi_objective
    F = np.array([[-70.0, -2000.0], [-45.0, 0.0], [np.nan, np.nan]])
    Fp, G = opt._pymoo_values(F, np.array([True, False, False]), np.array([False, False, True]))
    np.testing.assert_allclose(Fp[:, 0], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(G, [0.0, 1.0, 2.0])


# --- SIGKILL + resume through the runner (tests/test_resume.py's child process and comparison) -----------
@pytest.mark.parametrize(
    "opt",
    [
        pytest.param("optuna_nsga2", marks=needs_optuna),
        "pymoo_moead",
        pytest.param("optuna_tpe", marks=[needs_optuna, pytest.mark.slow]),
        pytest.param("optuna_random", marks=[needs_optuna, pytest.mark.slow]),
        pytest.param("pymoo_spea2", marks=pytest.mark.slow),
        pytest.param("pymoo_smsemoa", marks=pytest.mark.slow),
        pytest.param("pymoo_ga", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, opt: str) -> None:
    run_dir = tmp_path / "run"
    proc = tr._spawn(run_dir, opt, sleep=0.03)
    tr._wait_for_checkpoint(proc, run_dir)
    time.sleep(0.1)
    rc, _, _ = tr._kill(proc)
    assert rc == -signal.SIGKILL
    assert tr._saved_evals(run_dir) is not None
    tr._resume_and_compare(run_dir, opt)


@needs_optuna
@pytest.mark.slow  # Optuna's GP sampler takes seconds per trial on the 2-core machine
def test_optuna_gp_resume_equals_uninterrupted(tmp_path: Path) -> None:
    problem = make_problem("acc_a100")
    params = {"n_startup_trials": 3}
    whole = make_optimizer("optuna_gp", problem, np.random.default_rng(4), **params)
    _rounds(whole, "acc_a100", [1] * 5)
    save_state_tree(whole.state(), tmp_path)
    rest_whole = _rounds(whole, "acc_a100", [1] * 2)
    resumed = make_optimizer("optuna_gp", problem, np.random.default_rng(5), **params)
    resumed.load_state(load_state_tree(tmp_path))
    for a, b in zip(rest_whole, _rounds(resumed, "acc_a100", [1] * 2), strict=True):
        np.testing.assert_array_equal(a, b)
