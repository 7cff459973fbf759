"""The measurement protocol: :class:`MeasurementBackend` (what a device backend implements), the value types
:class:`Protocol` and :class:`Measurement`, and the one measurement loop every backend shares.

A backend turns a network into a *step* (one forward pass on a fixed input, finished when it returns, data
excluded) and says what its environment is; the loop here does warm-up, repeats and statistics, so every
device's numbers mean the same thing. Backends are plug-ins: subclass, then add ``"name": "module:Class"`` to
:data:`nasopt.validation.measure.BACKENDS`; check with :class:`nasopt.validation.testing.BackendConformance`.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from benchmark._io import package_versions
from benchmark.errors import ConfigurationError, NasoptError, plain
from nasopt.rundir import json_plain
from nasopt.validation.measure.stats import Clock, SampleStats, Timer, summarize

METRICS = ("throughput", "latency")
UNITS = {"throughput": "img/s", "latency": "ms"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class BackendUnavailableError(NasoptError, RuntimeError):
    """A backend whose runtime is not installed or whose device is absent (the message names which)."""


class MeasurementError(NasoptError, RuntimeError):
    """A measurement that could not be taken or read back."""


@dataclass(frozen=True)
class Protocol:
    """How a number was measured: everything that changes it, stored with every measurement.

    ``passes`` forward passes are timed together for each of ``repeats`` samples, after ``warmup`` passes.
    Throughput = ``batch * passes / seconds`` (img/s); latency = ``seconds / passes`` in ms (for a pipelined
    runtime, the time per batch, as the dataset's FPGA "latency").
    """

    backend: str
    metric: str
    batch: int
    resolution: int
    precision: str
    warmup: int
    repeats: int
    passes: int
    threads: int | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (options as a dict)."""
        d = asdict(self)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Protocol:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["options"] = tuple(sorted(dict(d.get("options") or {}).items()))
        return cls(**d)


@dataclass(frozen=True)
class Measurement:
    """One measured number of one architecture on one device, with how and where it was taken.

    ``mean``/``std`` are over the kept samples (outliers rejected, see :mod:`.stats`); ``samples`` are all of
    them, in the unit (img/s or ms). ``device`` is the name the record uses (``throughput_<device>``).
    """

    arch: str
    device: str
    metric: str
    unit: str
    mean: float
    std: float
    median: float
    robust_std: float
    n: int
    n_rejected: int
    samples: tuple[float, ...]
    protocol: Protocol
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The record's name for this quantity, e.g. ``throughput_a100`` or ``latency_cpu``."""
        return f"{self.metric}_{self.device}"

    @property
    def relative_std(self) -> float:
        """``std / mean``."""
        return self.std / self.mean if self.mean else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        d["protocol"] = self.protocol.to_dict()
        d["samples"] = list(self.samples)
        d["environment"] = json_plain(self.environment)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["protocol"] = Protocol.from_dict(d["protocol"])
        d["samples"] = tuple(float(v) for v in d["samples"])
        return cls(**d)

    @classmethod
    def from_samples(
        cls,
        arch: str,
        device: str,
        metric: str,
        samples: Sequence[float],
        protocol: Protocol,
        environment: Mapping[str, Any],
    ) -> Measurement:
        """A measurement whose summary is computed from its raw ``samples`` (the one place that does it)."""
        stats: SampleStats = summarize(samples)
        return cls(
            arch=arch,
            device=device,
            metric=metric,
            unit=UNITS[metric],
            mean=stats.mean,
            std=stats.std,
            median=stats.median,
            robust_std=stats.robust_std,
            n=stats.n_kept,
            n_rejected=stats.n_rejected,
            samples=tuple(float(v) for v in samples),
            protocol=protocol,
            environment=dict(environment),
        )


def device_slug(name: str) -> str:
    """A record-friendly device name: lower case, ``[a-z0-9]`` runs joined by ``-`` (``"RTX 3090"`` ->
    ``"rtx-3090"``)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def base_environment() -> dict[str, Any]:
    """What every measurement records about its host: OS, Python, CPU, core count, library versions, time."""
    return {
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(("nasopt", "numpy", "torch", "onnxruntime", "onnx", "torch_xla")),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"measurement setting {name} must be an integer >= {minimum}, got {plain(value)}"
        )
    return int(value)


#: the ``threads`` setting that means every core this process may use (the CPU backends' default)
ALL_THREADS = "all"


def _threads(value: Any) -> int | None:
    """The ``threads`` setting: a positive count, or None for all cores (given as None or ``"all"``; the
    backend resolves it, :meth:`MeasurementBackend.effective_threads`, and records the count)."""
    if value is None or value == ALL_THREADS:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"measurement setting threads must be a positive integer, or 'all' for every core, got "
            f"{plain(value)}"
        )
    return int(value)


class MeasurementBackend(ABC):
    """A device backend: turns a network into a timed step on its device.

    Subclasses set ``name``, ``runtime`` (the package / device a user needs, for the "unavailable" line),
    ``precisions`` and the default settings, and implement :meth:`availability`, :meth:`prepare` and
    :meth:`environment`. The constructor only validates settings (no device is touched until
    :meth:`measure`).
    """

    name: ClassVar[str] = ""
    runtime: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    default_precision: ClassVar[str] = "fp32"
    #: metric -> default batch
    default_batch: ClassVar[dict[str, int]] = {"throughput": 32, "latency": 1}
    default_resolution: ClassVar[int] = 224
    default_warmup: ClassVar[int] = 10
    default_repeats: ClassVar[int] = 30
    #: metric -> forward passes timed together per sample
    default_passes: ClassVar[dict[str, int]] = {"throughput": 5, "latency": 10}

    def __init__(
        self,
        *,
        metric: str = "latency",
        batch: int | None = None,
        resolution: int | None = None,
        precision: str | None = None,
        warmup: int | None = None,
        repeats: int | None = None,
        passes: int | None = None,
        threads: int | str | None = None,
        device_name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ConfigurationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.metric = metric
        self.batch = _positive_int("batch", self.default_batch[metric] if batch is None else batch)
        self.resolution = _positive_int(
            "resolution", self.default_resolution if resolution is None else resolution, minimum=32
        )
        self.precision = self.default_precision if precision is None else precision
        if self.precision not in self.precisions:
            raise ConfigurationError(
                f"backend {self.name!r} measures in {', '.join(self.precisions)}, not {plain(self.precision)}"
            )
        self.warmup = _positive_int("warmup", self.default_warmup if warmup is None else warmup, minimum=0)
        self.repeats = _positive_int("repeats", self.default_repeats if repeats is None else repeats)
        self.passes = _positive_int("passes", self.default_passes[metric] if passes is None else passes)
        self.threads = _threads(threads)
        self.device_name = device_name
        self.clock = clock

    # ---- what a backend implements ------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when this backend can measure here, else one line naming the missing package or device."""

    @abstractmethod
    def prepare(self, model: Any) -> Callable[[], None]:
        """A step: one forward pass of ``model`` on a fixed ``(batch, 3, r, r)`` input already on the device,
        complete when it returns (or timed by :meth:`timer`, which synchronises)."""

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """What a reader needs to trust the number: device, driver/runtime and library versions, threads."""

    def default_device_name(self) -> str:
        """The record's device name when the user gives none (e.g. ``cpu``, ``a100``)."""
        return self.name

    def options(self) -> dict[str, Any]:
        """Backend-specific settings that change the number (stored in the :class:`Protocol`)."""
        return {}

    def effective_threads(self) -> int | None:
        """The host threads the runtime uses (the setting, or the runtime's default when it is resolved)."""
        return self.threads

    def timer(self) -> Timer:
        """The timer of this device (host clock by default)."""
        return Timer(self.clock)

    def release(self) -> None:  # noqa: B027 - optional hook
        """Undo what :meth:`prepare` changed in the process (threads, flags); called after every measure."""

    # ---- the shared loop ----------------------------------------------------------------------------
    def check_available(self) -> None:
        """Raise :class:`BackendUnavailableError` with the one-line reason when this backend cannot run."""
        why = self.availability()
        if why is not None:
            raise BackendUnavailableError(f"backend {self.name!r} is not available here: {why}")

    def protocol(self) -> Protocol:
        """The protocol this backend's settings give."""
        return Protocol(
            self.name,
            self.metric,
            self.batch,
            self.resolution,
            self.precision,
            self.warmup,
            self.repeats,
            self.passes,
            self.effective_threads(),
            tuple(sorted(self.options().items())),
        )

    def measure(self, model_or_arch: Any) -> Measurement:
        """Measure a built network (an :class:`~nasopt.validation.model.ArchNet`) or an architecture
        (anything :func:`~nasopt.validation.model.build_model` takes)."""
        self.check_available()
        model = _as_model(model_or_arch)
        arch = getattr(model, "arch_string", "")
        step = self.prepare(model)
        try:
            timer = self.timer()
            for _ in range(self.warmup):
                step()
            seconds = [timer.time(step, self.passes) for _ in range(self.repeats)]
            env = {**base_environment(), **self.environment()}
        finally:
            self.release()
        if self.metric == "throughput":
            samples = [self.batch * self.passes / s for s in seconds]
        else:
            samples = [1000.0 * s / self.passes for s in seconds]
        return Measurement.from_samples(
            arch, self.device_name or self.default_device_name(), self.metric, samples, self.protocol(), env
        )


def _as_model(model_or_arch: Any) -> Any:
    """An architecture becomes a freshly built network in evaluation mode; a module is used as it is."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the validation extra installs torch
        raise BackendUnavailableError("measuring needs torch: pip install 'nasopt[validation]'") from exc
    if isinstance(model_or_arch, torch.nn.Module):
        return model_or_arch.eval()
    from nasopt.validation.model import build_model

    return build_model(model_or_arch).eval()
