"""Random search: architectures drawn uniformly from the space, optionally never proposing one twice."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers._checks import check_ask, check_bool, check_int, check_tell
from optimizers.base import Optimizer, ProblemInfo, StateTree

_OWNER = "RandomSearch"


class RandomSearch(Optimizer):
    """Uniform random sampling (``space.sample``).

    Hyperparameters:
        deduplicate: never propose an architecture that was already proposed or told (default True).
        max_resample: rounds of redrawing duplicates before giving up and allowing them (default 100).
    """

    name = "rs"
    multi_objective = True

    @property
    def preferred_batch_size(self) -> int | None:
        return 100

    def __init__(
        self,
        problem: ProblemInfo,
        rng: np.random.Generator,
        *,
        deduplicate: bool = True,
        max_resample: int = 100,
    ) -> None:
        super().__init__(problem, rng)
        self.deduplicate = check_bool(_OWNER, "deduplicate", deduplicate)
        self.max_resample = check_int(_OWNER, "max_resample", max_resample, 0)
        self._seen: set[int] = set()
        self.n_told = 0

    def hyperparameters(self) -> dict[str, Any]:
        return {"deduplicate": self.deduplicate, "max_resample": self.max_resample}

    def ask(self, n: int) -> IntArray:
        """``n`` uniform architectures, ``(n, 28)``; with deduplication none seen before or repeated."""
        n = check_ask(_OWNER, n)
        X = space.sample(n, self.rng)
        if self.deduplicate and n:
            ids = space.arch_id(X)
            for _ in range(self.max_resample):
                dup = space.duplicated(ids, self._seen)
                if not dup.any():
                    break
                X[dup] = space.sample(int(dup.sum()), self.rng)
                ids[dup] = space.arch_id(X[dup])
            self._seen.update(ids.tolist())
        return X

    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """Check shapes; told architectures are never proposed again (with deduplication)."""
        X, _, _, _ = check_tell(self, X, F, feasible)
        if self.deduplicate:
            self._seen.update(space.arch_id(X).tolist())
        self.n_told += X.shape[0]

    def _state(self) -> StateTree:
        """Proposed/told ids ``seen_ids (k,)`` (sorted) and the count of told evaluations."""
        return {"seen_ids": np.array(sorted(self._seen), dtype=np.int64), "n_told": self.n_told}

    def _load_state(self, state: StateTree) -> None:
        self._seen = set(np.asarray(state["seen_ids"], dtype=np.int64).tolist())
        self.n_told = int(state["n_told"])
