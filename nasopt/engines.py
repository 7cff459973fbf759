"""Execution engines: run a callable somewhere else and get a handle back — SLURM and a local stand-in
through submitit, or a Ray cluster.

The one seam shared by sweeps (the Hydra launchers ``hydra/launcher=slurm|submitit_local|ray``,
:mod:`experiments.launching`) and the jobs of the validation stage (training, device measurement)::

    from nasopt.engines import Engine
    with Engine("slurm", folder="runs/jobs/%j", partition="gpu", timeout_min=240, gpus_per_node=1) as eng:
        handle = eng.submit(train, arch, epochs=90)      # a JobHandle (future-like)
        handle.result()                                 # the return value, or JobFailedError in one line
    with Engine("ray", num_cpus=2) as eng:              # a local Ray cluster (no address=...)
        handles = [eng.submit(measure, a) for a in archs]
        results = [h.result() for h in handles]

Engines: ``"slurm"`` (``sbatch`` through submitit; ``max_num_timeout`` requeues a preempted or timed-out
job, which then runs the callable again from the start: it resumes from its own checkpoint),
``"submitit_local"``
(the same submitit code path, jobs are local subprocesses) and ``"ray"``. The callable and its arguments
travel by cloudpickle (submitit's, Ray's): module-level functions are sent by reference, so the workers
must be able to import them (the same installed nasopt). The engines' packages are optional extras
(``pip install "nasopt[slurm]"`` / ``"nasopt[ray]"``) and are imported only when an engine starts.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from benchmark.errors import ConfigurationError, NasoptError

#: engine names: submitit on SLURM, submitit's local executor (real subprocesses), Ray
ENGINES = ("slurm", "submitit_local", "ray")
#: pip extra that brings each engine's package
_EXTRA = {"slurm": "slurm", "submitit_local": "slurm", "ray": "ray"}
#: submitit parameters shared by its SLURM and local executors (the rest go to SLURM only)
_SUBMITIT_GENERIC = (
    "timeout_min",
    "cpus_per_task",
    "mem_gb",
    "gpus_per_node",
    "nodes",
    "tasks_per_node",
    "name",
)
#: SLURM settings of :class:`Engine` and their submitit names
_SLURM_KEYS = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "array_parallelism": "slurm_array_parallelism",
    "setup": "slurm_setup",
    "additional_parameters": "slurm_additional_parameters",
    "signal_delay_s": "slurm_signal_delay_s",
}


#: every option of :class:`Engine`
_OPTIONS = frozenset(
    {"folder", "max_num_timeout", "address", "num_cpus", "ray_init", *_SUBMITIT_GENERIC, *_SLURM_KEYS}
)


class JobFailedError(NasoptError, RuntimeError):
    """A submitted job raised, or its worker died (killed, out of memory, out of time)."""


class EngineUnavailableError(NasoptError, ImportError):
    """The engine's package is not installed."""


class StopRequest(Protocol):
    """What :func:`run_jobs` watches to stop (e.g. :class:`nasopt.signals.StopFlag`): a ``reason`` that
    is None until something asks to stop."""

    reason: str | None


class JobHandle(Protocol):
    """A submitted job (future-like)."""

    @property
    def job_id(self) -> str: ...

    def done(self) -> bool:
        """Whether the job has ended (well or not); never blocks."""
        ...

    def result(self) -> Any:
        """Wait for the job; its return value, or :class:`JobFailedError` (one line)."""
        ...

    def cancel(self) -> None:
        """Cancel the job (nothing if it has ended)."""
        ...


