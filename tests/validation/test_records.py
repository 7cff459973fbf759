"""Measurements become Accel-NASBench records that the benchmark's loader and ``nasopt bench evaluate`` read;
``nasopt model`` / ``nasopt measure`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmark import space
from benchmark.cli import main as bench_main
from benchmark.dataset import read_records
from experiments.cli import main as nasopt_main
from nasopt.validation.measure import Measurement, Protocol
from nasopt.validation.records import (
    RecordError,
    read_measurements_json,
    read_provenance,
    record_for,
    write_measurements,
    write_record,
)
from tests.test_bench_cli import _args, _fast_fits, dirs  # noqa: F401  (fixtures)

SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"


def _measurement(arch: str, device: str, metric: str, mean: float, std: float = 1.0) -> Measurement:
    protocol = Protocol("fake", metric, 1, 224, "fp32", 0, 3, 1)
    return Measurement(
        arch,
        device,
        metric,
        "img/s" if metric == "throughput" else "ms",
        mean,
        std,
        mean,
        std,
        3,
        0,
        (mean - 1, mean, mean + 1),
        protocol,
        {"device": "fake"},
    )


def test_records_round_trip_through_the_loader(tmp_path: Path) -> None:
    X = space.sample(4, np.random.default_rng(0))
    archs = space.to_strings(X)
    ms = [_measurement(a, "a100", "throughput", 1000.0 + i) for i, a in enumerate(archs)]
    ms += [_measurement(archs[0], "zcu102", "latency", 3.5, 0.1)]
    paths = write_measurements(tmp_path, ms)
    assert [p.name for p in paths] == [f"result_{i}.json" for i in range(4)]
    ds = read_records(tmp_path)
    order = {n: i for i, n in enumerate(ds.names)}
    for i, a in enumerate(archs):
        row = order[f"result_{i}"]
        assert space.to_string(ds.X[row]) == a
        assert ds.labels["throughput_a100"][row] == 1000.0 + i
        assert np.isnan(ds.labels["accuracy"][row])  # measured, not trained
    assert ds.labels["latency_zcu102"][order["result_0"]] == 3.5
    back = read_provenance(paths[0])
    assert back == [ms[0], ms[4]]
    # appending never replaces: a second write gets the next numbers
    more = write_measurements(tmp_path, ms[:1])
    assert more[0].name == "result_4" + ".json" and len(read_records(tmp_path).names) == 5


def test_record_fields_and_bad_input() -> None:
    rec = record_for(
        "efficientnet_b0" and space.reference("efficientnet_b0"),
        metrics={"val_top1": 71.2, "val_top5": None, "train_time": 100.0},
    )
    assert rec["model_info"] == {"macs": 415.145024, "params": 5.288548}
    assert rec["metrics"] == {"val_top1": 71.2, "val_top5": None, "train_time": 100.0}
    assert rec["platform_perf"] == {} and rec["architecture"]["block5_l"] == 4
    with pytest.raises(RecordError, match="given for the record of"):
        record_for(
            SMALL,
            [_measurement(space.to_string(space.reference("efficientnet_b0")), "a100", "throughput", 1.0)],
        )
    with pytest.raises(RecordError, match="two measurements of throughput_a100"):
        record_for(SMALL, [_measurement(SMALL, "a100", "throughput", 1.0)] * 2)
    with pytest.raises(RecordError, match="unknown record metrics"):
        record_for(SMALL, metrics={"top1": 1.0})


def test_measured_records_feed_bench_evaluate(
    dirs: dict[str, Path],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Records written by the validation stage are what ``nasopt bench evaluate --test`` scores against."""
    truth = read_records(dirs["test"])
    ms = [
        _measurement(space.to_string(x), "a100", "throughput", float(y))
        for x, y in zip(truth.X[:40], truth.labels["throughput_a100"][:40], strict=True)
    ]
    out = tmp_path / "measured"
    write_measurements(out, ms)
    assert bench_main(["evaluate", *_args(dirs), "--test", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["throughput_a100"]["n"] == 40 and result["throughput_a100"]["kendall_tau"] > 0.5
    assert "accuracy" not in result or result["accuracy"]["n"] == 0


def test_measure_cli_writes_records_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# two architectures\n{SMALL}\nefficientnet_b0\n")
    out = tmp_path / "records"
    code = nasopt_main(
        [
            "measure",
            "--archs",
            str(archs),
            "--backend",
            "cpu",
            "--threads",
            "1",
            "--resolution",
            "32",
            "--repeats",
            "3",
            "--warmup",
            "1",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    cap = capsys.readouterr()
    ms = [Measurement.from_dict(d) for d in json.loads(cap.out)]
    assert [m.arch for m in ms] == [SMALL, space.to_string(space.reference("efficientnet_b0"))]
    assert "[2/2]" in cap.err and "wrote 2 record(s)" in cap.err
    ds = read_records(out)
    assert len(ds.names) == 2
    results = tmp_path / "board.json"
    results.write_text(json.dumps({"measurements": [m.to_dict() for m in ms]}))
    assert read_measurements_json(results) == ms
    assert nasopt_main(["measure", "import", str(results), "--out", str(out)]) == 0
    assert len(read_records(out).names) == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["measure", "--arch", "", "--backend", "cpu"], "--arch is empty"),
        (["measure", "--arch", SMALL, "--backend", "npu"], "unknown measurement backend 'npu'"),
        (["measure", "--arch", SMALL, "--backend", "cuda"], "backend 'cuda' is not available here"),
        (["measure", "--arch", SMALL, "--batch", "0"], "batch must be an integer >= 1"),
        (["measure", "--archs", "/nonexistent.txt"], "cannot read it"),
        (["measure", "import", "/nonexistent.json", "--out", "x"], "no such results file"),
        (["model", "export", "--arch", "e1k3l1 e1k3l1", "--out", "x.onnx"], "expected 7 blocks"),
        (["model", "info", "--arch", "e9k3l1+ " * 7], "allowed values"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert nasopt_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_model_export_refuses_to_replace_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert nasopt_main(["model", "export", "--arch", SMALL, "--out", str(out), "--resolution", "32"]) == 0
    assert out.stat().st_size > 0
    assert nasopt_main(["model", "export", "--arch", SMALL, "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert nasopt_main(["model", "info", "--arch", "efficientnet_b0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == info["params_analytic"] == 5_288_548 and info["layers"] == 16


def test_write_record_with_trained_metrics(tmp_path: Path) -> None:
    p = write_record(tmp_path, SMALL, metrics={"val_top1": 12.5, "val_top5": 40.0, "train_time": 3.0})
    ds = read_records(tmp_path)
    assert (
        p.name == "result_0.json" and ds.labels["accuracy"][0] == 12.5 and ds.labels["train_time"][0] == 3.0
    )


def test_bench_fit_extra_records_adds_training_rows_and_shows_both_fits(
    dirs: dict[str, Path],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Measured records fed back: ``nasopt bench fit --extra`` trains on them too and prints both fits, scored
    on the same held-out rows (records of scored architectures are left out of the extra ones)."""
    extra = tmp_path / "extra"
    truth = read_records(dirs["test"])
    ms = [
        _measurement(space.to_string(x), "a100", "throughput", float(y))
        for x, y in zip(truth.X[:30], truth.labels["throughput_a100"][:30], strict=True)
    ]
    write_measurements(extra, ms)
    code = bench_main(["fit", *_args(dirs), "--split", "random", "--extra", str(extra), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["extra"]["n_records"] == 30 and out["extra"]["n_left_out_scored"] == 0
    assert set(out["with_extra"]) == set(out["without"])
    assert out["with_extra"]["throughput_a100"]["n"] == out["without"]["throughput_a100"]["n"]  # same rows
    assert bench_main(["fit", *_args(dirs), "--split", "random", "--extra", str(tmp_path / "none")]) == 2


def test_fpga_bundle_cli_and_bad_board(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert (
        nasopt_main(
            [
                "measure",
                "bundle",
                "--arch",
                SMALL,
                "--board",
                "vck190",
                "--out",
                str(out),
                "--resolution",
                "64",
            ]
        )
        == 0
    )
    assert (out / "manifest.json").exists() and (out / "run_board.py").exists()
    assert "vck190 bundle" in capsys.readouterr().out
    assert (
        nasopt_main(["measure", "bundle", "--arch", SMALL, "--board", "kv260", "--out", str(tmp_path / "b2")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "kv260" in err and len(err.splitlines()) == 1
