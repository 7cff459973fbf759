"""Splits: upstream default files matched by name, seeded random splits (any process), everything-in-train."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.dataset import Dataset, DatasetError, read_records
from benchmark.sources import SPLIT_NAMES
from benchmark.splits import Split, SplitWarning, make_split, read_split_files

Kit = Any  # conftest.RecordKit
REPO = Path(__file__).resolve().parents[1]
DEV_SHA256 = "e8c6428e82ed90e9cc16f476b9474f53db3da478c8da19ecdf5d8e43aba80b93"


def _write_split_dir(d: Path, parts: dict[str, list[int]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for part, fname in zip(("train", "val", "test"), SPLIT_NAMES, strict=True):
        paths = [f"../dataset_parsers/datasets_final_jsons/json/result_{n}.json" for n in parts[part]]
        (d / fname).write_text(json.dumps(paths))
    return d


def _names(ds: Dataset, idx: np.ndarray) -> list[str]:
    return [ds.names[int(i)] for i in idx]


@pytest.fixture(scope="module")
def small(anb_kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """30 synthetic records result_0..29 in a directory."""
    root = tmp_path_factory.mktemp("small")
    return read_records(anb_kit.write_dir(root, anb_kit.records(range(30))))


@pytest.fixture(scope="module")
def hundred(anb_kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("hundred")
    return read_records(anb_kit.write_dir(root, anb_kit.records(range(0, 300, 3))))


# -------------------------------------------------------------------------------------------- default


def test_default_split_matches_on_file_names(small: Dataset, tmp_path: Path) -> None:
    split_dir = _write_split_dir(
        tmp_path, {"train": [*range(20), 100, 101], "val": [24, 20, 21, 22, 23], "test": [25, 26, 27, 555]}
    )
    with pytest.warns(SplitWarning, match=re.escape("train: 2 of 22 listed records absent")) as caught:
        split = make_split(small, "default", split_dir=split_dir)
    assert "test: 1 of 4" in str(caught[0].message)
    assert _names(small, split.train) == [f"result_{n}" for n in range(20)]
    assert _names(small, split.val) == [f"result_{n}" for n in range(20, 25)]
    assert _names(small, split.test) == [f"result_{n}" for n in (25, 26, 27)]
    assert split.unassigned == 2  # result_28, result_29
    assert split.absent == {"train": 2, "val": 0, "test": 1}
    assert split.name == "default"
    assert split.summary() == (
        "default: train 20 (2 listed but absent), val 5, test 3 (1 listed but absent), 2 unassigned"
    )


def test_default_split_empty_test_part_is_reported_not_fatal(small: Dataset, tmp_path: Path) -> None:
    split_dir = _write_split_dir(tmp_path, {"train": list(range(25)), "val": [25, 26], "test": [90, 91, 92]})
    with pytest.warns(SplitWarning, match="this part is empty") as caught:
        split = make_split(small, "default", split_dir=split_dir)
    assert "holds out the upstream test split" in str(caught[0].message)
    assert split.test.size == 0 and split.sizes() == {"train": 25, "val": 2, "test": 0}
    assert split.absent["test"] == 3 and split.unassigned == 3


def test_default_split_without_absent_records_is_silent(small: Dataset, tmp_path: Path) -> None:
    parts = {"train": list(range(24)), "val": [24, 25, 26], "test": [27, 28, 29]}
    split_dir = _write_split_dir(tmp_path, parts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = make_split(small, "default", split_dir=split_dir)
    assert split.sizes() == {"train": 24, "val": 3, "test": 3} and split.unassigned == 0


def test_default_split_found_next_to_the_data(anb_kit: Kit, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "cache"))
    archive = anb_kit.write_tar(tmp_path / "data" / "anb_dataset_dev.tar.gz", anb_kit.records(range(6)))
    ds = read_records(archive)
    with pytest.raises(DatasetError, match="kind='random'"):
        make_split(ds, "default")
    _write_split_dir(tmp_path / "data" / "splits" / "default_split",
                     {"train": [0, 1, 2, 3], "val": [4], "test": [5]})
    split = make_split(ds, "default")
    assert split.sizes() == {"train": 4, "val": 1, "test": 1}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train": [1, 2], "val": [2], "test": []}, "in both train and val"),
        ({"train": [1, 1], "val": [], "test": []}, "listed twice"),
    ],
)
def test_inconsistent_split_files_are_errors(
    tmp_path: Path, files: dict[str, list[int]], message: str
) -> None:
    _write_split_dir(tmp_path, files)
    with pytest.raises(DatasetError, match=message):
        read_split_files(tmp_path)


def test_malformed_split_files_are_errors(tmp_path: Path) -> None:
    _write_split_dir(tmp_path, {"train": [1], "val": [2], "test": [3]})
    (tmp_path / "val_paths.json").write_text('{"not": "a list"}')
    with pytest.raises(DatasetError, match="expected a JSON list"):
        read_split_files(tmp_path)
    (tmp_path / "val_paths.json").write_text("[")
    with pytest.raises(DatasetError, match="invalid JSON"):
        read_split_files(tmp_path)
    (tmp_path / "val_paths.json").write_text("[]")
    (tmp_path / "test_paths.json").unlink()
    with pytest.raises(DatasetError, match="not found"):
        read_split_files(tmp_path)


# --------------------------------------------------------------------------------------------- random


def _check_partition(split: Split, n: int) -> None:
    allidx = np.concatenate([split.train, split.val, split.test])
    assert np.array_equal(np.sort(allidx), np.arange(n))  # disjoint and complete: nothing dropped


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 100),
    seed=st.integers(0, 2**32 - 1),
    weights=st.lists(st.integers(0, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0),
)
def test_random_split_partitions(hundred: Dataset, n: int, seed: int, weights: list[int]) -> None:
    ds = hundred.subset(np.arange(n))
    fractions = tuple(w / sum(weights) for w in weights)
    split = make_split(ds, "random", seed=seed, fractions=fractions)
    _check_partition(split, n)
    for size, f in zip(split.sizes().values(), fractions, strict=True):
        assert abs(size - f * n) < 1.0
        if f == 0:
            assert size == 0
    again = make_split(ds, "random", seed=seed, fractions=fractions)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(split, part), getattr(again, part))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), perm_seed=st.integers(0, 2**32 - 1))
def test_random_split_depends_on_names_not_row_order(hundred: Dataset, seed: int, perm_seed: int) -> None:
    perm = np.random.default_rng(perm_seed).permutation(len(hundred))
    shuffled = hundred.subset(perm)
    a = make_split(hundred, "random", seed=seed)
    b = make_split(shuffled, "random", seed=seed)
    for part in ("train", "val", "test"):
        assert sorted(_names(hundred, getattr(a, part))) == sorted(_names(shuffled, getattr(b, part)))


def test_random_split_seeds_differ_and_generators_work(hundred: Dataset) -> None:
    a = make_split(hundred, "random", seed=0)
    b = make_split(hundred, "random", seed=1)
    assert not np.array_equal(a.train, b.train)
    assert a.sizes() == {"train": 80, "val": 10, "test": 10}
    assert a.name == "random(seed=0, fractions=(0.8, 0.1, 0.1))"
    g1 = make_split(hundred, "random", seed=np.random.default_rng(5))
    g2 = make_split(hundred, "random", seed=np.random.default_rng(5))
    assert np.array_equal(g1.val, g2.val)
    _check_partition(g1, len(hundred))


_CHILD = """
import json, sys
from benchmark.dataset import read_records
from benchmark.splits import make_split
ds = read_records(sys.argv[1])
s = make_split(ds, "random", seed=7)
print(json.dumps({p: [ds.names[i] for i in getattr(s, p)] for p in ("train", "val", "test")}))
"""


def test_random_split_is_the_same_in_other_processes(anb_kit: Kit) -> None:
    """Unlike upstream's set-ordered split, PYTHONHASHSEED does not change it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = anb_kit.write_dir(Path(tmp), anb_kit.records(range(40)))
        here = make_split(read_records(root), "random", seed=7)
        ds = read_records(root)
        want = {p: [ds.names[i] for i in getattr(here, p)] for p in ("train", "val", "test")}
        for hash_seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": hash_seed}
            out = subprocess.run([sys.executable, "-c", _CHILD, str(root)], capture_output=True, text=True,
                                 env=env, cwd=REPO, check=True, timeout=120)
            assert json.loads(out.stdout) == want


