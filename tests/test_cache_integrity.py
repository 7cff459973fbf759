"""The surrogate cache checks itself: a truncated, deleted, edited or ill-typed cache file (or a cache written
before files were checksummed) is refitted with one message naming the file, never a traceback, and the refit
is bit-identical to the first fit."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import space
from benchmark.oracle import Benchmark, _write_atomically, load_benchmark
from benchmark.surrogate import INTEGRITY_KEY, SurrogateCacheError, SurrogateConfig, SurrogateModel
from tests.test_surrogate import FAST, synthetic_records

#: the smallest fit that exercises every cache path: one trees target, one two-channel additive target
CFG: dict[str, Any] = {**FAST, "n_members": 2, "targets": ("accuracy", "throughput_a100")}
X = space.sample(50, np.random.default_rng(7))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity_data")
    d = root / "anb_dataset_jsons"
    d.mkdir()
    for name, rec in synthetic_records(300, seed=3).items():
        (d / name).write_text(json.dumps(rec))
    return root


@pytest.fixture(scope="module")
def fitted(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    return load_benchmark(
        data_dir, cache_dir=tmp_path_factory.mktemp("integrity_cache"), verbose=False, **CFG
    )


@pytest.fixture
def entry(fitted: Benchmark, tmp_path: Path) -> Path:
    """A private copy of the fitted cache entry (same directory name, so it is a cache hit)."""
    assert fitted.cache_path is not None
    dst = tmp_path / "cache" / fitted.cache_path.name
    shutil.copytree(fitted.cache_path, dst)
    return dst


def _edit_meta(entry: Path, change: Callable[[dict[str, Any]], object]) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    change(meta)
    (entry / "meta.json").write_text(json.dumps(meta))


def _reload_expecting(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str], *needles: str
) -> Benchmark:
    """Load from ``entry``'s cache; assert one message containing ``needles`` and a bit-identical refit."""
    bench = load_benchmark(data_dir, cache_dir=entry.parent, verbose=True, **CFG)
    err = capsys.readouterr().err
    problem = [line for line in err.splitlines() if "refitting" in line]
    assert len(problem) == 1, err
    assert str(entry) in problem[0]
    for needle in needles:
        assert needle in problem[0], problem[0]
    assert "Traceback" not in err
    for t, p in fitted.query(X).items():
        np.testing.assert_array_equal(bench.query(X)[t].mean, p.mean)
        np.testing.assert_array_equal(bench.query(X)[t].std, p.std)
    SurrogateModel.load(entry)  # the rewritten cache verifies
    return bench


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_tables_are_refitted_with_a_message(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    _truncate(entry / "tables.npz")
    _reload_expecting(data_dir, entry, fitted, capsys, "tables.npz is truncated")


def test_truncated_or_deleted_member_model_is_refitted(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    member = entry / "models" / "accuracy_member1.ubj"
    _truncate(member, 0.1)
    _reload_expecting(data_dir, entry, fitted, capsys, "models/accuracy_member1.ubj is truncated")
    (entry / "models" / "throughput_a100_member0.ubj").unlink()
    _reload_expecting(data_dir, entry, fitted, capsys, "models/throughput_a100_member0.ubj unreadable")


def test_edited_table_value_is_caught(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    # the audit's case: the accuracy bias raised by 6.57 points, file rewritten with the same layout and size
    tables = entry / "tables.npz"
    size = tables.stat().st_size
    with np.load(tables) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["accuracy/c0/bias"] = arrays["accuracy/c0/bias"] + 6.57
    np.savez(tables, **arrays)
    assert tables.stat().st_size == size
    _reload_expecting(data_dir, entry, fitted, capsys, "tables.npz was edited or corrupted")


def test_flipped_byte_in_a_member_model_is_caught(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    member = entry / "models" / "accuracy_member0.ubj"
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0xFF
    member.write_bytes(bytes(data))
    _reload_expecting(data_dir, entry, fitted, capsys, "models/accuracy_member0.ubj was edited")


def test_edited_meta_value_is_caught(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_meta(entry, lambda m: m["targets"]["accuracy"].update(std_scale=3.0))
    _reload_expecting(data_dir, entry, fitted, capsys, "meta.json was edited")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m["targets"]["accuracy"].update(n_channels="1"), "targets.accuracy.n_channels"),
        (lambda m: m["targets"]["accuracy"].update(rounds=5), "targets.accuracy.rounds"),
        (
            lambda m: m["targets"]["throughput_a100"].update(std_scale="x"),
            "targets.throughput_a100.std_scale",
        ),
        (lambda m: m["targets"]["accuracy"].update(native_models="a.ubj"), "native_models"),
        (lambda m: m.update(targets=["accuracy"]), "'targets' must be"),
        (lambda m: m.update(config=["xgboost"]), "'config'"),
        (lambda m: m.update(config={**m["config"], "n_members": "2"}), "'config'"),
        (lambda m: m.update(integrity="none"), "malformed"),
        (lambda m: m[INTEGRITY_KEY]["files"].pop("tables.npz"), "no integrity record for tables.npz"),
    ],
)
def test_ill_typed_meta_field_is_refitted_not_a_crash(
    data_dir: Path,
    entry: Path,
    fitted: Benchmark,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any]], object],
    needle: str,
) -> None:
    _edit_meta(entry, change)
    _reload_expecting(data_dir, entry, fitted, capsys, needle)


