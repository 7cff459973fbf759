"""Build a benchmark of your own: ``nasopt benchmark build`` (:func:`build_benchmark`,
:class:`BenchmarkSpec`).

Sample architectures, train each with a training proxy (locally or through :mod:`nasopt.engines`), measure
each on the chosen devices, write Accel-NASBench records and pack them into an archive + metadata that
``benchmark.load_benchmark(dataset=ARCHIVE)`` and every nasopt command read like the built-in data.
"""

from __future__ import annotations

from nasopt.benchmark_build.build import BuildError, BuildResult, build_benchmark, finished_build
from nasopt.benchmark_build.spec import BenchmarkSpec, BuildSpecError, DeviceSpec, load_spec

__all__ = [
    "BenchmarkSpec",
    "BuildError",
    "BuildResult",
    "BuildSpecError",
    "DeviceSpec",
    "build_benchmark",
    "finished_build",
    "load_spec",
]
