"""Bayesian optimisation over the discrete NAS space with BoTorch and GPyTorch.

Loop per :meth:`BayesianOptimization.ask`:

1. **Initial design** -- the first ``n_init`` proposals are a balanced random design (every value of every
   gene appears equally often, columns shuffled independently).
2. **Models** (:mod:`optimizers.bo.models`) -- one exact GP per objective (``ModelListGP`` of
   ``SingleTaskGP``, ``Standardize`` outcome transform, float64) on an encoding of the genes (default
   ``"ordinal"``: real gene values scaled to [0, 1], RBF-ARD). Objectives the problem marks as log scale
   (``ProblemInfo.log_scale``: throughput, latency) are modelled on a log scale (``log_device_targets``).
   When the history holds both feasible and infeasible (or failed) rows, one more GP models feasibility as
   a ``+1/-1`` outcome with a floored noise variance. Hyper-parameters are fitted by exact marginal
   likelihood (``fit_gpytorch_mll``, L-BFGS-B) warm-started from the previous fit; ``max_history`` caps
   the rows used (:mod:`optimizers.bo.history`).
3. **Acquisition** (:mod:`optimizers.bo.acquisition`) -- ``qLogNoisyExpectedHypervolumeImprovement`` for
   two or more objectives, ``qLogNoisyExpectedImprovement`` for one; the feasibility GP enters as a
   constraint (feasibility-weighted improvement). Large candidate pools are first ranked by the cheaper
   ``qLogExpectedHypervolumeImprovement`` / ``qLogExpectedImprovement``. Quasi-MC samplers are seeded from
   the optimizer's Generator.
4. **Discrete search** (:mod:`optimizers.bo.candidates`) -- random candidates plus one-gene, two-gene and
   whole-block moves from the Pareto set (or best points), hill climbing over one-gene neighbourhoods,
   then sequential greedy batch selection with pending points. Evaluated and pending architectures are
   never proposed.

Determinism: given the same Generator state, data and stored hyper-parameters, proposals are identical
(L-BFGS-B from the stored starting point, a single fitting attempt, seeded samplers, numpy candidate draws).
The measurements behind the defaults are in ``optimizers/bo/README.md``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models import ModelListGP

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers._checks import check_ask, check_bool, check_float, check_int, check_state, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree
from optimizers.bo.acquisition import (
    OutcomeConstraint,
    OutcomeSpace,
    PickAcquisition,
    make_acquisition,
    make_believer_factory,
    make_parego_factory,
)
from optimizers.bo.candidates import SearchSettings, balanced_design, optimise_discrete, random_unseen
from optimizers.bo.history import select_anchors, select_baseline, select_history, select_informative
from optimizers.bo.models import DTYPE, GPParams, check_encoding, encode, fit_model_list
from optimizers.bo.timing import AskTimes

_FEAS_KEY = "feasibility"
#: the scaled mode's batch pickers (``scaled_batch``)
SCALED_BATCH = ("nehvi", "parego", "believer")
#: settings added after BO states were first saved; a saved state without one was written by an older
#: version, which behaved as these settings do at or below ``scale_above`` (:meth:`load_state`)
LATER_SETTINGS = (
    "scale_above",
    "scaled_history",
    "scaled_refit_every",
    "max_front",
    "scaled_mc_samples",
    "scaled_batch",
    "scaled_greedy_pool",
    "screen_front",
    "constraint_models",
)
#: noise-variance floor (standardised units) of the +-1 feasibility GP: it then generalises instead of
#: interpolating the step, and is less over-confident next to feasible points (README.md: measurements)
FEASIBILITY_NOISE_FLOOR = 0.5
#: reported constraint values needed before they are modelled (fewer: the +-1 feasibility GP)
MIN_CONSTRAINT_ROWS = 4
_CONSTRAINT_TEXT = re.compile(r"^\s*(\S+)\s*(>=|<=)\s*(\S+)\s*$")


class FittedModel(NamedTuple):
    """One model build: the GPs, which output is the feasibility GP (None without one), the outcome
    constraints on the constraint-value GPs (:func:`optimizers.bo.acquisition.constraint_functions`) and
    the baseline genes ``(b, 28)`` of the acquisition."""

    model: ModelListGP
    feas_index: int | None
    outcome_constraints: list[OutcomeConstraint]
    X_base: IntArray


def parse_constraints(texts: Sequence[str]) -> list[tuple[str, str, float]]:
    """``ProblemInfo.constraints`` (``"throughput_a100 >= 10000"``) as ``(target, op, bound)``; empty if any
    cannot be read (the feasibility labels are modelled then)."""
    out = []
    for text in texts:
        m = _CONSTRAINT_TEXT.match(str(text))
        if m is None:
            return []
        try:
            out.append((m.group(1), m.group(2), float(m.group(3))))
        except ValueError:
            return []
    return out


class BayesianOptimization(Optimizer):
    """GP-based BO (BoTorch qLogNEHVI / qLogNEI) with local search over the architecture space.

    Args:
        problem: the problem (objectives, normalisation, reference point, log-scale objectives).
        rng: the only source of randomness.
        n_init: size of the initial balanced random design.
        q: preferred batch size (the runner's default for ``ask``); any ``n`` works.
        encoding: GP input encoding, one of ``ordinal``, ``onehot``, ``categorical``, ``mixed``.
        log_device_targets: model the problem's log-scale objectives (throughput, latency) on a log scale.
        max_history: most observations used to fit the GPs (best half by non-dominated rank + most recent).
        fit_maxiter: L-BFGS-B iterations per hyper-parameter fit.
        refit_every: re-optimise hyper-parameters every this many model builds (otherwise only condition
            on the new data with the stored hyper-parameters).
        scale_above: observations above which the *scaled mode* applies (long runs; at or below it the
            optimizer behaves exactly as without the mode): the GPs are fitted on ``scaled_history`` rows
            chosen by :func:`optimizers.bo.history.select_informative` (the best ranks, their neighbourhood
            in genes, an evenly spaced remainder), hyper-parameters are re-optimised every
            ``scaled_refit_every`` builds (warm-started, conditioned on new data in between), and the
            screening acquisition measures improvement against at most ``max_front`` evenly spread points of
            the observed front (its box decomposition grows with the front).
        screen_front: below ``scale_above`` too, the screening acquisition measures improvement against at
            most this many evenly spread points of the observed front (several objectives; None = all).
            Its cost grows with the front's box decomposition, and BO's fronts grow fast: 86 points at 300
            evaluations, 193 at 600 on acc_a100, where screening took 3.6 s of a 7.6 s ask (README.md).
        scaled_history: training rows in the scaled mode.
        scaled_refit_every: ``refit_every`` in the scaled mode.
        max_front: incumbent front points of the screening acquisition in the scaled mode (several
            objectives).
        scaled_mc_samples: at most this many ``mc_samples`` in the scaled mode (the greedy batch step).
        scaled_batch: how the scaled mode picks the batch among the best screened candidates with several
            objectives: ``"nehvi"`` (sequential greedy qLogNEHVI, as below ``scale_above``), ``"parego"``
            (qLogNParEGO, new random Chebyshev weights per pick) or ``"believer"`` (per pick, qLogEHVI
            against the front plus the posterior means of the pending and earlier picks); the last two
            need no per-sample box decompositions. None = ``"believer"`` for three or more objectives
            (README.md: 6 s -> 1.6 s per ask at 1,000 observations, the hypervolume of ``"nehvi"``),
            ``"nehvi"`` for two.
        scaled_greedy_pool: ``greedy_pool`` in the scaled mode; None = at most 128 for one objective (the
            greedy qLogNEI over 512 candidates: 3 s per batch at 1,000 observations), else ``greedy_pool``.
        warm_start: start each fit from the previous hyper-parameters.
        mc_samples: quasi-MC posterior samples of the batch acquisition function (qLogNEHVI / qLogNEI);
            None = 128, or 32 for three or more objectives (their per-sample box decompositions dominate).
        screen_samples: quasi-MC samples of the screening acquisition (qLogEHVI / qLogEI) that ranks the
            candidate pool; None = 16 for two objectives, 8 for three or more, ``mc_samples`` for one
            (cheap, and a precise ranking matters there).
        max_baseline: most incumbent points in the noisy-improvement baseline (see
            :func:`optimizers.bo.history.select_baseline`); None = 32, or 16 for three or more objectives.
        n_anchors: evaluated architectures (Pareto set / best) whose neighbourhoods are searched.
        n_random: random candidates scored per ask.
        n_mutants: two-gene mutants per anchor.
        n_block_anchors: best anchors whose block neighbourhoods (one whole block set to each of its other
            settings, 259 architectures) are scored too; not used while a feasibility model is active (far
            jumps have uncertain feasibility that the feasibility weight under-penalises).
        local_steps: hill-climbing rounds over one-gene neighbourhoods.
        local_top: candidates expanded per hill-climbing round.
        greedy_pool: best-screened candidates scored with qLogNEHVI / qLogNEI during sequential greedy batch
            selection; None = 64 for several objectives, 512 for one.
        constraint_models: with constraints, model each constraint's value (the natural value of its target
            the runner reports with ``tell(..., constraint_values=)``, on a log scale for positive targets)
            with its own GP and weigh improvement by the probability that every bound holds, instead of one
            GP on the +-1 feasibility labels. The labels' GP generalises poorly from a boundary it only sees
            as a step: on acc_constrained_a100 1 of 8 seeds proposed 0 feasible architectures among 250
            (optimizers/bo/README.md). Without reported values (a caller that passes only ``feasible``) the
            labels' GP is used either way.
        constraint_eta: temperature of the feasibility weight (smaller = sharper).
        feasibility_margin: a posterior sample counts as feasible where the +-1 feasibility latent exceeds
            this; 0.5 instead of the labels' midpoint 0 keeps proposals away from the boundary that the
            boolean labels locate poorly.
    """

    name = "bo"
    multi_objective = True
    #: the runner reports the constraint targets' values to ``tell`` (``constraint_values=``)
    uses_constraint_values = True

    @property
    def preferred_batch_size(self) -> int | None:
        """One q-batch."""
        return self.q

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        n_init: int = 20,
        q: int = 8,
        encoding: str = "ordinal",
        log_device_targets: bool = True,
        max_history: int = 600,
        fit_maxiter: int = 200,
        refit_every: int = 1,
        scale_above: int = 600,
        scaled_history: int = 250,
        scaled_refit_every: int = 5,
        max_front: int = 32,
        scaled_mc_samples: int = 64,
        scaled_batch: str | None = None,
        scaled_greedy_pool: int | None = None,
        screen_front: int | None = 64,
        warm_start: bool = True,
        mc_samples: int | None = None,
        screen_samples: int | None = None,
        max_baseline: int | None = None,
        n_anchors: int = 20,
        n_random: int = 1000,
        n_mutants: int = 10,
        n_block_anchors: int = 5,
        local_steps: int = 3,
        local_top: int = 10,
        greedy_pool: int | None = None,
        constraint_models: bool = True,
        constraint_eta: float = 0.01,
        feasibility_margin: float = 0.5,
    ) -> None:
        super().__init__(problem, rng)
        owner = type(self).__name__
        single = problem.n_obj == 1
        many = problem.n_obj >= 3  # hypervolume box decompositions per MC sample dominate the cost
        self.n_init = check_int(owner, "n_init", n_init, 1)
        self.q = check_int(owner, "q", q, 1, 256)
        self.encoding = check_encoding(encoding, owner)
        self.log_device_targets = check_bool(owner, "log_device_targets", log_device_targets)
        self.max_history = check_int(owner, "max_history", max_history, 10)
        self.fit_maxiter = check_int(owner, "fit_maxiter", fit_maxiter, 0)
        self.refit_every = check_int(owner, "refit_every", refit_every, 1)
        self.scale_above = check_int(owner, "scale_above", scale_above, 1)
        self.scaled_history = check_int(owner, "scaled_history", scaled_history, 10)
        self.scaled_refit_every = check_int(owner, "scaled_refit_every", scaled_refit_every, 1)
        self.max_front = check_int(owner, "max_front", max_front, 1)
        self.scaled_mc_samples = check_int(owner, "scaled_mc_samples", scaled_mc_samples, 1)
        if scaled_batch is None:
            scaled_batch = "believer" if many else "nehvi"
        if scaled_batch not in SCALED_BATCH:
            raise ConfigurationError(
                f"{owner}: scaled_batch={scaled_batch!r} is not one of {', '.join(SCALED_BATCH)}; "
                "set optimizer.params.scaled_batch to one of them (or leave it unset)"
            )
        self.scaled_batch = scaled_batch
        self.screen_front = (
            None if screen_front is None else check_int(owner, "screen_front", screen_front, 1)
        )
        self.warm_start = check_bool(owner, "warm_start", warm_start)
        if mc_samples is None:
            mc_samples = 32 if many else 128
        self.mc_samples = check_int(owner, "mc_samples", mc_samples, 1)
        if screen_samples is None:
            screen_samples = self.mc_samples if single else (8 if many else 16)
        self.screen_samples = check_int(owner, "screen_samples", screen_samples, 1)
        self.max_baseline = check_int(
            owner, "max_baseline", (16 if many else 32) if max_baseline is None else max_baseline, 1
        )
        self.n_anchors = check_int(owner, "n_anchors", n_anchors, 0)
        self.search = SearchSettings(
            n_random=check_int(owner, "n_random", n_random, 0),
            n_mutants=check_int(owner, "n_mutants", n_mutants, 0),
            n_block_anchors=check_int(owner, "n_block_anchors", n_block_anchors, 0),
            local_steps=check_int(owner, "local_steps", local_steps, 0),
            local_top=check_int(owner, "local_top", local_top, 1),
            greedy_pool=check_int(
                owner, "greedy_pool", (512 if single else 64) if greedy_pool is None else greedy_pool, 1
            ),
        )
        self.scaled_greedy_pool = check_int(
            owner,
            "scaled_greedy_pool",
            (min(128, self.search.greedy_pool) if single else self.search.greedy_pool)
            if scaled_greedy_pool is None
            else scaled_greedy_pool,
            1,
        )
        self.constraint_models = check_bool(owner, "constraint_models", constraint_models)
        self._bounds = parse_constraints(problem.constraints)
        self.constraint_eta = check_float(owner, "constraint_eta", constraint_eta, 1e-6, 10.0)
        self.feasibility_margin = check_float(owner, "feasibility_margin", feasibility_margin, -1.0, 1.0)
        log = tuple(self.log_device_targets and problem.is_log_scale(i) for i in range(problem.n_obj))
        self.outcomes = OutcomeSpace(problem.ideal, problem.nadir, problem.maximize, log)
        self._X: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._F: FloatArray = np.zeros((0, problem.n_obj), dtype=np.float64)
        self._feasible: BoolArray = np.zeros(0, dtype=bool)
        #: reported constraint values ``(n, n_constraints)``, natural units; NaN where none was reported
        self._C: FloatArray = np.zeros((0, len(self._bounds)), dtype=np.float64)
        self._ids: set[int] = set()
        self._pending: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._design: IntArray | None = None
        self._design_pos = 0
        self._gp_params: dict[str, GPParams] = {}
        self._n_builds = 0
        #: timing breakdown of the last ask (for experiments/perf/bo_speed.py)
        self.last_times = AskTimes()

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor settings in effect (``None`` defaults resolved), JSON scalars by keyword."""
        s = self.search
        return {
            "n_init": self.n_init,
            "q": self.q,
            "encoding": self.encoding,
            "log_device_targets": self.log_device_targets,
            "max_history": self.max_history,
            "fit_maxiter": self.fit_maxiter,
            "refit_every": self.refit_every,
            "scale_above": self.scale_above,
            "scaled_history": self.scaled_history,
            "scaled_refit_every": self.scaled_refit_every,
            "max_front": self.max_front,
            "scaled_mc_samples": self.scaled_mc_samples,
            "scaled_batch": self.scaled_batch,
            "scaled_greedy_pool": self.scaled_greedy_pool,
            "screen_front": self.screen_front,
            "warm_start": self.warm_start,
            "mc_samples": self.mc_samples,
            "screen_samples": self.screen_samples,
            "max_baseline": self.max_baseline,
            "n_anchors": self.n_anchors,
            "n_random": s.n_random,
            "n_mutants": s.n_mutants,
            "n_block_anchors": s.n_block_anchors,
            "local_steps": s.local_steps,
            "local_top": s.local_top,
            "greedy_pool": s.greedy_pool,
            "constraint_models": self.constraint_models,
            "constraint_eta": self.constraint_eta,
            "feasibility_margin": self.feasibility_margin,
        }

    # -- protocol -----------------------------------------------------------------------------------------
    def ask(self, n: int) -> IntArray:
        n = check_ask(type(self).__name__, n)
        self.last_times = AskTimes()
        exclude = set(self._ids)
        if self._pending.shape[0]:
            exclude.update(space.arch_id(self._pending).tolist())
        parts: list[IntArray] = []
        # initial design: while fewer than n_init architectures are evaluated or pending
        known = self._X.shape[0] + self._pending.shape[0]
        if self._design is None and known < self.n_init:
            self._design = balanced_design(self.n_init, self.rng)
        while (
            self._design is not None and self._design_pos < self.n_init
            and known < self.n_init and len(parts) < n
        ):
            known += 1
            x = self._design[self._design_pos : self._design_pos + 1]
            self._design_pos += 1
            a = int(space.arch_id(x)[0])
            if a not in exclude:
                exclude.add(a)
                parts.append(x)
        k = n - sum(p.shape[0] for p in parts)
        if k > 0:
            pending = np.concatenate([self._pending, *parts]) if parts else self._pending
            parts.append(self._propose(k, exclude, pending))
        out: IntArray = (
            np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, space.N_GENES), dtype=np.int64)
        )
        self._pending = np.concatenate([self._pending, out])
        return out

    def tell(
        self,
        X: IntArray,
        F: FloatArray,
        feasible: BoolArray | None = None,
        constraint_values: FloatArray | None = None,
    ) -> None:
        """As :meth:`Optimizer.tell`, plus optionally the natural values ``(n, n_constraints)`` of the
        problem's constraint targets, in the order of ``problem.constraints`` (NaN: not known)."""
        X, F, fe, _failed = check_tell(self, X, F, feasible)
        C = np.full((X.shape[0], len(self._bounds)), np.nan)
        if constraint_values is not None and self._bounds:
            given = np.asarray(constraint_values, dtype=np.float64)
            if given.shape != C.shape:
                raise ValueError(f"tell(): constraint_values must have shape {C.shape}, got {given.shape}")
            C = given.copy()
        self._C = np.concatenate([self._C, C])
        self._X = np.concatenate([self._X, X])
        self._F = np.concatenate([self._F, F])
        self._feasible = np.concatenate([self._feasible, fe])
        ids = space.arch_id(X)
        self._ids.update(ids.tolist())
        if self._pending.shape[0]:
            self._pending = self._pending[~np.isin(space.arch_id(self._pending), ids)]

    def observations(self) -> tuple[IntArray, FloatArray, BoolArray]:
        """Copies of everything told: ``X (n, 28)``, internal ``F (n, m)`` (NaN rows: failed) and
        ``feasible (n,)``."""
        return self._X.copy(), self._F.copy(), self._feasible.copy()

    def load_state(self, state: StateTree) -> None:
        """As :meth:`Optimizer.load_state`; a state saved by an older version, without some of
        :data:`LATER_SETTINGS` in its hyperparameters, takes this optimizer's values for them (the older
        version had no scaled mode, and that mode changes nothing at or below ``scale_above``
        observations), so the run continues as one started with this version would."""
        saved = state.get("hyperparameters") if isinstance(state, dict) else None
        if isinstance(saved, dict):
            now = self.hyperparameters()
            missing = {k: now[k] for k in LATER_SETTINGS if k not in saved}
            if missing:
                state = {**state, "hyperparameters": {**saved, **missing}}
        super().load_state(state)

    def _state(self) -> StateTree:
        """The data, pending batch, design position and fitted GP hyper-parameters (see :meth:`state`)."""
        return {
            "problem": self._problem_key(),
            "X": self._X.copy(),
            "F": self._F.copy(),
            "feasible": self._feasible.copy(),
            "constraint_values": self._C.copy(),
            "pending": self._pending.copy(),
            "design": None if self._design is None else self._design.copy(),
            "design_pos": int(self._design_pos),
            "n_builds": int(self._n_builds),
            "gp_params": {k: {n: v.copy() for n, v in p.items()} for k, p in self._gp_params.items()},
        }

    def _load_state(self, state: StateTree) -> None:
        """Restore what :meth:`_state` saved; refuses a state saved for another problem."""
        check_state(type(self).__name__, state.get("problem"), self._problem_key())
        self._X = np.asarray(state["X"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._F = np.asarray(state["F"], dtype=np.float64).reshape(-1, self.problem.n_obj)
        self._feasible = np.asarray(state["feasible"], dtype=bool).reshape(-1)
        saved_c = state.get("constraint_values")  # None: saved before constraint values were kept
        self._C = (
            np.full((self._X.shape[0], len(self._bounds)), np.nan)
            if saved_c is None
            else np.asarray(saved_c, dtype=np.float64).reshape(self._X.shape[0], len(self._bounds))
        )
        self._ids = set(space.arch_id(self._X).tolist()) if self._X.shape[0] else set()
        self._pending = np.asarray(state["pending"], dtype=np.int64).reshape(-1, space.N_GENES)
        design = state.get("design")
        self._design = (
            None if design is None else np.asarray(design, dtype=np.int64).reshape(-1, space.N_GENES)
        )
        self._design_pos = int(state["design_pos"])
        self._n_builds = int(state["n_builds"])
        self._gp_params = {
            str(k): {str(n): np.asarray(v, dtype=np.float64) for n, v in p.items()}
            for k, p in state["gp_params"].items()
        }

    # -- internals ----------------------------------------------------------------------------------------
    def _problem_key(self) -> dict[str, Any]:
        """What a saved state must agree on besides the hyper-parameters: the problem and its model space."""
        return {"name": self.problem.name, "n_obj": self.problem.n_obj, "log": list(self.outcomes.log)}

    @property
    def scaled(self) -> bool:
        """Whether the scaled mode applies (more than ``scale_above`` observations)."""
        return self._X.shape[0] > self.scale_above

    def _history(self) -> tuple[IntArray, FloatArray, BoolArray]:
        """Rows used for fitting: all, or ``max_history`` of them (best half by rank + the most recent);
        in the scaled mode ``scaled_history`` rows of :func:`select_informative`."""
        keep = self._history_rows()
        return self._X[keep], self._F[keep], self._feasible[keep]

    def _history_rows(self) -> BoolArray:
        """The ``(n,)`` mask of :meth:`_history`."""
        F_norm = self.problem.normalize(self._F)
        if self.scaled:
            return select_informative(self._X, F_norm, self._feasible, self.scaled_history)
        return select_history(F_norm, self._feasible, self.max_history)

    def _propose(self, n: int, exclude: set[int], pending: IntArray) -> IntArray:
        """``n`` BO proposals (random while there is nothing to model)."""
        rows = self._history_rows()
        X, F, fe, C = self._X[rows], self._F[rows], self._feasible[rows], self._C[rows]
        ok: BoolArray = np.asarray(~np.isnan(F).any(axis=1), dtype=bool)
        if ok.sum() < 2 or not (ok & fe).any():
            return random_unseen(n, exclude, self.rng)
        times = self.last_times
        mc_samples = min(self.mc_samples, self.scaled_mc_samples) if self.scaled else self.mc_samples
        with times.phase("fit"):
            outcomes = self.outcomes.for_data(F[ok])
            model, feas_index, cons, X_base = self._build_model(X, F, fe, ok, outcomes, C)
        times.n_train = int(X.shape[0])
        seed = int(self.rng.integers(0, 2**31 - 1))
        good = ok & fe
        F_good = self.problem.normalize(F[good])
        front_cap = self.max_front if self.scaled else None
        if self.screen_front is not None:
            front_cap = self.screen_front if front_cap is None else min(front_cap, self.screen_front)
        if front_cap is not None and self.problem.n_obj > 1:  # thinned: the screening's box decomposition
            F_good = F_good[select_baseline(F_good, np.ones(len(F_good), dtype=bool), front_cap)]
        Y_inc = torch.from_numpy(-F_good).to(DTYPE)
        own_picks = self.scaled and self.problem.n_obj > 1 and self.scaled_batch != "nehvi"
        X_base_enc = encode(X_base, self.encoding)
        X_pend_enc = encode(pending, self.encoding) if pending.shape[0] else None
        constrained = feas_index is not None or bool(cons)
        search = self.search if not constrained else replace(self.search, n_block_anchors=0)
        if self.scaled:
            search = replace(search, greedy_pool=self.scaled_greedy_pool)
        with warnings.catch_warnings():
            # with a feasibility margin some posterior samples call every incumbent infeasible; BoTorch then
            # measures improvement from the lowest objective bound for them (by design) and warns each time
            warnings.filterwarnings("ignore", message="When all training points are infeasible")
            with times.phase("acquisition"):
                screen, final = make_acquisition(
                    model,
                    outcomes,
                    X_base_enc,
                    Y_inc,
                    self.problem.ref_point,
                    feasibility_index=feas_index,
                    outcome_constraints=cons,
                    mc_samples=mc_samples,
                    screen_samples=self.screen_samples,
                    seed=seed,
                    eta=self.constraint_eta,
                    margin=self.feasibility_margin,
                    X_pending=X_pend_enc,
                    with_final=not own_picks,
                )
            picker: PickAcquisition | None = None
            if self.scaled and self.problem.n_obj > 1 and self.scaled_batch == "parego":
                factory = make_parego_factory(
                    model,
                    outcomes,
                    X_base_enc,
                    feasibility_index=feas_index,
                    outcome_constraints=cons,
                    mc_samples=mc_samples,
                    seed=seed,
                    eta=self.constraint_eta,
                    margin=self.feasibility_margin,
                    X_pending=X_pend_enc,
                )
                m, rng = self.problem.n_obj, self.rng

                def parego_pick(extra: torch.Tensor | None) -> AcquisitionFunction:  # new weights per pick
                    return factory(torch.from_numpy(rng.dirichlet(np.ones(m))), extra)

                picker = parego_pick

            elif self.scaled and self.problem.n_obj > 1 and self.scaled_batch == "believer":
                picker = make_believer_factory(
                    model,
                    outcomes,
                    Y_inc,
                    self.problem.ref_point,
                    feasibility_index=feas_index,
                    outcome_constraints=cons,
                    samples=mc_samples,
                    seed=seed,
                    eta=self.constraint_eta,
                    margin=self.feasibility_margin,
                    X_pending=X_pend_enc,
                )
            anchors = select_anchors(X, self.problem.normalize(F), fe, self.n_anchors)
            out = optimise_discrete(
                screen,
                final,
                lambda Z: encode(Z, self.encoding),
                n,
                anchors,
                exclude,
                self.rng,
                search,
                times=times,
                picker=picker,
            )
        exclude.update(space.arch_id(out).tolist())
        return out

    def _build_model(
        self,
        X: IntArray,
        F: FloatArray,
        fe: BoolArray,
        ok: BoolArray,
        outcomes: OutcomeSpace,
        C: FloatArray | None = None,
    ) -> FittedModel:
        """Fit the GPs: the :class:`FittedModel` of this history.

        With ``constraint_models`` and reported constraint values ``C (n, c)`` for at least
        :data:`MIN_CONSTRAINT_ROWS` rows, one GP per constraint value follows the objectives (their
        constraints in ``outcome_constraints``) and there is no feasibility GP (index None)."""
        m = self.problem.n_obj
        Xo = X[ok]
        Z = outcomes.to_model(F[ok])
        keys = [f"objective{i}" for i in range(m)]
        ys = [torch.from_numpy(np.ascontiguousarray(Z[:, i : i + 1])).to(DTYPE) for i in range(m)]
        train_X = encode(Xo, self.encoding)
        use_feas = bool(fe.any() and (~fe).any())
        constraints: list[OutcomeConstraint] = []
        known = np.zeros(len(X), dtype=bool) if C is None or not C.shape[1] else np.isfinite(C).all(axis=1)
        use_values = (
            self.constraint_models and bool(self._bounds) and int(known.sum()) >= MIN_CONSTRAINT_ROWS
        )
        every = self.scaled_refit_every if self.scaled else self.refit_every
        refit = self._n_builds % every == 0 or not self._gp_params
        warm = [self._gp_params.get(k) if self.warm_start else None for k in keys]
        model_obj, params = fit_model_list(train_X, ys, self.encoding, warm, self.fit_maxiter, fit=refit)
        models: list[Any] = list(model_obj.models)
        feas_index: int | None = None
        if use_values:
            assert C is not None
            for j, (_target, op, bound) in enumerate(self._bounds):
                v = C[known, j]
                log = bool((v > 0).all() and bound > 0)  # device targets: modelled on a log scale
                y = np.log(v) if log else v
                key = f"constraint{j}"
                cmodel, cparams = fit_model_list(
                    encode(X[known], self.encoding),
                    [torch.from_numpy(np.ascontiguousarray(y[:, None])).to(DTYPE)],
                    self.encoding,
                    [self._gp_params.get(key) if self.warm_start else None],
                    self.fit_maxiter,
                    fit=refit or key not in self._gp_params,
                )
                models.append(cmodel.models[0])
                keys.append(key)
                params.append(cparams[0])
                b = float(np.log(bound)) if log else float(bound)
                # the violation in units of the values' spread, so the feasibility weight's temperature
                # (constraint_eta) means the same for every constraint
                scale = float(np.std(y)) if np.std(y) > 1e-9 else 1.0
                constraints.append((len(models) - 1, b, (-1.0 if op == ">=" else 1.0) / scale))
        elif use_feas:
            y_feas = torch.from_numpy(np.where(fe, 1.0, -1.0)[:, None]).to(DTYPE)
            fwarm = [self._gp_params.get(_FEAS_KEY) if self.warm_start else None]
            refit_f = refit or _FEAS_KEY not in self._gp_params
            feas_model, fparams = fit_model_list(
                encode(X, self.encoding),
                [y_feas],
                self.encoding,
                fwarm,
                self.fit_maxiter,
                fit=refit_f,
                noise_floor=FEASIBILITY_NOISE_FLOOR,
            )
            models.append(feas_model.models[0])
            keys.append(_FEAS_KEY)
            params.append(fparams[0])
            feas_index = m
        self._gp_params.update(dict(zip(keys, params, strict=True)))
        self._n_builds += 1
        self.last_times.refit = refit
        model = ModelListGP(*models)
        model.eval()
        base = select_baseline(self.problem.normalize(F[ok]), fe[ok], self.max_baseline)
        return FittedModel(model, feas_index, constraints, Xo[base])


__all__ = [
    "FEASIBILITY_NOISE_FLOOR",
    "LATER_SETTINGS",
    "MIN_CONSTRAINT_ROWS",
    "SCALED_BATCH",
    "BayesianOptimization",
    "parse_constraints",
]
