"""``nasopt search`` reports data and I/O errors in one line with exit status 2 and leaves no temporary files
(issue 10, item 6), and a single run says where it runs and how it started (item 10)."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import experiments.run_spec as run_spec_module
from benchmark import space
from benchmark.oracle import load_benchmark
from benchmark.surrogate import SurrogateModel
from benchmark.synthetic import SyntheticBenchmark
from experiments.search_app import main
from nasopt.rundir import read_run
from nasopt.runner import Runner, search
from tests.test_surrogate import FAST, synthetic_records

PREFIX = "nasopt search: error:"


def _error_line(err: str) -> str:
    """The one line of ``err`` (stderr), which must be a nasopt error line."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(PREFIX)]
    assert len(errors) == 1 and "Traceback" not in err and "HYDRA_FULL_ERROR" not in err, err
    return errors[0]


def _leftovers(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if ".tmp-" in p.name or p.name == "checkpoint.tmp"] if d.exists() else []


# --------------------------------------------------------------------------------------------------
# data errors: missing data, no network, a bad record, a truncated archive
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``$NASOPT_DATASET``, an empty cache (also for the surrogates); returns the cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.delenv("NASOPT_DATASET", raising=False)
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(cache))
    return cache


def _search_surrogate(tmp_path: Path, *extra: str) -> int:
    return main(["budget.max_evals=10", "print_summary=false", f"hydra.run.dir={tmp_path / 'run'}", *extra])


