"""Protocol conformance of every registered optimizer: one :class:`nasopt.testing.OptimizerConformance`
subclass each, with small settings so the suite stays fast."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from nasopt.testing import OptimizerConformance
from optimizers import OPTIMIZERS


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


def test_every_registered_optimizer_has_a_conformance_class() -> None:
    module = sys.modules[__name__]
    checked = {
        cls.optimizer
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, OptimizerConformance) and cls is not OptimizerConformance
    }
    assert checked == set(OPTIMIZERS), f"add a conformance class for {sorted(set(OPTIMIZERS) - checked)}"
