"""Surrogate ensembles: exact table compilation, persistence without pickle, cache reuse/invalidation,
determinism, and the query API — on small synthetic data so the suite stays fast."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import space
from benchmark.oracle import Benchmark, load_benchmark
from benchmark.surrogate import (
    AdditiveModel,
    SurrogateConfig,
    SurrogateConfigError,
    SurrogateModel,
    TreesModel,
    fit_surrogate,
    fitted_members,
    model_for,
)
from benchmark.synthetic import SyntheticBenchmark
from benchmark.targets import DEVICES, TARGET_NAMES, UnknownTargetError, get_target

TARGETS = ("accuracy", "throughput_a100", "latency_zcu102", "train_time")
# few, large boosting steps keep the fits fast (the default step of 0.018 needs ~1000 rounds)
FAST = {
    "n_members": 3,
    "max_rounds": 150,
    "early_stopping_rounds": 20,
    "targets": TARGETS,
    "accuracy_params": {"eta": 0.1},
}


def synthetic_records(n: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Upstream-layout records whose labels come from the analytic oracle (plus a little noise)."""
    rng = np.random.default_rng(seed)
    X = space.sample(n, rng)
    truth = SyntheticBenchmark().query(X)
    recs = {}
    for i, arch in enumerate(space.to_dicts(X)):
        perf: dict[str, Any] = {}
        for d in DEVICES:
            perf[f"throughput_{d}"] = {
                "throughput_mean": float(truth[f"throughput_{d}"].mean[i]),
                "throughput_std": None,
            }
        for d in ("zcu102", "vck190"):
            perf[f"latency_{d}"] = {"latency_mean": float(truth[f"latency_{d}"].mean[i]), "latency_std": None}
        recs[f"result_{i}.json"] = {
            "architecture": arch,
            "metrics": {
                "val_top1": float(truth["accuracy"].mean[i] + rng.normal(0, 0.1)),
                "val_top5": 80.0,
                "train_time": float(truth["train_time"].mean[i]),
            },
            "model_info": {"macs": 1.0, "params": 1.0},
            "platform_perf": perf,
        }
    return recs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthdata")
    d = root / "anb_dataset_jsons"
    d.mkdir()
    for name, rec in synthetic_records(600).items():
        (d / name).write_text(json.dumps(rec))
    return root


