"""``nasopt validate``: candidate selection across runs, the resumable job plan (SIGKILL + re-run), the
predicted-vs-measured comparison on known data, records, a submitit launcher, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from benchmark import space
from benchmark.dataset import read_records
from benchmark.synthetic import SyntheticBenchmark
from experiments.cli import main as nasopt_main
from nasopt.rundir import read_run
from nasopt.validation.candidates import (
    CandidateError,
    attach_predictions,
    pooled_front,
    read_search_runs,
    select_candidates,
    spread_subset,
)
from nasopt.validation.compare import Pairing, agreement, compare_fronts, pair_targets
from nasopt.validation.plan import read_plan

FAKE = "tests.validation.fake_backend:ParamsLatencyBackend"
ROOT = Path(__file__).resolve().parents[2]


def _search(run_dir: Path, problem: str, seed: int) -> None:
    """A 60-evaluation random search on the synthetic oracle, through the app (so its config names it)."""
    from experiments.search_app import main as search_main

    args = [
        "benchmark=synthetic",
        "budget=smoke",
        "print_summary=false",
        "optimizer=rs",
        f"problem={problem}",
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
    ]
    assert search_main(args) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1):
        _search(root / f"rs{seed}", "acc_zcu102_latency", seed)
    _search(root / "other" / "a100", "acc_a100", 0)
    return root


def test_candidates_pool_dedupe_thin_and_references(runs: Path) -> None:
    rs = read_search_runs([runs / "rs0", runs / "rs1"])
    G, _, origin = pooled_front(rs)
    assert len(space.unique(G)[0]) == len(G)  # de-duplicated by architecture
    # every pooled point is non-dominated and each run's own front points are either in it or dominated
    per_run = [read_run(runs / f"rs{s}") for s in (0, 1)]
    assert all(set(o) <= {str(r.path) for r in per_run} for o in origin)
    cands = select_candidates(rs, select="pareto", n=4)
    assert [c.reason for c in cands].count("pareto") == min(4, len(G))
    assert cands[-1].reason == "reference:efficientnet_b0"
    knee = select_candidates(rs, select="knee", references=())
    assert len(knee) == 1 and knee[0].reason == "knee"
    top = select_candidates(rs, select="top-k", n=3, references=())
    assert len({c.arch for c in top}) == 3
    preds = attach_predictions(cands, SyntheticBenchmark())
    assert all("latency_zcu102" in c.predicted and c.predicted["accuracy"][1] >= 0 for c in preds)


def test_spread_subset_keeps_extremes_and_spreads() -> None:
    t = np.linspace(0, 1, 101)
    F = np.column_stack([t, 1 - t])
    idx = spread_subset(F, 5)
    assert {0, 100} <= set(idx.tolist())
    assert np.allclose(np.sort(F[idx, 0]), [0, 0.25, 0.5, 0.75, 1.0], atol=0.011)


def test_runs_of_two_problems_and_unknown_reference_are_one_line(runs: Path) -> None:
    with pytest.raises(CandidateError, match="validate one problem at a time"):
        read_search_runs([runs / "rs0", runs / "other"])
    with pytest.raises(Exception, match="unknown reference architecture"):
        select_candidates(read_search_runs([runs / "rs0"]), references=("resnet50",))


def test_agreement_on_known_data() -> None:
    mu = np.linspace(1, 10, 20)
    sd = np.full(20, 0.5)
    z = np.array([0.5, -0.5, 1.5, -2.5] * 5)  # |z| <= 1 for 10 of 20, <= 2 for 15
    y = mu + sd * z
    a = agreement(Pairing("latency_zcu102", "latency_zcu102", True, False), mu, sd, y)
    assert a.n == 20 and a.within_1sd == 0.5 and a.within_2sd == 0.75
    assert a.mae == pytest.approx(np.mean(np.abs(sd * z))) and a.bias == pytest.approx(np.mean(sd * z))
    perfect = agreement(Pairing("latency_cpu", "latency_zcu102", False, False), mu, sd, 3 * mu)
    assert perfect.kendall_tau == pytest.approx(1.0) and np.isnan(perfect.mae)
    assert perfect.best_predicted_measured_rank == 1
    rev = agreement(Pairing("latency_cpu", "latency_zcu102", False, False), mu, sd, -mu)
    assert rev.kendall_tau == pytest.approx(-1.0) and rev.best_predicted_measured_rank == 20


def test_pairing_rules() -> None:
    from nasopt.problems import get_problem

    info = get_problem("acc_zcu102_latency").info
    p = pair_targets(
        ["latency_cpu", "latency_zcu102", "accuracy"],
        ["accuracy", "latency_zcu102"],
        info,
        comparable={"accuracy": False},
    )
    got = {(x.measured, x.predicted, x.absolute) for x in p}
    assert got == {
        ("latency_cpu", "latency_zcu102", False),
        ("latency_zcu102", "latency_zcu102", True),
        ("accuracy", "accuracy", False),
    }
    over = pair_targets(
        ["latency_cpu"], ["latency_vck190", "latency_zcu102"], None, {"latency_cpu": "latency_vck190"}
    )
    assert over[0].predicted == "latency_vck190"
    front = compare_fronts(
        info,
        p,
        {"accuracy": np.array([60.0, 65.0]), "latency_zcu102": np.array([2.0, 5.0])},
        {"accuracy": np.array([50.0, 55.0]), "latency_cpu": np.array([3.0, 9.0])},
    )
    assert front is not None and not front.absolute and front.predicted_front == (0, 1)


def _validate_cmd(runs: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.cli",
        "validate",
        str(runs / "rs0"),
        str(runs / "rs1"),
        "--out",
        str(out),
        "--n",
        "5",
        "--measure",
        FAKE,
        "--measure-opt",
        "sleep_s=0.4",
        "--measure-opt",
        "resolution=32",
        "--no-figures",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_killed_validation_resumes_without_redoing_jobs(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "v"
    proc = subprocess.Popen(
        _validate_cmd(runs, out), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    done: list[Path] = []
    while time.time() < deadline and len(done) < 2:
        done = [p for p in out.glob("jobs/*/status.json") if '"done"' in p.read_text()]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done) >= 2, "the run finished no job before the kill"
    before = {p.parent.name: json.loads(p.read_text()) for p in done}
    plan = read_plan(out)
    assert len(before) < len(plan.jobs), "killed too late: every job had finished"
    r = subprocess.run(_validate_cmd(runs, out), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for job_id, st in before.items():  # finished jobs were not run again
        assert json.loads((out / "jobs" / job_id / "status.json").read_text()) == st
    # the same report as an uninterrupted run
    fresh = tmp_path / "fresh"
    r2 = subprocess.run(_validate_cmd(runs, fresh), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    a = pd.read_csv(out / "report" / "candidates.csv")
    b = pd.read_csv(fresh / "report" / "candidates.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (out / "report" / "report.md").read_text().replace(str(out), "") == (
        fresh / "report" / "report.md"
    ).read_text().replace(str(fresh), "")
    ds = read_records(out / "records")
    assert len(ds.names) == len(plan.candidates)


def test_report_and_records_in_process(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v"
    args = [
        "validate",
        str(runs / "rs0"),
        "--out",
        str(out),
        "--n",
        "4",
        "--measure",
        FAKE,
        "--measure-opt",
        "resolution=32",
        "--compare",
        "latency_fake=latency_zcu102",
    ]
    assert nasopt_main(args) == 0
    report = (out / "report" / "report.md").read_text()
    assert "latency_fake vs latency_zcu102" in report and "ranking only" in report
    assert (out / "report" / "scatter_latency_fake.png").stat().st_size > 0
    agree = pd.read_csv(out / "report" / "agreement.csv")
    # the fake latency is the parameter count; the synthetic oracle's latency grows with size too
    assert agree.loc[0, "n"] == 5 and agree.loc[0, "kendall_tau"] > 0
    # re-running the same command does nothing new and says so
    assert nasopt_main(args) == 0
    assert "5 done, 0 failed, 0 pending" in capsys.readouterr().out
    # another selection in the same directory is refused, results kept
    assert nasopt_main([*args[:-4], "--n", "2", "--measure", FAKE]) == 2
    assert "holds another validation" in capsys.readouterr().err


def test_failed_jobs_are_reported_and_retried_on_request(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v"
    args = [
        "validate",
        str(runs / "rs0"),
        "--out",
        str(out),
        "--n",
        "2",
        "--references",
        "",
        "--measure",
        FAKE,
        "--measure-opt",
        "resolution=32",
        "--measure-opt",
        "sleep_s=-1",
        "--no-figures",
    ]
    assert nasopt_main(args) == 1  # time.sleep(-1) raises: every job fails, the report is still written
    text = capsys.readouterr().out
    assert "0 done, 2 failed" in text and "ValueError" in text and "--retry-failed" in text
    assert (out / "report" / "report.md").exists()


@pytest.mark.parametrize(("launcher", "module"), [("submitit-local", "submitit"), ("ray", "ray")])
def test_jobs_through_an_engine(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], launcher: str, module: str
) -> None:
    """The plan's jobs through nasopt.engines (submitit's local executor: real subprocesses; a local Ray)."""
    pytest.importorskip(module)
    out = tmp_path / "v"
    args = [
        "validate",
        str(runs / "rs0"),
        "--out",
        str(out),
        "--n",
        "2",
        "--references",
        "",
        "--measure",
        FAKE,
        "--measure-opt",
        "resolution=32",
        "--launcher",
        launcher,
        "--no-figures",
    ]
    if launcher == "ray":
        args += ["--launcher-opt", "num_cpus=1"]
    assert nasopt_main(args) == 0, capsys.readouterr().err
    assert "2 done, 0 failed" in capsys.readouterr().out
    states = [json.loads(p.read_text()) for p in out.glob("jobs/*/status.json")]
    assert len(states) == 2 and all(st["pid"] != os.getpid() for st in states)  # ran in other processes


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--measure", "cuda"], "backend 'cuda' is not available here"),
        (["--measure", "npu"], "unknown measurement backend 'npu'"),
        (["--measure", FAKE, "--references", "resnet50"], "unknown reference architecture"),
        (["--measure", FAKE, "--select", "best"], "unknown selection 'best'"),
        ([], "nothing to do"),
    ],
)
def test_bad_input_is_one_line(
    runs: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = nasopt_main(["validate", str(runs / "rs0"), "--out", str(tmp_path / "v"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "v").exists()  # checked before anything is written


def test_run_dir_of_another_problem_is_refused(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = nasopt_main(
        ["validate", str(runs / "rs0"), str(runs / "other"), "--out", str(tmp_path / "v"), "--measure", FAKE]
    )
    assert code == 2 and "validate one problem at a time" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_validate_trains_and_measures_candidates(
    runs: Path, tmp_path: Path, fashion_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Training jobs (the smoke scheme on a real image folder) and measurement jobs in one plan: the trained
    accuracy is compared with the predicted one by ranking only (another dataset than ImageNet)."""
    out = tmp_path / "v"
    args = [
        "validate",
        str(runs / "rs0"),
        "--out",
        str(out),
        "--n",
        "2",
        "--references",
        "",
        "--measure",
        FAKE,
        "--measure-opt",
        "resolution=32",
        "--train",
        "smoke",
        "--train-opt",
        f"data={fashion_folder}",
        "--train-opt",
        "epochs=1",
        "--train-opt",
        "threads=1",
        "--no-figures",
    ]
    assert nasopt_main(args) == 0, capsys.readouterr().err
    assert "4 done, 0 failed" in capsys.readouterr().out
    agree = pd.read_csv(out / "report" / "agreement.csv")
    acc = agree[agree["measured"] == "accuracy"].iloc[0]
    assert acc["predicted"] == "accuracy" and not acc["absolute"] and acc["n"] == 2
    ds = read_records(out / "records")
    assert np.isfinite(ds.labels["accuracy"]).all() and (ds.labels["accuracy"] > 0).all()
