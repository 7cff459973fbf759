"""Regularized (ageing) evolution, Real et al. 2019, with a multi-objective tournament when ``n_obj > 1``.

The population is the ``population_size`` most recently told, non-failed architectures (the oldest dies).
Until it is full, proposals are uniform random. Afterwards each proposal is one tournament: ``sample_size``
members drawn uniformly without replacement, the best one (see :mod:`optimizers.tournament`: feasible first,
then lowest objective, or non-dominated rank then crowding distance) is copied and ``mutation_genes``
genes are changed to a different value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers._checks import check_ask, check_bool, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree
from optimizers.tournament import tournament_winners

_OWNER = "RegularizedEvolution"


class RegularizedEvolution(Optimizer):
    """Ageing evolution with tournament selection and point mutation.

    Hyperparameters:
        population_size: number of most recent evaluated individuals kept (default 20, as upstream).
        sample_size: tournament size, ``<= population_size`` (default 10).
        mutation_genes: genes changed per child (default 1).
        max_retries: times a child equal to a population member (or to an earlier child of the same
            batch) is re-mutated before it is accepted anyway (default 5).
        deduplicate: whether to do those retries at all (default True); random proposals made while the
            population fills are redrawn the same way.
    """

    name = "re"
    multi_objective = True

    @property
    def preferred_batch_size(self) -> int | None:
        return 1

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        population_size: int = 20,
        sample_size: int = 10,
        mutation_genes: int = 1,
        max_retries: int = 5,
        deduplicate: bool = True,
    ) -> None:
        super().__init__(problem, rng)
        self.population_size = check_int(_OWNER, "population_size", population_size, 2)
        self.sample_size = check_int(_OWNER, "sample_size", sample_size, 1)
        if self.sample_size > self.population_size:
            raise ConfigurationError(
                f"{_OWNER}: sample_size={self.sample_size} must be <= "
                f"population_size={self.population_size}; lower sample_size or raise population_size"
            )
        self.mutation_genes = check_int(_OWNER, "mutation_genes", mutation_genes, 1, space.N_GENES)
        self.max_retries = check_int(_OWNER, "max_retries", max_retries, 0)
        self.deduplicate = check_bool(_OWNER, "deduplicate", deduplicate)
        m = problem.n_obj
        # population in age order (oldest first)
        self._X: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._F: FloatArray = np.zeros((0, m), dtype=np.float64)
        self._feasible: BoolArray = np.zeros(0, dtype=bool)
        self.n_told = 0

    @property
    def population(self) -> tuple[IntArray, FloatArray, BoolArray]:
        """Copies of the current population ``X (p, 28)``, ``F (p, m)``, ``feasible (p,)``, oldest first."""
        return self._X.copy(), self._F.copy(), self._feasible.copy()

    def ask(self, n: int) -> IntArray:
        """``n`` proposals ``(n, 28)``: random until the population is full, then one tournament each."""
        n = check_ask(_OWNER, n)
        p = self._X.shape[0]
        if p < self.population_size:
            X = space.sample(n, self.rng)
            self._avoid_duplicates(X, None)
            return X
        samples = np.argsort(self.rng.random((n, p)), axis=1)[:, : self.sample_size]
        winners = tournament_winners(self._F, self._feasible, samples)
        parents = self._X[winners]
        children = space.mutate(parents, self.rng, self.mutation_genes)
        self._avoid_duplicates(children, parents)
        return children

    def _avoid_duplicates(self, X: IntArray, parents: IntArray | None) -> None:
        """Redraw (in place) rows equal to a population member or an earlier row, up to ``max_retries``."""
        if not self.deduplicate or X.shape[0] == 0:
            return
        known = space.arch_id(self._X)
        ids = space.arch_id(X)
        for _ in range(self.max_retries):
            dup = space.duplicated(ids, known)
            if not dup.any():
                return
            if parents is None:
                X[dup] = space.sample(int(dup.sum()), self.rng)
            else:
                X[dup] = space.mutate(parents[dup], self.rng, self.mutation_genes)
            ids[dup] = space.arch_id(X[dup])

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """Add evaluated rows (failed NaN rows are dropped) and let the oldest die."""
        X, F, fe, failed = check_tell(self, X, F, feasible)
        keep = ~failed
        self._X = np.concatenate([self._X, X[keep]])[-self.population_size :]
        self._F = np.concatenate([self._F, F[keep]])[-self.population_size :]
        self._feasible = np.concatenate([self._feasible, fe[keep]])[-self.population_size :]
        self.n_told += X.shape[0]

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "mutation_genes": self.mutation_genes,
            "max_retries": self.max_retries,
            "deduplicate": self.deduplicate,
        }

    def _state(self) -> StateTree:
        """Population ``pop_X (p, 28)``, ``pop_F (p, m)``, ``pop_feasible (p,)`` and the told count."""
        return {
            "pop_X": self._X.copy(),
            "pop_F": self._F.copy(),
            "pop_feasible": self._feasible.copy(),
            "n_told": self.n_told,
        }

    def _load_state(self, state: StateTree) -> None:
        m = self.problem.n_obj
        self._X = np.asarray(state["pop_X"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._F = np.asarray(state["pop_F"], dtype=np.float64).reshape(-1, m)
        self._feasible = np.asarray(state["pop_feasible"], dtype=bool).reshape(-1)
        if not self._X.shape[0] == self._F.shape[0] == self._feasible.shape[0]:
            raise ValueError(f"{_OWNER}.load_state(): pop_X, pop_F and pop_feasible have different lengths")
        self.n_told = int(state["n_told"])
