"""The measurement-backend conformance suite, shipped for backend authors (the same shape as
:class:`nasopt.testing.OptimizerConformance`).

Subclass :class:`BackendConformance` in a test module (class name starting with ``Test``) and name the
backend; pytest runs every protocol check on it::

    from nasopt.validation.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "my-npu"                 # a registry name or a MeasurementBackend subclass
        settings = {"threads": 1}          # small settings so the suite is fast

Checks that need the device run only where :meth:`MeasurementBackend.availability` says it is usable (they
are skipped with its reason elsewhere); the rest -- settings, the "unavailable" line, statistics and units on
a fake clock, the JSON round trip -- run everywhere. This module imports pytest; import it from tests only.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest

from benchmark.errors import ConfigurationError
from nasopt.validation.measure import (
    BackendUnavailableError,
    Measurement,
    MeasurementBackend,
    backend_class,
    make_backend,
)
from nasopt.validation.measure.stats import FakeClock, Timer

#: the smallest architecture of the space: the cheapest network to measure in a test
SMALLEST = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"
#: keys every measurement's environment must hold
REQUIRED_ENVIRONMENT = ("device", "runtime", "os", "python", "cpu", "packages", "measured_at")


class BackendConformance:
    """Protocol checks for one measurement backend; subclass it as ``Test...``."""

    backend: ClassVar[str | type[MeasurementBackend] | None] = None
    settings: ClassVar[dict[str, Any]] = {}
    #: resolution of the test network (small, so the real measurement takes a second)
    resolution: ClassVar[int] = 64

    def backend_cls(self) -> type[MeasurementBackend]:
        """The class under test."""
        if self.backend is None:
            raise TypeError(f"{type(self).__name__}: set the class attribute 'backend'")
        return backend_class(self.backend) if isinstance(self.backend, str) else self.backend

    def make(self, **settings: Any) -> MeasurementBackend:
        """The backend with the suite's settings, overridden by ``settings``."""
        merged = {
            "resolution": self.resolution,
            "warmup": 1,
            "repeats": 4,
            "passes": 1,
            **self.settings,
            **settings,
        }
        if isinstance(self.backend, str):
            return make_backend(self.backend, **merged)
        return self.backend_cls()(**merged)

    def _fake(self, durations: list[float], **settings: Any) -> tuple[MeasurementBackend, FakeClock]:
        """The backend with its device replaced by a fake clock: each forward pass takes the next duration."""
        clock = FakeClock(durations)
        cls = self.backend_cls()

        class Faked(cls):  # type: ignore[valid-type, misc]
            @classmethod
            def availability(cls) -> str | None:
                return None

            def prepare(self, model: Any) -> Any:
                return clock.tick

            def timer(self) -> Timer:
                return Timer(clock)

            def environment(self) -> dict[str, Any]:
                return {"device": "fake", "runtime": "fake clock"}

            def default_device_name(self) -> str:
                return "fake"

            def release(self) -> None:
                return None

        merged = {"resolution": self.resolution, **self.settings, **settings}
        return Faked(**merged), clock

    def _require_device(self) -> None:
        why = self.backend_cls().availability()
        if why is not None:
            pytest.skip(f"backend not available here: {why}")

    # ---- everywhere ---------------------------------------------------------------------------------
    def test_registered_name_and_runtime(self) -> None:
        cls = self.backend_cls()
        assert cls.name, "a backend needs a registry name"
        assert cls.runtime, "a backend names the runtime/device it needs (for the 'unavailable' line)"
        assert cls.default_precision in cls.precisions

    def test_bad_settings_are_one_line_configuration_errors(self) -> None:
        for bad in (
            {"metric": "speed"},
            {"batch": 0},
            {"repeats": 0},
            {"precision": "fp8"},
            {"resolution": 8},
            {"threads": 0},
        ):
            with pytest.raises(ConfigurationError) as info:
                self.make(**bad)
            assert "\n" not in str(info.value), str(info.value)

    def test_unavailable_runtime_is_one_line(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cls = self.backend_cls()
        monkeypatch.setattr(cls, "availability", classmethod(lambda c: "frobnicator not installed"))
        backend = self.make()
        with pytest.raises(BackendUnavailableError) as info:
            backend.measure(SMALLEST)
        text = str(info.value)
        assert "\n" not in text and cls.name in text and "frobnicator not installed" in text

    def test_latency_samples_on_a_fake_clock(self) -> None:
        backend, _ = self._fake([0.010, 0.012], metric="latency", batch=1, warmup=2, repeats=6, passes=2)
        m = backend.measure(SMALLEST)
        # every sample is 2 passes of 10 + 12 ms -> 11 ms per pass
        assert m.unit == "ms" and m.n == 6 and m.n_rejected == 0
        assert np.allclose(m.samples, 11.0) and m.mean == pytest.approx(11.0)
        assert m.std == pytest.approx(0.0, abs=1e-9)

    def test_throughput_samples_on_a_fake_clock(self) -> None:
        backend, _ = self._fake([0.5], metric="throughput", batch=8, warmup=0, repeats=3, passes=2)
        m = backend.measure(SMALLEST)
        assert m.unit == "img/s" and m.mean == pytest.approx(8 * 2 / 1.0)
        assert m.protocol.batch == 8 and m.protocol.passes == 2 and m.protocol.repeats == 3

    def test_outliers_are_rejected_robustly(self) -> None:
        # 19 samples near 10 ms and one at 100 ms (a hiccup): the mean ignores it, samples keep it
        durations = [0.010, 0.0101, 0.0099, 0.0102, 0.0098] * 4
        durations[7] = 0.100
        backend, _ = self._fake(durations, metric="latency", batch=1, warmup=0, repeats=20, passes=1)
        m = backend.measure(SMALLEST)
        assert m.n_rejected == 1 and m.n == 19 and len(m.samples) == 20
        assert m.mean == pytest.approx(10.0, abs=0.05) and max(m.samples) == pytest.approx(100.0)

    def test_measurement_json_round_trip(self) -> None:
        backend, _ = self._fake([0.01], metric="latency", repeats=3, warmup=0)
        m = backend.measure(SMALLEST)
        back = Measurement.from_dict(json.loads(json.dumps(m.to_dict())))
        assert back == m
        assert m.arch == SMALLEST and m.target == "latency_fake"

    # ---- on the device ------------------------------------------------------------------------------
    def test_real_measurement_is_valid(self) -> None:
        self._require_device()
        backend = self.make(metric="latency", batch=1)
        m = backend.measure(SMALLEST)
        assert m.mean > 0 and np.isfinite(m.std) and m.n + m.n_rejected == len(m.samples) == 4
        assert all(s > 0 for s in m.samples)
        assert m.protocol.resolution == self.resolution and m.protocol.backend == self.backend_cls().name
        missing = [k for k in REQUIRED_ENVIRONMENT if k not in m.environment]
        assert not missing, f"environment lacks {missing}"
        json.dumps(m.to_dict())  # plain JSON

    def test_real_throughput_counts_images(self) -> None:
        self._require_device()
        m = self.make(metric="throughput", batch=2).measure(SMALLEST)
        assert m.unit == "img/s" and m.mean > 0 and m.protocol.batch == 2
