"""The Accel-NASBench oracle: search space, dataset, surrogate ensembles and the batched query API.

``benchmark.load_benchmark(...)`` returns a :class:`benchmark.oracle.Benchmark`; heavy modules are
imported on first use so that ``import benchmark.space`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Benchmark", "SurrogateConfig", "load_benchmark"]


def __getattr__(name: str) -> Any:
    if name in ("Benchmark", "load_benchmark"):
        from benchmark import oracle

        return getattr(oracle, name)
    if name == "SurrogateConfig":
        from benchmark.surrogate import SurrogateConfig

        return SurrogateConfig
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
