"""The BO step of the proxy search (BoTorch / GPyTorch): which proxy to train next.

Two GPs on the proxies evaluated so far, inputs :meth:`ProxySpace.encode` ``(n, 7)`` in ``[0, 1]``:

- **τ model**: ``SingleTaskGP`` (learned noise, ``Standardize``) on Kendall τ with the reference;
- **cost model**: ``SingleTaskGP`` on ``log(measured cost / nominal cost)`` -- the a-priori cost
  (:func:`~nasopt.proxy.space.nominal_cost`) is known for every candidate, so the GP only learns how far
  the real cost departs from it (the fixed validation pass, per-step overheads); with fewer than two
  observations the residual is their mean with a wide spread, and a constant residual is taken as known.

The acquisition is **constrained expected improvement** (Gardner et al. 2014): BoTorch's analytic
``LogExpectedImprovement`` of τ over the best *feasible* τ so far, plus ``log P(cost <= bound)`` from the
cost model; before any feasible proxy is seen it is ``log P(cost <= bound)`` alone. ``"cei_per_cost"`` (the
search's default) divides by the predicted cost: improvement per unit of search budget, which is what the
budget is counted in (on the synthetic landscape of tests/test_proxy_search.py it reached the optimum after
1.9 reference-cost units against 2.7 for plain ``"cei"``). Candidates are the space's points
not yet evaluated, enumerated (the spaces are a few thousand points); fitting is deterministic (one L-BFGS-B
start from BoTorch's defaults, :func:`optimizers.bo.models.fit_gp`), so the same history proposes the same
proxy -- which is what makes a resumed search equal an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from scipy.special import log_ndtr

from benchmark._typing import FloatArray
from optimizers.bo.models import DTYPE, fit_gp

ACQUISITIONS = ("cei", "cei_per_cost")
#: spread of the log-cost residual before two costs are observed
PRIOR_LOG_COST_SD = 0.5


def _gp(X: FloatArray, y: FloatArray) -> SingleTaskGP:
    tx = torch.as_tensor(X, dtype=DTYPE)
    ty = torch.as_tensor(y, dtype=DTYPE).reshape(-1, 1)
    gp = SingleTaskGP(tx, ty, outcome_transform=Standardize(m=1))
    fit_gp(gp)
    gp.eval()
    return gp


def _posterior(gp: SingleTaskGP, Xc: FloatArray) -> tuple[FloatArray, FloatArray]:
    with torch.no_grad():
        post = gp.posterior(torch.as_tensor(Xc, dtype=DTYPE))
        mean = post.mean.reshape(-1).numpy()
        sd = post.variance.clamp_min(1e-12).sqrt().reshape(-1).numpy()
    return mean, sd


def acquisition_values(
    X: FloatArray,
    tau: FloatArray,
    log_cost_resid: FloatArray,
    feasible: np.ndarray,
    Xc: FloatArray,
    log_nominal_c: FloatArray,
    log_bound: float,
    acquisition: str = "cei",
) -> FloatArray:
    """Log acquisition of every candidate ``(N,)``.

    Args:
        X: encoded evaluated proxies ``(n, d)``; tau ``(n,)`` their τ; log_cost_resid ``(n,)`` their
            ``log(measured / nominal cost)``; feasible ``(n,)`` bool, measured cost within the bound.
        Xc: encoded candidates ``(N, d)``; log_nominal_c ``(N,)`` their log nominal cost fraction.
        log_bound: log of the largest allowed cost fraction.
    """
    if len(X) >= 2 and np.ptp(log_cost_resid) > 1e-9:
        mu_c, sd_c = _posterior(_gp(X, log_cost_resid), Xc)
        sd_c = np.sqrt(sd_c**2 + 1e-4)
    else:
        mu_c = np.full(len(Xc), float(np.mean(log_cost_resid)) if len(X) else 0.0)
        sd_c = np.full(len(Xc), PRIOR_LOG_COST_SD if len(X) < 2 else 0.01)
    log_pf = log_ndtr((log_bound - log_nominal_c - mu_c) / sd_c)
    if feasible.any() and len(X) >= 2:
        gp = _gp(X, tau)
        best = float(np.max(tau[feasible]))
        with torch.no_grad():
            lei = LogExpectedImprovement(gp, best_f=best)(torch.as_tensor(Xc, dtype=DTYPE).unsqueeze(1))
        value = lei.numpy().astype(np.float64) + log_pf
    else:
        value = log_pf.astype(np.float64)
    if acquisition == "cei_per_cost":
        value = value - (log_nominal_c + mu_c)
    return np.asarray(value, dtype=np.float64)


def initial_design(Xc: FloatArray, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` spread-out candidate rows: a random first one, then greedily the farthest from those chosen."""
    if len(Xc) == 0 or n <= 0:
        return []
    chosen = [int(rng.integers(len(Xc)))]
    d = np.linalg.norm(Xc - Xc[chosen[0]], axis=1)
    while len(chosen) < min(n, len(Xc)):
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, np.linalg.norm(Xc - Xc[nxt], axis=1))
    return chosen


def log_safe(x: float) -> float:
    return math.log(max(x, 1e-12))
