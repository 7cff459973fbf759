"""Adding an optimizer = one class + one registry line: a toy hill climber that touches nothing else and
passes the shipped conformance suite (``nasopt.testing.OptimizerConformance``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from nasopt.testing import OptimizerConformance, make_problem
from optimizers import OPTIMIZERS, check_optimizer_params, make_optimizer
from optimizers._checks import check_ask, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree


class HillClimber(Optimizer):
    """Mutants of the best feasible architecture told so far (first objective); random until then."""

    name = "hill"
    multi_objective = False

    def __init__(self, problem: ProblemInfo, rng: np.random.Generator, *, mutation_genes: int = 1) -> None:
        super().__init__(problem, rng)
        self.mutation_genes = check_int("HillClimber", "mutation_genes", mutation_genes, 1, space.N_GENES)
        self._best_x: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._best_f = np.inf

    def hyperparameters(self) -> dict[str, Any]:
        return {"mutation_genes": self.mutation_genes}

    def ask(self, n: int) -> IntArray:
        n = check_ask("HillClimber", n)
        if self._best_x.shape[0] == 0:
            return space.sample(n, self.rng)
        return space.mutate(np.repeat(self._best_x, n, axis=0), self.rng, self.mutation_genes)

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        X, F, fe, _ = check_tell(self, X, F, feasible)
        f = np.where(fe, F[:, 0], np.inf)
        if f.size and f.min() < self._best_f:
            i = int(np.argmin(f))
            self._best_x, self._best_f = X[i : i + 1].copy(), float(f[i])

    def _state(self) -> StateTree:
        return {"best_x": self._best_x.copy(), "best_f": None if np.isinf(self._best_f) else self._best_f}

    def _load_state(self, state: StateTree) -> None:
        self._best_x = np.asarray(state["best_x"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._best_f = np.inf if state["best_f"] is None else float(state["best_f"])


class TestHillClimber(OptimizerConformance):
    optimizer = HillClimber


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line (here patched in for the test only)."""
    monkeypatch.setitem(OPTIMIZERS, "hill", f"{__name__}:HillClimber")


@pytest.mark.usefixtures("registered")
def test_registered_toy_is_built_and_checked_by_name() -> None:
    opt = make_optimizer("hill", make_problem("acc"), np.random.default_rng(0), mutation_genes=2)
    assert isinstance(opt, HillClimber) and opt.hyperparameters() == {"mutation_genes": 2}
    check_optimizer_params("hill", {"mutation_genes": 2})
    with pytest.raises(ConfigurationError, match="optimizer 'hill' has no parameter"):
        check_optimizer_params("hill", {"mutation_rate": 0.1})


def test_load_state_names_the_differing_hyperparameter() -> None:
    problem = make_problem("acc")
    state = HillClimber(problem, np.random.default_rng(0), mutation_genes=2).state()
    assert state["kind"] == "hill" and state["hyperparameters"] == {"mutation_genes": 2}
    differs = "saved with mutation_genes=2 but this optimizer has mutation_genes=1"
    with pytest.raises(ConfigurationError, match=differs):
        HillClimber(problem, np.random.default_rng(0)).load_state(state)
    with pytest.raises(ConfigurationError, match="format"):
        HillClimber(problem, np.random.default_rng(0)).load_state({**state, "format": 0})
    with pytest.raises(ConfigurationError, match="kind='hill'"):
        make_optimizer("rs", problem, np.random.default_rng(0)).load_state(state)
