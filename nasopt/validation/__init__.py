"""The validation stage: build the architectures a search found as PyTorch networks, measure them on real
devices with the dataset's protocols, and write the results as Accel-NASBench records.

Lazy public API (nothing heavy, and no torch, is imported until a name is used)::

    from nasopt.validation import build_model, measure, write_measurements

    m = measure("efficientnet_b0", "onnxruntime", "latency", threads=1)   # a Measurement
    write_measurements("measured/", [m])       # result_0.json, read by nasopt bench evaluate --test

Packages: :mod:`.model` (builder, export, weights), :mod:`.measure` (backends, registry, protocol),
:mod:`.records` (records and provenance), :mod:`.testing` (the backend conformance suite), :mod:`.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_model": "nasopt.validation.model",
    "export_model": "nasopt.validation.model",
    "save_weights": "nasopt.validation.model",
    "load_weights": "nasopt.validation.model",
    "measure": "nasopt.validation.measure",
    "make_backend": "nasopt.validation.measure",
    "Measurement": "nasopt.validation.measure",
    "BACKENDS": "nasopt.validation.measure",
    "write_measurements": "nasopt.validation.records",
    "write_record": "nasopt.validation.records",
    "read_provenance": "nasopt.validation.records",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nasopt.validation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
