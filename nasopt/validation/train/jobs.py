"""Training runs as jobs of :mod:`nasopt.engines`: SLURM through submitit (one task per GPU, many nodes,
requeued on preemption or time-out), submitit's local executor, Ray.

:class:`TrainJob` is the callable every task of a job runs. Inside a submitit job of several tasks it hands
the job's rendezvous (rank, world, local rank, master address and port, :func:`dist.rendezvous`) to the
process group's set-up, as torchrun would. When SLURM (``--signal=USR2@<signal_delay_s>``, or a preemption)
or submitit's local controller sends the preemption signal, every rank stops at an agreed step with a
checkpoint; rank 0 then hands over to submitit's own handler, which calls :meth:`TrainJob.checkpoint` (the
same call again), requeues the job (``max_num_timeout`` times after time-outs; preemptions always) and exits:
the requeued job resumes from that checkpoint, exactly. SIGTERM/SIGINT (``scancel``) checkpoint and end the
job as failed ("run again to resume").
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchmark.errors import ConfigurationError
from nasopt.signals import StopFlag
from nasopt.validation.train.schemes import TrainScheme

#: settings of ``conf/train/engine/*.yaml`` that are the job's own, not :class:`nasopt.engines.Engine`'s
JOB_KEYS = ("wait", "master_port", "max_parallel")


def _job_environment() -> Any:
    """submitit's ``JobEnvironment`` when this process is a task of a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit

    return submitit.JobEnvironment()


