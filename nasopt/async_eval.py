"""Asynchronous evaluation in simulated time: a pool of ``workers`` that never waits for the slowest job.

The runner with ``workers=k`` keeps ``k`` evaluations running. Each one takes its simulated cost (the
benchmark's ``cost``: simulated training seconds); the pool is an event queue ordered by simulated finish time
(ties: the order they started), as syne-tune's simulator backend does. When the earliest one finishes, the
clock jumps to its finish time, its result is evaluated (so noisy draws follow completion order) and told to
the optimizer alone, and the freed worker gets the optimizer's next proposal at once — asked while the other
``k-1`` are still running: the optimizers keep their asked-but-untold architectures themselves (NSGA-II's
untold generation rows, BO's pending points that condition its acquisition).

Deterministic for a seed (no wall-clock enters), and resumable: :meth:`PendingPool.state` (the running
evaluations, the clock, the start counter, whether starting has stopped) goes into the checkpoint.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import IntArray


@dataclass(order=True)
class Running:
    """One evaluation in progress: finishes at ``finish_s`` (simulated seconds), ``seq``-th started."""

    finish_s: float
    seq: int
    start_s: float = field(compare=False)
    cost_s: float = field(compare=False)
    x: IntArray = field(compare=False, repr=False)  # (28,) int64


class PendingPool:
    """The running evaluations of an asynchronous run, as an event queue in simulated time.

    Args:
        workers: evaluations running at once.
    """

    def __init__(self, workers: int) -> None:
        self.workers = int(workers)
        self.clock_s = 0.0  # simulated seconds since the run started (the pool's elapsed time)
        self.started = 0  # evaluations started so far (finished + running)
        self.closed: str | None = None  # why no more evaluations start ("evals", "sim_time"); None: they do
        self._heap: list[Running] = []

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def free(self) -> int:
        """Idle workers."""
        return 0 if self.closed else max(self.workers - len(self._heap), 0)

    @property
    def committed_cost_s(self) -> float:
        """Simulated training seconds of the running evaluations."""
        return float(sum(r.cost_s for r in self._heap))

    def start(self, X: IntArray, cost: np.ndarray) -> None:
        """Start ``X (k, 28)`` with simulated costs ``cost (k,)`` now."""
        for x, c in zip(X, np.asarray(cost, dtype=np.float64).reshape(-1), strict=True):
            heapq.heappush(
                self._heap, Running(self.clock_s + float(c), self.started, self.clock_s, float(c), x.copy())
            )
            self.started += 1

    def pop(self) -> Running:
        """The next evaluation to finish; the clock moves to its finish time."""
        r = heapq.heappop(self._heap)
        self.clock_s = max(self.clock_s, r.finish_s)
        return r

    # -- checkpoint ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The running evaluations ``X (k, 28)``, ``finish_s, start_s, cost_s, seq (k,)``."""
        rs = sorted(self._heap)
        return {
            "workers": self.workers,
            "clock_s": self.clock_s,
            "started": self.started,
            "closed": self.closed,
            "X": np.array([r.x for r in rs], dtype=np.int64).reshape(-1, space.N_GENES),
            "finish_s": np.array([r.finish_s for r in rs], dtype=np.float64),
            "start_s": np.array([r.start_s for r in rs], dtype=np.float64),
            "cost_s": np.array([r.cost_s for r in rs], dtype=np.float64),
            "seq": np.array([r.seq for r in rs], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PendingPool:
        pool = cls(int(state["workers"]))
        pool.clock_s = float(state["clock_s"])
        pool.started = int(state["started"])
        pool.closed = None if state["closed"] is None else str(state["closed"])
        X = np.asarray(state["X"], dtype=np.int64).reshape(-1, space.N_GENES)
        for i in range(X.shape[0]):
            pool._heap.append(
                Running(
                    float(np.asarray(state["finish_s"])[i]),
                    int(np.asarray(state["seq"])[i]),
                    float(np.asarray(state["start_s"])[i]),
                    float(np.asarray(state["cost_s"])[i]),
                    X[i].copy(),
                )
            )
        heapq.heapify(pool._heap)
        return pool


__all__ = ["PendingPool", "Running"]
