"""The Hydra launcher plugins of nasopt: SLURM and a local stand-in through submitit, and Ray.

Written on the engines' public APIs (:class:`nasopt.engines.Engine`) rather than Hydra's
``hydra-submitit-launcher`` / ``hydra-ray-launcher``: the Ray plugin pins ``cloudpickle<3``, which conflicts
with joblib (``cloudpickle>=3``, needed by the joblib launcher), and the submitit plugin collects results in
order and raises at the first killed job, so the sweep's list of failures would never be printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class _EngineLauncher(Launcher):
    """A launcher that runs the sweep's jobs on a :class:`nasopt.engines.Engine` of kind :attr:`KIND`."""

    KIND: ClassVar[str] = ""
    #: config keys that are the launcher's own, not the engine's
    OWN: ClassVar[tuple[str, ...]] = ("n_jobs",)

    def __init__(self, **params: Any) -> None:
        self.params = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in params.items()
        }
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def max_parallel(self) -> int | None:
        """Jobs run at once (local engines): ``n_jobs``; None = all."""
        n = self.params.get("n_jobs")
        if n is None:
            return None
        k = int(str(n))
        return None if k < 1 else k

    def engine_params(self) -> dict[str, Any]:
        from nasopt.engines import engine_options

        return engine_options(self.params, drop=self.OWN)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from experiments.launching import launch
        from nasopt.engines import Engine

        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        return launch(
            self.hydra_context,
            self.config,
            self.task_function,
            Engine(self.KIND, **self.engine_params()),
            job_overrides,
            initial_job_idx,
            self.max_parallel(),
        )


class SlurmLauncher(_EngineLauncher):
    """``hydra/launcher=slurm``: one SLURM job array through submitit (``array_parallelism`` at a time)."""

    KIND = "slurm"


class SubmititLocalLauncher(_EngineLauncher):
    """``hydra/launcher=submitit_local``: a local subprocess per job (``n_jobs`` at once)."""

    KIND = "submitit_local"


class RayLauncher(_EngineLauncher):
    """``hydra/launcher=ray``: Ray tasks on a cluster (``address``) or on a local one made for the sweep."""

    KIND = "ray"

    def engine_params(self) -> dict[str, Any]:
        params = super().engine_params()
        if params.get("address") is None and params.get("num_cpus") is None:
            # a local cluster just big enough for n_jobs jobs of cpus_per_task CPUs each
            n = self.max_parallel()
            if n is not None:
                params["num_cpus"] = n * int(params.get("cpus_per_task") or 1)
        return params
