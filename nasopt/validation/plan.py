"""The validation directory: a plan of jobs (train a candidate with a scheme, measure it on a backend), their
states and results, executed locally or through a launcher, and resumable at any point.

Layout (one owner: this module)::

    VDIR/plan.json              candidates (with predictions), the problem, the settings, the jobs
    VDIR/jobs/<id>/status.json  {"state": "running"|"done"|"failed", "attempts", "error", "pid", times}
    VDIR/jobs/<id>/result.json  the job's result (a Measurement, or a training result record)
    VDIR/records/               Accel-NASBench records of each measured/trained candidate (rebuilt by collect)
    VDIR/report/                the predicted-vs-measured report

A job id is a hash of what the job does (kind, architecture, settings), so a re-run of the same command finds
its finished jobs and never redoes them; a job left "running" by a killed process (its pid is gone) is run
again; a failed job is reported and retried only on request. Every file is written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark._io import atomic_write_text, pid_alive
from benchmark.errors import ConfigurationError, NasoptError
from nasopt.validation.candidates import Candidate

PLAN_FILE = "plan.json"
JOBS_DIR = "jobs"
RECORDS_DIR = "records"
REPORT_DIR = "report"
FORMAT_VERSION = 1
KINDS = ("measure", "train")


class PlanError(NasoptError, ValueError):
    """A validation directory that cannot be used as asked (the message says what is there and what to do)."""


@dataclass(frozen=True)
class Job:
    """One unit of work: ``kind`` (measure / train) of ``arch`` with ``settings`` (plain JSON values)."""

    kind: str
    arch: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        blob = json.dumps({"kind": self.kind, "arch": self.arch, "settings": self.settings}, sort_keys=True)
        return f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    @property
    def label(self) -> str:
        what = self.settings.get("backend") or self.settings.get("scheme") or ""
        return f"{self.kind} {what} {self.settings.get('metric', '')}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "arch": self.arch, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        return cls(str(d["kind"]), str(d["arch"]), dict(d.get("settings") or {}))


@dataclass(frozen=True)
class Plan:
    """What a validation does: the candidates, the problem they came from, the jobs."""

    candidates: tuple[Candidate, ...]
    problem: dict[str, Any]
    settings: dict[str, Any]
    jobs: tuple[Job, ...]
    runs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "problem": self.problem,
            "settings": self.settings,
            "runs": list(self.runs),
            "candidates": [c.to_dict() for c in self.candidates],
            "jobs": [j.to_dict() for j in self.jobs],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        return cls(
            tuple(Candidate.from_dict(c) for c in d["candidates"]),
            dict(d["problem"]),
            dict(d["settings"]),
            tuple(Job.from_dict(j) for j in d["jobs"]),
            tuple(d.get("runs", ())),
        )

    def identity(self) -> dict[str, Any]:
        """What must match for a re-run to continue this plan: candidates, settings and jobs."""
        return {
            "candidates": sorted(c.arch for c in self.candidates),
            "settings": self.settings,
            "jobs": sorted(j.id for j in self.jobs),
        }


def make_jobs(
    candidates: Sequence[Candidate],
    measure: Sequence[Mapping[str, Any]] = (),
    train: Mapping[str, Any] | None = None,
) -> tuple[Job, ...]:
    """Jobs for every candidate: one per measurement setting (``{"backend": .., "metric": .., ...}``) and one
    training job when ``train`` (``{"scheme": .., ...}``) is given."""
    jobs: list[Job] = []
    for c in candidates:
        if train is not None:
            jobs.append(Job("train", c.arch, dict(train)))
        for m in measure:
            if "backend" not in m:
                raise ConfigurationError(f"a measurement setting needs a backend, got {dict(m)}")
            jobs.append(Job("measure", c.arch, dict(m)))
    return tuple(jobs)


# ---------------------------------------------------------------------------------------------- directory


def read_plan(vdir: str | os.PathLike[str]) -> Plan:
    """The plan of a validation directory (one line when it is missing or unreadable)."""
    path = Path(vdir) / PLAN_FILE
    try:
        return Plan.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise PlanError(f"{vdir} is not a validation directory (no {PLAN_FILE})") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PlanError(f"{path}: unreadable validation plan ({type(exc).__name__}: {exc})") from exc


def open_plan(vdir: str | os.PathLike[str], plan: Plan, *, overwrite: bool = False) -> Plan:
    """Start ``plan`` in ``vdir``, or continue it when ``vdir`` already holds the same plan. A directory that
    holds another plan is refused (its results are never replaced) unless ``overwrite``."""
    root = Path(vdir)
    path = root / PLAN_FILE
    if path.exists() and not overwrite:
        old = read_plan(root)
        if old.identity() != plan.identity():
            done = sum(1 for j in old.jobs if job_state(root, j)["state"] == "done")
            raise PlanError(
                f"{root} holds another validation ({len(old.candidates)} candidates, {len(old.jobs)} jobs, "
                f"{done} done); use another --out, or --overwrite to start afresh there"
            )
        return old
    root.mkdir(parents=True, exist_ok=True)
    if overwrite and (root / JOBS_DIR).exists():
        import shutil

        shutil.rmtree(root / JOBS_DIR)
    atomic_write_text(path, json.dumps(plan.to_dict(), indent=1))
    return plan


def _job_dir(vdir: Path, job: Job) -> Path:
    return vdir / JOBS_DIR / job.id


def _pid_alive(pid: int, host: str) -> bool:
    """Whether the process that claimed a job still runs (one of another machine is assumed to)."""
    return True if host != socket.gethostname() else pid_alive(pid)


def job_state(vdir: str | os.PathLike[str], job: Job) -> dict[str, Any]:
    """``{"state": "pending"|"running"|"done"|"failed", ...}``; a "running" job whose process is gone is
    reported as ``pending`` (killed: it will be run again)."""
    path = _job_dir(Path(vdir), job) / "status.json"
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {"state": "pending", "attempts": 0}
    except (OSError, ValueError):
        return {"state": "pending", "attempts": 0, "note": f"{path} was unreadable"}
    if status.get("state") == "running" and not _pid_alive(
        int(status.get("pid", -1)), str(status.get("host"))
    ):
        return {**status, "state": "pending", "note": "its process died (killed); it runs again"}
    return status


def job_result(vdir: str | os.PathLike[str], job: Job) -> dict[str, Any] | None:
    """A done job's result (None unless done)."""
    if job_state(vdir, job)["state"] != "done":
        return None
    out: dict[str, Any] = json.loads((_job_dir(Path(vdir), job) / "result.json").read_text())
    return out


