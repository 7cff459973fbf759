"""What one ``nasopt search`` job runs: :func:`build_run_spec` turns a composed config into a RunSpec.

It is the one place a config is validated (problem, budget, optimizer and its parameters -- by building the
optimizer once, so its range checks run -- batch size, benchmark and its parameters, seed), and it builds
nothing heavy: the pre-flight calls it on every configuration of a command before anything runs (so no run
directory is created for a bad setting), and each job calls it on its own config before running.
Every error it raises is a one-line :class:`benchmark.errors.NasoptError` that names the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from benchmark import check_benchmark_params, make_benchmark
from benchmark.errors import ConfigurationError, keyword_defaults, plain
from nasopt.auto import AUTO, AUTO_BO_MAX_EVALS, choose_optimizer, stored_choice
from nasopt.budget import Budget
from nasopt.problems import Problem, problem_from_config
from nasopt.rundir import CONFIG_FILE, Run
from nasopt.runner import Runner
from optimizers import check_optimizer_params


@dataclass(frozen=True)
class RunSpec:
    """One validated search run, in the terms of the runner.

    Attributes:
        problem: the problem (objectives, constraints, evaluation mode).
        budget: evaluations and/or simulated training time.
        optimizer: registry name of the optimizer (:data:`optimizers.OPTIMIZERS`).
        optimizer_params: its constructor keywords, resolved: the signature's defaults with the config's
            ``optimizer.params`` over them (so the run directory records every setting that ran).
        batch_size: architectures per ask/query/tell; None = the optimizer's ``preferred_batch_size``.
        torch_threads: the optimizer's ``torch_threads`` declaration (None = no preference).
        benchmark: registry name of the oracle (:data:`benchmark.BENCHMARKS`).
        benchmark_params: keywords of the oracle's factory.
        seed: the run's only seed.
        checkpoint_every, checkpoint_every_s: checkpoint cadence (evaluations, wall seconds).
        progress: tqdm bar (None = only on a terminal).
        print_summary: print the readable summary at the end.
        config: the config the run stores as ``config.yaml`` (composed, with the resolved optimizer params;
            without ``overwrite``, which is how this invocation treats the directory, not part of the run).
        overwrite: delete an earlier run's results in the run directory and start afresh.
        workers: simulated workers of an asynchronous run (None: synchronous batches); stored in the
            config only when set, so a synchronous run's config is as before.
        choice: for ``optimizer=auto`` (the default), what it chose and why (``"auto -> bo, because
            budget.max_evals=300 <= 5000"``), also stored in the config as ``optimizer.choice``; else None.
    """

    problem: Problem
    budget: Budget
    optimizer: str
    optimizer_params: dict[str, Any]
    batch_size: int | None
    torch_threads: int | None
    benchmark: str
    benchmark_params: dict[str, Any]
    seed: int
    checkpoint_every: int | None
    checkpoint_every_s: float | None
    progress: bool | None
    print_summary: bool
    config: dict[str, Any]
    overwrite: bool = False
    workers: int | None = None
    choice: str | None = None


def config_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The composed config as plain, resolved Python (Enums as their names, no ``hydra`` node)."""
    if isinstance(cfg, DictConfig):
        out = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    else:
        out = dict(cfg)
    assert isinstance(out, dict)
    out.pop("hydra", None)
    return {str(k): v for k, v in out.items()}


def _optimizer_class(name: str) -> type:
    from optimizers import optimizer_class

    try:
        return optimizer_class(name)
    except ImportError as exc:  # an optional dependency (torch, botorch) is missing: a setup fix
        raise ConfigurationError(str(exc)) from exc


def _check_optimizer_settings(cls: type, name: str, problem: Problem, params: Mapping[str, Any]) -> None:
    """Build the optimizer once on the problem with a throwaway generator, so its constructor's range checks
    (``population_size=0``, ``mutation_prob=2.0``) fail here, before any run directory exists. Constructors
    have no side effects (no I/O, no global RNG); the run builds its own optimizer from the run's seed."""
    try:
        cls(problem.info, np.random.default_rng(0), **params)
    except (TypeError, ValueError) as exc:  # ConfigurationError is a ValueError
        raise ConfigurationError(f"optimizer {name!r}: {exc}") from exc


def build_run_spec(cfg: DictConfig | Mapping[str, Any], run_dir: str | Path | None = None) -> RunSpec:
    """Validate a composed ``nasopt search`` config and describe the run; builds no oracle, and the optimizer
    only to check its settings (it is thrown away).

    ``optimizer=auto`` becomes the optimizer :func:`choose_optimizer` picks for the budget -- or, when
    ``run_dir`` holds an ``optimizer=auto`` run, the one it picked when it started (a resume never switches);
    the config records ``optimizer.requested: auto`` and ``optimizer.choice``.

    Raises:
        benchmark.errors.NasoptError: a one-line message naming the bad setting and its fix.
    """
    c = config_container(cfg)
    bcfg = c["benchmark"]
    bname = str(bcfg["name"])
    bparams = dict(bcfg.get("params") or {})
    # first: a built benchmark's data registers its own targets, which the problem may name
    check_benchmark_params(bname, bparams)
    problem = problem_from_config(c["problem"])
    budget = Budget.parse(c["budget"])

    ocfg = c["optimizer"]
    name = str(ocfg["name"])
    choice: str | None = None
    if name == AUTO:
        stored = None if c.get("overwrite") else stored_choice(run_dir)
        if stored is not None:  # resume: what the run chose when it started, even if the rule changed
            name, why = stored, f"chosen when the run started ({Path(str(run_dir)) / CONFIG_FILE})"
        else:
            name, why = choose_optimizer(budget)
        choice = f"{AUTO} -> {name}, because {why}"
        ocfg = {**ocfg, "name": name, "requested": AUTO, "choice": choice}
    cls = _optimizer_class(name)
    given = dict(ocfg.get("params") or {})
    check_optimizer_params(cls, given, label=name)
    _check_optimizer_settings(cls, name, problem, given)
    params = {**keyword_defaults(cls, skip=2), **given}
    batch_size = ocfg.get("batch_size")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ConfigurationError(
            f"optimizer.batch_size must be a positive integer or null, got {plain(batch_size)}"
        )

    seed = c["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {plain(seed)}")
    ckpt = c.get("checkpoint") or {}
    overwrite = c.pop("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ConfigurationError(f"overwrite must be true or false, got {overwrite!r}")
    workers = c.pop("workers", None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be a positive integer or null, got {plain(workers)}")
    if workers is not None:
        c["workers"] = workers
    config = {**c, "optimizer": {**ocfg, "params": params}}
    return RunSpec(
        problem=problem,
        budget=budget,
        optimizer=name,
        optimizer_params=params,
        batch_size=batch_size,
        torch_threads=getattr(cls, "torch_threads", None),
        benchmark=bname,
        benchmark_params=bparams,
        seed=seed,
        checkpoint_every=ckpt.get("every_evals", 500),
        checkpoint_every_s=ckpt.get("every_s", 60.0),
        progress=c.get("progress"),
        print_summary=bool(c.get("print_summary", True)),
        config=config,
        overwrite=overwrite,
        workers=workers,
        choice=choice,
    )


def run_spec(spec: RunSpec, run_dir: str | Path | None, **runner_kwargs: Any) -> Run:
    """Build the oracle and the runner of ``spec`` and run it in ``run_dir`` (None: in memory).

    ``runner_kwargs`` go to :class:`nasopt.runner.Runner` (e.g. ``on_batch``, ``overwrite``, which
    defaults to the spec's).
    """
    runner_kwargs.setdefault("overwrite", spec.overwrite)
    runner = Runner(
        spec.problem,
        spec.optimizer,
        make_benchmark(spec.benchmark, **spec.benchmark_params),
        spec.budget,
        run_dir,
        seed=spec.seed,
        batch_size=spec.batch_size,
        optimizer_params=spec.optimizer_params,
        checkpoint_every=spec.checkpoint_every,
        checkpoint_every_s=spec.checkpoint_every_s,
        progress=spec.progress,
        print_summary=spec.print_summary,
        config=spec.config,
        workers=spec.workers,
        **runner_kwargs,
    )
    return runner.run()


__all__ = [
    "AUTO",
    "AUTO_BO_MAX_EVALS",
    "RunSpec",
    "build_run_spec",
    "choose_optimizer",
    "config_container",
    "run_spec",
]
