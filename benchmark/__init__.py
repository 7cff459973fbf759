"""The Accel-NASBench oracle: search space, dataset, surrogate ensembles and the batched query API.

``benchmark.load_benchmark(...)`` returns a :class:`benchmark.oracle.Benchmark`; heavy modules are
imported on first use so that ``import benchmark.space`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from benchmark.errors import ConfigurationError, check_keywords

#: registry name -> "module:callable" returning an :class:`benchmark.api.Oracle` (imported lazily)
BENCHMARKS: dict[str, str] = {
    "surrogate": "benchmark.oracle:load_benchmark",
    "synthetic": "benchmark.synthetic:SyntheticBenchmark",
}


class UnknownBenchmarkError(ConfigurationError, KeyError):
    """A benchmark name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def benchmark_factory(name: str) -> Callable[..., Any]:
    """The callable registered under ``name`` (``f(**params) -> Oracle``)."""
    if name not in BENCHMARKS:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    module, attr = BENCHMARKS[name].split(":")
    factory: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return factory


#: registry name -> "module:callable" that checks the files its parameters name (``f(params)``; raises a
#: one-line :class:`~benchmark.errors.NasoptError`), cheaply, before anything runs
BENCHMARK_CHECKS: dict[str, str] = {
    "surrogate": "benchmark.built:check_dataset_setting",
}


def check_benchmark_params(name: str, params: dict[str, Any]) -> None:
    """Raise a one-line :class:`ConfigurationError` for an unknown name or parameter, and the benchmark's
    own error for a file its parameters (or environment) name that is not there, building nothing."""
    check_keywords(f"benchmark {name!r}", benchmark_factory(name), params)
    if name in BENCHMARK_CHECKS:
        module, attr = BENCHMARK_CHECKS[name].split(":")
        getattr(importlib.import_module(module), attr)(params)


def make_benchmark(name: str = "surrogate", **params: Any) -> Any:
    """Build the registered oracle ``name`` (``"surrogate"``: :func:`load_benchmark`; ``"synthetic"``)."""
    check_benchmark_params(name, params)
    return benchmark_factory(name)(**params)


__all__ = [
    "BENCHMARKS",
    "BENCHMARK_CHECKS",
    "Benchmark",
    "SurrogateConfig",
    "UnknownBenchmarkError",
    "benchmark_factory",
    "check_benchmark_params",
    "load_benchmark",
    "make_benchmark",
]


def __getattr__(name: str) -> Any:
    if name in ("Benchmark", "load_benchmark"):
        from benchmark import oracle

        return getattr(oracle, name)
    if name == "SurrogateConfig":
        from benchmark.surrogate import SurrogateConfig

        return SurrogateConfig
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