def _write_status(vdir: Path, job: Job, **status: Any) -> None:
    """The job's status, stamped with the process (pid, host) that runs it."""
    status = {**status, "pid": os.getpid(), "host": socket.gethostname()}
    d = _job_dir(vdir, job)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "status.json", json.dumps(status, indent=1))


# ---------------------------------------------------------------------------------------------- running

#: kind -> function(job, job_dir) -> result dict; the training entry is filled in by the training package
RUNNERS: dict[str, Callable[[Job, Path], dict[str, Any]]] = {}


def _run_measure(job: Job, job_dir: Path) -> dict[str, Any]:
    from nasopt.validation.measure import make_backend

    settings = dict(job.settings)
    backend = make_backend(settings.pop("backend"), **settings)
    return backend.measure(job.arch).to_dict()


RUNNERS["measure"] = _run_measure


def run_job(vdir: str | os.PathLike[str], job_dict: Mapping[str, Any]) -> str:
    """Run one job of ``vdir`` in this process and record its outcome; returns the final state.

    A module-level function of plain arguments, so any executor (this process, submitit, Ray) can run it.
    """
    root = Path(vdir)
    job = Job.from_dict(job_dict)
    previous = job_state(root, job)
    if previous["state"] == "done":
        return "done"
    attempts = int(previous.get("attempts", 0)) + 1
    started = time.time()
    _write_status(
        root,
        job,
        state="running",
        attempts=attempts,
        started=started,
    )
    try:
        runner = RUNNERS.get(job.kind) or _lazy_runner(job.kind)
        result = runner(job, _job_dir(root, job))
    except (Exception, KeyboardInterrupt) as exc:  # recorded, then re-raised for Ctrl-C
        one_line = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        _write_status(
            root,
            job,
            state="failed",
            attempts=attempts,
            error=one_line,
            started=started,
            finished=time.time(),
            traceback=traceback.format_exc(limit=8),
        )
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "failed"
    atomic_write_text(_job_dir(root, job) / "result.json", json.dumps(result, indent=1))
    _write_status(
        root,
        job,
        state="done",
        attempts=attempts,
        started=started,
        finished=time.time(),
    )
    return "done"


def _lazy_runner(kind: str) -> Callable[[Job, Path], dict[str, Any]]:
    if kind == "train":
        from nasopt.validation.train_job import run_train_job

        RUNNERS["train"] = run_train_job
        return run_train_job
    raise ConfigurationError(f"unknown job kind {kind!r}; known: {', '.join(KINDS)}")


@dataclass
class Progress:
    """Counts of job states after a pass, and the failed jobs' one-line errors."""

    done: int = 0
    failed: int = 0
    pending: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def summarize_jobs(vdir: str | os.PathLike[str], plan: Plan) -> Progress:
    """The state of every job of ``plan`` in ``vdir``."""
    p = Progress()
    for job in plan.jobs:
        st = job_state(vdir, job)
        if st["state"] == "done":
            p.done += 1
        elif st["state"] == "failed":
            p.failed += 1
            p.errors[job.id] = f"{job.label} of {job.arch}: {st.get('error', '?')}"
        else:
            p.pending += 1
    return p


