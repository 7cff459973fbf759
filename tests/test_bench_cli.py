"""``nasopt bench`` as a user runs it: query, evaluate, fit, info, and bad input of every kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark import space
from benchmark.cli import main
from tests.test_surrogate import FAST, synthetic_records


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    recs = synthetic_records(700, seed=1)
    names = sorted(recs)
    train, test = root / "train", root / "test"
    for d, part in ((train, names[:600]), (test, names[600:])):
        (d / "anb_dataset_jsons").mkdir(parents=True)
        for n in part:
            (d / "anb_dataset_jsons" / n).write_text(json.dumps(recs[n]))
    # 20 architectures trained twice, 0.2 points apart (the data has such repeats; they measure noise)
    for i, n in enumerate(names[:20]):
        again = json.loads(json.dumps(recs[n]))
        again["metrics"]["val_top1"] += 0.2 if i % 2 else -0.2
        (train / "anb_dataset_jsons" / f"result_{1000 + i}.json").write_text(json.dumps(again))
    return {"train": train, "test": test, "cache": root / "cache"}


def _args(dirs: dict[str, Path]) -> list[str]:
    return ["--dataset", str(dirs["train"]), "--cache-dir", str(dirs["cache"]), "--members", "3"]


@pytest.fixture(autouse=True)
def _fast_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep CLI fits small: patch the loader's defaults (rounds, targets) without changing behaviour."""
    import benchmark.oracle as oracle

    real = oracle.load_benchmark

    def fast(*a: object, **k: object) -> object:
        k.setdefault("max_rounds", FAST["max_rounds"])
        k.setdefault("early_stopping_rounds", FAST["early_stopping_rounds"])
        k.setdefault("accuracy_params", FAST["accuracy_params"])
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(oracle, "load_benchmark", fast)


