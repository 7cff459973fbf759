"""Candidate generation and discrete search over the architecture space for the BO optimizer.

:func:`optimise_discrete` picks a batch in three steps:

1. **Pool** (:func:`candidate_pool`): uniform random architectures, all one-gene neighbours of the anchors
   (the best evaluated architectures), two-gene mutants and whole-block moves of them.
2. **Hill climbing** (:func:`local_search`): the best-scoring candidates' one-gene neighbourhoods, scored
   with the cheap screening acquisition.
3. **Batch** (:func:`greedy_batch`): sequential greedy selection with the final acquisition over the best
   screened candidates, each pick conditioned on as pending (``botorch.optim.optimize_acqf_discrete``).

Evaluated and pending architectures (``seen`` ids, :func:`benchmark.space.arch_id`) are never returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.optim import optimize_acqf_discrete

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from optimizers.bo.acquisition import PickAcquisition
from optimizers.bo.timing import AskTimes

#: gene batch ``(k, 28)`` -> GP input features ``(k, d_enc)``
Encoder = Callable[[IntArray], torch.Tensor]


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of :func:`optimise_discrete` (documented on :class:`optimizers.bo.BayesianOptimization`)."""

    n_random: int
    n_mutants: int
    n_block_anchors: int
    local_steps: int
    local_top: int
    greedy_pool: int
    #: candidates per acquisition call
    chunk: int = 256


