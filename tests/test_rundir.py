"""The run-directory format: column schema, format version, finder and reader."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import nasopt
from benchmark.synthetic import SyntheticBenchmark
from nasopt.problems import get_problem
from nasopt.rundir import (
    FORMAT_VERSION,
    RunFormatError,
    analysis_columns,
    find_runs,
    read_run,
    read_runs,
    trial_columns,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("runs") / "r"
    nasopt.search("acc_constrained_a100", "rs", budget=30, seed=1, bench=SyntheticBenchmark(), run_dir=d)
    return d


def test_trial_table_follows_the_schema(run_dir: Path) -> None:
    p = get_problem("acc_constrained_a100")
    run = read_run(run_dir)
    assert list(run.trials.columns) == trial_columns(p.objectives, p.constraint_targets)
    assert run.summary["format_version"] == FORMAT_VERSION
    assert (run.problem, run.optimizer, run.seed, run.info) == (p.name, "rs", 1, p.info)


def test_read_run_selects_columns_and_finds_runs(run_dir: Path) -> None:
    run = read_run(run_dir, analysis_columns)
    assert list(run.trials.columns) == [c for c in analysis_columns(run.info) if c in run.trials.columns]
    assert "mean_accuracy" in run.trials.columns and "arch" not in run.trials.columns
    assert find_runs(run_dir.parent) == find_runs([run_dir / "trials.parquet"]) == [run_dir.resolve()]
    assert [r.path for r in read_runs(run_dir.parent)] == [run_dir.resolve()]


def test_format_version_missing_is_1_and_unknown_is_refused(run_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    d = tmp_path / "old"
    d.mkdir()
    pd.read_parquet(run_dir / "trials.parquet").to_parquet(d / "trials.parquet")
    (d / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "format_version"}))
    assert read_run(d).n_evals == 30
    (d / "summary.json").write_text(json.dumps({**summary, "format_version": 99}))
    with pytest.raises(RunFormatError, match=r"format version 99.*reads version"):
        read_run(d)


def test_problem_of_a_removed_device_says_what_is_missing() -> None:
    """A run whose custom problem used a device target that is gone: the error names the target and how to
    bring it back, instead of 'neither a named problem nor defined'."""
    from nasopt.rundir import problem_info

    config = {"problem": {"name": "mine", "objectives": ["accuracy", "latency_gone"]}}
    with pytest.raises(LookupError) as info:
        problem_info("mine", None, config)
    msg = str(info.value)
    assert "unknown benchmark target 'latency_gone'" in msg and "nasopt device import" in msg
    assert "\n" not in msg
