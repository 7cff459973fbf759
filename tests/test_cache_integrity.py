"""The surrogate cache checks itself: a truncated, deleted, edited or ill-typed cache file (or a cache written
before files were checksummed) is refitted with one message naming the file, never a traceback, and the refit
is bit-identical to the first fit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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


# ------------------------------------------------------------------------------ listing and pruning the cache
def _cli(*args: str) -> int:
    from benchmark.cli import main

    return main(list(args))


def test_cache_list_shows_dataset_split_targets_size_and_times(
    data_dir: Path, fitted: Benchmark, entry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["split"] == {"name": "all", "n_train": 300}  # written with every fit now
    assert _cli("cache", "list", "--cache-dir", str(entry.parent), "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    (e,) = listed["entries"]
    assert e["key"] == entry.name and e["dataset"] == meta["dataset_source"] != "unknown"
    assert e["dataset_sha256"] == fitted.dataset_sha256 and e["split"] == "all"
    assert e["targets"] == ["accuracy", "throughput_a100"] and e["backend"] == "xgboost"
    assert e["size_bytes"] == sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
    assert e["created"] == meta["created"] and e["problem"] is None
    assert _cli("cache", "list", "--cache-dir", str(entry.parent)) == 0
    out = capsys.readouterr().out
    assert "1 cached surrogate(s)" in out and entry.name in out and meta["dataset_source"] in out
    assert "dataset" in out and "split" in out and "last used" in out


def test_cache_list_of_an_older_entry_says_unknown(entry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An entry written before the split was recorded (and without the dataset): "unknown", no crash."""

    def old(meta: dict[str, Any]) -> None:
        for key in ("split", "dataset_source", "dataset_sha256", "created"):
            meta.pop(key)
        meta["config"].pop("split")

    _edit_meta(entry, old)
    (entry.parent / "not-an-entry").write_text("x")  # a stray file is not listed
    assert _cli("cache", "list", "--cache-dir", str(entry.parent), "--json") == 0
    (e,) = json.loads(capsys.readouterr().out)["entries"]
    assert (e["dataset"], e["dataset_sha256"], e["split"], e["created"]) == ("unknown",) * 4
    (entry / "meta.json").write_text("{not json")
    assert _cli("cache", "list", "--cache-dir", str(entry.parent)) == 0
    out = capsys.readouterr().out
    assert entry.name in out and "unknown" in out and "refitted on next use" in out


def test_loading_an_entry_marks_it_used(data_dir: Path, entry: Path) -> None:
    from benchmark.oracle import list_cache

    long_ago = time.time() - 30 * 86400
    os.utime(entry, (long_ago, long_ago))
    assert list_cache(entry.parent)[0].last_used == pytest.approx(long_ago)
    load_benchmark(data_dir, cache_dir=entry.parent, verbose=False, **CFG)  # a cache hit
    assert list_cache(entry.parent)[0].last_used > time.time() - 60


def _aged_copies(entry: Path, days: dict[str, float]) -> dict[str, Path]:
    """Copies of ``entry`` named like entries, last used ``days`` ago."""
    out = {}
    for name, age in days.items():
        d = entry.parent / name
        if d != entry:
            shutil.copytree(entry, d)
        t = time.time() - age * 86400
        os.utime(d, (t, t))
        out[name] = d
    return out


