"""pymoo's MOEAs as nasopt optimizers (peers for comparisons): AGE-MOEA2, MOEA/D, SMS-EMOA, SPEA2 and GA.

They reuse the plumbing of :class:`optimizers.nsga2.NSGA2` (pymoo's generation-wise ``ask``/``tell`` cut
into batches of any size; integer random sampling, uniform crossover, the categorical mutation) and change
only the algorithm and what pymoo sees of a told row:

- objectives on the problem's fixed normalisation (:meth:`ProblemInfo.normalize`; 0 ideal, 1 nadir), so
  decomposition (MOEA/D) and hypervolume contributions (SMS-EMOA) see comparable scales; a failed row
  counts as the nadir;
- one inequality ``G`` (0 feasible, 1 infeasible, 2 failed) that pymoo's survival ranks after the
  objectives; MOEA/D has no constraint handling in pymoo, so there infeasible rows are pushed out of the box
  instead (normalised objectives + 2; failed rows 4 in every objective);
- SMS-EMOA's hypervolume contributions need two columns, so one objective is given to it twice;
- GA is single-objective: for several objectives it minimises the mean of the normalised objectives
  (a scalariser, ``multi_objective = False``).

**MOEA/D** (pymoo's ``ParallelMOEAD``, one generation = ``n_offsprings`` subproblems, default all of them):
the reference directions are Das-Dennis lattices, ``population_size`` of them for two objectives
(``population_size - 1`` partitions) and, for ``m >= 3``, the largest lattice with at most
``population_size`` points (``m = 3``, 50 -> 45 directions); the population size is the number of
directions. For one objective all directions are ``(1,)`` and the neighbourhoods are rings (subproblem
``k``'s neighbours ``k .. k + n_neighbors - 1``), a cellular GA. Extra offspring (a caller asking for more
than the generation has left) are made by MOEA/D's own neighbourhood mating for random subproblems.

**Resume.** pymoo's state cannot be written without pickle, so a snapshot holds the generator state at
first use and the log of every ask and tell (:mod:`optimizers.replay`); ``load_state`` rebuilds the
algorithm and replays the log, checking every replayed proposal against the saved one.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pymoo
from pymoo.algorithms.moo.moead import ParallelMOEAD
from pymoo.algorithms.moo.sms import SMSEMOA, LeastHypervolumeContributionSurvival, cv_and_dom_tournament
from pymoo.algorithms.moo.spea2 import SPEA2, SPEA2Survival, spea_binary_tournament
from pymoo.algorithms.soo.nonconvex.ga import GA, FitnessSurvival, comp_by_cv_and_fitness
from pymoo.core.population import Population
from pymoo.operators.crossover.ux import UX
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.util.display.multi import MultiObjectiveOutput
from pymoo.util.display.single import SingleObjectiveOutput
from pymoo.util.ref_dirs import get_reference_directions

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers._checks import check_ask, check_float, check_int, check_tell
from optimizers.base import ProblemInfo, StateTree
from optimizers.nsga2 import NSGA2, ArchitectureProblem, CategoricalMutation
from optimizers.replay import ReplayLog

_G_FEASIBLE, _G_INFEASIBLE, _G_FAILED = 0.0, 1.0, 2.0


class PymooPeer(NSGA2):
    """Base of the pymoo peers: normalised objectives, replayed snapshots; subclasses pick the algorithm.

    Hyperparameters (as :class:`optimizers.nsga2.NSGA2`): ``population_size`` (50), ``n_offsprings``
    (None = ``population_size``), ``crossover_prob`` (0.9), ``mutation_prob`` (1/28).
    """

    name = "pymoo"

    def _setup(self) -> None:
        """The replay log of every ask and tell (the snapshot, see the module docstring)."""
        self._log = ReplayLog(self.problem.n_obj, versions={"pymoo": pymoo.__version__})

    def _operators(self) -> dict[str, Any]:
        """Sampling, crossover and mutation for integer genes, and duplicate elimination."""
        return {
            "sampling": IntegerRandomSampling(),
            "crossover": UX(prob=self.crossover_prob),
            "mutation": CategoricalMutation(self.mutation_prob),
            "eliminate_duplicates": True,
        }

    def _pymoo_values(self, F: FloatArray, fe: BoolArray, failed: BoolArray) -> tuple[FloatArray, FloatArray]:
        """Normalised objectives ``(n, m)`` (failed rows at the nadir, 1) and ``G (n,)``."""
        Fn = np.where(failed[:, None], 1.0, self.problem.normalize(F))
        G = np.where(failed, _G_FAILED, np.where(fe, _G_FEASIBLE, _G_INFEASIBLE))
        return Fn, G

    # --- protocol: NSGA2's, recorded for the replay ------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        n = check_ask(type(self).__name__, n)
        self._log.begin(self.rng)
        X = super().ask(n)
        self._log.record_ask(X)
        return X

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        X, F, fe, _failed = check_tell(self, X, F, feasible)
        self._log.begin(self.rng)
        super().tell(X, F, fe)
        self._log.record_tell(X, F, fe)

    def _state(self) -> StateTree:
        """The replay log (:meth:`optimizers.replay.ReplayLog.to_state`)."""
        return self._log.to_state()

    def _load_state(self, state: StateTree) -> None:
        """A fresh algorithm with the saved ask/tell history replayed into it."""
        self._algo = None
        self._reset_generation()
        self._pending = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._setup()
        self._log.replay(type(self).__name__, state, self.rng, self.ask, self.tell)


class PymooAGEMOEA2(PymooPeer):
    """pymoo's AGE-MOEA2 (adaptive geometry estimation, survival by proximity and diversity); pymoo needs
    ``numba`` for it (in the ``peers`` extra)."""

    name = "pymoo_agemoea2"

    def __init__(self, problem: ProblemInfo, rng: np.random.Generator, **params: Any) -> None:
        if importlib.util.find_spec("numba") is None:
            raise ConfigurationError(
                "optimizer 'pymoo_agemoea2' needs numba, which is not installed; "
                "install it with: pip install 'nasopt[peers]'"
            )
        super().__init__(problem, rng, **params)

    def _new_algorithm(self) -> Any:
        from pymoo.algorithms.moo.age2 import AGEMOEA2  # imports numba
        from pymoo.algorithms.moo.nsga2 import binary_tournament

        return AGEMOEA2(
            pop_size=self.population_size,
            n_offsprings=self.n_offsprings,
            selection=TournamentSelection(func_comp=binary_tournament),
            output=MultiObjectiveOutput(),
            **self._operators(),
        )


class PymooSPEA2(PymooPeer):
    """pymoo's SPEA2 (strength Pareto fitness with k-nearest-neighbour density; the archive is the
    population)."""

    name = "pymoo_spea2"

    def _new_algorithm(self) -> Any:
        # fresh survival/selection objects: pymoo's defaults are shared by every instance, and SPEA2's
        # survival keeps normalisation points, so two runs in one process would otherwise interact
        return SPEA2(
            pop_size=self.population_size,
            n_offsprings=self.n_offsprings,
            selection=TournamentSelection(spea_binary_tournament),
            survival=SPEA2Survival(normalize=True),
            output=MultiObjectiveOutput(),
            **self._operators(),
        )


class PymooSMSEMOA(PymooPeer):
    """pymoo's SMS-EMOA (survival by least hypervolume contribution), ``n_offsprings`` per generation."""

    name = "pymoo_smsemoa"

    def _pymoo_problem(self) -> ArchitectureProblem:
        # hypervolume contributions need two columns: one objective is given twice (fronts of one point)
        return ArchitectureProblem(max(2, self.problem.n_obj))

    def _pymoo_values(self, F: FloatArray, fe: BoolArray, failed: BoolArray) -> tuple[FloatArray, FloatArray]:
        Fn, G = super()._pymoo_values(F, fe, failed)
        return (np.repeat(Fn, 2, axis=1) if Fn.shape[1] == 1 else Fn), G

    def _new_algorithm(self) -> Any:
        return SMSEMOA(
            pop_size=self.population_size,
            n_offsprings=self.n_offsprings,
            selection=TournamentSelection(func_comp=cv_and_dom_tournament),
            survival=LeastHypervolumeContributionSurvival(),
            output=MultiObjectiveOutput(),
            **self._operators(),
        )


