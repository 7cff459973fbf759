"""Measurement backends: a lazy registry, :func:`make_backend` and :func:`measure`.

Adding a backend: subclass :class:`~nasopt.validation.measure.base.MeasurementBackend` and add one line
``"name": "module:Class"`` to :data:`BACKENDS`; check it with
:class:`nasopt.validation.testing.BackendConformance`. Modules are imported only when a backend is used,
so a missing runtime (onnxruntime, CUDA, torch_xla) costs nothing until then, and then one clear line.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from benchmark.errors import ConfigurationError, check_keywords
from nasopt.validation.measure.base import (
    METRICS,
    BackendUnavailableError,
    Measurement,
    MeasurementBackend,
    MeasurementError,
    Protocol,
)

#: registry name -> "module:Class"
BACKENDS: dict[str, str] = {
    "onnxruntime": "nasopt.validation.measure.cpu:OnnxRuntimeBackend",
    "torch-cpu": "nasopt.validation.measure.cpu:TorchCPUBackend",
    "cuda": "nasopt.validation.measure.cuda:CudaBackend",
    "tpu": "nasopt.validation.measure.tpu:TpuBackend",
}
#: short names users type
ALIASES: dict[str, str] = {"cpu": "onnxruntime", "ort": "onnxruntime", "gpu": "cuda", "xla": "tpu"}


class UnknownBackendError(ConfigurationError, KeyError):
    """A backend name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def backend_class(name: str) -> type[MeasurementBackend]:
    """The class registered under ``name`` (or an alias such as ``cpu``), or a plug-in given as its import
    path ``"package.module:Class"`` (a :class:`MeasurementBackend` subclass)."""
    if ":" in name:
        module, _, cls_name = name.partition(":")
        try:
            found = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError) as exc:
            raise UnknownBackendError(f"cannot import measurement backend {name!r} ({exc})") from exc
        if not (isinstance(found, type) and issubclass(found, MeasurementBackend)):
            raise UnknownBackendError(f"{name!r} is not a MeasurementBackend subclass")
        return found
    key = ALIASES.get(name, name)
    if key not in BACKENDS:
        known = ", ".join([*BACKENDS, *(f"{a} (= {t})" for a, t in ALIASES.items())])
        raise UnknownBackendError(f"unknown measurement backend {name!r}; available: {known}")
    module, cls = BACKENDS[key].split(":")
    out: type[MeasurementBackend] = getattr(importlib.import_module(module), cls)
    return out


def make_backend(name: str, **settings: Any) -> MeasurementBackend:
    """A backend by registry name with its settings checked (unknown keywords named in one line)."""
    cls = backend_class(name)
    check_keywords(f"measurement backend {name!r}", _accepted_settings(cls), settings)
    return cls(**settings)


def _accepted_settings(cls: type[MeasurementBackend]) -> Any:
    """A callable whose signature is every keyword ``cls`` accepts (its own and the base class's)."""
    import inspect

    params: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                params[p.name] = p

    def accepted(**kwargs: Any) -> None:  # pragma: no cover - only its signature is read
        return None

    accepted.__signature__ = inspect.Signature(list(params.values()))  # type: ignore[attr-defined]
    return accepted


def measure(
    model_or_arch: Any, backend: str = "onnxruntime", metric: str = "latency", **settings: Any
) -> Measurement:
    """Measure a network or an architecture on a backend, e.g.
    ``measure("efficientnet_b0", "onnxruntime", "latency", threads=1)``."""
    return make_backend(backend, metric=metric, **settings).measure(model_or_arch)


def best_batch(
    model_or_arch: Any,
    backend: str = "cuda",
    batches: Sequence[int] = (32, 64, 128, 256, 512),
    **settings: Any,
) -> tuple[Measurement, list[Measurement]]:
    """Throughput at each batch size, stopping at the first that runs out of memory; returns the best
    measurement and all of them (each keeps its own protocol, so the sweep is never mistaken for the
    dataset's fixed-batch number)."""
    results: list[Measurement] = []
    for b in batches:
        try:
            results.append(
                make_backend(backend, metric="throughput", batch=b, **settings).measure(model_or_arch)
            )
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError and onnxruntime's allocation failures
            if "out of memory" not in str(exc).lower():
                raise
            break
    if not results:
        raise MeasurementError(f"every batch size of {list(batches)} ran out of memory on {backend!r}")
    return max(results, key=lambda m: m.mean), results


__all__ = [
    "ALIASES",
    "BACKENDS",
    "METRICS",
    "BackendUnavailableError",
    "Measurement",
    "MeasurementBackend",
    "MeasurementError",
    "Protocol",
    "UnknownBackendError",
    "backend_class",
    "best_batch",
    "make_backend",
    "measure",
]
