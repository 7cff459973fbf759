"""The one way to evaluate architectures on an oracle for a problem: ``Evaluator(problem, oracle)(X)``.

Used by the runner, the reference fronts and the optimizer conformance suite. One call makes one batched
``oracle.query`` for every target the problem needs and one ``oracle.cost`` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.api import Oracle
from nasopt.problems import Problem


@dataclass(frozen=True)
class Evaluation:
    """What one batch of ``n`` architectures scored on a problem with ``m`` objectives.

    Attributes:
        X: the architectures, ``(n, 28)`` int64.
        observed: what the optimizer observes per objective in natural units, ``(n, m)`` (the ensemble mean,
            or a noisy draw in noisy mode).
        mean: ensemble mean per objective in natural units, ``(n, m)``.
        std: ensemble std per objective, ``(n, m)``.
        constraint_means: ensemble mean of each constraint target that is not an objective,
            ``{target: (n,)}``.
        feasible: ``(n,)``: every constraint holds on the ensemble means and the evaluation did not fail.
        failed: ``(n,)``: an objective is NaN/inf (observed or mean).
        F: ``observed`` in internal minimisation units, ``(n, m)``; failed rows are all NaN.
        cost: simulated training seconds per architecture, ``(n,)``.
    """

    X: IntArray
    observed: FloatArray
    mean: FloatArray
    std: FloatArray
    constraint_means: dict[str, FloatArray]
    feasible: BoolArray
    failed: BoolArray
    F: FloatArray
    cost: FloatArray

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def target_mean(self, target: str, objectives: tuple[str, ...]) -> FloatArray:
        """Ensemble mean ``(n,)`` of an objective or constraint target."""
        if target in objectives:
            return self.mean[:, objectives.index(target)]
        return self.constraint_means[target]


class Evaluator:
    """Evaluates batches of architectures of ``problem`` on ``oracle``; no state of its own.

    Args:
        problem: the problem (objectives, constraints, eval mode).
        oracle: the benchmark (:class:`benchmark.api.Oracle`).
    """

    def __init__(self, problem: Problem, oracle: Oracle) -> None:
        self.problem = problem
        self.oracle = oracle

    def __call__(self, X: IntArray, noise_rng: np.random.Generator | None = None) -> Evaluation:
        """Evaluate ``X (n, 28)``; ``noise_rng`` draws the noisy observations in noisy mode (else unused)."""
        return self.evaluate_batch(space.as_batch(X), noise_rng)

    def evaluate_batch(self, batch: IntArray, noise_rng: np.random.Generator | None = None) -> Evaluation:
        """:meth:`__call__` for a batch already validated by :func:`benchmark.space.as_batch` ``(n, 28)``."""
        problem = self.problem
        n = batch.shape[0]
        noisy = problem.eval_mode == "noisy"
        preds = self.oracle.query(
            batch, list(problem.query_targets), noisy=noisy, rng=noise_rng if noisy else None
        )
        cost = np.asarray(self.oracle.cost(batch), dtype=np.float64).reshape(n)
        observed = np.stack(
            [np.asarray(preds[o].value, dtype=np.float64) for o in problem.objectives], axis=1
        )
        mean = np.stack([np.asarray(preds[o].mean, dtype=np.float64) for o in problem.objectives], axis=1)
        std = np.stack([np.asarray(preds[o].std, dtype=np.float64) for o in problem.objectives], axis=1)
        constraint_means = {
            t: np.asarray(preds[t].mean, dtype=np.float64) for t in problem.constraint_targets
        }
        feasible = problem.feasible({c.target: preds[c.target].mean for c in problem.constraints}, n)
        failed = ~(np.all(np.isfinite(observed), axis=1) & np.all(np.isfinite(mean), axis=1))
        feasible &= ~failed
        F = problem.to_internal(observed)
        F[failed] = np.nan
        return Evaluation(batch, observed, mean, std, constraint_means, feasible, failed, F, cost)


__all__ = ["Evaluation", "Evaluator"]