def _preemption_signal() -> signal.Signals:
    """The signal submitit treats as preemption / time-out (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    sig = getattr(signal, f"SIG{name}", None)
    if not isinstance(sig, signal.Signals):
        raise ConfigurationError(f"SUBMITIT_PREEMPT_SIGNAL={name!r} is no signal; unset it or set e.g. USR2")
    return sig


@contextlib.contextmanager
def _stop_on(sig: signal.Signals, stop: StopFlag) -> Iterator[Any]:
    """While in the context, ``sig`` asks ``stop`` to stop after the current step; yields the handler that
    was installed before (submitit's requeue handler inside a submitit job), restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = signal.getsignal(sig)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.reason is None:
            stop.request(signal.Signals(signum).name)
            with contextlib.suppress(OSError):
                os.write(
                    2, f"\nnasopt: {stop.reason} (preemption / time limit): checkpoint, requeue\n".encode()
                )

    signal.signal(sig, on_signal)
    try:
        yield previous
    finally:
        signal.signal(sig, previous)


@dataclass(frozen=True)
class TrainJob:
    """``TrainJob(...)(arch)`` trains ``arch`` into ``<out_dir>/<run id>`` (resuming what is there; a run that
    finished already is not trained again unless ``overwrite``) and returns the record's metrics and the run
    directory; the same for every architecture of a job array.

    Plain data only: the engines send it by cloudpickle (a module-level class, by reference)."""

    scheme: TrainScheme
    data: Mapping[str, Any]
    out_dir: str
    seed: int = 0
    device: str | None = None
    deterministic: bool = False
    overwrite: bool = False
    threads: int | None = None
    verbose: bool = True
    #: the rendezvous port of a multi-task job (None: derived from the job id)
    master_port: int | None = None
    #: the macro skeleton (:func:`nasopt.validation.train.run.as_skeleton`: None, a width, a mapping)
    skeleton: Any = None

    def __call__(self, arch: str) -> dict[str, Any]:
        from nasopt.validation.train import dist as D
        from nasopt.validation.train.run import (
            TrainingStopped,
            as_skeleton,
            genes_of,
            record_file,
            run_id,
            train,
        )

        fraction = float(dict(self.data).get("train_fraction", 1.0))
        rid = run_id(genes_of(arch), self.scheme, self.seed, as_skeleton(self.skeleton), fraction)
        done = Path(self.out_dir) / rid / record_file(rid)
        if done.is_file() and not self.overwrite:  # finished before (a re-run, a late requeue): its result
            return _summary(arch, done.parent, done, json.loads(done.read_text()))
        job_env = _job_environment()
        rank = 0
        if job_env is not None and int(job_env.num_tasks) > 1:
            rv = D.rendezvous(job_env, port=self.master_port)
            os.environ.update(rv.env())
            rank = rv.rank
        if self.threads is not None:
            import torch

            torch.set_num_threads(int(self.threads))
        stop = StopFlag()
        with _stop_on(_preemption_signal(), stop) as submitit_handler:
            try:
                with stop.handling_signals():
                    result = train(
                        arch,
                        self.scheme,
                        dict(self.data),
                        self.out_dir,
                        seed=self.seed,
                        device=self.device,
                        overwrite=self.overwrite,
                        deterministic=self.deterministic,
                        stop=stop,
                        handle_signals=False,
                        verbose=self.verbose and rank == 0,
                        skeleton=self.skeleton,
                    )
            except TrainingStopped:
                if job_env is None or not callable(submitit_handler):
                    raise
                if rank != 0:  # rank 0 decides: requeue, or fail the job; no result file for this task
                    raise SystemExit(0) from None
                if stop.reason == _preemption_signal().name:
                    # submitit's handler: self.checkpoint(arch) is dumped as the job, the job requeued, and
                    # this process exits (an error in one line when the time-outs are used up)
                    submitit_handler(_preemption_signal(), None)
                raise
        return _summary(arch, result.run_dir, result.record_path, result.record)

    def checkpoint(self, arch: str) -> Any:
        """submitit's requeue protocol: the same call again (never ``overwrite``: it resumes)."""
        import submitit

        return submitit.helpers.DelayedSubmission(dataclasses.replace(self, overwrite=False), arch)


def _summary(arch: str, run_dir: Path, record_path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """What a training job returns: the run directory, the record's path and its metrics."""
    m = record["metrics"]
    return {
        "arch": arch,
        "run_dir": str(run_dir),
        "record": str(record_path),
        "val_top1": m["val_top1"],
        "val_top5": m["val_top5"],
        "train_time": m["train_time"],
    }


def engine_settings(cfg: Mapping[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """``conf/train/engine`` -> (engine kind or None for this process, Engine options, the job's own
    settings). ``tasks_per_node`` defaults to ``gpus_per_node`` (one task per GPU)."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    own = {k: cfg.pop(k) for k in JOB_KEYS if k in cfg}
    options = {k: v for k, v in cfg.items() if v is not None and v != [] and v != {}}
    if kind is None:
        if options:
            raise ConfigurationError(
                f"engine=local trains in this process and takes no settings ({', '.join(sorted(options))}); "
                "choose engine=slurm|submitit_local|ray"
            )
        return None, {}, own
    if options.get("tasks_per_node") is None and options.get("gpus_per_node") and kind != "ray":
        options["tasks_per_node"] = int(options["gpus_per_node"])
    if kind == "ray" and (int(options.get("tasks_per_node") or 1) > 1 or int(options.get("nodes") or 1) > 1):
        raise ConfigurationError(
            "engine=ray runs one process per training job (one GPU at most); many GPUs or nodes per job: "
            "engine=slurm (or submitit_local) with engine.gpus_per_node / engine.nodes"
        )
    if kind == "ray" and own.get("wait") is False:
        raise ConfigurationError("engine=ray: wait=false is not possible (Ray's tasks end with this command)")
    return str(kind), options, own


def submit_training(
    job: TrainJob, archs: Sequence[str], kind: str, options: Mapping[str, Any], own: Mapping[str, Any]
) -> list[Any]:
    """Run ``job(arch)`` for every architecture on the engine ``kind`` (one SLURM job array) and wait for
    them (``own["wait"]``, default True): a list of :class:`nasopt.engines.Outcome`; without waiting, the
    job ids (str)."""
    from nasopt.engines import Engine, run_jobs

    engine = Engine(kind, **options)
    args = [(a,) for a in archs]
    with engine:
        if own.get("wait", True) is False:
            return [h.job_id for h in engine.submit_array(job, args)]
        max_parallel = own.get("max_parallel")
        return run_jobs(engine, job, args, max_parallel=None if max_parallel is None else int(max_parallel))


__all__ = ["JOB_KEYS", "TrainJob", "engine_settings", "submit_training"]
