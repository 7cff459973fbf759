"""Structured-config schemas of ``nasopt search`` and the config groups generated from the Python registries.

Defaults live in one place. The ``problem``, ``optimizer`` and ``benchmark`` groups are not YAML mirrors of
Python definitions: :func:`register_configs` stores one ConfigStore entry per named problem
(:data:`nasopt.problems.PROBLEMS`), per registered optimizer (:data:`optimizers.OPTIMIZERS`; ``params: {}``
and ``batch_size: null``, so the constructor's defaults and :attr:`Optimizer.preferred_batch_size` apply) and
per registered benchmark (:data:`benchmark.BENCHMARKS`; ``params: {}``). A YAML file
``conf/<group>/<name>.yaml`` (package ``nasopt.conf``) may still add a preset that holds only what differs;
a file of the same name as a generated entry takes its place. ``budget`` and ``experiment`` are YAML.

The YAML files and entries are merged into these typed nodes, so a misspelt key (``budget.max_evalz=5``), a
wrong type (``seed=abc``) or an unknown evaluation mode fails at once with Hydra's message naming the key.
Optimizer and benchmark parameters are free-form mappings checked by
:func:`experiments.run_spec.build_run_spec` (unknown parameters are named together with the valid ones).

Layout of the composed config::

    benchmark:  {name: surrogate|synthetic, params: {...}}                     # benchmark.BENCHMARKS
    problem:    {name, objectives, constraints, eval_mode, description}       # nasopt.problems.PROBLEMS
    optimizer:  {name, batch_size, params: {...}}                              # optimizers.OPTIMIZERS
    budget:     {max_evals, max_sim_time_s}                                    # conf/budget/*.yaml
    seed: 0
    checkpoint: {every_evals, every_s}
    progress: null          # tqdm bar: null = only on a terminal
    print_summary: true
    overwrite: false        # true: delete an earlier run's results in the run directory, start afresh
    workers: null           # k: asynchronous evaluation with k simulated workers (nasopt.async_eval)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING, OmegaConf

from nasopt.auto import AUTO  # the optimizer entry that picks one by the budget (the default)

#: the package that holds ``search.yaml`` and the YAML groups (installed from ``conf/``)
CONFIG_MODULE = "nasopt.conf"
#: the primary config
CONFIG_NAME = "search"
#: config groups whose options a user picks with ``group=option``
GROUPS = ("benchmark", "problem", "optimizer", "budget", "experiment")


class EvalMode(Enum):
    """What the optimizer observes."""

    mean = "mean"
    noisy = "noisy"


@dataclass
class BenchmarkConfig:
    #: a name of :data:`benchmark.BENCHMARKS` (``surrogate``: the Accel-NASBench surrogate; ``synthetic``)
    name: str = "surrogate"
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
    #: architectures per ask/query/tell; null = the optimizer's ``preferred_batch_size`` (None = 1)
    batch_size: int | None = None
    #: constructor keyword arguments that differ from its defaults
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
    #: delete the results of an earlier run in the run directory and start afresh (else: resume or refuse)
    overwrite: bool = False
    #: evaluate asynchronously with this many simulated workers (nasopt.async_eval); null: synchronous
    workers: int | None = None


SCHEMA_NAME = "search_schema"
#: the resolver ``${by_optimizer:${optimizer.name},{bo:1500},5000}``: a value that depends on the optimizer
BY_OPTIMIZER = "by_optimizer"
#: resolver of the search app's help: its own groups and their options (``nasopt train``'s ``conf/train/``
#: groups live in the same package but are not the search's)
SEARCH_GROUPS_HELP = "nasopt_search_groups"


def by_optimizer(name: str, table: Any, default: Any) -> Any:
    """``table[name]`` if the optimizer ``name`` is in ``table`` (a dict), else ``default``; e.g. a sweep's
    budget per optimizer (``conf/experiment/peers_comparison.yaml``: 1500 for the slow ones, 5000 else)."""
    return table.get(name, default) if hasattr(table, "get") else default


def register_configs() -> None:
    """Store the schema and the generated group entries in Hydra's ConfigStore (idempotent).

    ``conf/search.yaml`` starts from the schema; ``problem=<name>``, ``optimizer=<name>`` and
    ``benchmark=<name>`` select the generated entries.
    """
    from hydra.core.config_store import ConfigStore

    from benchmark import BENCHMARKS
    from experiments.launching import expose_launcher_plugins
    from nasopt.problems import PROBLEMS
    from optimizers import OPTIMIZERS

    expose_launcher_plugins()  # hydra/launcher=slurm|submitit_local|ray (conf/hydra/launcher/)
    if not OmegaConf.has_resolver(BY_OPTIMIZER):
        OmegaConf.register_new_resolver(BY_OPTIMIZER, by_optimizer)
    if not OmegaConf.has_resolver(SEARCH_GROUPS_HELP):
        OmegaConf.register_new_resolver(SEARCH_GROUPS_HELP, search_groups_help)
    cs = ConfigStore.instance()
    cs.store(name=SCHEMA_NAME, node=SearchConfig)
    for name, problem in PROBLEMS.items():
        cs.store(
            group="problem",
            name=name,
            node=ProblemConfig(
                name=problem.name,
                objectives=list(problem.objectives),
                constraints=[str(c) for c in problem.constraints],
                eval_mode=EvalMode(problem.eval_mode),
                description=problem.description,
            ),
        )
    for name in (AUTO, *OPTIMIZERS):  # auto: the default, which picks one by the budget (run_spec)
        node = OmegaConf.structured(OptimizerConfig(name=name))
        # any constructor keyword may be set without a leading '+' (optimizer.params.population_size=50);
        # build_run_spec names a misspelt one together with the valid ones
        OmegaConf.set_struct(node.params, False)
        cs.store(group="optimizer", name=name, node=node)
    for name in BENCHMARKS:
        bnode = OmegaConf.structured(BenchmarkConfig(name=name))
        # likewise benchmark.params.dataset=... (the README's example); check_benchmark_params names a
        # misspelt one
        OmegaConf.set_struct(bnode.params, False)
        cs.store(group="benchmark", name=name, node=bnode)


def search_groups_help() -> str:
    """``group: option, option, ...`` per line for the search app's groups (:data:`GROUPS`)."""
    return "\n".join(f"{g}: {', '.join(group_options(g))}" for g in GROUPS)


def group_options(group: str) -> list[str]:
    """The options of a config group: its generated entries and its YAML files, sorted.

    Needs :func:`register_configs` first; reads nothing but the ConfigStore and the ``nasopt.conf`` package.
    """
    from importlib import resources

    from hydra.core.config_store import ConfigStore

    names: set[str] = set()
    with contextlib.suppress(OSError):  # OSError: no generated entries in this group
        names.update(n.removesuffix(".yaml") for n in ConfigStore.instance().list(group))
    root = resources.files(CONFIG_MODULE).joinpath(group)
    if root.is_dir():
        names.update(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))
    return sorted(names)