def test_query_efficientnet_b0_json(dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", *_args(dirs), "--targets", "accuracy", "throughput_a100", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["arch"] == space.to_string(space.reference("efficientnet_b0"))
    assert rows[0]["macs_m"] == pytest.approx(415.145024)
    assert rows[0]["params_m"] == pytest.approx(5.288548)
    assert set(rows[0]) >= {"accuracy", "throughput_a100"}
    assert rows[0]["accuracy"]["std"] >= 0


def test_query_archs_file(dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = space.sample(3, np.random.default_rng(0))
    f = tmp_path / "archs.json"
    f.write_text(json.dumps(space.to_dicts(X)))
    assert main(["query", *_args(dirs), "--archs", str(f), "--targets", "accuracy"]) == 0
    out = capsys.readouterr().out
    for s in space.to_strings(X):
        assert s in out


def test_evaluate_against_measured_results(dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", *_args(dirs), "--test", str(dirs["test"]), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["accuracy"]) == {"r2", "kendall_tau", "spearman", "mae", "rmse", "n"}
    assert result["accuracy"]["n"] == 100
    assert result["accuracy"]["kendall_tau"] > 0.5
    assert result["throughput_a100"]["r2"] > 0.9


def test_evaluate_never_trains_on_the_test_architectures(
    dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the test set: the 20 re-measurements (result_1000+) of training records; the first measurement of each
    # architecture, under another record name, must leave the training data too
    test = tmp_path / "overlap" / "anb_dataset_jsons"
    test.mkdir(parents=True)
    for i in range(20):
        name = f"result_{1000 + i}.json"
        (test / name).write_text((dirs["train"] / "anb_dataset_jsons" / name).read_text())
    assert main(["evaluate", *_args(dirs), "--test", str(test.parent), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accuracy"]["n"] == 20
    assert "left 40 training records (20 architectures) of the test set out of training" in captured.err
    assert "trained on 580 records" in captured.err  # 620 - 40
    # the disjoint test set trains on everything, and says so
    assert main(["evaluate", *_args(dirs), "--test", str(dirs["test"])]) == 0
    assert "no test architecture is in the training data; trained on 620 records" in capsys.readouterr().out
    # nothing left to train on: a one-line error
    code = main(["evaluate", *_args(dirs), "--train", str(test.parent), "--test", str(test.parent)])
    assert code == 2
    assert "nothing is left to train on" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "--arch", "e1k3l1+ e6k3l2+"], "expected 7 blocks"),
        (["query", "--arch", "e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k7l1+"], "block 6 field 'k'"),
        (["query", "--targets", "throughput_h100"], "unknown benchmark target"),
        (["evaluate", "--test", "/nonexistent/measured.tar.gz"], "measured"),
    ],
)
def test_bad_input_gets_a_clear_error(
    dirs: dict[str, Path], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([argv[0], *_args(dirs), *argv[1:]])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err or "nonexistent" in err


def test_bad_archs_file(dirs: dict[str, Path], tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read --archs"):
        main(["query", *_args(dirs), "--archs", str(f)])


def test_info(dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", *_args(dirs)]) == 0
    out = capsys.readouterr().out
    assert "104,485,552,128" in out
    assert "620 records" in out
    lines = out.splitlines()
    noise = next(line for line in lines if line.strip().startswith("accuracy") and "repeated" in line)
    assert "20 repeated" in noise and "0.141 points (rms)" in noise  # 0.2 apart: sigma = 0.2 / sqrt(2)


def test_fit_table_reads_quality_against_the_noise_cap(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *_args(dirs), "--json"]) == 0
    noise = json.loads(capsys.readouterr().out)["noise"]
    assert noise["accuracy"]["n_groups"] == 20
    assert noise["accuracy"]["sigma_rms"] == pytest.approx(0.2 / np.sqrt(2))
    assert 0.9 < noise["accuracy"]["cap_kendall_tau"] < 1.0
    assert np.isnan(noise["throughput_a100"]["cap_kendall_tau"]) or noise["throughput_a100"]["sigma_rms"] == 0
    assert main(["fit", *_args(dirs)]) == 0
    out = capsys.readouterr().out
    assert "tau cap" in out and "20 architectures measured twice or more" in out


def test_every_benchmark_error_is_a_nasopt_error_and_keeps_its_builtin_base() -> None:
    from benchmark.dataset import DatasetError
    from benchmark.errors import NasoptError
    from benchmark.sources import ChecksumMismatchError, DatasetNotFoundError, DataSourceError, DownloadError
    from benchmark.surrogate import SurrogateConfigError
    from benchmark.targets import UnknownTargetError

    for cls, builtin in (
        (SurrogateConfigError, ValueError),
        (DatasetError, ValueError),
        (UnknownTargetError, KeyError),
        (DatasetNotFoundError, FileNotFoundError),
        (DataSourceError, Exception),
        (DownloadError, Exception),
        (ChecksumMismatchError, Exception),
    ):
        assert issubclass(cls, NasoptError) and issubclass(cls, builtin), cls


def test_cache_list_and_prune_of_the_fitted_cache(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", *_args(dirs), "--json"]) == 0
    key = Path(json.loads(capsys.readouterr().out)["cache"]).name
    assert main(["cache", "list", "--cache-dir", str(dirs["cache"])]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(key))
    assert str(dirs["train"]) in line and " all " in line and ("MB" in line or "kB" in line)
    assert main(["cache", "prune", "--cache-dir", str(dirs["cache"]), "--all"]) == 0  # a dry run
    out = capsys.readouterr().out
    assert "would remove" in out and key in out and "--yes" in out
    assert (dirs["cache"] / key).is_dir()


def test_cache_commands_on_an_empty_cache_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cache", "list", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "0 cached surrogate(s)" in capsys.readouterr().out
    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "none"), "--all", "--yes"]) == 0
    assert "removed 0 entries and 0 temporary folder(s)" in capsys.readouterr().out
    for bad in (["prune", "--keep", "x"], ["prune", "--older-than", "soon"], ["nope"], []):
        with pytest.raises(SystemExit) as exc:
            main(["cache", *bad])
        assert exc.value.code == 2
