"""Optuna's samplers as nasopt optimizers (peers for comparisons): TPE, NSGA-II, GP and random search.

Each adapter drives one in-memory Optuna study through Optuna's ask/tell API:

- the 28 genes are 28 ``CategoricalDistribution`` parameters (named by :func:`benchmark.space.gene_name`,
  choices ``0 .. card - 1``), passed to ``study.ask`` so the sampler proposes every gene;
- all objectives are minimised on the problem's fixed normalisation (:meth:`ProblemInfo.normalize`), the
  same box and reference point nasopt's report uses;
- a failed evaluation (NaN row) is told as ``TrialState.FAIL``; every other row gets the Optuna 5
  constraint ``nasopt_infeasible`` (1 infeasible, 0 feasible; Optuna's GP sampler needs it on every trial
  once one has it), which the TPE, NSGA-II and GP samplers use for their feasibility handling (random
  search ignores it);
- told rows are matched to asked trials by architecture (first asked first); a told row that was never
  asked becomes a finished trial (``study.add_trial``);
- the sampler's seed is drawn from the optimizer's Generator at the first ``ask``/``tell``.

**Resume.** Optuna does not persist sampler state, so a snapshot holds the Generator state at first use
and the log of every ask and tell (:mod:`optimizers.replay`); ``load_state`` builds a fresh study with
an identically seeded sampler and replays the log through it, checking every replayed proposal against the
saved one. The resumed adapter then proposes exactly what the uninterrupted one would have. Resuming costs
the sampler's ask time for the history so far (no evaluations).

Needs the optional dependency ``optuna>=5`` (``pip install 'nasopt[peers]'``). The first study sets the
``optuna`` logger to WARNING (Optuna otherwise logs one INFO line per finished trial).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, GPSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import Trial, TrialState, create_trial

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers._checks import check_ask, check_bool, check_float, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree
from optimizers.replay import ReplayLog

#: parameter name per gene
GENE_NAMES: tuple[str, ...] = tuple(space.gene_name(j) for j in range(space.N_GENES))
#: the search space as Optuna distributions
DISTRIBUTIONS: dict[str, BaseDistribution] = {
    name: CategoricalDistribution(tuple(range(int(card))))
    for name, card in zip(GENE_NAMES, space.CARDINALITIES.tolist(), strict=True)
}
_CONSTRAINT = "nasopt_infeasible"


class OptunaPeer(Optimizer):
    """Base of the Optuna adapters: a study, its ask/tell plumbing and replayed snapshots."""

    name = "optuna"
    multi_objective = True

    def __init__(self, problem: ProblemInfo, rng: np.random.Generator) -> None:
        super().__init__(problem, rng)
        self._reset()

    @abstractmethod
    def _sampler(self, seed: int) -> BaseSampler:
        """A fresh sampler seeded by ``seed``."""

    def _reset(self) -> None:
        """Forget the study and the log (as after construction)."""
        self._study: optuna.Study | None = None
        self._running: dict[int, list[Trial]] = {}
        self._log = ReplayLog(self.problem.n_obj, versions={"optuna": optuna.__version__})

    def _get_study(self) -> optuna.Study:
        if self._study is None:
            seed = int(self.rng.integers(0, 2**31 - 1))
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self._study = optuna.create_study(
                directions=["minimize"] * self.problem.n_obj, sampler=self._sampler(seed)
            )
        return self._study

    # --- protocol ---------------------------------------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        """``n`` trials of the sampler, as architectures ``(n, 28)``."""
        n = check_ask(type(self).__name__, n)
        self._log.begin(self.rng)
        rows: list[list[int]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = self._get_study()
            for _ in range(n):
                trial = study.ask(DISTRIBUTIONS)
                x = [int(trial.params[g]) for g in GENE_NAMES]
                rows.append(x)
                a = int(space.arch_id(np.asarray([x], dtype=np.int64))[0])
                self._running.setdefault(a, []).append(trial)
        X = np.asarray(rows, dtype=np.int64).reshape(n, space.N_GENES)
        self._log.record_ask(X)
        return X

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """Finish the matching trials (FAIL for NaN rows; a constraint for infeasible ones)."""
        X, F, fe, failed = check_tell(self, X, F, feasible)
        self._log.begin(self.rng)
        Fn = self.problem.normalize(F)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = self._get_study()
            for i, a in enumerate(space.arch_id(X).tolist()):
                values = [float(v) for v in Fn[i]]
                violation = 0.0 if fe[i] else 1.0
                queue = self._running.get(a)
                if queue:
                    trial = queue.pop(0)
                    if not queue:
                        del self._running[a]
                    if failed[i]:
                        study.tell(trial, state=TrialState.FAIL)
                        continue
                    trial.set_constraint(_CONSTRAINT, violation)
                    study.tell(trial, values)
                    continue
                study.add_trial(
                    create_trial(
                        state=TrialState.FAIL if failed[i] else TrialState.COMPLETE,
                        values=None if failed[i] else values,
                        params={g: int(v) for g, v in zip(GENE_NAMES, X[i].tolist(), strict=True)},
                        distributions=dict(DISTRIBUTIONS),
                        constraints=None if failed[i] else {_CONSTRAINT: violation},
                    )
                )
        self._log.record_tell(X, F, fe)

    # --- state ------------------------------------------------------------------------------------------
    def _state(self) -> StateTree:
        """The replay log (:meth:`optimizers.replay.ReplayLog.to_state`)."""
        return self._log.to_state()

    def _load_state(self, state: StateTree) -> None:
        """A fresh, identically seeded study with the saved ask/tell history replayed into it."""
        self._reset()
        self._log.replay(type(self).__name__, state, self.rng, self.ask, self.tell)


class OptunaTPE(OptunaPeer):
    """Optuna's multivariate TPE (``TPESampler(multivariate=True)``), constant liar for pending trials.

    Hyperparameters: ``n_startup_trials`` (10), ``n_ei_candidates`` (24), ``multivariate`` (True),
    ``group`` (False), ``constant_liar`` (True: trials asked but not yet told count as bad, so a batch
    spreads out).
    """

    name = "optuna_tpe"

    @property
    def preferred_batch_size(self) -> int | None:
        return 8

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        group: bool = False,
        constant_liar: bool = True,
    ) -> None:
        owner = type(self).__name__
        self.n_startup_trials = check_int(owner, "n_startup_trials", n_startup_trials, 0)
        self.n_ei_candidates = check_int(owner, "n_ei_candidates", n_ei_candidates, 1)
        self.multivariate = check_bool(owner, "multivariate", multivariate)
        self.group = check_bool(owner, "group", group)
        self.constant_liar = check_bool(owner, "constant_liar", constant_liar)
        super().__init__(problem, rng)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "n_startup_trials": self.n_startup_trials,
            "n_ei_candidates": self.n_ei_candidates,
            "multivariate": self.multivariate,
            "group": self.group,
            "constant_liar": self.constant_liar,
        }

    def _sampler(self, seed: int) -> BaseSampler:
        return TPESampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate,
            group=self.group,
            constant_liar=self.constant_liar,
        )


class OptunaNSGA2(OptunaPeer):
    """Optuna's NSGA-II (``NSGAIISampler``, uniform crossover for categorical parameters).

    Hyperparameters: ``population_size`` (50), ``mutation_prob`` (None = Optuna's ``1 / n_params``),
    ``crossover_prob`` (0.9), ``swapping_prob`` (0.5).
    """

    name = "optuna_nsga2"

    @property
    def preferred_batch_size(self) -> int | None:
        """One generation."""
        return self.population_size

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        population_size: int = 50,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
    ) -> None:
        owner = type(self).__name__
        self.population_size = check_int(owner, "population_size", population_size, 2)
        self.mutation_prob = (
            None if mutation_prob is None else check_float(owner, "mutation_prob", mutation_prob, 0.0, 1.0)
        )
        self.crossover_prob = check_float(owner, "crossover_prob", crossover_prob, 0.0, 1.0)
        self.swapping_prob = check_float(owner, "swapping_prob", swapping_prob, 0.0, 1.0)
        super().__init__(problem, rng)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "population_size": self.population_size,
            "mutation_prob": self.mutation_prob,
            "crossover_prob": self.crossover_prob,
            "swapping_prob": self.swapping_prob,
        }

    def _sampler(self, seed: int) -> BaseSampler:
        return NSGAIISampler(
            seed=seed,
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            swapping_prob=self.swapping_prob,
        )


class OptunaGP(OptunaPeer):
    """Optuna's GP sampler (``GPSampler``; log EHVI for several objectives). Sequential (batch 1): the
    sampler does not account for pending trials.

    Hyperparameters: ``n_startup_trials`` (10), ``deterministic_objective`` (None = True when the
    problem observes the ensemble mean, False for noisy evaluations).
    """

    name = "optuna_gp"

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        n_startup_trials: int = 10,
        deterministic_objective: bool | None = None,
    ) -> None:
        owner = type(self).__name__
        self.n_startup_trials = check_int(owner, "n_startup_trials", n_startup_trials, 0)
        self.deterministic_objective = (
            problem.eval_mode == "mean"
            if deterministic_objective is None
            else check_bool(owner, "deterministic_objective", deterministic_objective)
        )
        super().__init__(problem, rng)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "n_startup_trials": self.n_startup_trials,
            "deterministic_objective": self.deterministic_objective,
        }

    def _sampler(self, seed: int) -> BaseSampler:
        return GPSampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            deterministic_objective=self.deterministic_objective,
        )


class OptunaRandom(OptunaPeer):
    """Optuna's ``RandomSampler`` (uniform over each gene's choices; duplicates possible)."""

    name = "optuna_random"

    @property
    def preferred_batch_size(self) -> int | None:
        return 100

    def _sampler(self, seed: int) -> BaseSampler:
        return RandomSampler(seed=seed)


__all__ = [
    "DISTRIBUTIONS",
    "GENE_NAMES",
    "OptunaGP",
    "OptunaNSGA2",
    "OptunaPeer",
    "OptunaRandom",
    "OptunaTPE",
]