def run_plan(
    vdir: str | os.PathLike[str],
    plan: Plan,
    *,
    retry_failed: bool = False,
    executor: Any = None,
    show_progress: bool = True,
) -> Progress:
    """Run every job that is not done (failed ones only with ``retry_failed``), in plan order.

    ``executor``: None runs the jobs in this process with a progress bar naming the running job; otherwise an
    object with ``submit(fn, *args)`` returning futures with ``.result()`` (submitit's executors, a
    ``concurrent.futures`` pool, a Ray wrapper): the jobs are submitted at once and awaited.
    """
    root = Path(vdir)
    todo = []
    for job in plan.jobs:
        st = job_state(root, job)["state"]
        if st == "done" or (st == "failed" and not retry_failed):
            continue
        if st == "running":
            continue  # a live process (this or another machine) is on it
        todo.append(job)
    if executor is not None:
        futures = [executor.submit(run_job, str(root), job.to_dict()) for job in todo]
        for f in futures:
            with contextlib.suppress(Exception):  # a job's failure is in its status file
                f.result()
        return summarize_jobs(root, plan)
    bar = _progress_bar(len(plan.jobs), len(plan.jobs) - len(todo), show_progress)
    with bar:
        for job in todo:
            bar.set_description(f"{job.label} {job.arch[:23]}…")
            state = run_job(root, job.to_dict())
            bar.update(1)
            if state == "failed":
                bar.write(f"failed: {job.label} of {job.arch}: {job_state(root, job).get('error')}")
    return summarize_jobs(root, plan)


def _progress_bar(total: int, initial: int, show: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="job", disable=not show, dynamic_ncols=True)


@contextlib.contextmanager
def locked_validation(vdir: str | os.PathLike[str]) -> Iterator[None]:
    """One process at a time per validation directory (the run directory's lock, reused)."""
    from nasopt.rundir import RunDirBusyError, locked

    root = Path(vdir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        with locked(root):
            yield
    except RunDirBusyError as exc:
        raise PlanError(
            f"validation directory {root} is in use by another nasopt process; wait for it"
        ) from exc


# ---------------------------------------------------------------------------------------------- collect


@dataclass(frozen=True)
class Collected:
    """Measured values per candidate: ``values[name]`` and ``stds[name]`` are ``(n_candidates,)`` (NaN where
    not measured); ``comparable[name]`` is False for a quantity whose absolute values do not compare with the
    predictions (e.g. accuracy of a training on another dataset)."""

    values: dict[str, Any]
    stds: dict[str, Any]
    comparable: dict[str, bool]
    n_done: int


def collect(vdir: str | os.PathLike[str], plan: Plan, *, write_records: bool = True) -> Collected:
    """Gather the done jobs' results by candidate, and (re)write ``VDIR/records/`` from them: one
    Accel-NASBench record per candidate with anything measured (records are derived data; job results are the
    source)."""
    import numpy as np

    from nasopt.validation.measure.base import Measurement

    root = Path(vdir)
    index = {c.arch: i for i, c in enumerate(plan.candidates)}
    n = len(plan.candidates)
    values: dict[str, Any] = {}
    stds: dict[str, Any] = {}
    comparable: dict[str, bool] = {}
    per_arch: dict[str, list[Measurement]] = {}
    metrics: dict[str, dict[str, float | None]] = {}
    done = 0
    for job in plan.jobs:
        res = job_result(root, job)
        if res is None:
            continue
        done += 1
        i = index[job.arch]
        if job.kind == "measure":
            m = Measurement.from_dict(res)
            per_arch.setdefault(job.arch, []).append(m)
            values.setdefault(m.target, np.full(n, np.nan))[i] = m.mean
            stds.setdefault(m.target, np.full(n, np.nan))[i] = m.std
        else:
            top1 = res.get("val_top1")
            if top1 is not None:
                values.setdefault("accuracy", np.full(n, np.nan))[i] = float(top1)
                stds.setdefault("accuracy", np.full(n, np.nan))[i] = float("nan")
                comparable["accuracy"] = comparable.get("accuracy", True) and bool(
                    res.get("comparable", False)
                )
            metrics[job.arch] = {k: res.get(k) for k in ("val_top1", "val_top5", "train_time")}
    if write_records:
        import shutil
        import tempfile

        from nasopt.validation.records import write_record

        tmp = Path(tempfile.mkdtemp(prefix=".records-", dir=root))
        try:
            for c in plan.candidates:
                if c.arch in per_arch or c.arch in metrics:
                    write_record(
                        tmp,
                        c.arch,
                        per_arch.get(c.arch, []),
                        metrics.get(c.arch),
                        extra_provenance={"candidate_reason": c.reason, "runs": list(c.runs)},
                    )
            dest = root / RECORDS_DIR
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return Collected(values, stds, comparable, done)
