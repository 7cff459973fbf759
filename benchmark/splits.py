"""Train/validation/test splits of a :class:`~benchmark.dataset.Dataset` as row-index arrays.

- ``"default"``: the upstream default split files (``{train,val,test}_paths.json``), matched on the record
  file name. Records listed there but absent from the data are reported in ``Split.absent`` (and warned
  about); records in the data but in no file are counted in ``Split.unassigned``.
- ``"random"``: a seeded shuffle with a :class:`numpy.random.Generator`, after ordering the records by
  name, so it is the same in every process (upstream's split iterated over a Python ``set`` of path
  strings, whose order changes with ``PYTHONHASHSEED``, and lost one record to rounding; neither happens
  here: every record lands in exactly one part).
- ``"all"``: every record in ``train``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark._typing import IntArray
from benchmark.dataset import Dataset, DatasetError, _readonly, record_name
from benchmark.sources import SPLIT_NAMES, SPLIT_SUBDIR, cache_dir, resolve_split_dir

SplitKind = Literal["default", "random", "all"]
PARTS: tuple[str, ...] = ("train", "val", "test")


class SplitWarning(UserWarning):
    """Split-file records that are not in the dataset (e.g. the held-out test part of the dev data)."""


@dataclass(frozen=True, eq=False)
class Split:
    """Disjoint, sorted row indices into a Dataset.

    Attributes:
        train, val, test: ``(k,)`` int64 row indices, sorted, pairwise disjoint.
        name: how the split was made, e.g. ``"default"`` or ``"random(seed=0, fractions=(0.8, 0.1, 0.1))"``.
        unassigned: records of the dataset in no part (``"default"`` only).
        absent: per part, how many records its split file lists that the dataset lacks (``"default"`` only).
    """

    train: IntArray
    val: IntArray
    test: IntArray
    name: str
    unassigned: int = 0
    absent: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in PARTS:
            a = np.asarray(getattr(self, part))
            if a.size == 0:
                a = a.astype(np.int64)
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise ValueError(f"Split.{part} must be a 1-d integer index array, got {a.dtype} {a.shape}")
            object.__setattr__(self, part, _readonly(np.sort(a.astype(np.int64))))
        allidx = np.concatenate([self.train, self.val, self.test])
        if np.unique(allidx).size != allidx.size:
            raise ValueError(f"split {self.name!r}: train/val/test overlap or repeat rows")

    def sizes(self) -> dict[str, int]:
        """Number of rows per part: ``{"train": ..., "val": ..., "test": ...}``."""
        return {part: int(getattr(self, part).size) for part in PARTS}

    def summary(self) -> str:
        """One line, e.g. ``default: train 4100, val 512, test 0 (512 listed but absent), 14 unassigned``."""
        parts = []
        for part, size in self.sizes().items():
            extra = f" ({self.absent[part]} listed but absent)" if self.absent.get(part) else ""
            parts.append(f"{part} {size}{extra}")
        tail = f", {self.unassigned} unassigned" if self.unassigned else ""
        return f"{self.name}: {', '.join(parts)}{tail}"


def read_split_files(split_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Record names per part from ``{train,val,test}_paths.json`` in ``split_dir`` (file names only).

    Raises DatasetError for a missing or malformed file, a repeated name, or a name in two parts.
    """
    d = Path(split_dir)
    out: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for part, fname in zip(PARTS, SPLIT_NAMES, strict=True):
        path = d / fname
        if not path.is_file():
            raise DatasetError(f"split file {path} not found; a split directory holds "
                               f"{', '.join(SPLIT_NAMES)}")
        try:
            paths: Any = json.loads(path.read_bytes())
        except ValueError as exc:
            raise DatasetError(f"{path}: invalid JSON ({exc}); re-download the split files") from None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise DatasetError(f"{path}: expected a JSON list of record paths (strings)")
        names = [record_name(p) for p in paths]
        for name in names:
            if name in owner:
                where = "twice" if owner[name] == part else f"in both {owner[name]} and {part}"
                raise DatasetError(f"{path}: record {name} is listed {where}; a record belongs to one part")
            owner[name] = part
        out[part] = names
    return out


