"""Protocol conformance of every registered optimizer: one :class:`nasopt.testing.OptimizerConformance`
subclass each, with small settings so the suite stays fast."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import Any, ClassVar

import pytest

from nasopt.testing import OptimizerConformance
from optimizers import OPTIMIZERS

needs_optuna = pytest.mark.skipif(find_spec("optuna") is None, reason="optuna (extra 'peers') not installed")
needs_numba = pytest.mark.skipif(find_spec("numba") is None, reason="numba (extra 'peers') not installed")


class TestRandomSearch(OptimizerConformance):
    optimizer = "rs"
    beats_random = False


class TestRegularizedEvolution(OptimizerConformance):
    optimizer = "re"
    params: ClassVar[dict[str, Any]] = {"population_size": 20, "sample_size": 10}


class TestNSGA2(OptimizerConformance):
    optimizer = "nsga2"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


class TestReinforce(OptimizerConformance):
    optimizer = "reinforce"


class TestBayesianOptimization(OptimizerConformance):
    optimizer = "bo"
    # tiny candidate pools, few MC samples, capped fits and history (see tests/test_bo.py for BO's own tests)
    params: ClassVar[dict[str, Any]] = {
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
    }
    progress_evals = 60


class TestBOThenNSGA2(OptimizerConformance):
    """BO-seeded NSGA-II: the suite's batches cross the switch (after 24 evaluations)."""

    optimizer = "bo_nsga2"
    params: ClassVar[dict[str, Any]] = {
        "switch_at": 24,
        "bo": TestBayesianOptimization.params,
        "population_size": 12,
    }


# --- peers (optimizers/optuna_peers.py, optimizers/pymoo_peers.py) ---------------------------------------
@needs_optuna
class TestOptunaTPE(OptimizerConformance):
    optimizer = "optuna_tpe"
    progress_evals = 200


@needs_optuna
class TestOptunaNSGA2(OptimizerConformance):
    optimizer = "optuna_nsga2"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


@needs_optuna
class TestOptunaGP(OptimizerConformance):
    """The protocol plumbing only: Optuna's GP sampler takes seconds per trial here, so the suite's hundreds
    of trials stay in its random start-up phase; tests/test_peers.py runs (slow) the GP itself."""

    optimizer = "optuna_gp"
    params: ClassVar[dict[str, Any]] = {"n_startup_trials": 10_000}
    beats_random = False


@needs_optuna
class TestOptunaRandom(OptimizerConformance):
    optimizer = "optuna_random"
    beats_random = False


@needs_numba
@pytest.mark.slow  # numba compiles AGE-MOEA2's survival on first use (about a minute on the 2-core machine)
class TestPymooAGEMOEA2(OptimizerConformance):
    optimizer = "pymoo_agemoea2"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


class TestPymooMOEAD(OptimizerConformance):
    optimizer = "pymoo_moead"
    params: ClassVar[dict[str, Any]] = {"population_size": 12, "n_neighbors": 5}


class TestPymooSMSEMOA(OptimizerConformance):
    optimizer = "pymoo_smsemoa"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


class TestPymooSPEA2(OptimizerConformance):
    optimizer = "pymoo_spea2"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


class TestPymooGA(OptimizerConformance):
    optimizer = "pymoo_ga"
    params: ClassVar[dict[str, Any]] = {"population_size": 12}


def test_every_registered_optimizer_has_a_conformance_class() -> None:
    module = sys.modules[__name__]
    checked = {
        cls.optimizer
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, OptimizerConformance) and cls is not OptimizerConformance
    }
    assert checked == set(OPTIMIZERS), f"add a conformance class for {sorted(set(OPTIMIZERS) - checked)}"