def test_missing_data_is_one_line(
    tmp_path: Path, no_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NASOPT_DATASET", str(tmp_path / "nowhere"))
    assert _search_surrogate(tmp_path) == 2
    line = _error_line(capsys.readouterr().err)
    assert "NASOPT_DATASET" in line and "nowhere' does not exist" in line and "point it at" in line
    assert _search_surrogate(tmp_path, f"benchmark.params.dataset={tmp_path / 'gone'}") == 2
    assert "gone' does not exist" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # checked before anything runs: no run directory
    # a sweep too: one line and exit 2 before any job, not one failed job per run
    assert main(["-m", "seed=0,1", "budget.max_evals=10", f"hydra.sweep.dir={tmp_path / 'sweep'}"]) == 2
    assert "nowhere' does not exist" in _error_line(capsys.readouterr().err)
    assert not (tmp_path / "sweep").exists()


def test_no_network_is_one_line(
    tmp_path: Path, no_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    assert _search_surrogate(tmp_path) == 2
    line = _error_line(capsys.readouterr().err)
    assert "download failed" in line and "Network is unreachable" in line
    assert "NASOPT_DATASET=" in line and "benchmark.params.dataset=PATH" in line
    assert not list(no_data.rglob("*.part"))  # no partial download left


def test_bad_record_is_one_line_naming_it(
    tmp_path: Path, no_data: Path, anb_kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    records = anb_kit.records(range(3))
    records["result_1.json"] = b'{"architecture": {'
    archive = anb_kit.write_tar(tmp_path / "bad.tar.gz", records)
    assert _search_surrogate(tmp_path, f"benchmark.params.dataset={archive}") == 2
    line = _error_line(capsys.readouterr().err)
    assert "result_1.json: invalid JSON" in line and "fix or remove the record" in line


@pytest.mark.parametrize("cut", ["half", "empty", "inner"])
def test_truncated_archive_is_one_line_with_the_fix(
    tmp_path: Path, no_data: Path, anb_kit: Any, capsys: pytest.CaptureFixture[str], cut: str
) -> None:
    import gzip

    good = anb_kit.write_tar(tmp_path / "good.tar.gz", anb_kit.records(range(20))).read_bytes()
    data = {
        "half": good[: len(good) // 2],
        "empty": b"",
        "inner": gzip.compress(gzip.decompress(good)[:1500]),  # a whole gzip stream of half a tar
    }[cut]
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(data)
    assert _search_surrogate(tmp_path, f"benchmark.params.dataset={archive}") == 2
    line = _error_line(capsys.readouterr().err)
    # the whole message on the line, the fix included (tarfile's own message spans several lines)
    assert f"{archive}: cannot read the archive" in line and "truncated, corrupt" in line
    assert "point NASOPT_DATASET at a good copy" in line
    if cut == "empty":
        assert "the file is empty, 0 bytes" in line


# --------------------------------------------------------------------------------------------------
# a full disk: one line, no temporary files left, the run resumes once there is space
# --------------------------------------------------------------------------------------------------
def _cli(d: Path, *extra: str) -> list[str]:
    return [
        "benchmark=synthetic",
        "optimizer=re",
        "budget=smoke",
        "checkpoint.every_evals=10",
        "print_summary=false",
        f"hydra.run.dir={d}",
        *extra,
    ]


def _enospc(path: object) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_full_disk_before_the_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = pathlib.Path.write_bytes

    def half_then_full(self: Path, data: Any) -> int:
        real(self, bytes(data)[: len(data) // 2])
        raise _enospc(self)

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_full)  # every atomic write (.hydra/ first)
    d = tmp_path / "run"
    assert main(_cli(d)) == 2
    line = _error_line(capsys.readouterr().err)
    assert "cannot write to run directory" in line and "No space left on device" in line
    assert line.count("No space left") == 1  # the OS error is not repeated as the cause
    assert not _leftovers(d)


@pytest.mark.parametrize("where", ["table", "arrays", "publish"])
def test_full_disk_during_the_run_is_one_line_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    import shutil

    calls = {"n": 0}

    def disk_full_from_the_third(target: Any) -> None:
        """Two writes go through (two checkpoints), the third writes a few bytes and fails."""
        calls["n"] += 1
        if calls["n"] >= 3:
            if hasattr(target, "write"):  # an open file (np.savez)
                target.write(b"partial")
                raise _enospc(target.name)
            Path(target).write_bytes(b"partial")
            raise _enospc(target)

    if where == "table":  # the checkpoint's trial table
        real_parquet = pd.DataFrame.to_parquet

        def to_parquet(self: pd.DataFrame, path: Any, *a: Any, **k: Any) -> Any:
            disk_full_from_the_third(path)
            return real_parquet(self, path, *a, **k)

        monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    elif where == "arrays":  # the checkpoint's arrays.npz
        real_savez = np.savez

        def savez(fh: Any, **arrays: Any) -> None:
            disk_full_from_the_third(fh)
            real_savez(fh, **arrays)

        monkeypatch.setattr(np, "savez", savez)
    else:  # no hard links: trials.parquet is published as a copy, and the copy runs out of space
        real_copy = shutil.copyfile

        def no_link(*a: Any, **k: Any) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        def copyfile(src: Any, dst: Any, **k: Any) -> Any:
            disk_full_from_the_third(dst)
            return real_copy(src, dst, **k)

        monkeypatch.setattr(os, "link", no_link)
        monkeypatch.setattr(shutil, "copyfile", copyfile)
    d = tmp_path / "run"
    assert main(_cli(d)) == 2
    line = _error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "run again to resume" in line
    assert not _leftovers(d)
    monkeypatch.undo()  # space freed: the same command resumes and ends like an uninterrupted run
    assert main(_cli(d)) == 0
    assert "resumed from evaluation" in capsys.readouterr().out
    reference = search("acc_a100", "re", budget=60, seed=0, bench=SyntheticBenchmark())
    pd.testing.assert_frame_equal(read_run(d).comparable_trials(), reference.comparable_trials())
    assert not _leftovers(d)


# --------------------------------------------------------------------------------------------------
# item 10: a single run names its directory at the start and the end, and says where it resumed
# --------------------------------------------------------------------------------------------------
class _StopAt20(Runner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["on_batch"] = lambda r: r.request_stop() if r.n_evals >= 20 else None
        super().__init__(*args, **kwargs)


def test_single_run_names_its_directory_and_where_it_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "run"
    assert main(_cli(d)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"nasopt search: run directory {d}: new run"
    assert lines[-1] == f"nasopt search: done; results in {d}"
    assert main(_cli(d)) == 0  # finished: only reported
    assert f"run directory {d}: finished earlier (60 evaluations); reporting it" in capsys.readouterr().out

    d2 = tmp_path / "run2"
    monkeypatch.setattr(run_spec_module, "Runner", _StopAt20)
    assert main(_cli(d2)) == 130
    assert f"hydra.run.dir={d2}" in capsys.readouterr().err  # the stop names the directory to resume
    monkeypatch.undo()
    assert main(_cli(d2)) == 0
    out = capsys.readouterr().out
    assert f"nasopt search: run directory {d2}: resumed from evaluation 20 of 60" in out
    assert read_run(d2).n_evals == 60


def test_sim_time_budget_resume_says_the_simulated_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "run"
    args = _cli(d, "budget.max_evals=null", "budget.max_sim_time_s=1.5e5")
    monkeypatch.setattr(run_spec_module, "Runner", _StopAt20)
    assert main(args) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(args) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "resumed" in ln)
    assert "resumed from evaluation 20 (simulated time " in line and " of 150,000 s)" in line


def test_no_empty_search_log(tmp_path: Path) -> None:
    d = tmp_path / "run"
    assert main(_cli(d)) == 0
    assert not (d / "search.log").exists()  # nasopt logs nothing through Python logging: no empty file


def test_full_disk_while_caching_the_surrogate_keeps_the_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data" / "anb_dataset_jsons"
    data.mkdir(parents=True)
    for name, rec in synthetic_records(200, seed=1).items():
        (data / name).write_text(json.dumps(rec))
    real_save = SurrogateModel.save

    def save_then_full(self: SurrogateModel, directory: Path) -> None:
        real_save(self, directory)
        raise _enospc(directory / "tables.npz")

    monkeypatch.setattr(SurrogateModel, "save", save_then_full)
    cache = tmp_path / "cache"
    cfg: dict[str, Any] = {**FAST, "n_members": 2, "targets": ("accuracy", "throughput_a100")}
    bench = load_benchmark(data.parent, cache_dir=cache, **cfg)
    err = capsys.readouterr().err
    assert "could not cache the fitted surrogate" in err and "No space left on device" in err
    assert bench.cache_path is None and list(cache.iterdir()) == []  # no temporary entry left
    pred = bench.query(space.sample(5, np.random.default_rng(0)), ["accuracy"])["accuracy"]
    assert pred.mean.shape == (5,) and np.isfinite(pred.mean).all()
