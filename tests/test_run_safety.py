"""A run directory never loses a result: an earlier run without a complete checkpoint is refused (not
restarted over), ``overwrite`` deletes it explicitly, a process refused by the lock writes nothing, and
truncated checkpoint files fall back to ``checkpoint.old/`` or are named in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nasopt
from benchmark.synthetic import SyntheticBenchmark
from experiments.search_app import main
from nasopt.checkpoint import CheckpointError
from nasopt.rundir import Run, RunDirError, RunFormatError, read_run
from nasopt.runner import Runner

REPO = Path(__file__).resolve().parent.parent
RESULT_FILES = ("trials.parquet", "summary.json", "config.yaml")


def _search(d: Path | None, optimizer: str = "re", budget: int = 40, **kw: object) -> Run:
    return nasopt.search(
        "acc_zcu102_latency",
        optimizer,
        budget=budget,
        seed=3,
        run_dir=d,
        bench=SyntheticBenchmark(),
        checkpoint_every=0,
        progress=False,
        **kw,  # type: ignore[arg-type]
    )


def _snapshot(d: Path) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in RESULT_FILES if (d / n).is_file()}


def _hydra_files(d: Path) -> dict[str, bytes]:
    return {n: (d / ".hydra" / n).read_bytes() for n in ("config.yaml", "overrides.yaml", "hydra.yaml")}


def _remove(d: Path, what: str) -> None:
    p = d / what
    shutil.rmtree(p) if p.is_dir() else p.unlink()


# --------------------------------------------------------------------------------------------------
# item 1: a missing or incomplete checkpoint is never restarted over
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["checkpoint/state.json", "checkpoint/arrays.npz", "checkpoint"])
def test_missing_checkpoint_is_refused_then_overwrite_starts_afresh(tmp_path: Path, missing: str) -> None:
    d = tmp_path / "run"
    assert _search(d).finished
    _remove(d, missing)
    before = _snapshot(d)
    for optimizer, budget in (("re", 40), ("rs", 10)):  # the same run, and a different one
        with pytest.raises(RunDirError) as err:
            _search(d, optimizer, budget)
        msg = str(err.value)
        assert "\n" not in msg and "trials.parquet (40 evaluations)" in msg
        assert "optimizer state is lost" in msg and "overwrite=True" in msg and "another run directory" in msg
        assert _snapshot(d) == before
    # the explicit way out: old results are deleted, nothing of them is mixed into the new run
    run = _search(d, "rs", 10, overwrite=True)
    assert run.finished and run.n_evals == 10
    again = read_run(d)
    assert again.optimizer == "rs" and again.n_evals == 10 and again.config["optimizer"]["name"] == "rs"
    pd.testing.assert_frame_equal(again.comparable_trials(), _search(None, "rs", 10).comparable_trials())
    assert not (d / "checkpoint.old").exists()


def test_only_the_trial_table_left_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "run"
    _search(d)
    for name in ("checkpoint", "summary.json", "config.yaml"):
        _remove(d, name)
    with pytest.raises(RunDirError, match=r"holds trials\.parquet \(40 evaluations\)"):
        _search(d, "rs", 10)
    assert len(pd.read_parquet(d / "trials.parquet")) == 40


def test_config_of_another_run_that_never_checkpointed_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "run"
    _search(d)
    for name in ("checkpoint", "summary.json", "trials.parquet"):
        _remove(d, name)
    # the same run stopped before its first checkpoint: nothing is lost, it starts again
    assert _search(d).n_evals == 40
    for name in ("checkpoint", "summary.json", "trials.parquet"):
        _remove(d, name)
    with pytest.raises(RunDirError, match="config of a different run"):
        _search(d, "rs", 10)


def _cli(d: Path, *extra: str) -> list[str]:
    return ["benchmark=synthetic", "budget=smoke", "print_summary=false", f"hydra.run.dir={d}", *extra]


def test_app_refuses_in_one_line_and_overwrite_true_starts_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "run"
    assert main(_cli(d)) == 0
    (d / "checkpoint" / "state.json").unlink()
    before = {**_snapshot(d), **_hydra_files(d)}
    capsys.readouterr()
    assert main(_cli(d, "optimizer=rs", "budget.max_evals=10")) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "trials.parquet (60 evaluations)" in lines[0] and "overwrite=true" in lines[0]
    after = {**_snapshot(d), **_hydra_files(d)}
    assert after == before and not (d / "error.txt").exists()
    assert main(_cli(d, "optimizer=rs", "budget.max_evals=10", "overwrite=true")) == 0
    run = read_run(d)
    assert run.optimizer == "rs" and run.n_evals == 10 and run.finished
    assert "overwrite" not in run.config  # how the directory was treated is not part of the run
    assert "optimizer=rs" in (d / ".hydra" / "overrides.yaml").read_text()
    # and the same command without overwrite now just reports the finished run
    assert main(_cli(d, "optimizer=rs", "budget.max_evals=10")) == 0


# --------------------------------------------------------------------------------------------------
# item 2: a process refused by the lock changes nothing; a stale error.txt goes when the run ends well
# --------------------------------------------------------------------------------------------------
_SLOW_APP = """
import sys, time
import experiments.run_spec as rs
from nasopt.runner import Runner

