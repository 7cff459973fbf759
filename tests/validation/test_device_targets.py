"""A user device's target where a built-in one works: runs and reference fronts identified by its surrogate
(``nasopt fronts --objectives``), ``nasopt report`` with HV ratio against that front, and ``nasopt bench
query`` extrapolation flags from the device's measured range. A synthetic device keeps it fast."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import devices as store
from benchmark import space
from benchmark.synthetic import SyntheticBenchmark
from nasopt import fronts
from nasopt.validation import devices as dv


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private user cache (devices and fronts live in it); user targets of other tests are forgotten."""
    d = tmp_path / "cache"
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(d))
    yield d
    from benchmark.targets import USER_TARGETS

    USER_TARGETS.clear()


def _add(name: str, budget: int = 12) -> dv.AddResult:
    return dv.add_device(name, "synthetic", budget=budget, verbose=False)


def _fronts_args(cache: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "--benchmark",
        "synthetic",
        "--problems",
        "acc_fdev",
        "--objectives",
        "accuracy,latency_fdev",
        "--cache-dir",
        str(cache),
        "--n-random",
        "300",
        "--max-evals",
        "3000",
        "--optimizers",
        "",
        "--runs",
        str(runs),
        *extra,
    ]


def test_built_in_digests_and_front_paths_are_unchanged(cache: Path) -> None:
    _add("other")
    assert store.qualified_digest("anb-abc", ["accuracy", "throughput_a100"]) == "anb-abc"
    q = store.qualified_digest("anb-abc", ["accuracy", "latency_other"])
    assert q == f"anb-abc+latency_other@{store.surrogate_stamp('latency_other')}"
    assert fronts.front_path("p", "anb-abc", cache).name == "p__anb-abc.json"
    long = fronts.front_path("p", q, cache).name
    assert len(long) <= 48 and long != fronts.front_path("p", q + "x", cache).name


def test_front_and_report_of_a_problem_with_a_user_target(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasopt.fronts_cli import main as fronts_main
    from nasopt.problems import make_problem
    from nasopt.report import build_report
    from nasopt.runner import search

    _add("fdev")
    box = store.read_device("fdev").normalization
    problem = make_problem("acc_fdev", ["accuracy", "latency_fdev"])
    runs = tmp_path / "runs"
    for seed in (0, 1):
        search(
            problem,
            "rs",
            budget=40,
            seed=seed,
            run_dir=runs / f"s{seed}",
            bench=SyntheticBenchmark(),
            progress=False,
        )
    summary = json.loads((runs / "s0" / "summary.json").read_text())
    stamp = store.surrogate_stamp("latency_fdev")
    digest = f"synthetic-v1+latency_fdev@{stamp}"
    assert summary["benchmark_digest"] == digest  # the run names the device surrogate it was scored on
    assert "latency_fdev" in summary["extrapolated_evaluations"]  # counted against the device's range
    # the reference front of the custom problem, cached under the same digest, with the device's provenance
    assert fronts_main(_fronts_args(cache, runs)) == 0
    assert "acc_fdev:" in capsys.readouterr().out
    path = fronts.front_path("acc_fdev", digest, cache)
    data = json.loads(path.read_text())
    dev_prov = data["provenance"]["user_devices"]["latency_fdev"]
    assert dev_prov["surrogate"] == stamp and dev_prov["normalization"] == list(box)  # type: ignore[arg-type]
    assert data["provenance"]["seed_sources"] == ["2 existing run(s)"]
    assert "--objectives accuracy,latency_fdev" in data["provenance"]["command"]
    assert fronts_main(_fronts_args(cache, runs)) == 0
    assert "up to date" in capsys.readouterr().out
    # the report finds that front: HV ratio and IGD+ per run, in the device's fixed box
    res = build_report([runs], tmp_path / "report", checkpoints=(20,), reference_fronts=True, cache=cache)
    assert not [n for n in res.notes if "reference front" in n], res.notes
    ratio = res.runs["hv_ratio_end"].to_numpy()
    assert np.all((ratio > 0) & (ratio <= 1 + 1e-9)) and res.runs["igd_plus_end"].notna().all()
    assert (tmp_path / "report" / "figures" / "fronts_acc_fdev.png").is_file()
    md = res.markdown.read_text()
    assert "Reference front" in md and "acc_fdev" in md
    # refitting the device changes its surrogate: a new front digest, so the old front is never reused
    _add("fdev", budget=17)
    assert store.surrogate_stamp("latency_fdev") != stamp
    assert fronts_main(_fronts_args(cache, runs)) == 0
    assert "up to date" not in capsys.readouterr().out
    assert len(list((cache / "fronts").glob("acc_fdev__*.json"))) == 2


def test_fronts_cli_custom_problem_bad_input(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nasopt.fronts_cli import main as fronts_main

    base = ["--benchmark", "synthetic", "--cache-dir", str(cache)]
    assert fronts_main([*base, "--objectives", "accuracy,latency_nodev", "--problems", "x"]) == 2
    assert "latency_nodev" in capsys.readouterr().err
    assert fronts_main([*base, "--objectives", "accuracy,latency_zcu102"]) == 2  # no --problems NAME
    assert "--problems NAME" in capsys.readouterr().err
    assert fronts_main([*base, "--constraint", "latency_zcu102 <= 5", "--problems", "acc"]) == 2
    assert "needs --objectives" in capsys.readouterr().err


def test_bench_query_flags_extrapolation_from_the_device_records(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add("qx")
    from benchmark import cli as bench_cli
    from benchmark.oracle import Benchmark

    def fake_load(args: object, **over: object) -> Benchmark:  # the built-in fit is not the point here
        b = Benchmark.__new__(Benchmark)
        b.model = type("M", (), {"targets": {}, "coverage": None})()
        return b

    dev = store.read_device("qx")
    X, y, _ = store.read_device_records(dev.records_dir, "latency_qx")
    largest = space.to_string((space.CARDINALITIES - 1).astype(np.int64))
    measured = space.to_string(X[0])
    rows: list[dict[str, Any]] = []
    mp = pytest.MonkeyPatch()
    mp.setattr(bench_cli, "_load", fake_load)
    try:
        for arch in (largest, measured):
            capsys.readouterr()
            assert bench_cli.main(["query", "--arch", arch, "--targets", "latency_qx", "--json"]) == 0
            rows.append(json.loads(capsys.readouterr().out)[0]["latency_qx"])
        assert bench_cli.main(["query", "--arch", largest, "--targets", "latency_qx"]) == 0
        text = capsys.readouterr().out
    finally:
        mp.undo()
    big, seen = rows
    assert big["measured_range"] == pytest.approx([y.min(), y.max()])
    assert big["extrapolated"] is True and big["mean"] - big["std"] > y.max()
    assert seen["extrapolated"] is False and seen["distance_to_data"] == 0 and big["distance_to_data"] > 0
    assert "EXTRAPOLATED (measured range" in text and "nearest measured on the device" in text
