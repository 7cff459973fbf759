"""NSGA-II from pymoo behind the ask/tell protocol, with operators for categorical genes.

pymoo does the work (initial sampling, binary tournament, uniform crossover, duplicate elimination,
rank-and-crowding survival); this module only adapts its generation-wise ``ask()``/``tell()`` to batches of
any size:

- ``ask(n)`` hands out rows of pymoo's current offspring population. When a generation's rows are all handed
  out and told, pymoo gets the whole generation (``algorithm.tell``) and produces the next one.
- If the caller wants more rows than the current generation has left while some of it is still unevaluated,
  extra offspring are made by pymoo's mating from the current parents (random sampling before the first
  generation) and join the generation; told rows that were never asked for join it too.
- pymoo's random state is the optimizer's own ``numpy.random.Generator`` (never a global seed).
- Constraints: pymoo sees one inequality ``G``: 0 feasible, 1 infeasible, 2 failed (NaN objectives), so
  survival ranks feasible by non-domination/crowding, then infeasible, then failed individuals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
from pymoo.core.mutation import Mutation
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.ux import UX
from pymoo.operators.sampling.rnd import IntegerRandomSampling

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers._checks import check_ask, check_float, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree

_G_FEASIBLE, _G_INFEASIBLE, _G_FAILED = 0.0, 1.0, 2.0


class ArchitectureProblem(Problem):
    """pymoo view of the space: 28 integer genes in ``[0, card - 1]``, ``n_obj`` objectives, one constraint.

    It evaluates nothing itself: :meth:`_evaluate` returns the results the runner told, which
    :class:`NSGA2` places in :attr:`results` just before pymoo's evaluator asks for them.
    """

    def __init__(self, n_obj: int, n_ieq_constr: int = 1) -> None:
        super().__init__(
            n_var=space.N_GENES,
            n_obj=n_obj,
            n_ieq_constr=n_ieq_constr,
            xl=np.zeros(space.N_GENES, dtype=np.int64),
            xu=space.CARDINALITIES - 1,
            vtype=int,
        )
        #: ``(X (k, 28), F (k, m), G (k,))`` to hand to pymoo's evaluator
        self.results: tuple[IntArray, FloatArray, FloatArray] | None = None

    def _evaluate(self, x: Any, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if self.results is None:
            raise RuntimeError(
                "ArchitectureProblem cannot evaluate architectures; NSGA2.tell() supplies results"
            )
        X, F, G = self.results
        if np.shape(x) != X.shape or not np.array_equal(np.asarray(x), X):
            raise RuntimeError("ArchitectureProblem: pymoo asked for results of rows that were not told")
        out["F"] = F
        if self.n_ieq_constr:
            out["G"] = G[:, None]


class CategoricalMutation(Mutation):
    """Each gene, with probability ``gene_prob``, is set to a uniformly drawn *different* value."""

    def __init__(self, gene_prob: float) -> None:
        super().__init__(prob=1.0)
        self.gene_prob = gene_prob

    def _do(self, problem: Any, X: Any, *args: Any, random_state: Any = None, **kwargs: Any) -> IntArray:
        X = np.asarray(X, dtype=np.int64)
        card = space.CARDINALITIES[None, :]
        mask = random_state.random(X.shape) < self.gene_prob
        shift = 1 + np.floor(random_state.random(X.shape) * (card - 1)).astype(np.int64)
        out: IntArray = np.where(mask, (X + shift) % card, X)
        return out


class NSGA2(Optimizer):
    """NSGA-II (pymoo) for 1..m objectives over the 28 categorical genes.

    Hyperparameters:
        population_size: parents kept by survival (default 50).
        n_offsprings: offspring per generation (default: ``population_size``).
        crossover_prob: probability that a mating does uniform crossover (default 0.9).
        mutation_prob: per-gene probability of a categorical mutation (default 1/28, one gene per child
            on average).
    """

    name = "nsga2"
    multi_objective = True

    @property
    def preferred_batch_size(self) -> int | None:
        """One generation of offspring."""
        return self.n_offsprings

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        population_size: int = 50,
        n_offsprings: int | None = None,
        crossover_prob: float = 0.9,
        mutation_prob: float = 1.0 / space.N_GENES,
    ) -> None:
        super().__init__(problem, rng)
        owner = type(self).__name__
        self.population_size = check_int(owner, "population_size", population_size, 2)
        self.n_offsprings = (
            self.population_size
            if n_offsprings is None
            else check_int(owner, "n_offsprings", n_offsprings, 1)
        )
        self.crossover_prob = check_float(owner, "crossover_prob", crossover_prob, 0.0, 1.0)
        self.mutation_prob = check_float(owner, "mutation_prob", mutation_prob, 0.0, 1.0)
        self._fill = np.asarray(problem.nadir, dtype=np.float64)  # stands in for NaN objectives of failures
        self._problem = self._pymoo_problem()
        self._algo: PymooNSGA2 | None = None  # built on first use (pymoo may print on construction)
        self._reset_generation()
        self._pending: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._setup()

    def _setup(self) -> None:
        """Hook for subclasses (the pymoo peers' replay log), called at the end of ``__init__``; builds
        nothing heavy (constructors have no side effects)."""

    # --- pymoo plumbing ---------------------------------------------------------------------------------
    def _pymoo_problem(self) -> ArchitectureProblem:
        """pymoo's view of the problem (hook: the pymoo peers change the objectives or constraints)."""
        return ArchitectureProblem(self.problem.n_obj)

    def _new_algorithm(self) -> Any:
        """The pymoo algorithm, not yet set up (hook for the pymoo peers of :mod:`optimizers.pymoo_peers`)."""
        return PymooNSGA2(
            pop_size=self.population_size,
            n_offsprings=self.n_offsprings,
            sampling=IntegerRandomSampling(),
            crossover=UX(prob=self.crossover_prob),
            mutation=CategoricalMutation(self.mutation_prob),
            eliminate_duplicates=True,
        )

    def _pymoo_values(self, F: FloatArray, fe: BoolArray, failed: BoolArray) -> tuple[FloatArray, FloatArray]:
        """What pymoo sees of told rows: objectives ``(n, m)`` (failures at the nadir) and ``G (n,)``."""
        G = np.where(failed, _G_FAILED, np.where(fe, _G_FEASIBLE, _G_INFEASIBLE))
        return np.where(failed[:, None], self._fill[None, :], F), G

    def _algorithm(self) -> PymooNSGA2:
        if self._algo is None:
            algo = self._new_algorithm()
            # seed=0 only avoids drawing OS entropy; the generator is replaced by ours right after
            algo.setup(self._problem, termination=NoTermination(), seed=0, verbose=False)
            algo.random_state = self.rng
            self._algo = algo
        return self._algo

    def _reset_generation(self) -> None:
        m = self._problem.n_obj
        self._gen_X: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._gen_F: FloatArray = np.zeros((0, m), dtype=np.float64)
        self._gen_G: FloatArray = np.zeros(0, dtype=np.float64)
        self._gen_told: BoolArray = np.zeros(0, dtype=bool)
        self._untold: dict[int, list[int]] = {}

    def _append_generation(self, X: IntArray, F: FloatArray, G: FloatArray, told: bool) -> None:
        start = self._gen_X.shape[0]
        self._gen_X = np.concatenate([self._gen_X, X])
        self._gen_F = np.concatenate([self._gen_F, F])
        self._gen_G = np.concatenate([self._gen_G, G])
        self._gen_told = np.concatenate([self._gen_told, np.full(X.shape[0], told)])
        if not told:
            for j, a in enumerate(space.arch_id(X).tolist()):
                self._untold.setdefault(a, []).append(start + j)

    def _advance(self) -> None:
        """Give pymoo the complete generation (survival) and clear it."""
        algo = self._algorithm()
        infills = Population.new("X", self._gen_X)
        self._problem.results = (self._gen_X, self._gen_F, self._gen_G)
        try:
            algo.evaluator.eval(self._problem, infills, algorithm=algo)
        finally:
            self._problem.results = None
        algo.tell(infills=infills)
        self._reset_generation()

    def _refill(self, need: int) -> None:
        """Put new rows into the pending queue: the next pymoo generation, or extras for this one."""
        algo = self._algorithm()
        told = int(self._gen_told.sum())
        full = self.n_offsprings if algo.is_initialized else self.population_size
        if not self._gen_told.all() and told >= full:
            # asynchronous callers always have rows out: a generation's worth is told, so the told rows go to
            # survival and the untold ones join the next generation (never the case for batch callers, who
            # tell every row before asking again)
            self._advance_told()
        if self._gen_told.all():
            if self._gen_X.shape[0]:
                self._advance()
            off = algo.ask()
            algo.termination.force_termination = False  # pymoo gives up when mating makes no new offspring
            if off is not None and len(off) > 0:
                self._pending = np.asarray(off.get("X"), dtype=np.int64)
                return
        self._pending = self._extras(need)

    def _extras(self, k: int) -> IntArray:
        """``k`` more offspring ``(k, 28)``, new to this generation (pymoo mating, or sampling at first)."""
        algo = self._algorithm()
        known = space.arch_id(self._gen_X)
        out = np.zeros((0, space.N_GENES), dtype=np.int64)
        for _ in range(5):
            if algo.is_initialized:
                off = algo.mating.do(
                    self._problem, algo.pop, k - out.shape[0], algorithm=algo, random_state=self.rng
                )
            else:
                off = algo.initialization.do(
                    self._problem, k - out.shape[0], algorithm=algo, random_state=self.rng
                )
            X = np.asarray(off.get("X"), dtype=np.int64).reshape(-1, space.N_GENES)
            X = X[~np.isin(space.arch_id(X), known)]
            out = np.concatenate([out, X])
            known = np.concatenate([known, space.arch_id(X)])
            if out.shape[0] >= k:
                return out[:k]
        return np.concatenate([out, space.sample(k - out.shape[0], self.rng)])

    # --- protocol ---------------------------------------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        """``n`` rows ``(n, 28)`` of pymoo's offspring (the first generation is pymoo's random sample)."""
        n = check_ask(type(self).__name__, n)
        chunks: list[IntArray] = []
        need = n
        while need > 0:
            if self._pending.shape[0] == 0:
                self._refill(need)
            take = min(need, self._pending.shape[0])
            chunk, self._pending = self._pending[:take], self._pending[take:]
            m = self._problem.n_obj
            self._append_generation(chunk, np.full((take, m), np.nan), np.full(take, np.nan), told=False)
            chunks.append(chunk)
            need -= take
        if not chunks:
            return np.zeros((0, space.N_GENES), dtype=np.int64)
        return np.concatenate(chunks)

    def _advance_told(self) -> None:
        """Give pymoo the told rows of the generation; its untold rows start the next one."""
        keep = self._gen_told
        carry = self._gen_X[~keep]
        self._gen_X, self._gen_F, self._gen_G = self._gen_X[keep], self._gen_F[keep], self._gen_G[keep]
        self._gen_told = self._gen_told[keep]
        self._advance()
        m = self.problem.n_obj
        nan_f, nan_g = np.full((len(carry), m), np.nan), np.full(len(carry), np.nan)
        self._append_generation(carry, nan_f, nan_g, told=False)

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """Store results; the generation goes to pymoo once all of its rows are told (at the next ask)."""
        X, F, fe, failed = check_tell(self, X, F, feasible)
        F, G = self._pymoo_values(F, fe, failed)
        unasked: list[int] = []
        for i, a in enumerate(space.arch_id(X).tolist()):
            slots = self._untold.get(a)
            if not slots:
                unasked.append(i)
                continue
            j = slots.pop(0)
            if not slots:
                del self._untold[a]
            self._gen_F[j] = F[i]
            self._gen_G[j] = G[i]
            self._gen_told[j] = True
        if unasked:
            self._append_generation(X[unasked], F[unasked], G[unasked], told=True)

    # --- state ------------------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "n_offsprings": self.n_offsprings,
            "crossover_prob": self.crossover_prob,
            "mutation_prob": self.mutation_prob,
        }

    def _state(self) -> StateTree:
        """pymoo's parents (X/F/G/rank/crowding) and counters, the pending and current-generation rows."""
        algo = self._algorithm()
        m = self.problem.n_obj
        initialized = bool(algo.is_initialized)
        if initialized and algo.pop is not None:
            pop = algo.pop
            rank_obj = [ind.get("rank") for ind in pop]
            crowd_obj = [ind.get("crowding") for ind in pop]
            has_rank = np.array([r is not None for r in rank_obj], dtype=bool)
            rank = np.array([-1 if r is None else int(r) for r in rank_obj], dtype=np.int64)
            crowding = np.array([np.nan if c is None else float(c) for c in crowd_obj], dtype=np.float64)
            pop_X = np.asarray(pop.get("X"), dtype=np.int64).reshape(-1, space.N_GENES)
            pop_F = np.asarray(pop.get("F"), dtype=np.float64).reshape(-1, m)
            pop_G = np.asarray(pop.get("G"), dtype=np.float64).reshape(-1)
        else:
            pop_X = np.zeros((0, space.N_GENES), dtype=np.int64)
            pop_F = np.zeros((0, m), dtype=np.float64)
            pop_G = np.zeros(0, dtype=np.float64)
            has_rank = np.zeros(0, dtype=bool)
            rank = np.zeros(0, dtype=np.int64)
            crowding = np.zeros(0, dtype=np.float64)
        return {
            "initialized": initialized,
            "n_iter": None if algo.n_iter is None else int(algo.n_iter),
            "n_eval": int(algo.evaluator.n_eval),
            "pop_X": pop_X,
            "pop_F": pop_F,
            "pop_G": pop_G,
            "pop_has_rank": has_rank,
            "pop_rank": rank,
            "pop_crowding": crowding,
            "pending_X": self._pending.copy(),
            "gen_X": self._gen_X.copy(),
            "gen_F": self._gen_F.copy(),
            "gen_G": self._gen_G.copy(),
            "gen_told": self._gen_told.copy(),
        }

    def _load_state(self, state: StateTree) -> None:
        """A fresh pymoo algorithm given the saved parents through its public attributes.

        pymoo has no public call that installs a population with its rank and crowding (its own checkpoints
        pickle the whole algorithm, and ``advance(infills=pop)`` would re-run survival and change them), so
        the parents go into ``pop`` with ``is_initialized``, ``n_iter`` and ``evaluator.n_eval`` set as
        pymoo's first ``advance`` leaves them. pymoo's incumbent ``opt``, which neither mating nor this
        adapter reads, stays unset until pymoo recomputes it at the next ``tell``.
        """
        m = self.problem.n_obj
        self._algo = None
        algo = self._algorithm()
        if state["initialized"]:
            pop_X = np.asarray(state["pop_X"], dtype=np.int64).reshape(-1, space.N_GENES)
            pop_F = np.asarray(state["pop_F"], dtype=np.float64).reshape(-1, m)
            pop_G = np.asarray(state["pop_G"], dtype=np.float64).reshape(-1, 1)
            pop = Population.new("X", pop_X, "F", pop_F, "G", pop_G)
            has_rank = np.asarray(state["pop_has_rank"], dtype=bool)
            rank = np.asarray(state["pop_rank"], dtype=np.int64)
            crowding = np.asarray(state["pop_crowding"], dtype=np.float64)
            for i, ind in enumerate(pop):
                ind.evaluated.update({"F", "G", "H"})
                if has_rank[i]:
                    ind.set("rank", int(rank[i]))
                    ind.set("crowding", np.float64(crowding[i]))
            algo.pop = pop
            algo.is_initialized = True
        if state["n_iter"] is not None:
            algo.n_iter = int(state["n_iter"])
        algo.evaluator.n_eval = int(state["n_eval"])
        self._pending = np.asarray(state["pending_X"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._reset_generation()
        gen_X = np.asarray(state["gen_X"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._gen_X = gen_X
        self._gen_F = np.asarray(state["gen_F"], dtype=np.float64).reshape(-1, m).copy()
        self._gen_G = np.asarray(state["gen_G"], dtype=np.float64).reshape(-1).copy()
        self._gen_told = np.asarray(state["gen_told"], dtype=bool).reshape(-1).copy()
        for j, a in enumerate(space.arch_id(gen_X).tolist()):
            if not self._gen_told[j]:
                self._untold.setdefault(a, []).append(j)
