"""Physical cost features of every block configuration, the low-data basis of the additive device model.

A device's latency is close to additive over layers, and a layer's cost is close to a device-specific mix of a
few counts that the geometry (:mod:`benchmark.geometry`) fixes: pointwise MACs, depthwise MACs, activation
elements written, squeeze-excite elements, the layer count and the SE count. With those as features the
additive model learns a handful of coefficients instead of one weight per block configuration (36-48 per
block), so a new device needs tens of measurements instead of thousands (``SurrogateConfig.additive_basis =
"physical"``; numbers: benchmark/SURROGATE.md).

Per block configuration the basis is, in ridge order (weakest penalty first): the physical features with
one coefficient vector shared by all blocks, per-block deviations of those coefficients, per-block main
effects of each gene's level, and the full per-configuration one-hot. Every part is a per-block lookup, so
the fitted model compiles to the same per-block tables as the one-hot model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from benchmark import geometry, space
from benchmark._typing import FloatArray, IntArray
from benchmark.tables import BLOCK_GENES, BLOCK_SIZES

#: names of the physical features (columns of :func:`block_features`)
FEATURES = ("pointwise_macs", "depthwise_macs", "activations", "se_elements", "layers", "se_layers")
#: ridge penalty per part of the basis, in units of the residual variance of the shared-coefficient fit
#: (features scaled to at most 1); chosen on a synthetic device and four dataset devices (SURROGATE.md)
PENALTY_SHARED = 1e-8
PENALTY_BLOCK = 3.0
PENALTY_MAIN = 10.0
PENALTY_ONEHOT = 30.0


@lru_cache(maxsize=4)
def block_features(
    resolution: int = geometry.INPUT_SIZE, skeleton: geometry.Skeleton = geometry.MNASNET
) -> tuple[FloatArray, ...]:
    """Per block ``b``: the physical features of each of its configurations, ``(C_b, 6)``, each column
    divided by its maximum over all blocks (so one penalty fits every column); for the networks of
    ``skeleton`` at ``resolution`` px."""
    out: list[FloatArray] = []
    r = -(-resolution // skeleton.stem_stride)
    for b in range(space.N_BLOCKS):
        c_first = skeleton.stem_channels if b == 0 else skeleton.out_channels[b - 1]
        c_out = skeleton.out_channels[b]
        rows = []
        for genes in BLOCK_GENES[b]:
            e = space.GENE_VALUES[4 * b][genes[0]]
            k = space.GENE_VALUES[4 * b + 1][genes[1]]
            n_layers = space.GENE_VALUES[4 * b + 2][genes[2]]
            se = int(genes[3])
            f = np.zeros(len(FEATURES))
            r_in = r
            for j in range(n_layers):
                c_in = c_first if j == 0 else c_out
                r_out = -(-r_in // (skeleton.strides[b] if j == 0 else 1))
                h = c_in * e
                f[0] += r_in * r_in * c_in * h * (e > 1) + r_out * r_out * h * c_out
                f[1] += r_out * r_out * h * k * k
                f[2] += r_in * r_in * h * (e > 1) + r_out * r_out * (h + c_out)
                f[3] += se * r_out * r_out * h
                f[4] += 1
                f[5] += se
                r_in = r_out
            rows.append(f)
        r = -(-r // skeleton.strides[b])
        out.append(np.array(rows))
    scale = np.max(np.concatenate(out), axis=0)
    scale[scale == 0] = 1.0
    return tuple(f / scale for f in out)


@lru_cache(maxsize=4)
def block_basis(
    resolution: int = geometry.INPUT_SIZE, skeleton: geometry.Skeleton = geometry.MNASNET
) -> tuple[tuple[FloatArray, ...], FloatArray]:
    """The basis of the physical additive model.

    Returns:
        per block ``b`` a matrix ``(C_b, p)`` (zero outside block ``b``'s own columns, so
        ``sum_b B_b[cfg_b] @ theta`` is the model), and the ridge penalty per column ``(p,)``.
    """
    feats = block_features(resolution, skeleton)
    n_f = len(FEATURES)
    main_sizes = [[int(BLOCK_GENES[b][:, j].max()) + 1 for j in range(4)] for b in range(space.N_BLOCKS)]
    per_block = [n_f + sum(main_sizes[b]) + int(BLOCK_SIZES[b]) for b in range(space.N_BLOCKS)]
    p = n_f + sum(per_block)
    penalty = np.full(p, PENALTY_SHARED)
    mats: list[FloatArray] = []
    start = n_f
    for b in range(space.N_BLOCKS):
        M = np.zeros((int(BLOCK_SIZES[b]), p))
        M[:, :n_f] = feats[b]
        col = start
        M[:, col : col + n_f] = feats[b]
        penalty[col : col + n_f] = PENALTY_BLOCK
        col += n_f
        for j in range(4):
            size = main_sizes[b][j]
            M[np.arange(len(M)), col + BLOCK_GENES[b][:, j]] = 1.0
            penalty[col : col + size] = PENALTY_MAIN
            col += size
        M[:, col : col + int(BLOCK_SIZES[b])] = np.eye(int(BLOCK_SIZES[b]))
        penalty[col : col + int(BLOCK_SIZES[b])] = PENALTY_ONEHOT
        col += int(BLOCK_SIZES[b])
        start = col
        mats.append(M)
    return tuple(mats), penalty


def fit_physical_additive(cfg: IntArray, z: FloatArray) -> tuple[list[FloatArray], float]:
    """See :func:`_fit_physical_additive`; BLAS runs on one thread (threadpoolctl, when installed): the
    systems are small, and threaded OpenBLAS on a busy machine made each solve 25x slower (0.26 vs 0.01 s)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - an optional speed-up
        return _fit_physical_additive(cfg, z)
    with threadpool_limits(1, user_api="blas"):
        return _fit_physical_additive(cfg, z)


