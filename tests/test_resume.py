"""Exact resume: runs killed with SIGKILL (or stopped by SIGINT/SIGTERM) and resumed equal uninterrupted runs.

A child process runs a search on the synthetic oracle, checkpointing after every batch and sleeping a little
after each batch; the parent kills it at different moments (before the first checkpoint, between
checkpoints, possibly in the middle of writing one), resumes the run in the same directory to the end and
compares the trial table with an uninterrupted run of the same seed (wall-clock columns excluded).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchmark.synthetic import SyntheticBenchmark
from nasopt.checkpoint import checkpoint_path, load_checkpoint
from nasopt.problems import get_problem
from nasopt.rundir import read_run
from nasopt.runner import Runner

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BUDGET = 240
SEED = 11


def _optimizer(name: str) -> Any:
    if name == "toy":
        from test_runner import ToyEvolution  # the in-test optimizer (tests/ is on sys.path)

        return ToyEvolution
    if name == "bo_nsga2_tiny":  # BO-seeded NSGA-II with tiny BO settings, switching after 48 evaluations
        from test_hybrid import TinyHybrid

        return TinyHybrid
    return name


def make_runner(run_dir: str | Path | None, opt: str, sleep: float = 0.0, **kw: Any) -> Runner:
    """The run every test in this file repeats: noisy for the toy optimizer (exercises the noise stream)."""
    problem = get_problem("acc_zcu102_latency").with_eval_mode("noisy" if opt == "toy" else "mean")
    on_batch: Callable[[Runner], None] | None = (lambda _r: time.sleep(sleep)) if sleep else None
    return Runner(
        problem,
        _optimizer(opt),
        SyntheticBenchmark(),
        BUDGET,
        run_dir,
        seed=SEED,
        batch_size=6 if opt in ("toy", "rs", "re") else None,
        checkpoint_every=0,
        checkpoint_every_s=None,
        progress=False,
        on_batch=on_batch,
        **kw,
    )


def child_main(run_dir: str, opt: str, sleep: float) -> None:
    """Entry point of the child process."""
    result = make_runner(run_dir, opt, sleep).run()
    print(json.dumps({"finished": result.finished, "interrupted": result.interrupted}), flush=True)


def _spawn(run_dir: Path, opt: str, sleep: float = 0.02) -> subprocess.Popen[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_resume as t; "
        f"t.child_main({str(run_dir)!r}, {opt!r}, {sleep!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_checkpoint(proc: subprocess.Popen[str], run_dir: Path, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while checkpoint_path(run_dir / "checkpoint") is None:
        if proc.poll() is not None:
            raise AssertionError(f"child ended before its first checkpoint: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("child wrote no checkpoint in time")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _saved_evals(run_dir: Path) -> int | None:
    loaded = load_checkpoint(run_dir / "checkpoint")
    if loaded is None:
        return None
    assert not loaded[0]["finished"], "the child finished before it was killed: the test would prove nothing"
    return int(loaded[0]["n_evals"])


_REFERENCE: dict[str, pd.DataFrame] = {}


def reference(opt: str) -> pd.DataFrame:
    if opt not in _REFERENCE:
        _REFERENCE[opt] = make_runner(None, opt).run().comparable_trials()
    return _REFERENCE[opt]


def _resume_and_compare(run_dir: Path, opt: str) -> None:
    result = make_runner(run_dir, opt).run()
    assert result.finished and len(result.trials) == BUDGET
    pd.testing.assert_frame_equal(result.comparable_trials(), reference(opt))
    on_disk = read_run(run_dir)
    pd.testing.assert_frame_equal(on_disk.comparable_trials(), reference(opt))
    assert on_disk.summary["finished"] and on_disk.summary["n_evals"] == BUDGET


@pytest.mark.parametrize("delay", [0.0, 0.037, 0.21])
def test_sigkill_at_any_moment_then_resume_equals_uninterrupted(tmp_path: Path, delay: float) -> None:
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, "toy")
    _wait_for_checkpoint(proc, run_dir)
    time.sleep(delay)
    rc, _, _ = _kill(proc)
    assert rc == -signal.SIGKILL
    assert _saved_evals(run_dir) is not None
    _resume_and_compare(run_dir, "toy")


def test_sigkill_before_the_first_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, "toy")
    time.sleep(0.3)  # still importing, or just started
    _kill(proc)
    _resume_and_compare(run_dir, "toy")


@pytest.mark.slow
def test_repeated_sigkills_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    progress: list[int] = []
    for delay in (0.0, 0.11, 0.05):
        proc = _spawn(run_dir, "toy")
        _wait_for_checkpoint(proc, run_dir)
        time.sleep(delay)
        _kill(proc)
        saved = _saved_evals(run_dir)
        assert saved is not None
        progress.append(saved)
    assert progress == sorted(progress)  # every restart continued from the last checkpoint
    _resume_and_compare(run_dir, "toy")


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["rs", "re", "nsga2"])
def test_sigkill_resume_with_real_optimizers(tmp_path: Path, opt: str) -> None:
    from optimizers import optimizer_class

    try:
        optimizer_class(opt)
    except (ImportError, AttributeError):
        pytest.skip(f"optimizer {opt} is not implemented yet")
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, opt, sleep=0.03)
    _wait_for_checkpoint(proc, run_dir)
    time.sleep(0.08)
    _kill(proc)
    assert _saved_evals(run_dir) is not None
    _resume_and_compare(run_dir, opt)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_sigint_stop_cleanly_with_a_checkpoint(tmp_path: Path, sig: int) -> None:
    run_dir = tmp_path / "run"
    proc = _spawn(run_dir, "toy", sleep=0.05)
    _wait_for_checkpoint(proc, run_dir)
    rc, out, err = _kill(proc, sig)
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {
        "finished": False,
        "interrupted": signal.Signals(sig).name,
    }
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finished"] is False and summary["interrupted"] == signal.Signals(sig).name
    n = _saved_evals(run_dir)
    assert n is not None and n == summary["n_evals"] == len(pd.read_parquet(run_dir / "trials.parquet"))
    _resume_and_compare(run_dir, "toy")


class _CountingOracle(SyntheticBenchmark):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().query(*args, **kwargs)


def test_a_finished_run_started_again_only_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = make_runner(run_dir, "toy").run()
    mtime = (run_dir / "trials.parquet").stat().st_mtime_ns
    runner = make_runner(run_dir, "toy")
    oracle = _CountingOracle()
    runner.bench = oracle
    again = runner.run()
    assert oracle.calls == 0
    assert again.finished
    pd.testing.assert_frame_equal(again.trials, first.trials)
    assert again.summary == first.summary
    assert (run_dir / "trials.parquet").stat().st_mtime_ns == mtime


def test_in_process_stop_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """request_stop() (what the signal handlers do) at several points, then resume: same table."""
    run_dir = tmp_path / "run"
    for stop_at in (13, 60, 61, 200):
        r = make_runner(run_dir, "toy")
        r.on_batch = lambda rr, s=stop_at: rr.request_stop() if rr.n_evals >= s else None
        res = r.run()
        assert not res.finished and res.interrupted == "request"
    _resume_and_compare(run_dir, "toy")
