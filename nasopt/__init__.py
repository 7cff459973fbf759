"""nasopt: neural architecture search on the Accel-NASBench surrogate.

``nasopt.search(problem="acc_a100", optimizer="auto", budget=1500, seed=0, run_dir=None, bench=None,
**opt_params)`` runs one search (see :func:`nasopt.runner.search`); heavy modules are imported on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "search":
        from nasopt.runner import search

        return search
    raise AttributeError(f"module 'nasopt' has no attribute {name!r}")


__all__ = ["search"]