def _fit_physical_additive(cfg: IntArray, z: FloatArray) -> tuple[list[FloatArray], float]:
    """Structured-ridge fit of ``z ~ bias + sum_b w_b[cfg_b]`` on the physical basis.

    Args:
        cfg: ``(n, >= 7)`` block configuration indices; z: ``(n,)`` latency-space values.

    Returns:
        per-block weights ``(C_b,)`` (the basis collapsed to one lookup per configuration) and the bias.
    """
    from scipy.optimize import nnls

    mats, penalty = block_basis()
    feats = block_features()
    n_f = len(FEATURES)
    ones = np.ones((len(z), 1))
    # the intercept (fixed overhead) and the shared coefficients (costs per unit of work) are never
    # negative (non-negative least squares), so the shared part alone is a positive cost everywhere
    shared = np.concatenate([ones, sum(feats[b][cfg[:, b]] for b in range(space.N_BLOCKS))], axis=1)
    coef = nnls(shared, z)[0]
    resid = z - shared @ coef
    # the scale of the penalties: what the shared coefficients alone leave unexplained (noise + structure)
    s2 = max(float(resid @ resid) / max(len(z) - shared.shape[1], 1), 1e-8 * float(z.var()), 1e-300)
    basis = sum(mats[b][cfg[:, b]] for b in range(space.N_BLOCKS))
    assert isinstance(basis, np.ndarray)
    # the intercept is its own column (centring z instead biases the shared coefficients: the features are
    # all positive); the ridge is solved as least squares on rows sqrt(penalty) * I appended
    A = np.concatenate([ones, basis], axis=1)
    pen = s2 * np.concatenate([[PENALTY_SHARED], penalty])
    lo = np.full(A.shape[1], -np.inf)
    lo[: 1 + n_f] = 0.0
    for _ in range(6):
        theta = _bounded_ridge(A, z, pen, lo)
        weights = [np.asarray(mats[b] @ theta[1:]) for b in range(space.N_BLOCKS)]
        # a cost must be positive on the whole space: its minimum is the sum of the per-block minima
        if theta[0] + sum(float(w.min()) for w in weights) > 0:
            return weights, float(theta[0])
        pen = pen * 10.0  # few, noisy measurements: shrink the corrections harder
    # the shared (non-negative) coefficients alone; positive unless the intercept is very negative
    weights = [feats[b] @ coef[1:] for b in range(space.N_BLOCKS)]
    if coef[0] + sum(float(w.min()) for w in weights) > 0:
        return weights, float(coef[0])
    return [np.zeros(int(s)) for s in BLOCK_SIZES], float(z.mean())


def _bounded_ridge(A: FloatArray, z: FloatArray, pen: FloatArray, lo: FloatArray) -> FloatArray:
    """``argmin |A t - z|^2 + sum(pen * t^2)`` with the columns where ``lo`` is 0 kept non-negative
    ``(p,)``: closed-form solves, pinning at 0 the bounded coefficients that come out negative until none
    does (an active-set pass over the few bounded columns; each solve is one ``p x p`` system)."""
    G = A.T @ A + np.diag(pen)
    b = A.T @ z
    free = np.ones(len(pen), bool)
    bounded = lo >= 0
    theta = np.zeros(len(pen))
    for _ in range(int(bounded.sum()) + 1):
        theta = np.zeros(len(pen))
        theta[free] = np.linalg.solve(G[np.ix_(free, free)], b[free])
        neg = bounded & free & (theta < 0)
        if not neg.any():
            break
        free &= ~neg
    theta[bounded] = np.maximum(theta[bounded], 0.0)
    return theta
