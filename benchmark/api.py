"""What every oracle (surrogate benchmark, synthetic test benchmark) offers to the rest of nasopt."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from benchmark._typing import FloatArray


class TargetPrediction(NamedTuple):
    """Prediction of one target for a batch of ``n`` architectures.

    Attributes:
        mean: ensemble mean, shape ``(n,)``.
        std: ensemble standard deviation (predictive spread), shape ``(n,)``.
        value: what the caller observes: ``mean`` in deterministic mode, a draw in noisy mode, ``(n,)``.
    """

    mean: FloatArray
    std: FloatArray
    value: FloatArray


@runtime_checkable
class Oracle(Protocol):
    """Batched benchmark: predictions per target and simulated training cost."""

    @property
    def digest(self) -> str:
        """Identifies the surrogate (data + configuration) for provenance of results."""
        ...

    def query(
        self,
        X: ArrayLike,
        targets: str | list[str] | tuple[str, ...] | None = None,
        *,
        noisy: bool = False,
        rng: np.random.Generator | None = None,
    ) -> dict[str, TargetPrediction]:
        """Predict ``targets`` (None = all) for ``X`` of shape ``(n, 28)``.

        With ``noisy=True`` each ``value`` is a draw from the ensemble's predictive spread using ``rng``
        (required then); otherwise ``value`` equals ``mean``.
        """
        ...

    def cost(self, X: ArrayLike) -> FloatArray:
        """Simulated training seconds of each architecture, shape ``(n,)``."""
        ...


def measured_ranges(oracle: Any) -> dict[str, tuple[float, float]]:
    """Per target, ``(min, max)`` of the records the oracle's models were fitted on: an oracle's optional
    ``measured_ranges`` property (the surrogate :class:`benchmark.oracle.Benchmark` has one); ``{}`` for an
    oracle without measured data (e.g. the synthetic one). Used to count extrapolated predictions
    (:func:`benchmark.coverage.extrapolated`)."""
    ranges = getattr(oracle, "measured_ranges", None)
    if not isinstance(ranges, dict):
        return {}
    return {str(t): (float(lo), float(hi)) for t, (lo, hi) in ranges.items()}