# -- candidate generation ---------------------------------------------------------------------------------
def balanced_design(n: int, rng: np.random.Generator) -> IntArray:
    """``n`` architectures in which each gene takes each of its values equally often (+-1), ``(n, 28)``."""
    cols = []
    for card in space.CARDINALITIES.tolist():
        col = np.tile(np.arange(card, dtype=np.int64), -(-n // card))[:n]
        cols.append(col[rng.permutation(n)])
    out: IntArray = np.stack(cols, axis=1) if n else np.zeros((0, space.N_GENES), dtype=np.int64)
    return out


def unseen(X: IntArray, seen: set[int]) -> IntArray:
    """Rows of ``X (n, 28)`` whose ids are not in ``seen``, first occurrences only; ``seen`` gains them."""
    if X.shape[0] == 0:
        return X
    ids = space.arch_id(X)
    fresh = ~space.duplicated(ids, seen)
    seen.update(ids[fresh].tolist())
    out: IntArray = X[fresh]
    return out


def random_unseen(n: int, seen: set[int], rng: np.random.Generator, draw: int | None = None) -> IntArray:
    """``n`` distinct uniform architectures not in ``seen`` (which gains them), ``(n, 28)``.

    Draws ``draw`` architectures per round (default twice the number still missing) until ``n`` are found.
    """
    parts: list[IntArray] = []
    got = 0
    while got < n:
        X = unseen(space.sample(draw if draw is not None else 2 * (n - got), rng), seen)[: n - got]
        parts.append(X)
        got += X.shape[0]
    return np.concatenate(parts) if parts else np.zeros((0, space.N_GENES), dtype=np.int64)


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


def candidate_pool(
    anchors: IntArray, settings: SearchSettings, seen: set[int], rng: np.random.Generator
) -> IntArray:
    """``n_random`` uniform architectures, the one-gene neighbours of ``anchors (a, 28)``, whole-block moves
    of the first ``n_block_anchors`` of them and ``n_mutants`` two-gene mutants per anchor, without ``seen``
    ones (``seen`` gains the pool), ``(k, 28)``."""
    parts = [space.sample(settings.n_random, rng)]
    if anchors.shape[0]:
        parts.append(space.neighbours_batch(anchors))
        if settings.n_block_anchors:
            parts.append(block_neighbours(anchors[: settings.n_block_anchors]))
        if settings.n_mutants:
            parts.append(space.mutate(np.repeat(anchors, settings.n_mutants, axis=0), rng, n_genes=2))
    return unseen(np.concatenate(parts), seen)


# -- search -----------------------------------------------------------------------------------------------
def score(acqf: AcquisitionFunction, X: IntArray, encoder: Encoder, chunk: int) -> FloatArray:
    """Acquisition value of each architecture on its own (q = 1), ``(n, 28)`` -> ``(n,)``."""
    out = np.empty(X.shape[0], dtype=np.float64)
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            enc = encoder(X[s : s + chunk]).unsqueeze(-2)
            out[s : s + chunk] = acqf(enc).detach().cpu().numpy().astype(np.float64)
    return out


def local_search(
    screen: AcquisitionFunction,
    pool: IntArray,
    encoder: Encoder,
    seen: set[int],
    settings: SearchSettings,
    times: AskTimes,
) -> tuple[IntArray, FloatArray]:
    """Score ``pool (k, 28)`` with ``screen``, then hill-climb; returns every scored candidate and its value.

    ``local_steps`` rounds expand the one-gene neighbourhoods of the ``local_top`` best-scoring candidates not
    yet expanded; a round that finds nothing new or nothing better than the best so far ends the climb.
    """
    # pending points only enter the final acquisition: in ``screen`` (qLogEHVI) they would make every
    # evaluation a joint q = 1 + pending one, whose hypervolume improvement costs 2^q terms
    cands = [pool]
    with times.phase("acquisition"):
        vals = [score(screen, pool, encoder, settings.chunk)]
    expanded: set[int] = set()
    for _ in range(settings.local_steps):
        with times.phase("candidates"):
            allX = np.concatenate(cands)
            allv = np.concatenate(vals)
            order = np.argsort(-allv, kind="stable")
            head = order[: settings.local_top * 4]
            head_ids = space.arch_id(allX[head]).tolist()
            top = [int(i) for i, a in zip(head, head_ids, strict=True) if a not in expanded]
            top = top[: settings.local_top]
            if top:
                expanded.update(space.arch_id(allX[top]).tolist())
                new = unseen(space.neighbours_batch(allX[top]), seen)
        if not top or new.shape[0] == 0:
            break
        with times.phase("acquisition"):
            new_v = score(screen, new, encoder, settings.chunk)
        cands.append(new)
        vals.append(new_v)
        if new_v.max() <= allv.max():
            break
    return np.concatenate(cands), np.concatenate(vals)


def greedy_batch(
    final: AcquisitionFunction, pool: IntArray, n: int, encoder: Encoder, chunk: int
) -> IntArray:
    """Sequential greedy batch of ``min(n, k)`` rows of ``pool (k, 28)``, by BoTorch's
    ``optimize_acqf_discrete``: each pick maximises ``final`` given its pending points and the earlier picks;
    ``final``'s pending points are restored afterwards."""
    q = min(n, pool.shape[0])
    if q == 0:
        return pool[:0]
    choices = encoder(pool)
    picked, _ = optimize_acqf_discrete(
        final, q=q, choices=choices, max_batch_size=chunk, unique=True, return_acq_values=False
    )
    # back from features to genes: the encodings are injective and the picks are rows of ``choices``
    rows = (picked[:, None, :] == choices[None, :, :]).all(dim=-1).to(torch.int8).argmax(dim=1)
    out: IntArray = pool[rows.numpy()]
    return out


def sequential_batch(
    make_acqf: PickAcquisition, pool: IntArray, n: int, encoder: Encoder, chunk: int
) -> IntArray:
    """Sequential greedy batch of ``min(n, k)`` rows of ``pool (k, 28)`` with a fresh acquisition per pick:
    pick ``i`` maximises ``make_acqf(earlier picks encoded (i, d_enc), or None)`` over the rows not yet
    picked (qLogNParEGO with new weights, or qLogEHVI against a front believing the earlier picks)."""
    q = min(n, pool.shape[0])
    choices = encoder(pool)
    picked: list[int] = []
    free = np.ones(pool.shape[0], dtype=bool)
    for _ in range(q):
        acqf = make_acqf(choices[picked] if picked else None)
        idx = np.flatnonzero(free)
        vals = score(acqf, pool[idx], encoder, chunk)
        j = int(idx[int(np.argmax(vals))])
        picked.append(j)
        free[j] = False
    out: IntArray = pool[np.asarray(picked, dtype=np.int64)]
    return out


def optimise_discrete(
    screen: AcquisitionFunction,
    final: AcquisitionFunction | None,
    encoder: Encoder,
    n: int,
    anchors: IntArray,
    exclude: set[int],
    rng: np.random.Generator,
    settings: SearchSettings,
    times: AskTimes | None = None,
    picker: PickAcquisition | None = None,
) -> IntArray:
    """Pick ``n`` new architectures: local search on ``screen``, sequential greedy selection on ``final``.

    Args:
        screen: cheap acquisition on encoded inputs ``(b, 1, d_enc)`` for ranking the pool.
        final: acquisition used for the batch (supports ``set_X_pending``), built conditioned on the
            architectures being evaluated (see :func:`optimizers.bo.acquisition.make_acquisition`).
        encoder: gene batch ``(k, 28)`` -> encoded tensor ``(k, d_enc)``.
        n: number of architectures to return.
        anchors: good evaluated architectures (Pareto set / best) to search around, ``(a, 28)``.
        exclude: ids (``space.arch_id``) that must not be proposed (evaluated, pending); not modified.
        rng: candidate sampling.
        settings: pool sizes and local-search depth.
        picker: when given, the batch is picked by :func:`sequential_batch` with this per-pick
            acquisition instead of ``final``.
        times: receives the candidates / acquisition / greedy seconds and ``n_scored`` if given.

    Returns:
        ``(n, 28)`` int64, distinct, none of them in ``exclude``.
    """
    t = times if times is not None else AskTimes()
    seen = set(exclude)
    with t.phase("candidates"):
        pool = candidate_pool(anchors, settings, seen, rng)
    allX, allv = local_search(screen, pool, encoder, seen, settings, t)
    t.n_scored += allX.shape[0]
    with t.phase("acquisition", "greedy"):
        order = np.argsort(-allv, kind="stable")
        best = allX[order[: max(settings.greedy_pool, n)]]
        if picker is None:
            assert final is not None, "optimise_discrete needs final or picker"
            out = greedy_batch(final, best, n, encoder, settings.chunk)
        else:
            out = sequential_batch(picker, best, n, encoder, settings.chunk)
    if out.shape[0] < n:  # tiny pools only: top up with random unseen architectures
        out = np.concatenate([out, random_unseen(n - out.shape[0], seen, rng, draw=4 * n)])
    result: IntArray = out.astype(np.int64)
    return result


__all__ = [
    "SearchSettings",
    "balanced_design",
    "block_neighbours",
    "candidate_pool",
    "greedy_batch",
    "local_search",
    "optimise_discrete",
    "random_unseen",
    "score",
    "sequential_batch",
    "unseen",
]
