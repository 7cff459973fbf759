"""Bayesian optimisation (BoTorch / GPyTorch) over the discrete architecture space.

- :mod:`~optimizers.bo.optimizer` -- :class:`BayesianOptimization`, the ask/tell/state optimizer
- :mod:`~optimizers.bo.models` -- input encodings, GP construction and hyper-parameter fitting
- :mod:`~optimizers.bo.acquisition` -- acquisition functions (qLogNEHVI / qLogNEI, screening, feasibility)
- :mod:`~optimizers.bo.candidates` -- candidate generation and discrete search (pool, hill climb, q-batch)
- :mod:`~optimizers.bo.history` -- which observations fit the models, anchor the search, form the baseline
- :mod:`~optimizers.bo.timing` -- the per-ask timing record

``README.md`` beside this file holds the measurements behind the defaults.
"""

from optimizers.bo.optimizer import BayesianOptimization

__all__ = ["BayesianOptimization"]
