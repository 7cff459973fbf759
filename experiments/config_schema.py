"""Structured-config schemas of ``nasopt search`` (registered in Hydra's ConfigStore).

The YAML files under ``conf/`` (package ``nasopt.conf``) are merged into these typed nodes, so a misspelt
key (``budget.max_evalz=5``), a wrong type (``seed=abc``) or an unknown evaluation mode fails at once with
Hydra's message naming the key. Optimizer and benchmark parameters are free-form mappings checked when the
optimizer / benchmark is built (unknown optimizer parameters are named together with the valid ones).

Layout of the composed config::

    benchmark:  {name: surrogate|synthetic, params: {...}}          # conf/benchmark/*.yaml
    problem:    {name, objectives, constraints, eval_mode, description}  # conf/problem/*.yaml
    optimizer:  {name, batch_size, params: {...}}                   # conf/optimizer/*.yaml
    budget:     {max_evals, max_sim_time_s}                         # conf/budget/*.yaml
    seed: 0
    checkpoint: {every_evals, every_s}
    progress: null          # tqdm bar: null = only on a terminal
    print_summary: true
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class BenchmarkName(Enum):
    """Which oracle answers queries."""

    surrogate = "surrogate"  # the Accel-NASBench XGBoost surrogate: benchmark.load_benchmark(**params)
    synthetic = "synthetic"  # benchmark.synthetic.SyntheticBenchmark(**params), for tests and smoke runs


class EvalMode(Enum):
    """What the optimizer observes."""

    mean = "mean"
    noisy = "noisy"


@dataclass
class BenchmarkConfig:
    name: BenchmarkName = BenchmarkName.surrogate
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProblemConfig:
    name: str = MISSING
    objectives: list[str] = MISSING
    constraints: list[str] = field(default_factory=list)
    eval_mode: EvalMode = EvalMode.mean
    description: str = ""


@dataclass
class OptimizerConfig:
    name: str = MISSING
    #: architectures per ask/query/tell; null = the optimizer's natural batch (see nasopt.runner)
    batch_size: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BudgetConfig:
    max_evals: int | None = 1500
    max_sim_time_s: float | None = None


@dataclass
class CheckpointConfig:
    #: checkpoint after a batch once this many evaluations passed (0: every batch; null: never by count)
    every_evals: int | None = 500
    #: ... or once this many wall seconds passed (null = never by time)
    every_s: float | None = 60.0


@dataclass
class SearchConfig:
    benchmark: BenchmarkConfig = MISSING
    problem: ProblemConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    budget: BudgetConfig = MISSING
    seed: int = 0
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    progress: bool | None = None
    print_summary: bool = True


SCHEMA_NAME = "search_schema"


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent); ``conf/search.yaml`` starts from them."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=SearchConfig)