@pytest.fixture(scope="module")
def bench(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    return load_benchmark(data_dir, cache_dir=tmp_path_factory.mktemp("cache"), verbose=False, **FAST)


def test_compiled_tables_equal_native_xgboost_models(bench: Benchmark) -> None:
    import xgboost as xgb

    assert bench.cache_path is not None
    meta = json.loads((bench.cache_path / "meta.json").read_text())
    X = space.sample(300, np.random.default_rng(5))
    ft = bench.model.targets["accuracy"]
    members = fitted_members(ft, X)
    for m, fn in enumerate(meta["targets"]["accuracy"]["native_models"]):
        booster = xgb.Booster()
        booster.load_model(str(bench.cache_path / fn))
        native = booster.predict(xgb.DMatrix(X.astype(np.float32)))
        np.testing.assert_allclose(members[:, m], native, atol=2e-4)


def test_lightgbm_backend_compiles_exactly(data_dir: Path, tmp_path: Path) -> None:
    import lightgbm as lgb

    b = load_benchmark(
        data_dir, cache_dir=tmp_path, verbose=False, backend="lightgbm", **{**FAST, "targets": ("accuracy",)}
    )
    assert b.cache_path is not None
    meta = json.loads((b.cache_path / "meta.json").read_text())
    X = space.sample(200, np.random.default_rng(6))
    members = fitted_members(b.model.targets["accuracy"], X)
    for m, fn in enumerate(meta["targets"]["accuracy"]["native_models"]):
        native = lgb.Booster(model_file=str(b.cache_path / fn)).predict(X.astype(np.float32))
        np.testing.assert_allclose(members[:, m], native, atol=1e-6)


def test_query_shapes_modes_and_conveniences(bench: Benchmark) -> None:
    X = space.sample(17, np.random.default_rng(1))
    res = bench.query(X, ["accuracy", "throughput_a100"])
    assert set(res) == {"accuracy", "throughput_a100"}
    for p in res.values():
        assert p.mean.shape == p.std.shape == p.value.shape == (17,)
        assert np.all(p.std >= 0)
        np.testing.assert_array_equal(p.value, p.mean)  # deterministic mode observes the mean
    one = bench.query_one(space.to_string(X[3]), ["accuracy"])
    assert one["accuracy"][0] == pytest.approx(res["accuracy"].mean[3])
    assert bench.query_one(space.to_dicts(X[3])[0], ["accuracy"]) == one
    np.testing.assert_allclose(bench.cost(X), bench.query(X, ["train_time"])["train_time"].mean)
    with pytest.raises(UnknownTargetError, match="known targets"):
        bench.query(X, ["throughput_h100"])
    with pytest.raises(space.InvalidArchitectureError, match="block 2 field 'k'"):
        bad = X.copy()
        bad[0, 9] = 7
        bench.query(bad)


def test_noisy_queries_are_reproducible_and_need_a_generator(bench: Benchmark) -> None:
    X = space.sample(50, np.random.default_rng(2))
    a = bench.query(X, ["accuracy"], noisy=True, rng=np.random.default_rng(9))["accuracy"]
    b = bench.query(X, ["accuracy"], noisy=True, rng=np.random.default_rng(9))["accuracy"]
    c = bench.query(X, ["accuracy"], noisy=True, rng=np.random.default_rng(10))["accuracy"]
    np.testing.assert_array_equal(a.value, b.value)
    assert not np.array_equal(a.value, c.value)
    assert not np.array_equal(a.value, a.mean)
    with pytest.raises(ValueError, match=r"numpy\.random\.Generator"):
        bench.query(X, noisy=True)


def test_predictions_track_the_truth(bench: Benchmark) -> None:
    X = space.sample(400, np.random.default_rng(3))
    truth = SyntheticBenchmark().query(X)
    pred = bench.query(X)
    for t in TARGETS:
        r = np.corrcoef(pred[t].mean, truth[t].mean)[0, 1]
        assert r > 0.9, (t, r)


def test_fit_is_deterministic_per_seed(data_dir: Path) -> None:
    from benchmark.dataset import load_dataset

    data = load_dataset(data_dir)
    cfg = SurrogateConfig(**{**FAST, "targets": ("accuracy", "throughput_a100")})
    m1 = fit_surrogate(data.X, dict(data.labels), cfg)
    m2 = fit_surrogate(data.X, dict(data.labels), cfg)
    X = space.sample(100, np.random.default_rng(4))
    for t in cfg.targets:
        np.testing.assert_array_equal(fitted_members(m1.targets[t], X), fitted_members(m2.targets[t], X))


def test_cache_is_reused_without_refitting(
    data_dir: Path, bench: Benchmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmark.oracle as oracle

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("refitted although a valid cache exists")

    monkeypatch.setattr(oracle, "fit_surrogate", boom)
    assert bench.cache_path is not None
    again = load_benchmark(data_dir, cache_dir=bench.cache_path.parent, verbose=False, **FAST)
    X = space.sample(20, np.random.default_rng(0))
    np.testing.assert_array_equal(again.query(X)["accuracy"].mean, bench.query(X)["accuracy"].mean)


def test_corrupt_or_stale_cache_is_refitted_with_a_message(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {**FAST, "targets": ("accuracy",)}
    first = load_benchmark(data_dir, cache_dir=tmp_path, verbose=False, **cfg)
    assert first.cache_path is not None
    (first.cache_path / "meta.json").write_text("{not json")
    second = load_benchmark(data_dir, cache_dir=tmp_path, verbose=True, **cfg)
    assert "corrupt" in capsys.readouterr().err
    # stale: same directory name but recorded for other data
    meta = json.loads((first.cache_path / "meta.json").read_text())
    meta["dataset_sha256"] = "0" * 64
    (first.cache_path / "meta.json").write_text(json.dumps(meta))
    load_benchmark(data_dir, cache_dir=tmp_path, verbose=True, **cfg)
    assert "stale" in capsys.readouterr().err
    # tables removed
    (second.cache_path / "tables.npz").unlink()  # type: ignore[operator]
    load_benchmark(data_dir, cache_dir=tmp_path, verbose=True, **cfg)
    assert "tables.npz missing" in capsys.readouterr().err


def test_other_config_or_data_uses_another_cache_entry(data_dir: Path, bench: Benchmark) -> None:
    assert bench.cache_path is not None
    cfg_a = SurrogateConfig(**FAST)
    cfg_b = SurrogateConfig(**{**FAST, "seed": 1})
    assert cfg_a.key() != cfg_b.key()
    assert bench.cache_path.name.endswith(cfg_a.key())


def test_loading_never_unpickles(bench: Benchmark, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a: Any, **k: Any) -> Any:
        raise AssertionError("pickle used on a load path")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    assert bench.cache_path is not None
    model = SurrogateModel.load(bench.cache_path)
    assert set(model.targets) == set(TARGETS)
    with np.load(bench.cache_path / "tables.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)


def test_sidecar_records_provenance(bench: Benchmark) -> None:
    assert bench.cache_path is not None
    meta = json.loads((bench.cache_path / "meta.json").read_text())
    assert meta["dataset_sha256"] == bench.dataset_sha256
    assert meta["config"]["targets"] == list(TARGETS)
    assert "xgboost" in meta["versions"]
    assert set(meta["quality"]) == set(TARGETS)
    for q in meta["quality"].values():
        assert {"r2", "kendall_tau", "spearman", "mae", "rmse", "within_1std", "n"} <= set(q)
    assert meta["feature_order"] == [space.gene_name(j) for j in range(28)]


def test_bad_configuration_is_named() -> None:
    with pytest.raises(SurrogateConfigError, match="backend"):
        SurrogateConfig(backend="catboost")
    with pytest.raises(SurrogateConfigError, match="max_depth"):
        SurrogateConfig(accuracy_params={"max_depth": 6})
    with pytest.raises(SurrogateConfigError, match="unknown surrogate settings"):
        SurrogateConfig.from_json({"members": 5})
    with pytest.raises(UnknownTargetError):
        SurrogateConfig(targets=("accuracy", "flops"))


def test_constructor_has_no_side_effects(bench: Benchmark) -> None:
    state = np.random.get_state()[1].copy()  # type: ignore[index]
    Benchmark(bench.model, bench.dataset_sha256)
    assert np.array_equal(np.random.get_state()[1], state)  # type: ignore[index]


def test_each_target_gets_its_model_kind_and_every_backend_its_presets() -> None:
    from benchmark.boosters import ACCURACY_PRESET_NAMES, BACKENDS

    for backend in BACKENDS.values():
        assert set(backend.accuracy_presets) == set(ACCURACY_PRESET_NAMES)
    default = SurrogateConfig()
    assert isinstance(model_for("accuracy", default), TreesModel)
    assert all(isinstance(model_for(t, default), AdditiveModel) for t in TARGET_NAMES if t != "accuracy")
    trees = SurrogateConfig(device_model="trees")
    assert all(isinstance(model_for(t, trees), TreesModel) for t in TARGET_NAMES)


def test_latency_space_is_a_property_of_the_target() -> None:
    y = np.array([500.0, 2000.0])
    rate = get_target("throughput_a100")
    np.testing.assert_array_equal(rate.to_latency_space(y), 1000.0 / y)
    np.testing.assert_array_equal(rate.from_latency_space(rate.to_latency_space(y)), y)
    for name in ("latency_zcu102", "train_time", "accuracy"):
        assert get_target(name).to_latency_space(y) is y
    assert [t for t in TARGET_NAMES if not get_target(t).is_cost] == ["accuracy"]


def test_unknown_model_kind_in_the_cache_is_refitted_with_a_message(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {**FAST, "targets": ("accuracy",)}
    first = load_benchmark(data_dir, cache_dir=tmp_path, verbose=False, **cfg)
    assert first.cache_path is not None
    meta = json.loads((first.cache_path / "meta.json").read_text())
    meta["targets"]["accuracy"]["kind"] = "forest"
    (first.cache_path / "meta.json").write_text(json.dumps(meta))
    again = load_benchmark(data_dir, cache_dir=tmp_path, verbose=True, **cfg)
    assert "unknown model kind 'forest'" in capsys.readouterr().err
    assert again.model.targets["accuracy"].kind == "trees"
