"""Ask/tell NAS optimizers. Use :func:`make_optimizer` to build one by its registry name."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from optimizers.base import Optimizer, ProblemInfo

#: registry name -> "module:Class" (imported lazily so optional dependencies stay optional)
OPTIMIZERS: dict[str, str] = {
    "rs": "optimizers.random_search:RandomSearch",
    "re": "optimizers.evolution:RegularizedEvolution",
    "nsga2": "optimizers.nsga2:NSGA2",
    "reinforce": "optimizers.reinforce:Reinforce",
    "bo": "optimizers.bo:BayesianOptimization",
}


class UnknownOptimizerError(KeyError):
    """An optimizer name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def optimizer_class(name: str) -> type[Optimizer]:
    """The class registered under ``name``."""
    if name not in OPTIMIZERS:
        raise UnknownOptimizerError(f"unknown optimizer {name!r}; available: {', '.join(OPTIMIZERS)}")
    module, cls = OPTIMIZERS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # an optional dependency is missing
        raise ImportError(
            f"optimizer {name!r} needs an optional dependency that is not installed ({exc}); "
            f"install it with: pip install 'nasopt[all]'"
        ) from exc
    out: type[Optimizer] = getattr(mod, cls)
    return out


def make_optimizer(name: str, problem: ProblemInfo, rng: np.random.Generator, **params: Any) -> Optimizer:
    """Build a registered optimizer for ``problem`` seeded only by ``rng``."""
    return optimizer_class(name)(problem, rng, **params)


__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "ProblemInfo",
    "UnknownOptimizerError",
    "make_optimizer",
    "optimizer_class",
]
