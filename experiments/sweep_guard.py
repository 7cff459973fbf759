"""A sweep's workers die with it, and a re-run waits for a killed sweep's leftovers instead of failing.

Hydra's joblib launcher runs sweep jobs in loky worker processes, children of the sweep's main process. A
worker busy with a job never notices that the main process was killed (``kill -9``): it would run its job
to the end (minutes), take up jobs still queued in its pipe, and then hang on the result pipe. So every job
started in a worker calls :func:`guard_job`: it starts the process's watchdog thread (once) that polls the
worker's parent; once the parent is gone (the worker was re-parented), the watchdog sends the worker
SIGTERM -- the runner stops after the current batch with a checkpoint -- and ends the process once its run
has let go of the run directory, or after :data:`GRACE_S` seconds whatever it is doing (safe: every file of
a run directory is written atomically, a run resumes after SIGKILL). A job that starts after the sweep died
(a slow worker start, a queued job) ends its worker before it touches anything. ``prctl(PR_SET_PDEATHSIG)``
is not used: it fires when the parent *thread* that forked the worker ends, and loky may start workers
from a helper thread; it also could not stop a run cleanly.

The app names the sweep's main process in the run directory's lock record (``sweep_pid``, see
:func:`nasopt.rundir.locked`), so a job that finds its run directory locked can tell (:func:`holder_kind`)
a worker of a killed sweep (waited for: it stops within seconds), a live worker of its own sweep (two jobs
of one sweep share a directory: waited for), and a process of another live command (the job is skipped as
"still running in process PID", not failed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from benchmark._io import parent_of, pid_alive

#: environment variables naming the sweep's main process and its host (set by
#: :func:`experiments.search_app.main`; inherited by the loky workers it starts)
SWEEP_PID_ENV = "NASOPT_SWEEP_PID"
SWEEP_HOST_ENV = "NASOPT_SWEEP_HOST"
#: seconds between two looks at the parent process
POLL_S = 0.25
#: seconds a worker whose sweep died gets to checkpoint after SIGTERM before it ends itself
GRACE_S = 5.0
#: how long a job waits for a killed sweep's worker to let go of its run directory
ORPHAN_WAIT_S = 60.0
#: exit status of a worker ended by its watchdog (as a stop by signal)
EXIT_ORPHANED = 130

#: this process's watchdog: the sweep it watches (None: none started) and whether that sweep is gone
_watching: list[int] = []
_gone = threading.Event()
_lock = threading.Lock()


def sweep_pid() -> int | None:
    """The sweep's main process, from :data:`SWEEP_PID_ENV` (None outside a sweep)."""
    value = os.environ.get(SWEEP_PID_ENV, "")
    return int(value) if value.isdigit() else None


def sweep_env(pid: int) -> dict[str, str]:
    """The environment variables that name ``pid`` (this host's process) as the sweep's main process."""
    return {SWEEP_PID_ENV: str(pid), SWEEP_HOST_ENV: socket.gethostname()}


def _same_host() -> bool:
    return os.environ.get(SWEEP_HOST_ENV) == socket.gethostname()


def guard_job(sweep: int, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> None:
    """Called by every job of a sweep that runs outside the sweep's main process ``sweep``: starts this
    process's watchdog (once), and ends the process at once when the sweep is gone already -- a worker
    that takes up a queued job after its sweep was killed (or after its watchdog fired) runs nothing.

    The watchdog follows the parent process when it is ``sweep`` (loky workers), else the liveness of
    ``sweep`` when it runs on this host; a job on another host (a cluster launcher) gets none.
    """
    with _lock:
        if _gone.is_set() or (os.getppid() != sweep and _same_host() and not pid_alive(sweep)):
            _gone.set()
            _note(f"the sweep's main process {sweep} is gone; worker {os.getpid()} runs no more jobs")
            os._exit(EXIT_ORPHANED)
        if _watching:
            return
        if os.getppid() == sweep:
            alive = functools.partial(lambda p: os.getppid() == p, sweep)
        elif _same_host():
            alive = functools.partial(pid_alive, sweep)
        else:
            return
        _watching.append(sweep)
    watchdog = threading.Thread(target=_watch, args=(sweep, alive, poll_s, grace_s), name="nasopt-watchdog")
    watchdog.daemon = True
    watchdog.start()


def _note(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"nasopt search: {text}\n".encode())


def _watch(sweep: int, alive: Callable[[], bool], poll_s: float, grace_s: float) -> None:
    while alive():
        time.sleep(poll_s)
    _gone.set()
    me = os.getpid()
    _note(f"the sweep's main process {sweep} is gone; stopping worker {me}")
    with contextlib.suppress(OSError):
        os.kill(me, signal.SIGTERM)  # the runner checkpoints and stops after this batch
    from nasopt.rundir import holding_locks

    deadline = time.monotonic() + grace_s
    time.sleep(min(poll_s, grace_s))
    while holding_locks() and time.monotonic() < deadline:  # its run is still stopping
        time.sleep(0.05)
    os._exit(EXIT_ORPHANED)  # whatever it is doing now (e.g. blocked on the dead sweep's result pipe)


HolderKind = Literal["orphan", "same_sweep", "other"]


def holder_kind(holder: Mapping[str, Any] | None, own_sweep: int | None) -> HolderKind:
    """What holds a run directory's lock, from its record (:func:`nasopt.rundir.locked`).

    ``"orphan"``: a worker of a sweep whose main process is gone (it stops within :data:`GRACE_S`);
    ``"same_sweep"``: a live worker of the sweep ``own_sweep``; ``"other"``: any other live process (a single
    run, another live sweep) or one that wrote no record.
    """
    if holder is None:
        return "other"
    pid, sweep = holder.get("pid"), holder.get("sweep_pid")
    if not isinstance(pid, int) or not isinstance(sweep, int) or pid == sweep:
        return "other"
    parent = parent_of(pid)
    if (parent is not None and parent != sweep) or not pid_alive(sweep):
        return "orphan"
    return "same_sweep" if sweep == own_sweep else "other"


__all__ = [
    "EXIT_ORPHANED",
    "GRACE_S",
    "ORPHAN_WAIT_S",
    "POLL_S",
    "SWEEP_HOST_ENV",
    "SWEEP_PID_ENV",
    "guard_job",
    "holder_kind",
    "sweep_env",
    "sweep_pid",
]