def test_cache_prune_by_age_count_and_all_is_a_dry_run_unless_yes(
    entry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = entry.parent
    d = _aged_copies(entry, {"aaaa-old": 10.0, "bbbb-mid": 5.0, entry.name: 0.0})
    assert _cli("cache", "prune", "--cache-dir", str(root), "--older-than", "7") == 0
    out = capsys.readouterr().out
    assert "would remove 1 cached surrogate(s)" in out and "aaaa-old" in out and "--yes" in out
    assert all(p.is_dir() for p in d.values())  # a dry run
    assert _cli("cache", "prune", "--cache-dir", str(root), "--older-than", "7", "--yes") == 0
    assert "removed 1 entry and 0 temporary folder(s)" in capsys.readouterr().out
    assert not d["aaaa-old"].exists() and d["bbbb-mid"].is_dir()
    # --keep N keeps the N most recently used; with --older-than both must hold
    assert _cli("cache", "prune", "--cache-dir", str(root), "--keep", "1", "--older-than", "6", "--yes") == 0
    assert d["bbbb-mid"].is_dir()
    assert _cli("cache", "prune", "--cache-dir", str(root), "--keep", "1", "--yes") == 0
    assert not d["bbbb-mid"].exists() and entry.is_dir()
    capsys.readouterr()
    # no criterion: entries stay
    assert _cli("cache", "prune", "--cache-dir", str(root), "--yes") == 0
    assert "only temporary folders" in capsys.readouterr().out and entry.is_dir()
    assert _cli("cache", "prune", "--cache-dir", str(root), "--all", "--yes") == 0
    assert "removed 1 entry" in capsys.readouterr().out and not entry.exists()


@pytest.mark.parametrize("bad", [["--keep", "-1"], ["--older-than", "-2"], ["--older-than", "nan"]])
def test_cache_prune_bad_arguments_are_one_line_exit_2(
    tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("cache", "prune", "--cache-dir", str(tmp_path), *bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and bad[0] in err


def _writer(root: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real process that made a cache temporary folder the way a fit does, and waits in it."""
    code = (
        "import sys, tempfile, time\n"
        "from benchmark.oracle import _temp_prefix\n"
        f"print(tempfile.mkdtemp(prefix=_temp_prefix('tmp'), dir={str(root)!r}), flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_temporaries_of_killed_fits_are_pruned_but_never_a_running_ones(
    fitted: Benchmark, entry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.oracle import STALE_TEMP_SECONDS, leftover_temporaries

    root = entry.parent
    running, live = _writer(root)
    killed, dead = _writer(root)
    try:
        (dead / "tables.npz").write_bytes(b"half a file")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        fresh_unknown = root / ".tmp-abc123"  # a writer we cannot check (older name): young, kept
        fresh_unknown.mkdir()
        stale_unknown = root / ".old-def456"
        stale_unknown.mkdir()
        t = time.time() - 2 * STALE_TEMP_SECONDS
        os.utime(stale_unknown, (t, t))
        assert sorted(leftover_temporaries(root)) == sorted([dead, stale_unknown])
        assert _cli("cache", "list", "--cache-dir", str(root)) == 0
        assert "2 temporary folder(s) left by killed fits" in capsys.readouterr().out
        assert _cli("cache", "prune", "--cache-dir", str(root)) == 0  # a dry run
        assert dead.is_dir()
        assert _cli("cache", "prune", "--cache-dir", str(root), "--yes") == 0
        assert "removed 0 entries and 2 temporary folder(s)" in capsys.readouterr().out
        assert not dead.exists() and not stale_unknown.exists()
        assert live.is_dir() and fresh_unknown.is_dir() and entry.is_dir()
        # the next fit's write removes a killed writer's folder too, and still not the running one
        killed2, dead2 = _writer(root)
        os.kill(killed2.pid, signal.SIGKILL)
        killed2.wait(timeout=30)
        assert _write_atomically(fitted.model, entry) == [dead2]
        assert not dead2.exists() and live.is_dir()
        SurrogateModel.load(entry)
    finally:
        running.kill()
        running.wait(timeout=30)
    assert leftover_temporaries(root) == [live]  # its writer is gone now


def test_an_entry_fitted_on_a_split_records_and_lists_it(data_dir: Path, tmp_path: Path) -> None:
    from benchmark.oracle import list_cache

    bench = load_benchmark(data_dir, cache_dir=tmp_path, verbose=False, **{**CFG, "split": "random"})
    split = bench.model.meta["split"]
    assert split["name"] == "random" and split["seed"] == 0 and split["dir"] is None
    assert split["n_train"] == bench.model.meta["n_train"] and 0 < split["n_val"] < split["n_train"]
    (e,) = list_cache(tmp_path)
    assert e.split == "random(seed=0)" and e.path == bench.cache_path
