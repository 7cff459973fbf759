"""BO-seeded NSGA-II: Bayesian optimisation for the first evaluations, then NSGA-II started from all of them.

BO (:class:`optimizers.bo.BayesianOptimization`) leads every optimizer measured where evaluations are few,
but its cost per batch grows with the history, and on acc_a100 its hypervolume gains little after a few
hundred evaluations (0.797 at 300, 0.809 at 600, 0.8115 at 1,500 for seed 0), while NSGA-II, whose
overhead stays near zero, needs thousands to get there from a random start. This optimizer runs BO until
``switch_at`` architectures are evaluated, then hands *every* observation to NSGA-II
(:class:`optimizers.nsga2.NSGA2`): they form its first population, ranked by non-domination and crowding
(feasible first), whose binary tournaments pick the parents of its first offspring; from its first
generation on, survival keeps the best ``population_size``.

- The BO phase *is* a plain BO run: BO draws from this optimizer's generator, so the first ``switch_at``
  evaluations equal ``bo``'s with the same seed and settings (``tests/test_hybrid.py``).
- NSGA-II gets its own generator, seeded from this one's stream at the switch.
- Results told after the switch for architectures BO proposed (asynchronous callers) join NSGA-II's
  current generation.
- The state is the active phase's: BO's until the switch, NSGA-II's after it (BO's history is not kept,
  so the checkpoints of a long run stay small).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError, check_keywords
from optimizers._checks import check_ask, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree
from optimizers.bo import BayesianOptimization
from optimizers.nsga2 import NSGA2

_BO, _EVOLUTION = "bo", "evolution"


class BOThenNSGA2(Optimizer):
    """BO for the first ``switch_at`` evaluations, then NSGA-II seeded with all of them.

    Hyperparameters:
        switch_at: evaluated architectures (told, failed included) after which NSGA-II takes over; a
            run of at most this many evaluations is a plain BO run.
        bo: settings of the BO phase (keywords of :class:`~optimizers.bo.BayesianOptimization`), e.g.
            ``{"n_init": 20, "q": 8}``; None = BO's defaults.
        population_size, n_offsprings, crossover_prob, mutation_prob: NSGA-II's (see
            :class:`~optimizers.nsga2.NSGA2`).
    """

    name = "bo_nsga2"
    multi_objective = True
    #: BO models the constraint values the runner reports (NSGA-II needs only ``feasible``)
    uses_constraint_values = True

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        switch_at: int = 300,
        bo: Mapping[str, Any] | None = None,
        population_size: int = 50,
        n_offsprings: int | None = None,
        crossover_prob: float = 0.9,
        mutation_prob: float = 1.0 / space.N_GENES,
    ) -> None:
        super().__init__(problem, rng)
        owner = type(self).__name__
        self.switch_at = check_int(owner, "switch_at", switch_at, 1)
        if bo is not None and not isinstance(bo, Mapping):
            raise ConfigurationError(
                f"{owner}: bo={bo!r} is not a mapping of BO settings; pass e.g. bo={{'n_init': 20}} "
                "(optimizer.params.bo.n_init=20)"
            )
        self.bo_params: dict[str, Any] = {str(k): v for k, v in (bo or {}).items()}
        check_keywords(f"{owner} bo", BayesianOptimization, self.bo_params, skip=2)
        self.evolution_params: dict[str, Any] = {
            "population_size": population_size,
            "n_offsprings": n_offsprings,
            "crossover_prob": crossover_prob,
            "mutation_prob": mutation_prob,
        }
        # both phases are built here, so every setting is checked at once; neither does any work yet
        self._bo: BayesianOptimization | None = BayesianOptimization(problem, rng, **self.bo_params)
        self._bo_settings = self._bo.hyperparameters()
        self._q = self._bo.preferred_batch_size
        checked = NSGA2(problem, np.random.default_rng(0), **self.evolution_params)
        self._evolution_settings = checked.hyperparameters()
        self._evolution: NSGA2 | None = None
        self._n_told = 0

    @property
    def phase(self) -> str:
        """``"bo"`` until the switch, then ``"evolution"``."""
        return _BO if self._evolution is None else _EVOLUTION

    @property
    def preferred_batch_size(self) -> int | None:
        """BO's batch (NSGA-II takes batches of any size)."""
        return self._q

    # -- protocol -----------------------------------------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        n = check_ask(type(self).__name__, n)
        if self._evolution is None and self._n_told >= self.switch_at:
            self._switch()
        if self._evolution is not None:
            return self._evolution.ask(n)
        assert self._bo is not None
        return self._bo.ask(n)

    def tell(
        self,
        X: IntArray,
        F: FloatArray,
        feasible: BoolArray | None = None,
        constraint_values: FloatArray | None = None,
    ) -> None:
        X, F, fe, _failed = check_tell(self, X, F, feasible)
        self._n_told += X.shape[0]
        if self._evolution is not None:
            self._evolution.tell(X, F, fe)
        else:
            assert self._bo is not None
            self._bo.tell(X, F, fe, constraint_values=constraint_values)

    def _switch(self) -> None:
        """Start NSGA-II from everything BO observed (its first generation) and drop BO."""
        assert self._bo is not None
        seed = int(self.rng.integers(0, 2**63 - 1))
        evolution = NSGA2(self.problem, np.random.default_rng(seed), **self.evolution_params)
        X, F, fe = self._bo.observations()
        if X.shape[0]:
            evolution.tell(X, F, fe)
        self._evolution, self._bo = evolution, None

    # -- state --------------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {"switch_at": self.switch_at, "bo": dict(self._bo_settings), **self._evolution_settings}

    def _state(self) -> StateTree:
        active: Optimizer = self._evolution if self._evolution is not None else self._bo  # type: ignore[assignment]
        return {"phase": self.phase, "n_told": int(self._n_told), "active": active.state()}

    def _load_state(self, state: StateTree) -> None:
        phase = state.get("phase")
        if phase not in (_BO, _EVOLUTION):
            raise ConfigurationError(
                f"{type(self).__name__}.load_state(): unknown phase {phase!r} (expected {_BO!r} or "
                f"{_EVOLUTION!r}); the state is not a {self.name} snapshot, so start a new run"
            )
        self._n_told = int(state["n_told"])
        if phase == _EVOLUTION:
            evolution = NSGA2(self.problem, np.random.default_rng(0), **self.evolution_params)
            evolution.load_state(state["active"])
            self._evolution, self._bo = evolution, None
        else:
            bo = BayesianOptimization(self.problem, self.rng, **self.bo_params)
            bo.load_state(state["active"])
            self._bo, self._evolution = bo, None


__all__ = ["BOThenNSGA2"]
