"""Bayesian optimisation over the discrete NAS space with BoTorch and GPyTorch.

Loop per :meth:`BayesianOptimization.ask`:

1. **Initial design** -- the first ``n_init`` proposals are a balanced random design (every value of every
   gene appears equally often, columns shuffled independently).
2. **Models** -- one exact GP per objective (``ModelListGP`` of ``SingleTaskGP``, ``Standardize`` outcome
   transform, float64) on an encoding of the genes (default ``"ordinal"``: real gene values scaled to
   [0, 1], RBF-ARD; see :mod:`optimizers.bo_models` and ``experiments/perf/bo_speed.py --encodings`` for the
   measurements behind the choice). Throughput and latency objectives are modelled on a log scale
   (``log_device_targets``). When the history holds both feasible and infeasible (or failed) rows, one more
   GP models feasibility as a ``+1/-1`` outcome (noise variance floored at 0.2 so it generalises instead
   of interpolating the step). Hyper-parameters are fitted by exact marginal likelihood
   (``fit_gpytorch_mll``, L-BFGS-B) warm-started from the previous fit; ``max_history`` caps the rows used.
3. **Acquisition** -- ``qLogNoisyExpectedHypervolumeImprovement`` for two or more objectives (reference
   point ``-ref_point`` in the negated normalised space), ``qLogNoisyExpectedImprovement`` for one; the
   feasibility GP enters as a constraint (feasibility-weighted improvement). Large candidate pools are
   first ranked by the cheaper ``qLogExpectedHypervolumeImprovement`` / ``qLogExpectedImprovement`` on
   the observed incumbents. Quasi-MC samplers are seeded from the optimizer's Generator.
4. **Discrete search** -- random candidates plus one-gene, two-gene and whole-block moves from the Pareto
   set (or best points), hill climbing over one-step neighbourhoods, then sequential greedy batch selection
   with pending points (see :func:`optimizers.bo_acquisition.optimise_discrete`). Evaluated and pending
   architectures are never proposed.

Determinism: given the same Generator state, data and stored hyper-parameters, proposals are identical
(L-BFGS-B from the stored starting point, a single fitting attempt, seeded samplers, numpy candidate draws).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from benchmark import space
from benchmark.targets import TARGETS
from optimizers._pareto import check_ask, check_bool, check_float, check_int, check_state, check_tell
from optimizers.base import BoolArray, FloatArray, IntArray, Optimizer, ProblemInfo, StateTree
from optimizers.bo_acquisition import (
    OutcomeSpace,
    SearchSettings,
    SearchTimes,
    make_acquisition,
    optimise_discrete,
)
from optimizers.bo_models import DTYPE, ENCODINGS, GPParams, encode, fit_model_list

_NDS = NonDominatedSorting()
_FEAS_KEY = "feasibility"
#: noise-variance floor of the +-1 feasibility GP (standardised units): it then generalises instead of
#: interpolating the step (held-out Brier score on the records' acc_constrained_a100 feasibility, 100 training
#: points: 0.110 without, 0.082 with a floor of 0.2) and is less over-confident next to feasible points, where
#: the acquisition pushes (acc_constrained_a100 on the surrogate, 5 seeds, best feasible accuracy after 150
#: evaluations: floor 0.2 and no margin 63.9, floor 0.5 64.9, margin 0.5 65.0, both 65.07 +- 0.07;
#: regularized evolution 64.9 after 150 and 65.7 after 600 evaluations; re-measured on the re-tuned accuracy
#: surrogate, 3 seeds: floor 0.2 and no margin 64.07, floor and margin 0.5 65.18)
FEASIBILITY_NOISE_FLOOR = 0.5


@dataclass
class AskTimes:
    """Wall seconds of the last :meth:`BayesianOptimization.ask`, by phase, and its sizes."""

    fit: float = 0.0
    candidates: float = 0.0
    #: acquisition construction + screening of the candidate pool + sequential greedy batch selection
    acquisition: float = 0.0
    #: the greedy part of ``acquisition``
    greedy: float = 0.0
    n_train: int = 0
    n_scored: int = 0
    refit: bool = False

    @property
    def total(self) -> float:
        return self.fit + self.candidates + self.acquisition


def balanced_design(n: int, rng: np.random.Generator) -> IntArray:
    """``n`` architectures in which each gene takes each of its values equally often (+-1), ``(n, 28)``."""
    cols = []
    for card in space.CARDINALITIES.tolist():
        col = np.tile(np.arange(card, dtype=np.int64), -(-n // card))[:n]
        cols.append(col[rng.permutation(n)])
    out: IntArray = np.stack(cols, axis=1) if n else np.zeros((0, space.N_GENES), dtype=np.int64)
    return out


def nondominated_ranks(F: FloatArray) -> IntArray:
    """Non-dominated sorting rank of each row (0 = Pareto front), ``(n, m)`` -> ``(n,)``; pymoo's sorting."""
    if F.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if F.shape[1] == 1:  # dense rank of the value: ties share a rank, as in non-dominated sorting
        inverse = np.unique(F[:, 0], return_inverse=True)[1]
        return np.asarray(inverse, dtype=np.int64).reshape(-1)
    fronts = _NDS.do(F)
    ranks = np.empty(F.shape[0], dtype=np.int64)
    for r, front in enumerate(fronts):
        ranks[np.asarray(front, dtype=np.int64)] = r
    return ranks