def _default_split(dataset: Dataset, split_dir: str | os.PathLike[str] | None) -> Split:
    if split_dir is None:
        found = resolve_split_dir(dataset.source)
        if found is None:
            base = Path(dataset.source)
            base = base if base.is_dir() else base.parent
            raise DatasetError(
                f"default split files ({', '.join(SPLIT_NAMES)}) not found in {base / SPLIT_SUBDIR} or "
                f"{cache_dir() / SPLIT_SUBDIR}; place them there (benchmark.sources.download_splits() "
                f"fetches them), pass split_dir=..., or use kind='random'"
            )
        split_dir = found
    listed = read_split_files(split_dir)
    pos = {name: i for i, name in enumerate(dataset.names)}
    idx: dict[str, IntArray] = {}
    absent: dict[str, int] = {}
    for part in PARTS:
        rows = [pos[n] for n in listed[part] if n in pos]
        idx[part] = np.asarray(rows, dtype=np.int64)
        absent[part] = len(listed[part]) - len(rows)
    n_assigned = sum(a.size for a in idx.values())
    split = Split(
        train=idx["train"],
        val=idx["val"],
        test=idx["test"],
        name="default",
        unassigned=len(dataset) - n_assigned,
        absent=absent,
    )
    missing = [p for p in PARTS if absent[p]]
    if missing:
        details = "; ".join(
            f"{p}: {absent[p]} of {len(listed[p])} listed records absent"
            + (" (this part is empty)" if idx[p].size == 0 else "")
            for p in missing
        )
        note = ""
        if idx["test"].size == 0 and absent["test"]:
            note = (" (the development archive holds out the upstream test split; use the full data, "
                    "anb_dataset_jsons.tar.gz, for test numbers)")
        warnings.warn(
            f"default split of {dataset.source}: {details}; absent records are left out{note}",
            SplitWarning,
            stacklevel=3,
        )
    return split


def _name_order(names: tuple[str, ...]) -> IntArray:
    """Row order by record name: ``result_N`` by the integer N, other names after them, alphabetically."""

    def key(i: int) -> tuple[int, int, str]:
        name = names[i]
        stem = name[7:] if name.startswith("result_") else ""
        return (0, int(stem), "") if stem.isdigit() else (1, 0, name)

    return np.asarray(sorted(range(len(names)), key=key), dtype=np.int64)


def _check_fractions(fractions: tuple[float, ...] | list[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or not math.isclose(sum(fr), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test) summing to 1, "
                         f"got {tuple(fractions)}")
    return fr[0], fr[1], fr[2]


def _random_split(
    dataset: Dataset, seed: int | np.random.Generator, fractions: tuple[float, float, float]
) -> Split:
    n = len(dataset)
    # part sizes by largest remainder: they sum to n exactly and a zero fraction gives an empty part
    exact = [f * n for f in fractions]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda j: (-(exact[j] - sizes[j]), j))
    for j in by_remainder[: n - sum(sizes)]:
        sizes[j] += 1
    n_train, n_val = sizes[0], sizes[1]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = _name_order(dataset.names)[rng.permutation(n)]
    label = "<generator>" if isinstance(seed, np.random.Generator) else str(int(seed))
    return Split(
        train=order[:n_train],
        val=order[n_train : n_train + n_val],
        test=order[n_train + n_val :],
        name=f"random(seed={label}, fractions={fractions})",
    )


def make_split(
    dataset: Dataset,
    kind: SplitKind | str = "default",
    *,
    seed: int | np.random.Generator = 0,
    fractions: tuple[float, ...] | list[float] = (0.8, 0.1, 0.1),
    split_dir: str | os.PathLike[str] | None = None,
) -> Split:
    """Split ``dataset`` into train/val/test row indices.

    Args:
        kind: ``"default"`` (upstream split files, found next to the data or in the cache unless
            ``split_dir`` is given), ``"random"`` (seeded shuffle by ``fractions``) or ``"all"``.
        seed: seed (or Generator) of the random split; the same seed gives the same split in any process.
        fractions: train/val/test fractions of the random split; they must sum to 1.
        split_dir: directory with ``{train,val,test}_paths.json`` for the default split.
    """
    if kind == "default":
        return _default_split(dataset, split_dir)
    if kind == "random":
        return _random_split(dataset, seed, _check_fractions(fractions))
    if kind == "all":
        empty = np.zeros(0, dtype=np.int64)
        return Split(train=np.arange(len(dataset), dtype=np.int64), val=empty, test=empty, name="all")
    raise ValueError(f"unknown split kind {kind!r}; use 'default', 'random' or 'all'")
