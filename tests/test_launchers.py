"""Sweeps on submitit (its local executor: real subprocesses, SLURM's code path without sbatch) and on a
local Ray cluster, through ``hydra/launcher=submitit_local|ray``; the engine seam ``nasopt.engines``.

What must hold as on joblib, checked with real processes and real signals: one directory per job; a job whose
worker is killed (SIGKILL) is reported (``error.txt``, the sweep's failure list, exit 1), the others finish;
re-running the sweep resumes the killed job and skips the finished one; the whole sweep killed (SIGKILL to its
process group) and re-run ends with every trial table equal to a local run of the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from benchmark.errors import ConfigurationError, NasoptError
from experiments.config_schema import CONFIG_MODULE, register_configs
from experiments.search_app import run_from_config
from nasopt.checkpoint import load_checkpoint
from nasopt.engines import Engine, EngineUnavailableError, JobFailedError, run_jobs
from nasopt.rundir import read_run

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROBLEMS = ("acc_a100", "acc_zcu102_latency")
# slow enough to be killed mid-way (a checkpoint after every one-architecture batch): ~15 s a run here
RUN = [
    "experiment=smoke",
    "optimizer=re",
    "seed=0",
    "print_summary=false",
    "budget.max_evals=400",
    "optimizer.batch_size=1",
]


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def _die(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


class _Counted:
    """A value that counts how often this process deserialised one."""

    loads = 0

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).loads += 1
        self.__dict__.update(state)


def _use_shared(shared: Any, i: int) -> tuple[int, int, int]:
    value = shared.get()
    return os.getpid(), type(value).loads, len(value.payload) + i


# --------------------------------------------------------------------------------------------------
# the engine seam
# --------------------------------------------------------------------------------------------------
def test_unknown_engine_and_unstarted_engine() -> None:
    with pytest.raises(
        ConfigurationError, match="unknown engine 'pbs'; available: slurm, submitit_local, ray"
    ):
        Engine("pbs")
    with pytest.raises(ConfigurationError, match=r"unknown option\(s\) partiton; known: .*partition"):
        Engine("slurm", folder="x", partiton="gpu")
    with pytest.raises(RuntimeError, match="not started"):
        Engine("submitit_local", folder="x").submit(_square, 2)


def test_missing_engine_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(EngineUnavailableError, match=r"pip install \"nasopt\[slurm\]\"") as info:
        Engine("slurm", folder="x").start()
    assert isinstance(info.value, NasoptError) and "\n" not in str(info.value)


def test_submitit_local_engine_runs_callables_and_reports_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with Engine("submitit_local", folder=tmp_path / "%j", timeout_min=5) as eng:
        ok = eng.submit(_square, 7)
        bad = eng.submit(_fail, 3)
        assert ok.result() == 49
        with pytest.raises(JobFailedError, match="bad input 3") as info:
            bad.result()
        assert "\n" not in str(info.value) and ok.done() and bad.done()
        # a worker killed by a signal: its job fails, the others of the batch still finish
        outs = run_jobs(eng, _die_or_square, [(1,), (-1,), (3,)], max_parallel=2)
    assert [o.value for o in outs] == [1, None, 9]
    assert outs[1].error is not None and "failed" in outs[1].error


def _die_or_square(x: int) -> int:
    return _die(x) if x < 0 else _square(x)


def _pid_then_sleep(path: str) -> int:
    """A job that writes its PID to ``path`` and then sleeps (until cancelled)."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has ended
        return fh.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize(("max_parallel", "sigint_ignored"), [(None, False), (1, False), (None, True)])
def test_run_jobs_stopped_cancels_every_submitted_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_parallel: int | None, sigint_ignored: bool
) -> None:
    """A stop (what SIGINT/SIGTERM raise in ``nasopt benchmark build``) while jobs run: each submitted job
    is cancelled -- its process ends -- none is submitted after it, and every outcome says so. Also when
    the jobs were started from a process that ignores SIGINT (submitit's local cancel signal; background
    shells and some test runners ignore it, and children inherit that): they are killed after a grace
    period."""
    pytest.importorskip("submitit")
    import threading

    from nasopt.signals import StopFlag

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    pids = [tmp_path / f"pid{i}" for i in range(3)]
    stop = StopFlag()

    def stop_when_started() -> None:
        end = time.monotonic() + 60
        while not pids[0].is_file() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.request("SIGTERM")

    watcher = threading.Thread(target=stop_when_started)
    watcher.start()
    t0 = time.monotonic()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if sigint_ignored else None
    try:
        with Engine("submitit_local", folder=tmp_path / "%j", timeout_min=5) as eng:
            outs = run_jobs(
                eng, _pid_then_sleep, [(str(p),) for p in pids], max_parallel=max_parallel, stop=stop
            )
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)
    watcher.join()
    assert time.monotonic() - t0 < 60  # not the jobs' 120 s
    assert all(o.error is not None and "cancelled (SIGTERM)" in o.error for o in outs)
    started = [int(p.read_text()) for p in pids if p.is_file()]
    assert started and (max_parallel is None or len(started) == 1)  # one at a time: none after the stop
    end = time.monotonic() + 30
    while any(_alive(pid) for pid in started) and time.monotonic() < end:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in started)