def _spread(F: FloatArray, k: int) -> IntArray:
    """``k`` row indices of ``F (n, m)``: the per-objective minima, then each time the row farthest from
    the chosen ones (Euclidean), ties to the lower index."""
    chosen: list[int] = []
    for j in range(F.shape[1]):
        i = int(np.argmin(F[:, j]))
        if i not in chosen:
            chosen.append(i)
    chosen = chosen[:k]
    dist = np.min(np.linalg.norm(F[:, None, :] - F[chosen][None, :, :], axis=2), axis=1)
    while len(chosen) < k:
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(F - F[i], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def select_baseline(F: FloatArray, feasible: BoolArray, k: int) -> IntArray:
    """Row indices of at most ``k`` incumbents for the noisy-improvement baseline, ``(n, m)`` -> ``(<= k,)``.

    The feasible Pareto front first -- thinned to ``k`` evenly spread points when it is larger than ``k``
    (the per-objective extremes, then farthest-point selection in the normalised space) -- then further
    feasible ranks, then infeasible rows by rank.
    """
    out: list[IntArray] = []
    for group in (feasible, ~feasible):
        idx = np.flatnonzero(group)
        if idx.size == 0:
            continue
        ranks = nondominated_ranks(F[idx])
        front = idx[ranks == 0]
        if not out and front.size > k and F.shape[1] > 1:
            return np.sort(front[_spread(F[front], k)])
        out.append(idx[np.lexsort((idx, ranks))])
    result: IntArray = np.concatenate(out)[:k] if out else np.zeros(0, dtype=np.int64)
    return result


class BayesianOptimization(Optimizer):
    """GP-based BO (BoTorch qLogNEHVI / qLogNEI) with local search over the architecture space.

    Args:
        problem: the problem (objectives, normalisation, reference point).
        rng: the only source of randomness.
        n_init: size of the initial balanced random design.
        q: preferred batch size (the runner's default for ``ask``); any ``n`` works.
        encoding: GP input encoding, one of ``ordinal``, ``onehot``, ``categorical``, ``mixed``.
        log_device_targets: model throughput/latency objectives on a log scale.
        max_history: most observations used to fit the GPs (best half by non-dominated rank + most recent).
        fit_maxiter: L-BFGS-B iterations per hyper-parameter fit.
        refit_every: re-optimise hyper-parameters every this many model builds (otherwise only condition
            on the new data with the stored hyper-parameters).
        warm_start: start each fit from the previous hyper-parameters.
        mc_samples: quasi-MC posterior samples of the batch acquisition function (qLogNEHVI / qLogNEI);
            None = 128, or 32 for three or more objectives (their per-sample box decompositions dominate:
            greedy batch selection at 500 observations, one thread, 30 s with 128 samples, 5-7 s with 32).
        screen_samples: quasi-MC samples of the screening acquisition (qLogEHVI / qLogEI) that ranks the
            candidate pool; None = 16 for two objectives, 8 for three or more (hypervolume terms are costly:
            17-21 s -> 11-15 s per batch at 500 observations), ``mc_samples`` for one (cheap, and a precise
            ranking matters there; see ``greedy_pool``).
        max_baseline: most incumbent points in the noisy-improvement baseline (see :func:`select_baseline`);
            None = 32, or 16 for three or more objectives (a 64-point baseline cost 1 s more per batch for the
            same hypervolume on acc_a100).
        n_anchors: evaluated architectures (Pareto set / best) whose neighbourhoods are searched.
        n_random: random candidates scored per ask.
        n_mutants: two-gene mutants per anchor.
        n_block_anchors: best anchors whose block neighbourhoods (one whole block set to each of its other
            settings, 259 architectures) are scored too; not used while a feasibility model is active (far
            jumps have uncertain feasibility that the feasibility weight under-penalises: in the depth-budget
            test 75% -> 33% feasible proposals). On ``acc`` (10 seeds, best accuracy after 150 evaluations)
            they lift 68.29 to 68.38.
        local_steps: hill-climbing rounds over one-step neighbourhoods.
        local_top: candidates expanded per hill-climbing round.
        greedy_pool: best-screened candidates scored with qLogNEHVI / qLogNEI during sequential greedy batch
            selection; None = 64 for several objectives, 512 for one. (``acc`` on the surrogate, best accuracy
            after 150 evaluations, 10 seeds: 16 screening samples and a pool of 64 give 68.2, 128 and 512
            give 68.38; regularized evolution after 600 evaluations: 68.34.)
        constraint_eta: temperature of the feasibility weight (smaller = sharper).
        feasibility_margin: a posterior sample counts as feasible where the +-1 feasibility latent exceeds
            this; 0.5 instead of the labels' midpoint 0 keeps proposals away from the boundary that the
            boolean labels locate poorly (see :data:`FEASIBILITY_NOISE_FLOOR` for the measurements).
    """

    name = "bo"
    multi_objective = True

    @property
    def preferred_batch_size(self) -> int | None:
        """One q-batch."""
        return self.q

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        n_init: int = 20,
        q: int = 8,
        encoding: str = "ordinal",
        log_device_targets: bool = True,
        max_history: int = 600,
        fit_maxiter: int = 200,
        refit_every: int = 1,
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
        constraint_eta: float = 0.01,
        feasibility_margin: float = 0.5,
    ) -> None:
        super().__init__(problem, rng)
        owner = type(self).__name__
        self.n_init = check_int(owner, "n_init", n_init, 1)
        self.q = check_int(owner, "q", q, 1, 256)
        if encoding not in ENCODINGS:
            raise ValueError(
                f"{owner}: hyperparameter encoding={encoding!r} must be one of {', '.join(ENCODINGS)}"
            )
        self.encoding = encoding
        self.log_device_targets = check_bool(owner, "log_device_targets", log_device_targets)
        self.max_history = check_int(owner, "max_history", max_history, 10)
        self.fit_maxiter = check_int(owner, "fit_maxiter", fit_maxiter, 0)
        self.refit_every = check_int(owner, "refit_every", refit_every, 1)
        self.warm_start = check_bool(owner, "warm_start", warm_start)
        many = problem.n_obj >= 3  # hypervolume box decompositions per MC sample dominate the cost
        if mc_samples is None:
            mc_samples = 32 if many else 128
        self.mc_samples = check_int(owner, "mc_samples", mc_samples, 1)
        single = problem.n_obj == 1
        if screen_samples is None:
            screen_samples = self.mc_samples if single else (8 if many else 16)
        if greedy_pool is None:
            greedy_pool = 512 if single else 64
        self.screen_samples = check_int(owner, "screen_samples", screen_samples, 1)
        if max_baseline is None:
            max_baseline = 16 if many else 32
        self.max_baseline = check_int(owner, "max_baseline", max_baseline, 1)
        self.n_anchors = check_int(owner, "n_anchors", n_anchors, 0)
        self.search = SearchSettings(
            n_random=check_int(owner, "n_random", n_random, 0),
            n_mutants=check_int(owner, "n_mutants", n_mutants, 0),
            n_block_anchors=check_int(owner, "n_block_anchors", n_block_anchors, 0),
            local_steps=check_int(owner, "local_steps", local_steps, 0),
            local_top=check_int(owner, "local_top", local_top, 1),
            greedy_pool=check_int(owner, "greedy_pool", greedy_pool, 1),
        )
        self.constraint_eta = check_float(owner, "constraint_eta", constraint_eta, 1e-6, 10.0)
        self.feasibility_margin = check_float(owner, "feasibility_margin", feasibility_margin, -1.0, 1.0)
        log = tuple(
            self.log_device_targets and t in TARGETS and TARGETS[t].is_device for t in problem.objectives
        )
        self.outcomes = OutcomeSpace(problem.ideal, problem.nadir, problem.maximize, log)
        m = problem.n_obj
        self._X: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._F: FloatArray = np.zeros((0, m), dtype=np.float64)
        self._feasible: BoolArray = np.zeros(0, dtype=bool)
        self._ids: set[int] = set()
        self._pending: IntArray = np.zeros((0, space.N_GENES), dtype=np.int64)
        self._design: IntArray | None = None
        self._design_pos = 0
        self._gp_params: dict[str, GPParams] = {}
        self._n_builds = 0
        #: timing breakdown of the last ask (for experiments/perf/bo_speed.py)
        self.last_times = AskTimes()

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

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        X, F, fe, _failed = check_tell(self, X, F, feasible)
        self._X = np.concatenate([self._X, X])
        self._F = np.concatenate([self._F, F])
        self._feasible = np.concatenate([self._feasible, fe])
        ids = space.arch_id(X)
        self._ids.update(ids.tolist())
        if self._pending.shape[0]:
            self._pending = self._pending[~np.isin(space.arch_id(self._pending), ids)]

    def state(self) -> StateTree:
        return {
            "config": self._config(),
            "rng": self._rng_state(),
            "X": self._X.copy(),
            "F": self._F.copy(),
            "feasible": self._feasible.copy(),
            "pending": self._pending.copy(),
            "design": None if self._design is None else self._design.copy(),
            "design_pos": int(self._design_pos),
            "n_builds": int(self._n_builds),
            "gp_params": {k: {n: v.copy() for n, v in p.items()} for k, p in self._gp_params.items()},
        }

    def load_state(self, state: StateTree) -> None:
        check_state(type(self).__name__, state, {"config": self._config()})
        self._set_rng_state(state["rng"])
        self._X = np.asarray(state["X"], dtype=np.int64).reshape(-1, space.N_GENES)
        self._F = np.asarray(state["F"], dtype=np.float64).reshape(-1, self.problem.n_obj)
        self._feasible = np.asarray(state["feasible"], dtype=bool).reshape(-1)
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
    def _config(self) -> dict[str, Any]:
        return {
            "problem": self.problem.name,
            "n_obj": self.problem.n_obj,
            "encoding": self.encoding,
            "log": list(self.outcomes.log),
            "n_init": self.n_init,
        }

    def _history(self) -> tuple[IntArray, FloatArray, BoolArray]:
        """Rows used for fitting: all, or ``max_history`` of them (best half by rank + the most recent)."""
        X, F, fe = self._X, self._F, self._feasible
        n = X.shape[0]
        if n <= self.max_history:
            return X, F, fe
        ok = ~np.isnan(F).any(axis=1)
        ranks = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        Fn = self.problem.normalize(F)
        for group in (ok & fe, ok & ~fe):
            idx = np.flatnonzero(group)
            if idx.size:
                ranks[idx] = nondominated_ranks(Fn[idx])
        order = np.lexsort((-np.arange(n), ranks, ~(ok & fe)))  # feasible first, by rank, newest first
        keep = np.zeros(n, dtype=bool)
        keep[order[: self.max_history // 2]] = True
        recent = np.flatnonzero(~keep)[::-1][: self.max_history - int(keep.sum())]
        keep[recent] = True
        return X[keep], F[keep], fe[keep]

    def _anchors(self, X: IntArray, F: FloatArray, fe: BoolArray, k: int) -> IntArray:
        """Up to ``k`` best rows: feasible (else all non-failed) rows of the lowest non-dominated ranks."""
        ok = ~np.isnan(F).any(axis=1)
        use = ok & fe if (ok & fe).any() else ok
        idx = np.flatnonzero(use)
        if idx.size == 0 or k == 0:
            return np.zeros((0, space.N_GENES), dtype=np.int64)
        ranks = nondominated_ranks(self.problem.normalize(F[idx]))
        order = np.lexsort((-idx, ranks))[:k]
        out: IntArray = X[idx[order]]
        return out

    def _random(self, n: int, exclude: set[int]) -> IntArray:
        out: list[IntArray] = []
        got = 0
        while got < n:
            X = space.sample(2 * (n - got), self.rng)
            keep = []
            for i, a in enumerate(space.arch_id(X).tolist()):
                if a not in exclude:
                    exclude.add(a)
                    keep.append(i)
            out.append(X[keep][: n - got])
            got += out[-1].shape[0]
        return np.concatenate(out)

    def _propose(self, n: int, exclude: set[int], pending: IntArray) -> IntArray:
        """``n`` BO proposals (random while there is nothing to model)."""
        X, F, fe = self._history()
        ok: BoolArray = np.asarray(~np.isnan(F).any(axis=1), dtype=bool)
        if ok.sum() < 2 or not (ok & fe).any():
            return self._random(n, exclude)
        t0 = time.perf_counter()
        outcomes = self.outcomes.for_data(F[ok])
        model, feas_index, X_base = self._build_model(X, F, fe, ok, outcomes)
        self.last_times.fit = time.perf_counter() - t0
        self.last_times.n_train = int(X.shape[0])
        seed = int(self.rng.integers(0, 2**31 - 1))
        t0 = time.perf_counter()
        good = ok & fe
        Y_inc = torch.from_numpy(-self.problem.normalize(F[good])).to(DTYPE)
        with warnings.catch_warnings():
            # with a feasibility margin some posterior samples call every incumbent infeasible; BoTorch then
            # measures improvement from the lowest objective bound for them (by design) and warns each time
            warnings.filterwarnings("ignore", message="When all training points are infeasible")
            screen, final = make_acquisition(
                model,
                outcomes,
                encode(X_base, self.encoding),
                Y_inc,
                self.problem.ref_point,
                feasibility_index=feas_index,
                mc_samples=self.mc_samples,
                screen_samples=self.screen_samples,
                seed=seed,
                eta=self.constraint_eta,
                margin=self.feasibility_margin,
            )
            anchors = self._anchors(X, F, fe, self.n_anchors)
            times = SearchTimes()
            out = optimise_discrete(
                screen,
                final,
                lambda Z: encode(Z, self.encoding),
                n,
                anchors,
                exclude,
                self.rng,
                self.search if feas_index is None else replace(self.search, n_block_anchors=0),
                X_pending=encode(pending, self.encoding) if pending.shape[0] else None,
                times=times,
            )
        self.last_times.candidates = times.candidates
        self.last_times.acquisition = time.perf_counter() - t0 - times.candidates
        self.last_times.greedy = times.greedy
        self.last_times.n_scored = times.n_scored
        exclude.update(space.arch_id(out).tolist())
        return out

    def _build_model(
        self, X: IntArray, F: FloatArray, fe: BoolArray, ok: BoolArray, outcomes: OutcomeSpace
    ) -> tuple[Any, int | None, IntArray]:
        """Fit the GPs; returns ``(ModelListGP, feasibility output index or None, baseline genes)``."""
        m = self.problem.n_obj
        Xo = X[ok]
        Z = outcomes.to_model(F[ok])
        keys = [f"objective{i}" for i in range(m)]
        ys = [torch.from_numpy(np.ascontiguousarray(Z[:, i : i + 1])).to(DTYPE) for i in range(m)]
        train_X = encode(Xo, self.encoding)
        use_feas = bool(fe.any() and (~fe).any())
        refit = self._n_builds % self.refit_every == 0 or not self._gp_params
        warm = [self._gp_params.get(k) if self.warm_start else None for k in keys]
        model_obj, params = fit_model_list(train_X, ys, self.encoding, warm, self.fit_maxiter, fit=refit)
        models: list[Any] = list(model_obj.models)
        feas_index: int | None = None
        if use_feas:
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
        from botorch.models import ModelListGP

        model = ModelListGP(*models)
        model.eval()
        base = select_baseline(self.problem.normalize(F[ok]), fe[ok], self.max_baseline)
        return model, feas_index, Xo[base]


__all__ = ["AskTimes", "BayesianOptimization", "balanced_design", "nondominated_ranks", "select_baseline"]
