"""Acquisition functions and their optimisation over the discrete space, for :mod:`optimizers.bo`.

- :func:`make_acquisition` builds BoTorch's ``qLogNoisyExpectedHypervolumeImprovement`` (two or more
  objectives) or ``qLogNoisyExpectedImprovement`` (one objective), plus their cheap non-noisy versions for
  screening large candidate pools, on a ``ModelListGP`` whose outputs are the
  objectives in *model space* (see :class:`OutcomeSpace`) plus, optionally, a feasibility outcome. An MC
  objective maps model-space samples to the problem's normalised box, negated for maximisation, so the
  hypervolume reference point is ``-ref_point``. A feasibility outcome (GP on ``+1`` feasible / ``-1``
  infeasible) enters as the constraint callable ``-z_feas`` (feasible where the latent is positive), which
  BoTorch turns into a feasibility weight of the improvement.
- :func:`optimise_discrete` searches the space: it screens a pool of random architectures and one-gene,
  two-gene and whole-block moves from the current best / Pareto-set architectures, hill-climbs over
  one-step neighbourhoods (``space.neighbours_batch``) of the best-scoring candidates, then picks the batch
  by sequential greedy conditioning (``acqf.set_X_pending``), never returning an evaluated or pending
  architecture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import (
    qLogExpectedHypervolumeImprovement,
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model
from botorch.sampling.normal import SobolQMCNormalSampler
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from numpy.typing import NDArray

from benchmark import space
from optimizers.bo_models import DTYPE

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
Encoder = Callable[[IntArray], torch.Tensor]


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


def make_acquisition(
    model: Model,
    outcomes: OutcomeSpace,
    X_baseline: torch.Tensor,
    Y_incumbent: torch.Tensor,
    ref_point: Sequence[float],
    *,
    feasibility_index: int | None,
    mc_samples: int,
    screen_samples: int,
    seed: int,
    eta: float,
    margin: float = 0.0,
) -> tuple[AcquisitionFunction, AcquisitionFunction]:
    """``(screen, final)`` acquisition functions with an optional feasibility constraint.

    ``final`` is qLogNEHVI (``m >= 2``) or qLogNEI (``m == 1``): it integrates over the uncertainty of the
    baseline, which costs a joint posterior over baseline and candidate per candidate. ``screen`` is its
    cheap counterpart on the observed incumbents, qLogEHVI / qLogEI (a marginal posterior per candidate),
    used to rank large candidate pools before ``final`` picks the batch.

    Args:
        model: ``ModelListGP`` with ``m`` objective outputs (model space), then the feasibility output if any.
        outcomes: maps the first ``m`` outputs to the maximisation space.
        X_baseline: encoded, already pruned incumbent candidates ``(b, d_enc)``.
        Y_incumbent: observed feasible objective values in the maximisation space ``(k, m)``, ``k >= 1``.
        ref_point: hypervolume reference point in the problem's normalised minimisation space ``(m,)``.
        feasibility_index: model output holding the ``+-1`` feasibility GP, or None.
        mc_samples: quasi-MC samples of the posterior for ``final``.
        screen_samples: quasi-MC samples for ``screen`` (its cost is linear in them).
        seed: seed of the ``SobolQMCNormalSampler`` s (drawn from the optimizer's Generator).
        eta: temperature of the sigmoid feasibility weight.
        margin: a sample counts as feasible where the feasibility latent exceeds this (0 = the midpoint of the
            +-1 labels; larger = more conservative).
    """
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed)
    screen_sampler = SobolQMCNormalSampler(sample_shape=torch.Size([screen_samples]), seed=seed + 1)
    constraints: list[Callable[[torch.Tensor], torch.Tensor]] | None = None
    if feasibility_index is not None:
        k = feasibility_index

        def feasibility(Z: torch.Tensor) -> torch.Tensor:
            return margin - Z[..., k]

        constraints = [feasibility]
    m = outcomes.m

    if m == 1:

        def single(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
            return outcomes.to_objective(Z[..., :1])[..., 0]

        objective = GenericMCObjective(single)
        screen = qLogExpectedImprovement(
            model=model,
            best_f=float(Y_incumbent[:, 0].max()),
            sampler=screen_sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
        )
        final = qLogNoisyExpectedImprovement(
            model=model,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=objective,
            constraints=constraints,
            eta=eta,
            prune_baseline=False,
            cache_root=True,
        )
        return screen, final

    def multi(Z: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return outcomes.to_objective(Z[..., :m])

    ref = torch.tensor([-float(r) for r in ref_point], dtype=DTYPE)
    mo_objective = GenericMCMultiOutputObjective(multi)
    screen_mo = qLogExpectedHypervolumeImprovement(
        model=model,
        ref_point=ref.tolist(),
        partitioning=FastNondominatedPartitioning(ref_point=ref, Y=Y_incumbent.to(DTYPE)),  # type: ignore[arg-type]
        sampler=screen_sampler,
        objective=mo_objective,
        constraints=constraints,
        eta=eta,
    )
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
    )
    return screen_mo, final_mo


@dataclass
class SearchSettings:
    """Knobs of :func:`optimise_discrete` (see :class:`optimizers.bo.BayesianOptimization`)."""

    n_random: int = 1000
    n_mutants: int = 10
    n_block_anchors: int = 5
    local_steps: int = 3
    local_top: int = 10
    greedy_pool: int = 256
    chunk: int = 256


@dataclass
class SearchTimes:
    """Seconds spent generating candidates and evaluating the acquisition functions."""

    candidates: float = 0.0
    #: ``screen`` on the pool and during hill climbing
    acquisition: float = 0.0
    #: ``final`` during sequential greedy batch selection
    greedy: float = 0.0
    n_scored: int = 0


def _block_configs(block: int) -> IntArray:
    """Every setting of one block's four genes, ``(k, 4)`` (k = 36, or 48 for block 5)."""
    cards = space.CARDINALITIES[block * space.GENES_PER_BLOCK : (block + 1) * space.GENES_PER_BLOCK]
    grids = np.meshgrid(*[np.arange(int(c)) for c in cards], indexing="ij")
    out: IntArray = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    return out


_BLOCK_CONFIGS: tuple[IntArray, ...] = tuple(_block_configs(b) for b in range(space.N_BLOCKS))


def block_neighbours(X: IntArray) -> IntArray:
    """Each row with one whole block replaced by each of its other settings, ``(n * 259, 28)``.

    Moves up to four genes at once (e.g. ``e6k5l3+`` -> ``e1k5l1-``), linking basins that one-gene
    neighbourhoods separate; grouped by source row.
    """
    parts = []
    for x in np.asarray(X, dtype=np.int64):
        for b, configs in enumerate(_BLOCK_CONFIGS):
            lo = b * space.GENES_PER_BLOCK
            keep = np.any(configs != x[lo : lo + space.GENES_PER_BLOCK], axis=1)
            rows = np.repeat(x[None, :], int(keep.sum()), axis=0)
            rows[:, lo : lo + space.GENES_PER_BLOCK] = configs[keep]
            parts.append(rows)
    if not parts:
        return np.zeros((0, space.N_GENES), dtype=np.int64)
    return np.concatenate(parts)


def score(acqf: AcquisitionFunction, X: IntArray, encoder: Encoder, chunk: int) -> FloatArray:
    """Acquisition value of each architecture on its own (q = 1), ``(n, 28)`` -> ``(n,)``."""
    out = np.empty(X.shape[0], dtype=np.float64)
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            enc = encoder(X[s : s + chunk]).unsqueeze(-2)
            out[s : s + chunk] = acqf(enc).detach().cpu().numpy().astype(np.float64)
    return out


def _fresh(X: IntArray, known: set[int]) -> IntArray:
    """Rows of ``X`` whose ids are not in ``known`` (which is updated), first occurrences only."""
    if X.shape[0] == 0:
        return X
    ids = space.arch_id(X)
    keep = np.zeros(X.shape[0], dtype=bool)
    for i, a in enumerate(ids.tolist()):
        if a not in known:
            known.add(a)
            keep[i] = True
    out: IntArray = X[keep]
    return out


def optimise_discrete(
    screen: AcquisitionFunction,
    final: AcquisitionFunction,
    encoder: Encoder,
    n: int,
    anchors: IntArray,
    exclude: set[int],
    rng: np.random.Generator,
    settings: SearchSettings,
    X_pending: torch.Tensor | None = None,
    times: SearchTimes | None = None,
) -> IntArray:
    """Pick ``n`` new architectures: local search on ``screen``, sequential greedy selection on ``final``.

    1. Pool: ``n_random`` uniform architectures, all one-step neighbours of ``anchors`` and ``n_mutants``
       two-gene mutants per anchor; evaluated/pending ones removed; scored with ``screen`` (q = 1).
    2. Hill climbing: ``local_steps`` rounds expanding the one-step neighbourhoods of the ``local_top``
       best-scoring not yet expanded candidates (stops early when a round finds nothing better).
    3. Batch: the ``greedy_pool`` best candidates are scored with ``final``; the best is taken, registered
       as pending (``final.set_X_pending``) and the rest re-scored, ``n`` times (sequential greedy).

    Args:
        screen: cheap acquisition on encoded inputs ``(b, 1, d_enc)`` for ranking the pool.
        final: acquisition used for the batch (supports ``set_X_pending``).
        encoder: gene batch ``(k, 28)`` -> encoded tensor ``(k, d_enc)``.
        n: number of architectures to return.
        anchors: good evaluated architectures (Pareto set / best) to search around, ``(a, 28)``.
        exclude: ids (``space.arch_id``) that must not be proposed (evaluated, pending); not modified.
        rng: candidate sampling.
        settings: pool sizes and local-search depth.
        X_pending: encoded architectures already being evaluated (conditioned on), or None.
        times: accumulates the timing breakdown if given.

    Returns:
        ``(n, 28)`` int64, distinct, none of them in ``exclude``.
    """
    t = times if times is not None else SearchTimes()
    t0 = time.perf_counter()
    seen = set(exclude)
    parts = [space.sample(settings.n_random, rng)]
    if anchors.shape[0]:
        parts.append(space.neighbours_batch(anchors))
        if settings.n_block_anchors:
            parts.append(block_neighbours(anchors[: settings.n_block_anchors]))
        if settings.n_mutants:
            parts.append(space.mutate(np.repeat(anchors, settings.n_mutants, axis=0), rng, n_genes=2))
    pool = _fresh(np.concatenate(parts), seen)
    t.candidates += time.perf_counter() - t0

    t0 = time.perf_counter()
    # pending points only enter ``final``: in ``screen`` (qLogEHVI) they would make every evaluation a joint
    # q = 1 + pending one, whose hypervolume improvement costs 2^q terms
    cands = [pool]
    vals = [score(screen, pool, encoder, settings.chunk)]
    t.acquisition += time.perf_counter() - t0
    expanded: set[int] = set()
    for _ in range(settings.local_steps):
        t0 = time.perf_counter()
        allX = np.concatenate(cands)
        allv = np.concatenate(vals)
        order = np.argsort(-allv, kind="stable")
        head = order[: settings.local_top * 4]
        head_ids = space.arch_id(allX[head]).tolist()
        top = [int(i) for i, a in zip(head, head_ids, strict=True) if a not in expanded][: settings.local_top]
        if not top:
            break
        expanded.update(space.arch_id(allX[top]).tolist())
        new = _fresh(space.neighbours_batch(allX[top]), seen)
        t.candidates += time.perf_counter() - t0
        if new.shape[0] == 0:
            break
        t0 = time.perf_counter()
        new_v = score(screen, new, encoder, settings.chunk)
        t.acquisition += time.perf_counter() - t0
        cands.append(new)
        vals.append(new_v)
        if new_v.max() <= allv.max():
            break

    t0 = time.perf_counter()
    allX = np.concatenate(cands)
    allv = np.concatenate(vals)
    t.n_scored += allX.shape[0]
    order = np.argsort(-allv, kind="stable")
    pool_X = allX[order[: max(settings.greedy_pool, n)]]
    chosen: list[int] = []
    try:
        if X_pending is not None:
            final.set_X_pending(X_pending)
        for _ in range(min(n, pool_X.shape[0])):
            if chosen:
                picked = encoder(pool_X[chosen])
                final.set_X_pending(picked if X_pending is None else torch.cat([X_pending, picked]))
            rest = np.setdiff1d(np.arange(pool_X.shape[0]), chosen)
            v = score(final, pool_X[rest], encoder, settings.chunk)
            chosen.append(int(rest[int(np.argmax(v))]))
    finally:
        final.set_X_pending(X_pending)
    out = pool_X[chosen]
    t.greedy += time.perf_counter() - t0
    if out.shape[0] < n:  # tiny pools only: top up with random unseen architectures
        extra = [out]
        while sum(e.shape[0] for e in extra) < n:
            extra.append(_fresh(space.sample(4 * n, rng), seen))
        out = np.concatenate(extra)[:n]
    result: IntArray = out.astype(np.int64)
    return result


def encoder_for(encode: Callable[[IntArray, str], torch.Tensor], encoding: str) -> Encoder:
    """Bind an encoding name: ``(k, 28)`` -> ``(k, d_enc)`` float64 tensor."""

    def enc(X: IntArray) -> torch.Tensor:
        return encode(X, encoding).to(DTYPE)

    return enc