def test_meta_that_is_not_an_object_or_not_utf8_is_refitted(
    data_dir: Path, entry: Path, fitted: Benchmark, capsys: pytest.CaptureFixture[str]
) -> None:
    (entry / "meta.json").write_text("[1, 2]")
    _reload_expecting(data_dir, entry, fitted, capsys, "meta.json corrupt")
    (entry / "meta.json").write_bytes(b"\xff\xfe{")
    _reload_expecting(data_dir, entry, fitted, capsys, "meta.json incomplete or corrupt")


def test_cache_without_integrity_record_is_refitted_once(
    data_dir: Path,
    entry: Path,
    fitted: Benchmark,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what nasopt wrote before files were checksummed: the same files, meta.json without the section
    _edit_meta(entry, lambda m: m.pop(INTEGRITY_KEY))
    _reload_expecting(data_dir, entry, fitted, capsys, "no integrity record", "older nasopt")
    import benchmark.oracle as oracle

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("refitted a second time")

    monkeypatch.setattr(oracle, "fit_surrogate", boom)
    load_benchmark(data_dir, cache_dir=entry.parent, verbose=True, **CFG)
    assert "refitting" not in capsys.readouterr().err


def test_load_raises_a_nasopt_error_naming_the_file(entry: Path) -> None:
    from benchmark.errors import NasoptError

    _truncate(entry / "tables.npz")
    with pytest.raises(SurrogateCacheError, match=r"tables\.npz is truncated") as info:
        SurrogateModel.load(entry)
    assert isinstance(info.value, NasoptError)


def test_configuration_key_is_unchanged() -> None:
    # the key names existing cache directories (e.g. <sha>-97719dd6e2f9af1d for the default configuration)
    assert SurrogateConfig().key() == "97719dd6e2f9af1d"


def test_rewrite_over_an_existing_entry_is_atomic_and_leaves_no_temporaries(
    fitted: Benchmark, entry: Path
) -> None:
    _truncate(entry / "tables.npz")
    _write_atomically(fitted.model, entry)
    SurrogateModel.load(entry)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]


def test_a_concurrent_writer_that_finished_first_is_kept(
    fitted: Benchmark, entry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmark.oracle as oracle

    real_replace = oracle.os.replace
    calls: list[tuple[str, str]] = []

    def racing_replace(src: Any, dst: Any) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # between moving the old entry aside and renaming ours: another process wins
            shutil.copytree(fitted.cache_path, entry)  # type: ignore[arg-type]
        real_replace(src, dst)

    monkeypatch.setattr(oracle.os, "replace", racing_replace)
    _write_atomically(fitted.model, entry)
    SurrogateModel.load(entry)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]


def test_info_lists_a_corrupt_entry_instead_of_crashing(
    data_dir: Path, entry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.cli import main

    (entry / "meta.json").write_text("{not json")
    (entry.parent / ".tmp-123").mkdir()  # a fit killed while writing: not an entry
    assert main(["info", "--dataset", str(data_dir), "--cache-dir", str(entry.parent), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert f"{entry.name}: unreadable meta.json (JSONDecodeError)" in out
    assert ".tmp-123" not in out


def test_excluded_architectures_get_their_own_cache_entry(
    data_dir: Path, fitted: Benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark.dataset import read_records

    data = read_records(data_dir)
    assert fitted.cache_path is not None
    # nothing of the data excluded: the very same entry, no fit
    outside = space.sample(5, np.random.default_rng(99))
    assert not np.isin(space.arch_id(outside), space.arch_id(data.X)).any()
    same = load_benchmark(data_dir, cache_dir=fitted.cache_path.parent, verbose=False, exclude=outside, **CFG)
    assert same.cache_path == fitted.cache_path and same.digest == fitted.digest
    # ten records excluded: another entry, trained on the rest, and a cache hit the second time
    held = load_benchmark(data_dir, cache_dir=tmp_path, verbose=False, exclude=data.X[:10], **CFG)
    assert held.cache_path != fitted.cache_path and held.digest != fitted.digest
    assert held.model.meta["excluded"]["n_records"] == 10
    assert held.model.meta["n_train"] == len(data) - 10
    import benchmark.oracle as oracle

    monkeypatch.setattr(oracle, "fit_surrogate", lambda *a, **k: pytest.fail("refitted"))
    again = load_benchmark(data_dir, cache_dir=tmp_path, verbose=False, exclude=data.X[:10], **CFG)
    assert again.cache_path == held.cache_path