class PymooGA(PymooPeer):
    """pymoo's GA (fitness survival, feasible first); several objectives are scalarised by their mean on
    the normalised box."""

    name = "pymoo_ga"
    multi_objective = False

    def _pymoo_problem(self) -> ArchitectureProblem:
        return ArchitectureProblem(1)

    def _pymoo_values(self, F: FloatArray, fe: BoolArray, failed: BoolArray) -> tuple[FloatArray, FloatArray]:
        """Mean normalised objective ``(n, 1)`` (failed rows 1) and ``G (n,)``."""
        Fn, G = super()._pymoo_values(F, fe, failed)
        return Fn.mean(axis=1, keepdims=True), G

    def _new_algorithm(self) -> Any:
        return GA(
            pop_size=self.population_size,
            n_offsprings=self.n_offsprings,
            selection=TournamentSelection(func_comp=comp_by_cv_and_fitness),
            survival=FitnessSurvival(),
            output=SingleObjectiveOutput(),
            **self._operators(),
        )


def moead_directions(n_obj: int, population_size: int) -> FloatArray:
    """MOEA/D reference directions ``(k, n_obj)``: see the module docstring for how ``k`` is chosen."""
    if n_obj == 1:
        return np.ones((population_size, 1), dtype=np.float64)
    if n_obj == 2:
        out: FloatArray = get_reference_directions("das-dennis", 2, n_partitions=population_size - 1)
        return out
    p = 1
    while _lattice_size(n_obj, p + 1) <= population_size:
        p += 1
    out = get_reference_directions("das-dennis", n_obj, n_partitions=p)
    return out


