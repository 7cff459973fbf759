"""Acquisition functions of the BO optimizer (construction only; :mod:`optimizers.bo.candidates` searches).

:func:`make_acquisition` builds BoTorch's ``qLogNoisyExpectedHypervolumeImprovement`` (two or more
objectives) or ``qLogNoisyExpectedImprovement`` (one objective), plus their cheap non-noisy versions for
screening large candidate pools, on a ``ModelListGP`` whose outputs are the objectives in *model space*
(see :class:`OutcomeSpace`) plus, optionally, a feasibility outcome. An MC objective maps model-space samples
to the problem's normalised box, negated for maximisation, so the hypervolume reference point is
``-ref_point``. A feasibility outcome (GP on ``+1`` feasible / ``-1`` infeasible) enters as the constraint
callable ``margin - z_feas`` (feasible where the latent exceeds the margin), which BoTorch turns into a
feasibility weight of the improvement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import (
    qLogExpectedHypervolumeImprovement,
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.multi_objective.parego import qLogNParEGO
from botorch.acquisition.objective import GenericMCObjective
from botorch.models import ModelListGP
from botorch.models.model import Model
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

from benchmark._typing import FloatArray
from optimizers.bo.models import DTYPE, MarginalPosteriorModel


@dataclass(frozen=True)
class OutcomeSpace:
    """How objectives are modelled and mapped back to the normalised maximisation space.

    Objective ``i`` is modelled as ``log(natural value)`` when ``log[i]`` (throughput, latency: positive,
    multiplicative), else directly as ``-normalize(F)[:, i]``. :meth:`to_model` and :meth:`to_objective`
    convert between the spaces; the acquisition's MC objective is :meth:`to_objective` applied to samples.

    Attributes:
        ideal, nadir: the problem's normalisation constants in internal minimisation units, ``(m,)``.
        maximize: per objective, whether ``F = -natural value``.
        log: per objective, whether the GP models the log of the natural value.
    """

    ideal: tuple[float, ...]
    nadir: tuple[float, ...]
    maximize: tuple[bool, ...]
    log: tuple[bool, ...]
    _sign: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sign", np.where(np.asarray(self.maximize), -1.0, 1.0))

    @property
    def m(self) -> int:
        return len(self.ideal)

    def for_data(self, F: FloatArray) -> OutcomeSpace:
        """This space without the log scale for objectives whose values in ``F`` are not all positive."""
        log = tuple(
            lg and bool(np.all(F[:, i] * self._sign[i] > 0)) for i, lg in enumerate(self.log)
        )
        return self if log == self.log else OutcomeSpace(self.ideal, self.nadir, self.maximize, log)

    def to_model(self, F: FloatArray) -> FloatArray:
        """Internal minimisation values ``(n, m)`` to model-space targets ``(n, m)``."""
        ideal = np.asarray(self.ideal)
        nadir = np.asarray(self.nadir)
        out = -(F - ideal) / (nadir - ideal)
        for i, lg in enumerate(self.log):
            if lg:
                out[:, i] = np.log(F[:, i] * self._sign[i])
        return out

    def to_objective(self, Z: torch.Tensor) -> torch.Tensor:
        """Model-space values/samples ``(..., m)`` to ``-normalize(F)`` ``(..., m)`` (bigger is better)."""
        cols = []
        for i in range(self.m):
            z = Z[..., i]
            if self.log[i]:
                f = self._sign[i] * torch.exp(z)
                z = -(f - self.ideal[i]) / (self.nadir[i] - self.ideal[i])
            cols.append(z)
        return torch.stack(cols, dim=-1)


#: ``(model output k, bound, w)``: a sample is feasible where ``w * (Z_k - bound) <= 0`` (``w``: the sense,
#: -1 for ">=" and +1 for "<=", divided by the constraint values' spread)
OutcomeConstraint = tuple[int, float, float]


def _bound_violation(k: int, bound: float, sign: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def value(Z: torch.Tensor) -> torch.Tensor:
        return sign * (Z[..., k] - bound)

    return value


def constraint_functions(
    feasibility_index: int | None, margin: float, outcome_constraints: Sequence[OutcomeConstraint] = ()
) -> list[Callable[[torch.Tensor], torch.Tensor]] | None:
    """BoTorch constraint callables (feasible where ``c(Z) <= 0``): one per modelled constraint value
    (``outcome_constraints``), else the ``+-1`` feasibility latent above ``margin``, else None."""
    if outcome_constraints:
        return [_bound_violation(k, bound, sign) for k, bound, sign in outcome_constraints]
    if feasibility_index is None:
        return None
    k = feasibility_index

    def feasibility(Z: torch.Tensor) -> torch.Tensor:
        return margin - Z[..., k]

    return [feasibility]


def make_acquisition(
    model: Model,
    outcomes: OutcomeSpace,
    X_baseline: torch.Tensor,
    Y_incumbent: torch.Tensor,
    ref_point: Sequence[float],
    *,
    feasibility_index: int | None,
    outcome_constraints: Sequence[OutcomeConstraint] = (),
    mc_samples: int,
    screen_samples: int,
    seed: int,
    eta: float,
    margin: float = 0.0,
    X_pending: torch.Tensor | None = None,
    with_final: bool = True,
) -> tuple[AcquisitionFunction, AcquisitionFunction | None]:
    """``(screen, final)`` acquisition functions with an optional feasibility constraint (``final`` None
    unless ``with_final``).

    ``final`` is qLogNEHVI (``m >= 2``) or qLogNEI (``m == 1``): it integrates over the uncertainty of the
    baseline, which costs a joint posterior over baseline and candidate per candidate. ``screen`` is its
    cheap counterpart on the observed incumbents, qLogEHVI / qLogEI (a marginal posterior per candidate),
    used to rank large candidate pools before ``final`` picks the batch.

    ``final`` is built conditioned on ``X_pending``: qLogNEHVI holds them as its pending points; the
    (incremental) qLogNEI gets them appended to its baseline, which is what its ``set_X_pending`` does --
    but done here they survive the ``set_X_pending`` calls of ``optimize_acqf_discrete``, which reads the
    pending points from ``X_pending`` (always None for the incremental qLogNEI) and would drop them.

    Args:
        model: ``ModelListGP`` with ``m`` objective outputs (model space), then the feasibility output if any.
        outcomes: maps the first ``m`` outputs to the maximisation space.
        X_baseline: encoded, already pruned incumbent candidates ``(b, d_enc)``.
        Y_incumbent: observed feasible objective values in the maximisation space ``(k, m)``, ``k >= 1``.
        ref_point: hypervolume reference point in the problem's normalised minimisation space ``(m,)``.
        feasibility_index: model output holding the ``+-1`` feasibility GP, or None.
        outcome_constraints: modelled constraint values (see :data:`OutcomeConstraint`); when given they
            replace the feasibility GP's constraint.
        mc_samples: quasi-MC samples of the posterior for ``final``.
        screen_samples: quasi-MC samples for ``screen`` (its cost is linear in them).
        seed: seed of the ``SobolQMCNormalSampler`` s (drawn from the optimizer's Generator).
        eta: temperature of the sigmoid feasibility weight.
        margin: a sample counts as feasible where the feasibility latent exceeds this (0 = the midpoint of the
            +-1 labels; larger = more conservative).
        X_pending: encoded architectures being evaluated ``(p, d_enc)``, or None.
        with_final: build ``final`` (its construction partitions the baseline's front per MC sample; not
            needed when the batch is picked by :func:`make_parego_factory` acquisitions).
    """
    # screening scores candidates one at a time (q = 1): one marginal pass per chunk, same values
    screen_model = MarginalPosteriorModel(model) if isinstance(model, ModelListGP) else model
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    screen_sampler = SobolQMCNormalSampler(sample_shape=torch.Size([screen_samples]), seed=seed + 1)
    constraints = constraint_functions(feasibility_index, margin, outcome_constraints)
    # BoTorch's default fat-tailed smoothing gives the feasibility weight polynomial tails: with modelled
    # constraint values BO then proposed architectures it predicted infeasible with P(feasible) ~ 0.001
    # whenever their improvement was large (acc_constrained_a100: 100 of 100 proposals over the latency
    # bound; optimizers/bo/README.md). Thin tails weigh them out; discrete search needs no gradients.
    fat = not outcome_constraints
    m = outcomes.m

    if m == 1:

        def single(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
            return outcomes.to_objective(Z[..., :1])[..., 0]

        objective = GenericMCObjective(single)
        screen = qLogExpectedImprovement(
            model=screen_model,
            best_f=float(Y_incumbent[:, 0].max()),
            sampler=screen_sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
            fat=fat,
        )
        final = qLogNoisyExpectedImprovement(
            model=model,
            X_baseline=X_baseline if X_pending is None else torch.cat([X_baseline, X_pending]),
            sampler=sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
            prune_baseline=False,
            cache_root=True,
            fat=fat,
        )
        return screen, final

    def multi(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return outcomes.to_objective(Z[..., :m])

    ref = torch.tensor([-float(r) for r in ref_point], dtype=DTYPE)
    mo_objective = GenericMCMultiOutputObjective(multi)
    screen_mo = qLogExpectedHypervolumeImprovement(
        model=screen_model,
        ref_point=ref.tolist(),
        partitioning=FastNondominatedPartitioning(ref_point=ref, Y=Y_incumbent.to(DTYPE)),  # type: ignore[arg-type]
        sampler=screen_sampler,
        objective=mo_objective,
        constraints=constraints,
        eta=eta,
        fat=fat,
    )
    if not with_final:
        return screen_mo, None
    final_mo = qLogNoisyExpectedHypervolumeImprovement(
        model=model,
        ref_point=ref.tolist(),
        X_baseline=X_baseline,
        sampler=sampler,
        objective=mo_objective,
        constraints=constraints,
        eta=eta,
        prune_baseline=False,
        cache_root=True,
        fat=fat,
    )
    if X_pending is not None:
        final_mo.set_X_pending(X_pending)
    return screen_mo, final_mo


#: Chebyshev weights ``(m,)`` and encoded extra pending rows ``(p, d_enc)`` or None -> an acquisition
ScalarisedFactory = Callable[[torch.Tensor, torch.Tensor | None], AcquisitionFunction]
#: encoded rows already picked for this batch ``(p, d_enc)`` or None -> the acquisition of the next pick
PickAcquisition = Callable[[torch.Tensor | None], AcquisitionFunction]


def make_parego_factory(
    model: Model,
    outcomes: OutcomeSpace,
    X_baseline: torch.Tensor,
    *,
    feasibility_index: int | None,
    outcome_constraints: Sequence[OutcomeConstraint] = (),
    mc_samples: int,
    seed: int,
    eta: float,
    margin: float = 0.0,
    X_pending: torch.Tensor | None = None,
) -> ScalarisedFactory:
    """A factory of qLogNParEGO acquisitions (random Chebyshev scalarisation + qLogNEI) for batch picks.

    The greedy batch step of the scaled mode with three or more objectives (README.md: a qLogNEHVI pick there
    re-partitions the 3-d front once per MC sample and pending point, 4-5 s per batch at 1,000
    observations; a scalarised pick needs no box decomposition). Each call builds the acquisition for one
    pick: the given weights, conditioned on ``X_pending`` plus the ``extra`` rows already picked for this
    batch (appended to the baseline, as the incremental qLogNEI does). Arguments as for
    :func:`make_acquisition`; ``X_baseline (b, d_enc)``.
    """
    m = outcomes.m
    constraints = constraint_functions(feasibility_index, margin, outcome_constraints)

    def multi(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return outcomes.to_objective(Z[..., :m])

    objective = GenericMCMultiOutputObjective(multi)

    def factory(weights: torch.Tensor, extra: torch.Tensor | None) -> AcquisitionFunction:
        parts = [t for t in (X_pending, extra) if t is not None and t.shape[0]]
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
        return qLogNParEGO(
            model=model,
            X_baseline=torch.cat([X_baseline, *parts]) if parts else X_baseline,
            scalarization_weights=weights.to(DTYPE),
            sampler=sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
            prune_baseline=False,
            cache_root=True,
        )

    return factory


def make_believer_factory(
    model: Model,
    outcomes: OutcomeSpace,
    Y_incumbent: torch.Tensor,
    ref_point: Sequence[float],
    *,
    feasibility_index: int | None,
    outcome_constraints: Sequence[OutcomeConstraint] = (),
    samples: int,
    seed: int,
    eta: float,
    margin: float = 0.0,
    X_pending: torch.Tensor | None = None,
) -> PickAcquisition:
    """Per-pick qLogEHVI acquisitions against a front that *believes* the pending and earlier-picked points
    (their posterior means join the incumbents, "Kriging believer"): one box decomposition per pick instead
    of one per MC sample and pending point as in qLogNEHVI, so the scaled mode's batch step with three or more
    objectives stays hypervolume-driven at a fraction of the cost (README.md). Arguments as for
    :func:`make_acquisition`; ``samples``: quasi-MC samples of each pick's qLogEHVI."""
    m = outcomes.m
    constraints = constraint_functions(feasibility_index, margin, outcome_constraints)

    def multi(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return outcomes.to_objective(Z[..., :m])

    objective = GenericMCMultiOutputObjective(multi)
    ref = torch.tensor([-float(r) for r in ref_point], dtype=DTYPE)

    def believed(X: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            post: Any = model.posterior(X)  # a GPyTorch / list posterior: both have .mean (n, outputs)
            return outcomes.to_objective(post.mean[..., :m]).to(DTYPE)

    base = Y_incumbent.to(DTYPE)
    if X_pending is not None and X_pending.shape[0]:
        base = torch.cat([base, believed(X_pending)])

    def make(extra: torch.Tensor | None) -> AcquisitionFunction:
        Y = base if extra is None or not extra.shape[0] else torch.cat([base, believed(extra)])
        return qLogExpectedHypervolumeImprovement(
            model=model,
            ref_point=ref.tolist(),
            partitioning=FastNondominatedPartitioning(ref_point=ref, Y=Y),  # type: ignore[arg-type]
            sampler=SobolQMCNormalSampler(sample_shape=torch.Size([samples]), seed=seed),
            objective=objective,
            constraints=constraints,
            eta=eta,
        )

    return make


__all__ = [
    "OutcomeConstraint",
    "OutcomeSpace",
    "PickAcquisition",
    "ScalarisedFactory",
    "constraint_functions",
    "make_acquisition",
    "make_believer_factory",
    "make_parego_factory",
]
