"""The timing record of one :meth:`~optimizers.bo.BayesianOptimization.ask` (read by
``experiments/perf/bo_speed.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class AskTimes:
    """Wall seconds of one ask, by phase, and its sizes.

    Each phase is measured by one ``with times.phase(name): ...`` block where it happens; a block may add to
    two fields at once (``phase("acquisition", "greedy")``).
    """

    #: GP construction and hyper-parameter fitting
    fit: float = 0.0
    #: candidate generation (random, neighbours, mutants, block moves, hill-climbing expansion)
    candidates: float = 0.0
    #: acquisition construction + screening of the candidate pool + sequential greedy batch selection
    acquisition: float = 0.0
    #: the greedy batch-selection part of ``acquisition``
    greedy: float = 0.0
    #: observations the GPs were fitted on
    n_train: int = 0
    #: candidates scored by the screening acquisition
    n_scored: int = 0
    #: whether the hyper-parameters were re-optimised (else only conditioned on the new data)
    refit: bool = False

    @property
    def total(self) -> float:
        return self.fit + self.candidates + self.acquisition

    @contextmanager
    def phase(self, *fields: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to each named field."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t0
            for name in fields:
                setattr(self, name, getattr(self, name) + elapsed)


__all__ = ["AskTimes"]