def _lattice_size(n_obj: int, p: int) -> int:
    from math import comb

    return comb(p + n_obj - 1, n_obj - 1)


class _BatchMOEAD(ParallelMOEAD):
    """``ParallelMOEAD`` that accepts generations with more rows than it made (extras, unasked rows) and
    ring neighbourhoods for one objective."""

    def _setup(self, problem: Any, **kwargs: Any) -> None:
        super()._setup(problem, **kwargs)
        if problem.n_obj == 1:
            n = len(self.ref_dirs)
            self.neighbors = (np.arange(n)[:, None] + np.arange(self.n_neighbors)[None, :]) % n

    def _initialize_advance(self, infills: Any = None, **kwargs: Any) -> None:
        # extra initial rows beyond one per subproblem are dropped (the population is one per direction)
        self.pop = infills[: self.pop_size]
        super()._initialize_advance(infills=self.pop, **kwargs)

    def _advance(self, infills: Any = None, **kwargs: Any) -> None:
        indices: IntArray = np.asarray(getattr(self, "indices"), dtype=np.int64)  # noqa: B009 (untyped in pymoo)
        extra = len(infills) - len(indices)
        if extra > 0:  # rows not made by _infill: random subproblems
            self.indices = np.concatenate([indices, self.random_state.integers(0, len(self.pop), extra)])
        super()._advance(infills=infills, **kwargs)

    def extra_offspring(self, k: int) -> IntArray:
        """``k`` more offspring ``(k, 28)``: MOEA/D mating for random subproblems (added to ``indices``)."""
        idx = self.random_state.integers(0, len(self.pop), k)
        P = self.selection.do(
            self.problem,
            self.pop,
            k,
            self.mating.crossover.n_parents,
            neighbors=self.neighbors[idx],
            random_state=self.random_state,
        )
        off = self.mating.do(
            self.problem, self.pop, 1e12, n_max_iterations=1, parents=P, random_state=self.random_state
        )
        pools = np.reshape(np.asarray(off, dtype=object), (k, -1))
        chosen = Population.create(*[self.random_state.choice(pool) for pool in pools])
        self.indices = np.concatenate([np.asarray(self.indices, dtype=np.int64), idx])
        out: IntArray = np.asarray(chosen.get("X"), dtype=np.int64).reshape(-1, space.N_GENES)
        return out


