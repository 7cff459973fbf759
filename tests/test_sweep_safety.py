"""A killed sweep leaves no workers behind, and a re-run neither reports false failures nor writes error.txt
into runs another process is finishing (issue 10, item 3). Real processes, real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import nasopt
from benchmark._io import pid_alive as is_alive
from benchmark.synthetic import SyntheticBenchmark
from experiments.sweep_guard import holder_kind, sweep_env
from nasopt.rundir import RunDirBusyError, lock_holder, locked, read_run

REPO = Path(__file__).resolve().parent.parent
SLOW_ENV = "NASOPT_TEST_SLOW_QUERY_S"
#: imported by every Python process of a test's command (the sweep's loky workers too): slows the synthetic
#: oracle down so that a sweep is still running when the test kills it
_SITECUSTOMIZE = f"""
import os
if os.environ.get({SLOW_ENV!r}):
    import time
    import benchmark.synthetic as _synthetic

    _query = _synthetic.SyntheticBenchmark.query

    def _slow_query(self, *args, **kwargs):
        time.sleep(float(os.environ[{SLOW_ENV!r}]))
        return _query(self, *args, **kwargs)

    _synthetic.SyntheticBenchmark.query = _slow_query
"""
BUDGET = 100


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, SLOW_ENV: "0.02"}


def _sweep_args(sweep: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.cli",
        "search",
        "-m",
        "benchmark=synthetic",
        "optimizer=re",
        f"budget.max_evals={BUDGET}",
        "checkpoint.every_evals=5",
        "print_summary=false",
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def _run_dir(sweep: Path, seed: int) -> Path:
    return sweep / "acc_a100" / "re" / f"seed{seed}"


def _reference(seed: int) -> pd.DataFrame:
    run = nasopt.search("acc_a100", "re", budget=BUDGET, seed=seed, bench=SyntheticBenchmark())
    return run.comparable_trials()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _holder(run_dir: Path, owner: dict[str, int]) -> subprocess.Popen[str]:
    """A process holding ``run_dir``'s lock with ``owner`` in its record until killed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys, time; from pathlib import Path; from nasopt.rundir import locked\n"
        f"with locked(Path({str(run_dir)!r}), owner={owner!r}):\n"
        "    print('locked', flush=True); time.sleep(float(sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code, "600"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_sweep_leaves_no_workers_and_a_rerun_has_no_false_failures(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sweep = tmp_path / "sweep"
    args = _sweep_args(sweep, "seed=0,1")
    log = tmp_path / "sweep.log"
    with open(log, "w") as fh:
        main = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not all((_run_dir(sweep, k) / "trials.parquet").is_file() for k in (0, 1)):
            assert main.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        workers = _children(main.pid)  # the two loky workers and the resource trackers
        assert sum("popen_loky" in Path(f"/proc/{p}/cmdline").read_text() for p in workers) == 2
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=30)
        # the workers stop within a second or so (a checkpoint after their batch), not at their run's end
        deadline = time.monotonic() + 15
        while any(is_alive(p) for p in workers):
            assert time.monotonic() < deadline, f"workers {workers} outlived their sweep"
            time.sleep(0.1)
    finally:
        if main.poll() is None:
            main.kill()
    for k in (0, 1):
        assert not read_run(_run_dir(sweep, k)).finished  # they were really stopped midway
        assert lock_holder(_run_dir(sweep, k)) is None
    again = subprocess.run(args, capture_output=True, text=True, env={**env, SLOW_ENV: ""}, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "in use by another" not in again.stderr and "failed" not in again.stderr
    assert not list(sweep.rglob("error.txt"))
    for k in (0, 1):
        run = read_run(_run_dir(sweep, k))
        assert run.finished and run.n_evals == BUDGET
        pd.testing.assert_frame_equal(run.comparable_trials(), _reference(k))


def test_a_sweep_waits_for_a_worker_of_a_killed_sweep(tmp_path: Path, env: dict[str, str]) -> None:
    sweep = tmp_path / "sweep"
    d = _run_dir(sweep, 0)
    orphan = _holder(d, {"sweep_pid": _dead_pid()})
    try:
        with pytest.raises(RunDirBusyError) as busy, locked(d):
            pass
        assert busy.value.holder is not None and busy.value.holder["pid"] == orphan.pid
        assert f"(PID {orphan.pid})" in str(busy.value)
        assert holder_kind(busy.value.holder, None) == "orphan"
        sweep_cmd = subprocess.Popen(
            _sweep_args(sweep, "seed=0"), stderr=subprocess.PIPE, text=True, env={**env, SLOW_ENV: ""}
        )
        assert sweep_cmd.stderr is not None
        line = sweep_cmd.stderr.readline()
        while "waiting" not in line:
            assert line, "the sweep ended without waiting"
            line = sweep_cmd.stderr.readline()
        assert f"process {orphan.pid}, a worker of a killed sweep" in line
        orphan.kill()  # (its watchdog would end it within seconds)
        rest = sweep_cmd.communicate(timeout=300)[1]
    finally:
        orphan.kill()
    assert sweep_cmd.returncode == 0, rest
    assert not list(sweep.rglob("error.txt")) and "in use" not in rest
    assert read_run(d).finished


@pytest.mark.slow
def test_a_sweep_waits_for_its_own_worker_sharing_a_directory(tmp_path: Path, env: dict[str, str]) -> None:
    sweep = tmp_path / "sweep"
    # two jobs differing only in how they print map to one run directory: the second waits, then reports
    done = subprocess.run(
        _sweep_args(sweep, "seed=0", "progress=false,null"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "a worker of this sweep" in done.stderr and "in use" not in done.stderr
    assert not list(sweep.rglob("error.txt"))
    pd.testing.assert_frame_equal(read_run(_run_dir(sweep, 0)).comparable_trials(), _reference(0))


@pytest.mark.slow
def test_a_run_another_live_command_runs_is_skipped_not_failed(tmp_path: Path, env: dict[str, str]) -> None:
    sweep = tmp_path / "sweep"
    single = _holder(_run_dir(sweep, 0), {})  # e.g. a single run with hydra.run.dir=<that directory>
    try:
        done = subprocess.run(
            _sweep_args(sweep, "seed=0,1"),
            capture_output=True,
            text=True,
            env={**env, SLOW_ENV: ""},
            timeout=300,
        )
    finally:
        single.kill()
    assert done.returncode == 1, done.stderr
    assert (
        f"still running in process {single.pid}" in done.stderr
        and "job(s) of the sweep failed" not in done.stderr
    )
    assert "1 run(s) of the sweep are still running in other processes" in done.stderr
    assert not list(sweep.rglob("error.txt"))
    assert read_run(_run_dir(sweep, 1)).finished and not (_run_dir(sweep, 0) / "trials.parquet").exists()


def _guarded_job(sweep: int) -> subprocess.Popen[str]:
    """A process that runs a sweep job's guard for ``sweep`` (this host) and then works for a minute."""
    code = (
        "import sys, time; from experiments.sweep_guard import guard_job\n"
        "guard_job(int(sys.argv[1])); print('running', flush=True); time.sleep(60); print('ran')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.update(sweep_env(sweep))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(sweep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_job_that_starts_after_its_sweep_died_runs_nothing() -> None:
    # (a worker still starting up, or taking up a queued job, when the sweep was killed)
    dead = _dead_pid()
    out, err = _guarded_job(dead).communicate(timeout=60)
    assert "running" not in out and f"the sweep's main process {dead} is gone" in err


def test_the_watchdog_follows_a_sweep_that_is_not_the_parent() -> None:
    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    job = _guarded_job(sweep.pid)
    try:
        assert job.stdout is not None and job.stdout.readline().strip() == "running"
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
        _out, err = job.communicate(timeout=15)  # within POLL_S, not after its minute of work
    finally:
        sweep.kill()
        job.kill()
    assert job.returncode in (-signal.SIGTERM, 130) and "ran" not in _out
    assert f"the sweep's main process {sweep.pid} is gone; stopping worker {job.pid}" in err