_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def _one_line(exc: BaseException) -> str:
    """The job's exception in one line: the last ``SomeError: ...`` line of a traceback carried in the
    engine's message (submitit, Ray), else the message's first line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    raised = [ln for ln in lines if _EXC_LINE.match(ln)]
    if raised:
        return raised[-1]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, deepest first (from ``/proc``; empty where there is none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out[::-1]


@dataclass
class _SubmititHandle:
    job: Any  # submitit.Job

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def done(self) -> bool:
        return bool(self.job.done())

    def result(self) -> Any:
        try:
            if self.job.num_tasks > 1:  # a multi-task job (DDP): task 0's value (job.results(): every task's)
                return self.job.results()[0]
            return self.job.result()
        except Exception as exc:
            raise JobFailedError(f"job {self.job_id} failed: {_one_line(exc)}") from exc

    def cancel(self) -> None:
        if not self.job.done():
            self.job.cancel(check=False)

    def reap(self, timeout: float) -> None:
        """After :meth:`cancel`: a local job still running after ``timeout`` seconds is killed.

        SIGKILL goes to its tasks and its controller; a training resumes from its last periodic checkpoint.
        Why: submitit's local executor cancels with SIGINT, which a process started from one that ignores
        SIGINT (background shells, some test runners) inherits as ignored, and its jobs bypass SIGTERM
        (SLURM's pre-preemption signal). SLURM jobs are left to ``scancel``."""
        proc = getattr(self.job, "_process", None)
        if proc is None:
            return
        with contextlib.suppress(Exception):
            proc.wait(timeout=max(0.0, timeout))
            return
        # the local controller runs the job's tasks as its children: kill them, then it
        for pid in [*_descendants(proc.pid), proc.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)


@dataclass
class _RayHandle:
    ref: Any  # ray.ObjectRef

    @property
    def job_id(self) -> str:
        return str(self.ref.task_id().hex())

    def done(self) -> bool:
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> Any:
        import ray

        try:
            return ray.get(self.ref)
        except ray.exceptions.RayError as exc:
            raise JobFailedError(f"job {self.job_id} failed: {_one_line(exc)}") from exc

    def cancel(self) -> None:
        import ray

        ray.cancel(self.ref, force=True)


#: per process: the values of :class:`Shared` handles fetched already (the newest few)
_SHARED: OrderedDict[str, Any] = OrderedDict()
_SHARED_KEEP = 4


class Shared:
    """What many jobs have in common (a sweep's Hydra context and config), sent once: :meth:`Engine.share`.

    On Ray the value goes into the object store once (not serialised again with every job) and a worker
    fetches and deserialises it at its first job, then keeps it for its next jobs (the newest few values);
    on submitit (a fresh process per job) it travels with each job. In the job, :meth:`get` returns it: the
    same object for every job of a worker, so a job must not change it."""

    def __init__(self, value: Any, ref: Any = None) -> None:
        self.key = uuid.uuid4().hex
        self._value = value if ref is None else None
        self._ref = ref  # a ray.ObjectRef (travels inside the job's arguments as a reference)

    def get(self) -> Any:
        """The value (fetched and deserialised at most once per process)."""
        if self.key in _SHARED:
            _SHARED.move_to_end(self.key)
            return _SHARED[self.key]
        if self._ref is None:
            value = self._value
        else:
            import ray

            value = ray.get(self._ref)
        _SHARED[self.key] = value
        while len(_SHARED) > _SHARED_KEEP:
            _SHARED.popitem(last=False)
        return value


def _invoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: a Ray task that runs any callable."""
    return fn(*args, **kwargs)


class Resubmitting:
    """A callable that submitit requeues with the same arguments when SLURM preempts it or its time runs
    out (``submitit.helpers.Checkpointable``'s protocol, without importing submitit here). The callable is
    run again from the start, so it must resume from its own checkpoint (a nasopt run does)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        own = getattr(self.fn, "checkpoint", None)
        if callable(own):  # the callable's own protocol (e.g. a training job that must not overwrite again)
            return own(*args, **kwargs)
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class Engine:
    """Where jobs run; a context manager (``__enter__`` starts the engine, ``__exit__`` stops it).

    Args:
        kind: one of :data:`ENGINES`.
        folder: submitit's job folder (pickled job, logs, results; ``%j`` = the job id). submitit only.
        timeout_min, cpus_per_task, mem_gb, gpus_per_node, nodes, tasks_per_node, name: per-job resources
            (submitit; Ray: ``cpus_per_task`` and ``gpus_per_node`` are a task's ``num_cpus``/``num_gpus``).
        partition, account, qos, constraint, array_parallelism, setup, additional_parameters,
            signal_delay_s: SLURM settings (``sbatch`` options; ``setup``: shell lines before ``srun``).
        max_num_timeout: requeues of a preempted or timed-out job (SLURM; local: timeouts).
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None starts a local cluster of
            ``num_cpus`` CPUs for the duration (shut down on exit).
        num_cpus: CPUs of a local Ray cluster (None: Ray's default, every core).
        ray_init: further ``ray.init`` keyword arguments (``runtime_env``, ...).
    """

    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in ENGINES:
            raise ConfigurationError(f"unknown engine {kind!r}; available: {', '.join(ENGINES)}")
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"engine {kind!r}: unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        self.kind = kind
        self.options = dict(options)
        self._executor: Any = None
        self._started_ray = False
        self._remote_cache: dict[Any, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _import(self, module: str) -> Any:
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise EngineUnavailableError(
                f"engine {self.kind!r} needs the package {module!r}, which is not installed; "
                f'pip install "nasopt[{_EXTRA[self.kind]}]"'
            ) from exc

    def start(self) -> None:
        """Import the engine's package and connect (Ray) or build the executor (submitit); nothing when
        started already."""
        opts = self.options
        if self._executor is not None:
            return
        if self.kind == "ray":
            ray = self._import("ray")
            if ray.is_initialized():
                return
            init = dict(opts.get("ray_init") or {})
            address = opts.get("address")
            if address is None:  # a local cluster for the duration, small and quiet
                init.setdefault("num_cpus", opts.get("num_cpus"))
                init.setdefault("include_dashboard", False)
                init.setdefault("object_store_memory", 100 * 1024**2)
            init.setdefault("log_to_driver", True)
            # "local": a new cluster of our own, even if another one runs on this machine (a parallel test, a
            # `ray start`), which a plain ray.init() might join
            ray.init(address="local" if address is None else address, **init)
            self._started_ray = True
            return
        submitit = self._import("submitit")
        cluster = "slurm" if self.kind == "slurm" else "local"
        folder = opts.get("folder")
        if folder is None:
            raise ConfigurationError(f"engine {self.kind!r} needs a job folder (folder=...)")
        init = {}
        if opts.get("max_num_timeout") is not None:
            init[f"{cluster}_max_num_timeout"] = int(opts["max_num_timeout"])
        try:
            executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, **init)
        except RuntimeError as exc:  # no srun here: not a SLURM node
            raise ConfigurationError(
                f"engine {self.kind!r}: {exc} Start the sweep on a SLURM login node, or use "
                "hydra/launcher=submitit_local (the same code path, local subprocesses)"
            ) from None
        params = {k: opts[k] for k in _SUBMITIT_GENERIC if opts.get(k) is not None}
        if cluster == "slurm":
            for key, name in _SLURM_KEYS.items():
                if opts.get(key) not in (None, [], {}):
                    params[name] = list(opts[key]) if key == "setup" else opts[key]
        executor.update_parameters(**params)
        self._executor = executor

    def close(self) -> None:
        """Shut down a local Ray cluster this engine started (submitted SLURM jobs keep running)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
        self._executor = None

    # -- submission ----------------------------------------------------------------------------------------
    def _started(self) -> None:
        if self._executor is None and not self._started_ray:
            if self.kind == "ray":
                import ray

                if ray.is_initialized():
                    return
            raise RuntimeError("Engine not started: use it as a context manager (with Engine(...) as e)")

    def _ray_remote(self, fn: Callable[..., Any]) -> Any:
        import ray

        if fn not in self._remote_cache:
            resources: dict[str, Any] = {"max_retries": 0}
            cpus = self.options.get("cpus_per_task")
            resources["num_cpus"] = 1 if cpus is None else cpus
            if self.options.get("gpus_per_node"):
                resources["num_gpus"] = self.options["gpus_per_node"]
            self._remote_cache[fn] = ray.remote(**resources)(fn)
        return self._remote_cache[fn]

    def share(self, value: Any) -> Shared:
        """A handle on ``value`` for the arguments of many jobs: sent once (Ray: the object store) instead of
        with every job, deserialised once per worker; the job reads it with ``.get()``."""
        self._started()
        if self.kind == "ray":
            import ray

            return Shared(value, ray.put(value))
        return Shared(value)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JobHandle:
        """Run ``fn(*args, **kwargs)`` as one job; returns its handle at once."""
        self._started()
        if self.kind == "ray":
            if not inspect.isfunction(fn):  # a class or a callable object: Ray would make a class an actor
                return _RayHandle(self._ray_remote(_invoke).remote(fn, *args, **kwargs))
            return _RayHandle(self._ray_remote(fn).remote(*args, **kwargs))
        job_fn = Resubmitting(fn) if self.kind == "slurm" else fn
        return _SubmititHandle(self._executor.submit(job_fn, *args, **kwargs))

    def submit_array(self, fn: Callable[..., Any], args: Sequence[Sequence[Any]]) -> list[JobHandle]:
        """``fn(*a)`` for each ``a`` of ``args``: one SLURM job array (``array_parallelism`` at once), or one
        job each (local engines)."""
        self._started()
        if self.kind == "slurm":
            columns = [list(col) for col in zip(*args, strict=True)] if args else []
            jobs = self._executor.map_array(Resubmitting(fn), *columns)
            return [_SubmititHandle(j) for j in jobs]
        return [self.submit(fn, *a) for a in args]


@dataclass
class Outcome:
    """How one job of :func:`run_jobs` ended: ``value`` or ``error`` (one line)."""

    value: Any = None
    error: str | None = None


def run_jobs(
    engine: Engine,
    fn: Callable[..., Any],
    args: Sequence[Sequence[Any]],
    max_parallel: int | None = None,
    poll_s: float = 0.05,
    stop: StopRequest | None = None,
) -> list[Outcome]:
    """Run ``fn(*a)`` for every ``a`` of ``args`` on a started ``engine`` and wait for all; a failed job
    does not stop the others. Local engines keep at most ``max_parallel`` jobs running (None: all at once;
    a SLURM array is throttled by ``array_parallelism``). Returns one :class:`Outcome` per job, in order.

    ``stop`` (a :class:`StopRequest`, e.g. a :class:`nasopt.signals.StopFlag` raised by SIGINT/SIGTERM):
    once its ``reason`` is set, every submitted job that has not ended is cancelled and no further job is
    submitted; those jobs' outcomes say ``cancelled`` (so a stopped caller leaves nothing running behind
    it)."""
    n = len(args)
    outcomes: list[Outcome | None] = [None] * n
    running: dict[int, JobHandle] = {}

    def stopped() -> bool:
        return stop is not None and stop.reason is not None

    def cancel_all() -> None:
        reason = None if stop is None else stop.reason
        for i, h in running.items():
            with contextlib.suppress(Exception):
                h.cancel()
            outcomes[i] = Outcome(error=f"cancelled ({reason})")
        deadline = time.monotonic() + 5.0  # a grace period for all of them together (a training checkpoints)
        for h in running.values():
            reap = getattr(h, "reap", None)
            if reap is not None:
                reap(deadline - time.monotonic())
        running.clear()
        for i in range(n):
            if outcomes[i] is None:
                outcomes[i] = Outcome(error=f"cancelled ({reason}) before it was submitted")

    if engine.kind == "slurm" or max_parallel is None or max_parallel >= n:
        running.update(enumerate(engine.submit_array(fn, args)))
        wait_s = max(poll_s, 2.0) if engine.kind == "slurm" else poll_s  # SLURM states come from sacct
        while running:
            if stopped():
                cancel_all()
                break
            finished = [i for i, h in running.items() if h.done()]
            for i in finished:
                outcomes[i] = _outcome(running.pop(i))
            if running and not finished:
                _wait_any(list(running.values()), wait_s)
        return [o for o in outcomes if o is not None]
    pending = iter(range(n))

    def fill() -> None:
        while len(running) < max(1, max_parallel) and not stopped():
            i = next(pending, None)
            if i is None:
                return
            running[i] = engine.submit(fn, *args[i])

    fill()
    while running:
        if stopped():
            cancel_all()
            break
        finished = [i for i, h in running.items() if h.done()]
        if not finished:
            _wait_any(list(running.values()), poll_s)
            continue
        for i in finished:
            outcomes[i] = _outcome(running.pop(i))
        fill()
    if stopped():
        cancel_all()
    return [o for o in outcomes if o is not None]


def _wait_any(handles: Sequence[JobHandle], timeout: float) -> None:
    """Until one of ``handles`` ends or ``timeout`` seconds pass (Ray: woken at once by the first to end)."""
    refs = [h.ref for h in handles if isinstance(h, _RayHandle)]
    if refs and len(refs) == len(handles):
        import ray

        ray.wait(refs, num_returns=1, timeout=timeout)
        return
    time.sleep(timeout)


def _outcome(handle: JobHandle) -> Outcome:
    try:
        return Outcome(value=handle.result())
    except JobFailedError as exc:
        return Outcome(error=str(exc))


def engine_options(params: Mapping[str, Any], drop: Iterable[str] = ()) -> dict[str, Any]:
    """``params`` without ``None`` values and the keys in ``drop`` (a launcher's config to Engine options)."""
    skip = set(drop)
    return {k: v for k, v in params.items() if k not in skip and v is not None}


__all__ = [
    "ENGINES",
    "Engine",
    "EngineUnavailableError",
    "JobFailedError",
    "JobHandle",
    "Outcome",
    "Resubmitting",
    "Shared",
    "StopRequest",
    "engine_options",
    "run_jobs",
]