class PymooMOEAD(PymooPeer):
    """pymoo's MOEA/D (``ParallelMOEAD``; Tchebycheff decomposition for up to two objectives, PBI beyond).

    Hyperparameters: ``population_size`` (50; the number of reference directions follows from it, see the
    module docstring), ``n_offsprings`` (None = one per direction), ``n_neighbors`` (20),
    ``prob_neighbor_mating`` (0.9), ``crossover_prob`` (1.0, pymoo's MOEA/D default), ``mutation_prob``.
    """

    name = "pymoo_moead"

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        population_size: int = 50,
        n_offsprings: int | None = None,
        n_neighbors: int = 20,
        prob_neighbor_mating: float = 0.9,
        crossover_prob: float = 1.0,
        mutation_prob: float = 1.0 / space.N_GENES,
    ) -> None:
        owner = type(self).__name__
        size = check_int(owner, "population_size", population_size, 3)
        self.ref_dirs = moead_directions(problem.n_obj, size)
        k = len(self.ref_dirs)
        self.n_neighbors = min(check_int(owner, "n_neighbors", n_neighbors, 2), k)
        self.prob_neighbor_mating = check_float(owner, "prob_neighbor_mating", prob_neighbor_mating, 0.0, 1.0)
        offs = k if n_offsprings is None else check_int(owner, "n_offsprings", n_offsprings, 1, k)
        super().__init__(
            problem,
            rng,
            population_size=size,
            n_offsprings=offs,
            crossover_prob=crossover_prob,
            mutation_prob=mutation_prob,
        )

    def hyperparameters(self) -> dict[str, Any]:
        return {
            **super().hyperparameters(),
            "n_neighbors": self.n_neighbors,
            "prob_neighbor_mating": self.prob_neighbor_mating,
            "n_directions": len(self.ref_dirs),
        }

    def _pymoo_problem(self) -> ArchitectureProblem:
        return ArchitectureProblem(self.problem.n_obj, n_ieq_constr=0)

    def _pymoo_values(self, F: FloatArray, fe: BoolArray, failed: BoolArray) -> tuple[FloatArray, FloatArray]:
        """Normalised objectives, infeasible rows + 2 and failed rows 4 (MOEA/D has no constraints)."""
        Fn, G = super()._pymoo_values(F, fe, failed)
        Fn = np.where(failed[:, None], 4.0, np.where(fe[:, None], Fn, Fn + 2.0))
        return Fn, G

    def _new_algorithm(self) -> Any:
        ops = self._operators()
        ops.pop("eliminate_duplicates")  # MOEA/D keeps one individual per direction, duplicates included
        return _BatchMOEAD(
            self.ref_dirs,
            n_neighbors=self.n_neighbors,
            prob_neighbor_mating=self.prob_neighbor_mating,
            n_offsprings=self.n_offsprings,
            **ops,
        )

    def _extras(self, k: int) -> IntArray:
        algo = self._algorithm()
        if not algo.is_initialized:
            return super()._extras(k)
        out: IntArray = algo.extra_offspring(k)
        return out


__all__ = [
    "PymooAGEMOEA2",
    "PymooGA",
    "PymooMOEAD",
    "PymooPeer",
    "PymooSMSEMOA",
    "PymooSPEA2",
    "moead_directions",
]