class Slow(Runner):
    def __init__(self, *a, **k):
        k["on_batch"] = lambda r: time.sleep(0.05)
        super().__init__(*a, **k)

rs.Runner = Slow
from experiments.search_app import main
raise SystemExit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_second_process_refused_by_the_lock_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "run"
    first_args = _cli(d, "optimizer=rs", "optimizer.batch_size=1", "checkpoint.every_evals=1")
    first = subprocess.Popen(
        [sys.executable, "-c", _SLOW_APP, *first_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.time() + 60
        while not (d / "trials.parquet").is_file():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.02)
        hydra_files = _hydra_files(d)
        second = subprocess.run(
            # optimizer=rs: the default (auto -> bo) imports torch first; under load that outlasts run one
            [sys.executable, "-m", "experiments.cli", "search", *_cli(d, "optimizer=rs", "seed=7")],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert first.poll() is None, "the first run ended before the second was refused: slow it down more"
        assert second.returncode == 2, second.stderr
        assert "in use by another nasopt process" in second.stderr and "Traceback" not in second.stderr
        assert _hydra_files(d) == hydra_files
        assert not (d / "error.txt").exists()
        # an error.txt left by an earlier refused process is stale once the run ends well
        (d / "error.txt").write_text("stale\n")
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert not (d / "error.txt").exists()
    run = read_run(d)
    assert run.finished and run.n_evals == 60 and run.seed == 0


# --------------------------------------------------------------------------------------------------
# item 3: truncated checkpoint files; a corrupt trials.parquet read by the report
# --------------------------------------------------------------------------------------------------
def _truncate(p: Path) -> None:
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size // 2)


def _half_run(d: Path) -> None:
    r = Runner(
        "acc_zcu102_latency",
        "re",
        SyntheticBenchmark(),
        40,
        d,
        seed=3,
        checkpoint_every=0,
        progress=False,
        on_batch=lambda rr: rr.request_stop() if rr.n_evals >= 20 else None,
    )
    assert not r.run().finished


@pytest.mark.parametrize("name", ["arrays.npz", "trials_checkpoint.parquet", "state.json"])
def test_truncated_checkpoint_file_is_named_or_falls_back_to_old(tmp_path: Path, name: str) -> None:
    d = tmp_path / "run"
    _half_run(d)
    shutil.copytree(d / "checkpoint", d / "checkpoint.old", copy_function=shutil.copy)
    # the old copy is older: one more batch after it
    _truncate(d / "checkpoint" / name)
    run = _search(d)  # falls back to checkpoint.old/ and ends like an uninterrupted run
    pd.testing.assert_frame_equal(run.comparable_trials(), _search(None).comparable_trials())

    d2 = tmp_path / "run2"
    _half_run(d2)
    _truncate(d2 / "checkpoint" / name)
    with pytest.raises(CheckpointError) as err:
        _search(d2)
    msg = str(err.value)
    assert "\n" not in msg and f"checkpoint/{name}" in msg and "truncated or corrupt" in msg


def test_corrupt_trials_parquet_is_named_by_read_run(tmp_path: Path) -> None:
    d = tmp_path / "run"
    _search(d)
    (d / "trials.parquet").unlink()  # (a hard link to the checkpoint's copy: break it first)
    shutil.copy(d / "checkpoint" / "trials_checkpoint.parquet", d / "trials.parquet")
    _truncate(d / "trials.parquet")
    with pytest.raises(RunFormatError, match=r"trials\.parquet: not a readable parquet table"):
        read_run(d)


# --------------------------------------------------------------------------------------------------
# item 4 (issue item 6, run-directory parts): read-only run directory, a failed checkpoint write
# --------------------------------------------------------------------------------------------------
def test_read_only_run_directory_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    # (the tests run as root, for whom chmod does not make a directory read-only: access(2) is what says so)
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    assert main(_cli(ro / "run")) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "hydra.run.dir" in lines[0], err
    assert "Unable to configure handler" not in err and not (ro / "run").exists()


def test_failed_checkpoint_write_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import nasopt.checkpoint as ck
    from nasopt.rundir import RunDirWriteError

    d = tmp_path / "run"
    full = {"on": False}
    real_fsync = ck.fsync_file

    def fsync_or_full(path: Path, fsync: bool | None = None) -> None:
        if full["on"] and path.name == "trials_checkpoint.parquet":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_fsync(path, fsync)

    monkeypatch.setattr(ck, "fsync_file", fsync_or_full)

    def fill_disk(r: Runner) -> None:
        if r.n_evals >= 20:
            full["on"] = True

    runner = Runner(
        "acc_zcu102_latency", "re", SyntheticBenchmark(), 40, d, seed=3, checkpoint_every=0, progress=False
    )
    runner.on_batch = fill_disk
    with pytest.raises(RunDirWriteError) as err:
        runner.run()
    msg = str(err.value)
    assert "\n" not in msg and "No space left on device" in msg and "resume" in msg
    assert not (d / "checkpoint.tmp").exists()
    assert not list(d.glob(".*.tmp-*"))
    full["on"] = False  # space freed: the run resumes from its last complete checkpoint
    pd.testing.assert_frame_equal(_search(d).comparable_trials(), _search(None).comparable_trials())


def test_deleted_config_comes_back_and_a_complete_tmp_checkpoint_is_kept(tmp_path: Path) -> None:
    reference = _search(None).comparable_trials()
    d = tmp_path / "run"
    _half_run(d)
    (d / "config.yaml").unlink()  # the checkpoint is complete: resumed, and config.yaml is written again
    pd.testing.assert_frame_equal(_search(d).comparable_trials(), reference)
    assert read_run(d).config["optimizer"]["name"] == "re"

    d2 = tmp_path / "run2"
    _half_run(d2)
    # killed just before the swap of a checkpoint whose predecessor is gone: only checkpoint.tmp/ is complete
    (d2 / "checkpoint").rename(d2 / "checkpoint.tmp")
    pd.testing.assert_frame_equal(_search(d2).comparable_trials(), reference)
    assert not (d2 / "checkpoint.tmp").exists() and (d2 / "checkpoint" / "state.json").is_file()


def test_from_trials_continues_with_a_fresh_optimizer(tmp_path: Path) -> None:
    d = tmp_path / "run"
    first = _search(d, budget=30)
    shutil.rmtree(d / "checkpoint")
    with pytest.raises(RunDirError, match="from_trials=True"):
        _search(d, budget=50)
    run = _search(d, budget=50, from_trials=True)
    assert run.finished and run.n_evals == 50
    table = read_run(d).comparable_trials()
    pd.testing.assert_frame_equal(table.iloc[:30].reset_index(drop=True), first.comparable_trials())
    assert table["eval_index"].tolist() == list(range(50))
    assert table["sim_time_s"].is_monotonic_increasing
    assert run.summary["n_evals"] == 50 and (d / "checkpoint" / "state.json").is_file()
    # from then on it resumes exactly like any run: started again, it only reports
    assert _search(d, budget=50).n_evals == 50
    with pytest.raises(RunDirError, match="problem 'acc_zcu102_latency'"):
        shutil.rmtree(d / "checkpoint")
        nasopt.search("acc_a100", "re", 60, run_dir=d, bench=SyntheticBenchmark(), from_trials=True)


def test_refusal_for_another_optimizer_shows_each_side_with_its_own_defaults(tmp_path: Path) -> None:
    d = tmp_path / "run"
    nasopt.search("acc_a100", "nsga2", budget=20, seed=0, run_dir=d, bench=SyntheticBenchmark())
    with pytest.raises(RunDirError) as info:
        nasopt.search("acc_a100", "rs", budget=20, seed=0, run_dir=d, bench=SyntheticBenchmark())
    saved, now = str(info.value).split(" vs now ", 1)
    assert "population_size" in saved and "max_resample" not in saved  # not rs's defaults
    assert "max_resample" in now and "population_size" not in now


def test_a_half_written_first_checkpoint_tmp_is_no_checkpoint(tmp_path: Path) -> None:
    """A kill while the very first checkpoint was written leaves only ``checkpoint.tmp/`` with a truncated
    ``state.json`` (older versions wrote it in place): that is no checkpoint, not an unreadable run."""
    from nasopt.checkpoint import load_checkpoint, save_checkpoint

    ck = tmp_path / "checkpoint"
    save_checkpoint(ck, {"x": np.arange(3), "n": 1})
    os.replace(ck, tmp_path / "checkpoint.tmp")
    _truncate(tmp_path / "checkpoint.tmp" / "state.json")
    assert load_checkpoint(ck) is None
    save_checkpoint(ck, {"x": np.arange(4), "n": 2})  # the next save replaces it
    state, _ = load_checkpoint(ck) or ({}, None)
    assert state["n"] == 2 and not (tmp_path / "checkpoint.tmp").exists()
    assert not list(ck.glob("*.tmp-*")) and not list(ck.glob(".*"))  # state.json was written atomically
