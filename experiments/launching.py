"""Sweeps on SLURM (submitit), submitit's local executor and Ray: the body of the Hydra launchers
``hydra/launcher=slurm|submitit_local|ray`` (``experiments/hydra_plugins/nasopt_launchers``, installed as
``hydra_plugins.nasopt_launchers``; configs in ``conf/hydra/launcher/``), on nasopt.engines.

What holds on every launcher as on joblib: one directory per job (``hydra.sweep.dir``/``subdir``); a job that
fails — its task failed, or its worker died (killed, out of memory, out of time) — leaves ``error.txt`` in its
directory and the others finish, and the sweep then lists the failures and exits 1 (:class:`ExitStatus`);
re-running the sweep skips finished runs and resumes the others (the task's run-directory logic); every job
runs the same task as a local run, so results are identical for the same seeds.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from benchmark._io import atomic_write_text
from nasopt.engines import Engine, Shared, run_jobs
from nasopt.rundir import ERROR_FILE

#: a job whose worker died: the exit status its task would have returned for a failure
EXIT_FAILED = 1


def expose_launcher_plugins() -> None:
    """Make ``hydra_plugins.nasopt_launchers`` visible to Hydra's plugin scan in every kind of install.

    Hydra finds plugins by listing the ``hydra_plugins`` namespace's directories; an editable install
    (``pip install -e .``) maps the package through an import hook that such a listing does not see, so the
    directory holding it joins the namespace's path here (nothing changes where it is already on it).
    """
    import hydra_plugins
    import hydra_plugins.nasopt_launchers as ours

    parent = str(Path(ours.__file__).resolve().parent.parent)
    paths = list(hydra_plugins.__path__)
    if parent not in {str(Path(p).resolve()) for p in paths if Path(p).is_dir()}:
        hydra_plugins.__path__.append(parent)


def _sweep_config(
    hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str], idx: int
) -> DictConfig:
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    return sweep_config


def execute_job(
    idx: int, overrides: Sequence[str], shared: Shared, cwd: str, sweep_config: DictConfig | None = None
) -> JobReturn:
    """One job of the sweep, in a worker (submitit job process, Ray worker): the task in its directory.

    ``shared`` holds what every job of the sweep has in common -- the Hydra context, the sweep's config,
    the task and Hydra's singleton state -- sent once (:meth:`nasopt.engines.Engine.share`): a Ray worker
    deserialises it at its first job and keeps it for the next ones, as Hydra's basic launcher keeps it in
    its one process, instead of receiving and deserialising it again with every job. ``sweep_config``: the
    job's config when the caller composed it already (Ray, while its local cluster started), else composed
    here from ``overrides``."""
    hydra_context, config, task_function, singleton_state = shared.get()
    if os.path.isdir(cwd):  # relative paths (hydra.sweep.dir, datasets) mean what they mean to the caller
        os.chdir(cwd)  # (a remote node without that directory needs an absolute, shared sweep dir)
    setup_globals()
    Singleton.set_state(singleton_state)
    if sweep_config is None:
        sweep_config = _sweep_config(hydra_context, config, overrides, idx)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def job_dir(hydra_context: HydraContext, config: DictConfig, overrides: Sequence[str], idx: int) -> Path:
    """The directory of job ``idx`` (as :func:`hydra.core.utils.run_job` makes it), resolved here."""
    sweep_config = _sweep_config(hydra_context, config, overrides, idx)
    hc = HydraConfig.instance()
    saved = hc.cfg
    try:
        hc.set_config(sweep_config)
        base = OmegaConf.select(sweep_config, "hydra.sweep.dir")
        sub = OmegaConf.select(sweep_config, "hydra.sweep.subdir")
    finally:
        hc.cfg = saved
    return Path(str(base)) / str(sub)


def _failed_return(overrides: Sequence[str], where: Path, error: str) -> JobReturn:
    """A job whose worker died: ``error.txt`` in its directory and a return like the task's for a failure."""
    try:
        where.mkdir(parents=True, exist_ok=True)
        atomic_write_text(where / ERROR_FILE, f"the job's worker failed: {error}\n")
    except OSError:
        pass
    print(f"nasopt search: job failed [{where}]: {error}", flush=True)
    ret = JobReturn(overrides=list(overrides), working_dir=str(where), task_name="search")
    ret.status = JobStatus.COMPLETED
    ret.return_value = EXIT_FAILED
    return ret


def launch(
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    engine: Engine,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    max_parallel: int | None,
) -> list[JobReturn]:
    """Run the sweep's jobs on ``engine`` (started and stopped here) and wait for all of them."""
    import logging

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    log = logging.getLogger(__name__)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info(f"{engine.kind}: launching {len(job_overrides)} jobs, sweep output dir: {sweep_dir}")
    for i, ovs in enumerate(job_overrides):
        log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(ovs))}")
    state = Singleton.get_state()
    cwd = os.getcwd()
    composed: list[DictConfig] = []
    done_starting = threading.Event()

    def compose_while_starting() -> None:
        for i, ovs in enumerate(job_overrides):
            if done_starting.is_set():
                return
            composed.append(_sweep_config(hydra_context, config, ovs, initial_job_idx + i))

    # Ray: jobs' configs are composed here while a local cluster starts (ray.init mostly waits for its
    # processes), those of the jobs not reached by then in the workers: Hydra's composition is most of a
    # small job's overhead
    composer = threading.Thread(target=compose_while_starting, name="nasopt-compose", daemon=True)
    if engine.kind == "ray" and engine.options.get("address") is None:
        composer.start()
    try:
        engine.start()
    finally:
        done_starting.set()
    with engine:  # started already; stopped on the way out
        if composer.ident is not None:
            composer.join()  # at most the config it is composing
        configs: list[DictConfig | None] = [*composed, *[None] * (len(job_overrides) - len(composed))]
        shared = engine.share((hydra_context, config, task_function, state))
        args = [
            (initial_job_idx + i, list(ovs), shared, cwd, configs[i]) for i, ovs in enumerate(job_overrides)
        ]
        outcomes = run_jobs(engine, execute_job, args, max_parallel=max_parallel)
    returns: list[JobReturn] = []
    for i, (ovs, out) in enumerate(zip(job_overrides, outcomes, strict=True)):
        if out.error is None and isinstance(out.value, JobReturn):
            returns.append(out.value)
            continue
        error = out.error or f"the worker returned {type(out.value).__name__}, not a job result"
        returns.append(_failed_return(ovs, job_dir(hydra_context, config, ovs, initial_job_idx + i), error))
    return returns


__all__ = ["EXIT_FAILED", "execute_job", "expose_launcher_plugins", "job_dir", "launch"]
