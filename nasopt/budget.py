"""Search budgets: a number of evaluations and/or simulated training time, whichever ends first.

Accounting rules (the runner follows them; tests check them):

- Every evaluation the optimizer asked for counts once, **including re-proposed duplicates**: a
  re-proposed architecture is evaluated again, counts against the evaluation budget, adds its simulated
  training time again (a real user would retrain it), is recorded with ``duplicate=True``, and in noisy
  mode gets a fresh draw.
- Simulated time is the benchmark's ``cost(X)`` (training seconds of the proxified scheme), accumulated in
  evaluation order. An evaluation whose training would end after ``max_sim_time_s`` is not performed: the
  run stops before it (so ``sim_time_s <= max_sim_time_s`` always holds). The rest of that batch is dropped
  and the optimizer is not told about the truncated batch (the run ends there).
- With an evaluation budget the runner never asks for more than the remaining evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from benchmark.errors import NasoptError, plain


class BudgetError(NasoptError, ValueError):
    """An invalid budget specification."""


@dataclass(frozen=True)
class Budget:
    """Limits of one run; ``None`` means "no limit of this kind" (at least one must be set).

    Attributes:
        max_evals: maximum number of evaluations (duplicates included).
        max_sim_time_s: maximum cumulative simulated training seconds.
    """

    max_evals: int | None = None
    max_sim_time_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_evals is None and self.max_sim_time_s is None:
            raise BudgetError("a budget needs max_evals and/or max_sim_time_s (e.g. budget.max_evals=1500)")
        if self.max_evals is not None:
            if (
                isinstance(self.max_evals, (bool, np.bool_, str))
                or not math.isfinite(self.max_evals)
                or int(self.max_evals) != self.max_evals
                or self.max_evals < 1
            ):
                raise BudgetError(
                    f"budget.max_evals must be a positive integer, got {plain(self.max_evals)}"
                )
            object.__setattr__(self, "max_evals", int(self.max_evals))
        if self.max_sim_time_s is not None:
            v = float(self.max_sim_time_s)
            if not (math.isfinite(v) and v > 0):
                raise BudgetError(f"budget.max_sim_time_s must be a positive number of seconds, got {v!r}")
            object.__setattr__(self, "max_sim_time_s", v)

    @classmethod
    def parse(cls, spec: Budget | int | Mapping[str, Any]) -> Budget:
        """From a Budget, an int (evaluations) or a mapping ``{max_evals, max_sim_time_s}``."""
        if isinstance(spec, Budget):
            return spec
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"max_evals", "max_sim_time_s"}
            if unknown:
                raise BudgetError(
                    f"unknown budget key(s) {sorted(unknown)}; use max_evals and/or max_sim_time_s"
                )
            return cls(spec.get("max_evals"), spec.get("max_sim_time_s"))
        if isinstance(spec, (int, float, np.integer, np.floating)) and not isinstance(spec, (bool, np.bool_)):
            return cls(max_evals=spec)  # __post_init__ refuses 1.5, 0, -3
        raise BudgetError(f"cannot read a budget from {plain(spec)}; give an int (evaluations) or a mapping")

    def remaining_evals(self, n_evals: int) -> int | None:
        """Evaluations left after ``n_evals`` (None = unlimited)."""
        return None if self.max_evals is None else max(self.max_evals - n_evals, 0)

    def evals_within_sim_time(self, cum_sim_time_s: ArrayLike) -> int:
        """How many evaluations of a batch fit, given the cumulative simulated seconds after each ``(n,)``."""
        cum = np.asarray(cum_sim_time_s, dtype=np.float64).reshape(-1)
        if self.max_sim_time_s is None:
            return int(cum.size)
        return int(np.searchsorted(cum, self.max_sim_time_s, side="right"))

    def exhausted_by(self, n_evals: int, sim_time_s: float) -> str | None:
        """``"evals"`` / ``"sim_time"`` when that limit is reached, else None (the runner also ends a run by
        ``"sim_time"`` when the next evaluation would not fit into the remaining simulated time)."""
        if self.max_evals is not None and n_evals >= self.max_evals:
            return "evals"
        if self.max_sim_time_s is not None and sim_time_s >= self.max_sim_time_s:
            return "sim_time"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"max_evals": self.max_evals, "max_sim_time_s": self.max_sim_time_s}
