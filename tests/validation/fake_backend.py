"""A deterministic measurement backend for tests of the validation plan (importable by subprocesses as
``tests.validation.fake_backend:ParamsLatencyBackend``): its "latency" is the network's parameter count in
millions, timed on a fake clock, after a short real sleep so a test can kill a run between jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from nasopt.validation.measure.base import MeasurementBackend
from nasopt.validation.measure.stats import FakeClock, Timer
from nasopt.validation.model import count_parameters


class ParamsLatencyBackend(MeasurementBackend):
    name: ClassVar[str] = "params-latency"
    runtime: ClassVar[str] = "nothing (a test backend)"
    default_warmup: ClassVar[int] = 0
    default_repeats: ClassVar[int] = 3
    default_passes: ClassVar[dict[str, int]] = {"throughput": 1, "latency": 1}

    def __init__(self, *, sleep_s: float = 0.0, **settings: Any) -> None:
        super().__init__(**settings)
        self.sleep_s = float(sleep_s)
        self._clock: FakeClock | None = None

    @classmethod
    def availability(cls) -> str | None:
        return None

    def default_device_name(self) -> str:
        return "fake"

    def prepare(self, model: Any) -> Callable[[], None]:
        time.sleep(self.sleep_s)
        self._clock = FakeClock([count_parameters(model) / 1e9])  # seconds -> params/1e6 ms
        return self._clock.tick

    def timer(self) -> Timer:
        assert self._clock is not None
        return Timer(self._clock)

    def environment(self) -> dict[str, Any]:
        return {"device": "fake", "runtime": "fake clock"}


class OutOfMemoryAbove8(ParamsLatencyBackend):
    """Runs out of memory above batch 8, as a GPU would."""

    def prepare(self, model: Any) -> Callable[[], None]:
        if self.batch > 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().prepare(model)