def test_bad_arguments(small: Dataset) -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        make_split(small, "random", fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="three"):
        make_split(small, "random", fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        make_split(small, "random", fractions=(1.2, -0.1, -0.1))
    with pytest.raises(ValueError, match="unknown split kind 'rnd'"):
        make_split(small, "rnd")
    with pytest.raises(ValueError, match="overlap"):
        Split(np.array([1, 2]), np.array([2]), np.array([], dtype=np.int64), "bad")


def test_all_puts_everything_in_train(small: Dataset) -> None:
    split = make_split(small, "all")
    assert np.array_equal(split.train, np.arange(len(small)))
    assert split.val.size == 0 and split.test.size == 0 and split.name == "all"


# ------------------------------------------------------------------------------------------ real data


@pytest.mark.dataset
def test_default_split_on_the_real_data(anb_dataset: Dataset, anb_split_dir: Path) -> None:
    listed = read_split_files(anb_split_dir)
    assert [len(listed[p]) for p in ("train", "val", "test")] == [4100, 512, 512]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = make_split(anb_dataset, "default", split_dir=anb_split_dir)
        found = make_split(anb_dataset, "default")  # the split files found like the program finds them
    assert found.sizes() == split.sizes()
    _all = set(anb_dataset.names)
    for part in ("train", "val", "test"):
        assert _names(anb_dataset, getattr(split, part)) == sorted(
            (n for n in listed[part] if n in _all), key=lambda n: int(n.split("_")[1])
        )
    assert split.unassigned == len(anb_dataset) - sum(split.sizes().values())
    if anb_dataset.sha256 == DEV_SHA256:
        assert split.sizes() == {"train": 4100, "val": 512, "test": 0}
        assert split.unassigned == 14 and split.absent == {"train": 0, "val": 0, "test": 512}
        assert any(issubclass(w.category, SplitWarning) and "test" in str(w.message) for w in caught)


@pytest.mark.dataset
def test_random_split_on_the_real_data(anb_dataset: Dataset) -> None:
    split = make_split(anb_dataset, "random", seed=0)
    _check_partition(split, len(anb_dataset))
    n = len(anb_dataset)
    assert abs(split.train.size - 0.8 * n) < 1 and abs(split.val.size - 0.1 * n) < 1
