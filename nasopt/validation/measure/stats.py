"""Robust statistics of repeated timings, and the clocks they are taken with.

Each repeat of a measurement gives one sample (img/s or ms). Samples farther than ``OUTLIER_SIGMAS`` robust
standard deviations from the median (an OS hiccup, a frequency step, a garbage collection) are rejected before
the mean and standard deviation are formed; the robust σ is ``1.4826 * MAD`` (as :mod:`benchmark.noise`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from benchmark._typing import BoolArray

#: a clock: seconds as a float from an arbitrary origin (``time.perf_counter`` or a fake one in tests)
Clock = Callable[[], float]
MAD_TO_SIGMA = 1.4826
OUTLIER_SIGMAS = 5.0


@dataclass(frozen=True)
class SampleStats:
    """Summary of ``(n,)`` samples: mean/std over the kept ones, median and robust σ over all."""

    mean: float
    std: float
    median: float
    robust_std: float
    n_kept: int
    n_rejected: int
    kept: tuple[bool, ...]

    @property
    def relative_std(self) -> float:
        """``std / mean`` (NaN when the mean is 0)."""
        return self.std / self.mean if self.mean else float("nan")


def summarize(samples: ArrayLike, outlier_sigmas: float = OUTLIER_SIGMAS) -> SampleStats:
    """Robust summary of ``(n,)`` positive samples (n >= 1)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"samples must be finite, got {x[~np.isfinite(x)][:3].tolist()}")
    median = float(np.median(x))
    robust = float(MAD_TO_SIGMA * np.median(np.abs(x - median)))
    kept: BoolArray = np.abs(x - median) <= outlier_sigmas * robust if robust > 0 else np.ones(x.size, bool)
    k = x[kept]
    std = float(k.std(ddof=1)) if k.size > 1 else 0.0
    return SampleStats(
        float(k.mean()), std, median, robust, int(k.size), int(x.size - k.size), tuple(bool(v) for v in kept)
    )


class Timer:
    """Times ``passes`` calls of a step with a clock; a backend with asynchronous devices (CUDA, XLA)
    subclasses it to time on the device and synchronise."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.perf_counter

    def time(self, step: Callable[[], None], passes: int) -> float:
        """Seconds for ``passes`` calls of ``step`` (> 0)."""
        t0 = self.clock()
        for _ in range(passes):
            step()
        return max(self.clock() - t0, 1e-12)


class FakeClock:
    """A deterministic clock for tests: each call of ``tick()`` (done by the fake step) advances time by
    the next of ``durations`` (cycled), so a measurement's samples are known in advance."""

    def __init__(self, durations: ArrayLike) -> None:
        self.durations = [float(d) for d in np.asarray(durations, dtype=np.float64).ravel()]
        if not self.durations or min(self.durations) <= 0:
            raise ValueError("FakeClock needs positive durations")
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        """Advance by the next duration (what one forward pass would take)."""
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1
