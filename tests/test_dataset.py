"""Record loader: validation errors name file and field, skip mode, tar == directory, the real data."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import space
from benchmark.dataset import Dataset, DatasetError, DatasetWarning, load_dataset, read_records
from benchmark.sources import ARCHIVE
from benchmark.targets import TARGET_NAMES, TARGETS

DEV_SHA256 = "e8c6428e82ed90e9cc16f476b9474f53db3da478c8da19ecdf5d8e43aba80b93"
Kit = Any  # conftest.RecordKit


def _get(rec: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = rec
    for key in path:
        node = node[key]
    return node


def _same(a: Dataset, b: Dataset, *, skipped: bool = True) -> None:
    assert a.names == b.names
    np.testing.assert_array_equal(a.X, b.X)
    for t in TARGET_NAMES:
        np.testing.assert_array_equal(a.labels[t], b.labels[t])  # NaN == NaN here
    np.testing.assert_array_equal(a.macs, b.macs)
    np.testing.assert_array_equal(a.params, b.params)
    if skipped:
        assert a.n_skipped == b.n_skipped


# ----------------------------------------------------------------------------------------- good data


def test_directory_and_tar_give_the_same_dataset(tmp_path: Path, anb_kit: Kit) -> None:
    recs = anb_kit.records([10, 2, 0, 1, 33, 7])
    d = read_records(anb_kit.write_dir(tmp_path / "dir", recs))
    archive = anb_kit.write_tar(tmp_path / "data.tar.gz", recs)
    t = read_records(archive)
    _same(d, t)
    assert d.names == ("result_0", "result_1", "result_2", "result_7", "result_10", "result_33")
    assert t.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert t.source == str(archive) and d.source == str(tmp_path / "dir")
    assert d.X.shape == (6, space.N_GENES) and d.X.dtype == np.int64
    assert set(d.labels) == set(TARGET_NAMES)


def test_values_come_from_the_record_paths(tmp_path: Path, anb_kit: Kit) -> None:
    numbers = [3, 1, 4, 15, 9]
    recs = anb_kit.records(numbers)
    ds = read_records(anb_kit.write_dir(tmp_path, recs))
    for row, name in enumerate(ds.names):
        rec = recs[name + ".json"]
        assert isinstance(rec, dict)
        np.testing.assert_array_equal(ds.X[row], space.from_dicts(rec["architecture"])[0])
        for t in TARGET_NAMES:
            assert ds.labels[t][row] == _get(rec, TARGETS[t].record_path)
        assert ds.macs[row] == rec["model_info"]["macs"]
        assert ds.params[row] == rec["model_info"]["params"]


def test_directory_hash_depends_only_on_record_content(tmp_path: Path, anb_kit: Kit) -> None:
    recs = anb_kit.records(range(5))
    a = read_records(anb_kit.write_dir(tmp_path / "a", recs, sub="x/y"))
    b = read_records(anb_kit.write_dir(tmp_path / "b", recs, sub=""))
    (tmp_path / "b" / "notes.txt").write_text("not a record")
    (tmp_path / "b" / "summary.json").write_text("{}")
    assert read_records(tmp_path / "b").sha256 == a.sha256 == b.sha256
    changed = dict(recs)
    rec = copy.deepcopy(recs["result_3.json"])
    assert isinstance(rec, dict)
    rec["metrics"]["val_top5"] += 0.001  # a field the loader does not even read
    changed["result_3.json"] = rec
    c = read_records(anb_kit.write_dir(tmp_path / "c", changed))
    assert c.sha256 != a.sha256


def test_null_metric_is_nan_for_that_target_only(tmp_path: Path, anb_kit: Kit) -> None:
    recs = anb_kit.records(range(6))
    rec = recs["result_4.json"]
    assert isinstance(rec, dict)
    rec["platform_perf"]["throughput_tpuv2"]["throughput_mean"] = None
    rec["platform_perf"]["throughput_tpuv2"]["throughput_std"] = None
    del rec["platform_perf"]["latency_vck190"]  # a device not measured at all: NaN as well
    ds = read_records(anb_kit.write_dir(tmp_path, recs))
    row = int(ds.index_of("result_4")[0])
    for t in TARGET_NAMES:
        y = ds.labels[t]
        nan_rows = np.flatnonzero(np.isnan(y)).tolist()
        assert nan_rows == ([row] if t in ("throughput_tpuv2", "latency_vck190") else []), t
    assert ds.n_skipped == 0


def test_lenient_forms_match_the_canonical_ones(tmp_path: Path, anb_kit: Kit) -> None:
    """Integer metrics and 0/1 squeeze-excite flags are valid and load like floats / booleans."""
    recs = anb_kit.records(range(4))
    base = read_records(anb_kit.write_dir(tmp_path / "a", recs))
    rec = recs["result_2.json"]
    assert isinstance(rec, dict)
    rec["metrics"]["train_time"] = 1500
    for b in range(space.N_BLOCKS):
        rec["architecture"][f"block{b}_se"] = int(rec["architecture"][f"block{b}_se"])
    other = read_records(anb_kit.write_dir(tmp_path / "b", recs))
    np.testing.assert_array_equal(other.X, base.X)
    assert other.labels["train_time"][2] == 1500.0


# -------------------------------------------------------------------------------------- bad records


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        node = rec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return rec

    return edit


def _delete(path: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        node = rec
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return rec

    return edit


def _raw(text: str) -> Callable[[dict[str, Any]], Any]:
    return lambda rec: text.encode()


def _nan_literal(rec: dict[str, Any]) -> bytes:
    rec["metrics"]["train_time"] = "@@"
    return json.dumps(rec).replace('"@@"', "NaN").encode()


def _infinity_literal(rec: dict[str, Any]) -> bytes:
    rec["platform_perf"]["latency_zcu102"]["latency_mean"] = "@@"
    return json.dumps(rec).replace('"@@"', "Infinity").encode()


TPUT = ("platform_perf", "throughput_a100", "throughput_mean")

BAD_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], list[str]]] = {
    "truncated json": (_raw('{"architecture": {"block0_e": 6'), ["invalid JSON"]),
    "not utf-8": (lambda rec: b"\xff\xfe\x00garbage", ["invalid JSON"]),
    "top-level list": (_raw("[1, 2]"), ["expected a JSON object"]),
    "missing section": (_delete(("metrics",)), ["missing field metrics"]),
    "section not an object": (_set(("model_info",), [1, 2]), ["field model_info: expected an object"]),
    "missing metric": (_delete(("metrics", "val_top1")), ["missing field metrics.val_top1"]),
    "missing mean of a present device": (
        _delete(("platform_perf", "throughput_3090", "throughput_mean")),
        ["missing field platform_perf.throughput_3090.throughput_mean"],
    ),
    "device entry not an object": (
        _set(("platform_perf", "throughput_a100"), 7034.9),
        ["field platform_perf.throughput_a100: expected an object"],
    ),
    "string metric": (
        _set(TPUT, "abc"),
        [
            "result_3.json: field platform_perf.throughput_a100.throughput_mean: "
            'expected a number or null, got "abc"'
        ],
    ),
    "boolean metric": (_set(("metrics", "val_top1"), True), ["field metrics.val_top1", "got true"]),
    "negative metric": (_set(("metrics", "train_time"), -3.5), ["field metrics.train_time", "non-negative"]),
    "NaN literal": (_nan_literal, ["field metrics.train_time", "finite", "NaN"]),
    "Infinity literal": (_infinity_literal, ["field platform_perf.latency_zcu102.latency_mean", "finite"]),
    "accuracy above 100": (_set(("metrics", "val_top1"), 150.0), ["field metrics.val_top1", "[0, 100]"]),
    "null macs": (_set(("model_info", "macs"), None), ["model_info.macs: expected a number, got null"]),
    "missing params": (_delete(("model_info", "params")), ["missing field model_info.params"]),
    "kernel out of the space": (_set(("architecture", "block3_k"), 4), ["architecture.block3_k", "3, 5"]),
    "layers out of the space": (_set(("architecture", "block5_l"), 5), ["field architecture.block5_l"]),
    "missing gene": (_delete(("architecture", "block6_se")), ["field architecture.block6_se", "missing"]),
    "se as a string": (_set(("architecture", "block2_se"), "yes"), ["field architecture.block2_se"]),
    "expansion as a float": (_set(("architecture", "block0_e"), 6.0), ["field architecture.block0_e"]),
    "unknown gene": (_set(("architecture", "block7_e"), 6), ["field architecture", "block7_e"]),
}


def _with_bad(anb_kit: Kit, edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    recs = anb_kit.records(range(6))
    recs["result_3.json"] = edit(recs["result_3.json"])
    return dict(recs)


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_record_raises_naming_file_and_field(tmp_path: Path, anb_kit: Kit, case: str) -> None:
    edit, expected = BAD_CASES[case]
    root = anb_kit.write_dir(tmp_path, _with_bad(anb_kit, edit))
    with pytest.raises(DatasetError) as info:
        read_records(root)
    msg = str(info.value)
    assert msg.startswith("result_3.json: ")
    for part in expected:
        assert part in msg
    assert "skip_bad=True" in msg


@pytest.mark.parametrize("case", ["string metric", "kernel out of the space", "truncated json"])
def test_bad_record_in_archive_and_skip_mode(tmp_path: Path, anb_kit: Kit, case: str) -> None:
    edit, expected = BAD_CASES[case]
    recs = _with_bad(anb_kit, edit)
    archive = anb_kit.write_tar(tmp_path / "a.tar.gz", recs)
    with pytest.raises(DatasetError, match=re.escape("result_3.json")):
        read_records(archive)
    with pytest.warns(DatasetWarning, match="skipped 1 invalid record") as rec_warn:
        ds = read_records(archive, skip_bad=True)
    assert expected[0] in str(rec_warn[0].message)
    assert ds.n_skipped == 1
    assert ds.names == ("result_0", "result_1", "result_2", "result_4", "result_5")
    good = {k: v for k, v in recs.items() if k != "result_3.json"}
    _same(ds, read_records(anb_kit.write_dir(tmp_path / "good", good)), skipped=False)


def test_skip_mode_counts_and_reports_several(tmp_path: Path, anb_kit: Kit) -> None:
    recs: dict[str, Any] = dict(anb_kit.records(range(12)))
    recs["result_9.json"] = _set(TPUT, "fast")(recs["result_9.json"])
    recs["result_2.json"] = b"{"
    recs["result_11.json"] = _set(("architecture", "block1_k"), 7)(recs["result_11.json"])
    recs["result_5.json"] = _delete(("metrics",))(recs["result_5.json"])
    root = anb_kit.write_dir(tmp_path, recs)
    with pytest.raises(DatasetError) as info:
        read_records(root)
    assert str(info.value).startswith("result_2.json: invalid JSON")  # the first bad one by number
    assert "and 3 more invalid record(s)" in str(info.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = read_records(root, skip_bad=True)
    texts = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(texts) == 1
    assert "skipped 4 invalid record(s) of 12" in texts[0]
    assert "result_2.json" in texts[0] and "result_5.json" in texts[0] and "result_9.json" in texts[0]
    assert ds.n_skipped == 4 and len(ds) == 8
    assert not {"result_2", "result_5", "result_9", "result_11"} & set(ds.names)


def test_all_bad_is_an_error_even_when_skipping(tmp_path: Path, anb_kit: Kit) -> None:
    root = anb_kit.write_dir(tmp_path, {"result_0.json": b"nope", "result_1.json": b"[]"})
    with pytest.raises(DatasetError, match="all 2 records are invalid"):
        read_records(root, skip_bad=True)


@pytest.mark.parametrize("cut", ["half", "minus_1", "minus_9", "header_only"])
def test_truncated_archive_says_to_redownload(tmp_path: Path, anb_kit: Kit, cut: str) -> None:
    archive = anb_kit.write_tar(tmp_path / "full.tar.gz", anb_kit.records(range(40)))
    data = archive.read_bytes()
    keep = {"half": len(data) // 2, "minus_1": len(data) - 1, "minus_9": len(data) - 9, "header_only": 20}
    keep_bytes = keep[cut]
    bad = tmp_path / "anb_dataset_jsons.tar.gz"
    bad.write_bytes(data[:keep_bytes])
    with pytest.raises(DatasetError) as info:
        read_records(bad, skip_bad=True)  # a broken archive is never "skipped"
    msg = str(info.value)
    assert str(bad) in msg and "re-download" in msg and "truncated" in msg


def test_corrupt_archive_and_non_archive(tmp_path: Path, anb_kit: Kit) -> None:
    archive = anb_kit.write_tar(tmp_path / "full.tar.gz", anb_kit.records(range(40)))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="re-download"):
        read_records(corrupt)
    not_tar = tmp_path / "result_1.json"
    not_tar.write_text(json.dumps(anb_kit.record(1)))
    with pytest.raises(DatasetError, match=re.escape("not a .tar.gz")):
        read_records(not_tar)


def test_empty_and_duplicate_record_sets(tmp_path: Path, anb_kit: Kit) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=re.escape("no result_N.json records")):
        read_records(tmp_path / "empty")
    root = tmp_path / "dup"
    anb_kit.write_dir(root, anb_kit.records(range(3)), sub="a")
    anb_kit.write_dir(root, anb_kit.records([2]), sub="b")
    with pytest.raises(DatasetError, match=re.escape("result_2.json appears twice")):
        read_records(root)


# -------------------------------------------------------------------------------------- Dataset API


def test_subset_and_index_of(tmp_path: Path, anb_kit: Kit) -> None:
    ds = read_records(anb_kit.write_dir(tmp_path, anb_kit.records([5, 1, 8, 3, 20])))
    assert len(ds) == 5
    idx = ds.index_of(["result_8", "../json/result_1.json", "result_20.json"])
    assert idx.tolist() == [3, 0, 4]
    sub = ds.subset(idx)
    assert sub.names == ("result_8", "result_1", "result_20")
    np.testing.assert_array_equal(sub.X, ds.X[idx])
    np.testing.assert_array_equal(sub.labels["accuracy"], ds.labels["accuracy"][idx])
    assert sub.sha256 == ds.sha256 and sub.source == ds.source
    mask = np.array([True, False, True, False, True])
    assert ds.subset(mask).names == ("result_1", "result_5", "result_20")
    assert len(ds.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(KeyError, match="result_99") as info:
        ds.index_of(["result_1", "result_99", "result_77"])
    assert "result_77" in str(info.value) and "2 record name(s)" in str(info.value)
    with pytest.raises(IndexError):
        ds.subset(np.array([True, False]))
    with pytest.raises(IndexError):
        ds.subset(np.array([7]))


def test_arrays_are_read_only(tmp_path: Path, anb_kit: Kit) -> None:
    ds = read_records(anb_kit.write_dir(tmp_path, anb_kit.records(range(3))))
    for arr in (ds.X, ds.macs, ds.params, ds.labels["accuracy"]):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_constructor_checks_shapes() -> None:
    n = 2
    labels = {t: np.zeros(n) for t in TARGET_NAMES}
    X = np.zeros((n, space.N_GENES), dtype=np.int64)
    ok = Dataset(("a", "b"), X, labels, np.zeros(n), np.zeros(n), "mem", "0")
    assert len(ok) == 2
    with pytest.raises(ValueError, match="X must"):
        Dataset(("a", "b"), X[:, :5], labels, np.zeros(n), np.zeros(n), "mem", "0")
    with pytest.raises(ValueError, match="missing"):
        Dataset(("a", "b"), X, {"accuracy": np.zeros(n)}, np.zeros(n), np.zeros(n), "mem", "0")
    with pytest.raises(ValueError, match="macs"):
        Dataset(("a", "b"), X, labels, np.zeros(3), np.zeros(n), "mem", "0")


@settings(max_examples=20, deadline=None)
@given(
    numbers=st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True),
    null_mask=st.lists(st.booleans(), min_size=12 * len(TARGET_NAMES), max_size=12 * len(TARGET_NAMES)),
)
def test_roundtrip_any_records(anb_kit: Kit, numbers: list[int], null_mask: list[bool]) -> None:
    """Records written as a directory and as an archive read back to exactly their values (null -> NaN)."""
    recs = anb_kit.records(numbers)
    want_nan: dict[tuple[str, str], bool] = {}
    for r, (name, rec) in enumerate(sorted(recs.items())):
        for c, t in enumerate(TARGET_NAMES):
            is_null = null_mask[r * len(TARGET_NAMES) + c]
            if is_null:
                _set(TARGETS[t].record_path, None)(rec)
            want_nan[name[:-5], t] = is_null
    with tempfile.TemporaryDirectory() as tmp:
        d = read_records(anb_kit.write_dir(Path(tmp) / "d", recs))
        a = read_records(anb_kit.write_tar(Path(tmp) / "a.tar.gz", recs))
    _same(d, a)
    assert list(d.names) == [f"result_{n}" for n in sorted(numbers)]
    for row, name in enumerate(d.names):
        rec = recs[name + ".json"]
        for t in TARGET_NAMES:
            got = d.labels[t][row]
            if want_nan[name, t]:
                assert math.isnan(got)
            else:
                assert got == _get(rec, TARGETS[t].record_path)


# ------------------------------------------------------------------------------------------ real data


@pytest.mark.dataset
def test_real_dataset_loads(anb_dataset: Dataset, anb_dataset_path: Path) -> None:
    ds = anb_dataset
    if ds.sha256 == DEV_SHA256:
        assert len(ds) == 4626
    elif ds.sha256 == ARCHIVE.sha256:
        assert len(ds) == 5138
    assert len(ds) > 0 and ds.n_skipped == 0
    assert len(set(ds.names)) == len(ds)
    numbers = [int(n.split("_")[1]) for n in ds.names]
    assert numbers == sorted(numbers)
    space.validate(ds.X)
    assert np.all(np.isfinite(ds.labels["accuracy"])) and np.all(np.isfinite(ds.macs))
    assert np.all((ds.labels["accuracy"] > 0) & (ds.labels["accuracy"] < 100))
    if anb_dataset_path.is_file():
        assert ds.sha256 == hashlib.sha256(anb_dataset_path.read_bytes()).hexdigest()


@pytest.mark.dataset
def test_real_dataset_matches_raw_records(
    anb_dataset: Dataset, anb_records: list[tuple[str, dict[str, Any]]]
) -> None:
    """Every label equals the raw JSON value, and is NaN exactly where the JSON has null."""
    raw = dict(anb_records)
    assert len(raw) == len(anb_dataset)
    ordered = [raw[n + ".json"] for n in anb_dataset.names]
    np.testing.assert_array_equal(anb_dataset.X, space.from_dicts([r["architecture"] for r in ordered]))
    for t in TARGET_NAMES:
        vals = [_get(r, TARGETS[t].record_path) for r in ordered]
        want = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
        np.testing.assert_array_equal(anb_dataset.labels[t], want, err_msg=t)
    np.testing.assert_array_equal(anb_dataset.params, [r["model_info"]["params"] for r in ordered])


@pytest.mark.dataset
def test_load_dataset_uses_the_resolver(
    anb_dataset: Dataset, anb_dataset_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NASOPT_DATASET", str(anb_dataset_path))
    ds = load_dataset(download=False)
    assert ds.sha256 == anb_dataset.sha256 and ds.source == str(anb_dataset_path)
