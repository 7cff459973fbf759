"""Ask/tell NAS optimizers. Use :func:`make_optimizer` to build one by its registry name.

Adding an optimizer: subclass :class:`optimizers.base.Optimizer` and add one line ``"name": "module:Class"``
to :data:`OPTIMIZERS` (optionally a ``conf/optimizer/<name>.yaml`` of overrides); check it with the shipped
suite :mod:`nasopt.testing.optimizers`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchmark.errors import ConfigurationError, check_keywords
from optimizers.base import Optimizer, ProblemInfo

#: registry name -> "module:Class" (imported lazily so optional dependencies stay optional)
OPTIMIZERS: dict[str, str] = {
    "rs": "optimizers.random_search:RandomSearch",
    "re": "optimizers.evolution:RegularizedEvolution",
    "nsga2": "optimizers.nsga2:NSGA2",
    "reinforce": "optimizers.reinforce:Reinforce",
    "bo": "optimizers.bo:BayesianOptimization",
    "bo_nsga2": "optimizers.hybrid:BOThenNSGA2",
    # peers (for comparisons): Optuna's samplers (optional extra "peers") and pymoo's MOEAs
    "optuna_tpe": "optimizers.optuna_peers:OptunaTPE",
    "optuna_nsga2": "optimizers.optuna_peers:OptunaNSGA2",
    "optuna_gp": "optimizers.optuna_peers:OptunaGP",
    "optuna_random": "optimizers.optuna_peers:OptunaRandom",
    "pymoo_agemoea2": "optimizers.pymoo_peers:PymooAGEMOEA2",
    "pymoo_moead": "optimizers.pymoo_peers:PymooMOEAD",
    "pymoo_smsemoa": "optimizers.pymoo_peers:PymooSMSEMOA",
    "pymoo_spea2": "optimizers.pymoo_peers:PymooSPEA2",
    "pymoo_ga": "optimizers.pymoo_peers:PymooGA",
}


class UnknownOptimizerError(ConfigurationError, KeyError):
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


def check_optimizer_params(
    optimizer: str | Callable[..., Optimizer], params: Mapping[str, Any], *, label: str | None = None
) -> None:
    """Raise :class:`ConfigurationError` if ``params`` holds a keyword the optimizer's constructor lacks.

    Args:
        optimizer: a registry name, or an optimizer class / factory called as ``f(problem, rng, **params)``.
        params: the keyword arguments to check.
        label: the name in the message (default: the registry name, else the class's ``name``).
    """
    if isinstance(optimizer, str):
        cls: Callable[..., Optimizer] = optimizer_class(optimizer)
        label = label or optimizer
    else:
        cls = optimizer
        label = label or str(getattr(optimizer, "name", getattr(optimizer, "__name__", optimizer)))
    check_keywords(f"optimizer {label!r}", cls, params, skip=2)


def make_optimizer(name: str, problem: ProblemInfo, rng: np.random.Generator, **params: Any) -> Optimizer:
    """Build a registered optimizer for ``problem`` seeded only by ``rng``."""
    return optimizer_class(name)(problem, rng, **params)


__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "ProblemInfo",
    "UnknownOptimizerError",
    "check_optimizer_params",
    "make_optimizer",
    "optimizer_class",
]