def test_slurm_launcher_config_reaches_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hydra/launcher=slurm`` composes and its knobs reach the sbatch script of one job array (stand-in
    ``srun``/``sbatch`` on PATH record the script; nothing runs). Without ``srun``: a one-line error."""
    pytest.importorskip("submitit")
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose(
            config_name="search",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.mem_gb=16",
                "hydra.launcher.timeout_min=240",
                "hydra.launcher.array_parallelism=2",
                "hydra.launcher.cpus_per_task=2",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
            ],
            return_hydra_config=True,
        )
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    params = instantiate(cfg.hydra.launcher).engine_params()
    assert params["partition"] == "gpu" and "n_jobs" not in params
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigurationError, match=r"srun.*SLURM login node.*submitit_local"):
        Engine("slurm", **params).start()

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/job.sbatch\necho "Submitted batch job 4242"\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]))
    with Engine("slurm", **params) as eng:
        handles = eng.submit_array(_square, [(1,), (2,), (3,)])
    assert [h.job_id for h in handles] == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "job.sbatch").read_text()
    for line in (
        "--partition=gpu",
        "--mem=16GB",
        "--time=240",
        "--array=0-2%2",
        "--cpus-per-task=2",
        "--signal=USR2@120",
        "--job-name=nasopt_search",
    ):
        assert f"#SBATCH {line}" in script, (line, script)


def test_ray_engine_runs_callables_and_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with Engine("ray", num_cpus=1) as eng:
        assert eng.submit(_square, 5).result() == 25
        with pytest.raises(JobFailedError, match="bad input 2"):
            eng.submit(_fail, 2).result()
        assert eng.submit(int, "7").result() == 7  # a class is called, not made an actor


def test_ray_shared_value_is_sent_once_and_deserialised_once_per_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Engine.share``: what every job of a sweep has in common goes into Ray's object store once; a worker
    deserialises it at its first job and keeps it for the next ones."""
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    with Engine("ray", num_cpus=1) as eng:
        shared = eng.share(_Counted(b"x" * 100_000))
        out = [eng.submit(_use_shared, shared, i).result() for i in range(4)]
    assert [o[2] for o in out] == [100_000, 100_001, 100_002, 100_003]
    assert len({o[0] for o in out}) == 1  # one worker ran them all
    assert [o[1] for o in out] == [1, 1, 1, 1]  # and deserialised the value once


# --------------------------------------------------------------------------------------------------
# sweeps, for real: kill a worker, kill the sweep, re-run
# --------------------------------------------------------------------------------------------------
def _sweep_args(launcher: str, sweep: Path) -> list[str]:
    return [
        "search",
        "-m",
        *RUN,
        f"problem={','.join(PROBLEMS)}",
        f"hydra/launcher={launcher}",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    ]


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _evals(run_dir: Path) -> int:
    """Evaluations in the checkpoint (-1: none yet, or read while the run rotates it)."""
    try:
        loaded = load_checkpoint(run_dir / "checkpoint")
    except NasoptError:
        return -1
    return -1 if loaded is None else int(loaded[0]["n_evals"])


def _wait(proc: subprocess.Popen[str], cond: Any, what: str, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {proc.communicate()[0][-3000:]}")
        if time.monotonic() > end:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {what}: {proc.communicate()[0][-3000:]}")
        time.sleep(0.05)


def _lock_holder(run_dir: Path) -> int | None:
    """The pid of the process that has ``run_dir/.lock`` open (the job's worker), if any."""
    target = str((run_dir / ".lock").resolve())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue
    return None


def _reference(problem: str) -> pd.DataFrame:
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name="search", overrides=[*RUN, f"problem={problem}"])
    return run_from_config(cfg, None).comparable_trials()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "ray"])
def test_sweep_killed_worker_and_killed_sweep_then_rerun_equal_local_runs(
    tmp_path: Path, launcher: str
) -> None:
    pytest.importorskip("submitit" if launcher == "submitit_local" else "ray")
    sweep = tmp_path / "sweep"
    a, b = (sweep / p / "re" / "seed0" for p in PROBLEMS)

    # 1. one job's worker is killed: that job is reported, the other finishes
    proc = _start(_sweep_args(launcher, sweep))
    _wait(proc, lambda: _evals(a) >= 30 and _lock_holder(a) is not None, "job A's first checkpoints")
    pid = _lock_holder(a)
    assert pid is not None and pid != proc.pid
    os.kill(pid, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out[-3000:]
    assert "1 job(s) of the sweep failed" in out and str(a) in out, out[-3000:]
    assert "worker failed" in (a / "error.txt").read_text()
    assert read_run(b).finished and not (b / "error.txt").exists()
    assert not read_run(a).finished
    b_mtime = (b / "trials.parquet").stat().st_mtime_ns

    # 2. the sweep again, killed as a whole (SIGKILL to its process group) while job A resumes
    start = _evals(a)
    proc = _start(_sweep_args(launcher, sweep))
    _wait(proc, lambda: _evals(a) >= start + 30, "job A to resume")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not read_run(a).finished
    deadline = time.monotonic() + 30  # the killed workers let go of their locks
    while _lock_holder(a) is not None and time.monotonic() < deadline:
        time.sleep(0.1)

    # 3. and again: job A resumes to the end, job B is only reported; both equal local runs
    proc = _start(_sweep_args(launcher, sweep))
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    assert (b / "trials.parquet").stat().st_mtime_ns == b_mtime
    assert not (a / "error.txt").exists()
    for problem, d in zip(PROBLEMS, (a, b), strict=True):
        run = read_run(d)
        assert run.finished and len(run.trials) == 400
        pd.testing.assert_frame_equal(run.comparable_trials(), _reference(problem))
