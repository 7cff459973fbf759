"""The Accel-NASBench records as arrays: genes ``(n, 28)``, one label vector ``(n,)`` per target.

Records are upstream ``result_N.json`` files, read from a ``.tar.gz`` archive (in memory, no extraction)
or from a directory (searched recursively). Every record is validated; a bad one raises
:class:`DatasetError` naming the file and the field, or is skipped with ``skip_bad=True``. Null metrics
become NaN for that target only (never imputed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import posixpath
import re
import tarfile
import warnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import NasoptError
from benchmark.sources import DatasetNotFoundError, find_data, resolve_dataset
from benchmark.targets import TARGET_NAMES, TARGETS, get_target, is_target

#: Record file names the loader picks up; anything else in an archive or directory is ignored.
RECORD_RE = re.compile(r"result_(\d+)\.json")
#: Sections every record must have.
SECTIONS = ("architecture", "metrics", "model_info", "platform_perf")
#: How many skip reasons the warning of ``skip_bad=True`` quotes.
N_REASONS_SHOWN = 3


class DatasetError(NasoptError, ValueError):
    """The data is unreadable or a record is invalid; the message names the file, the field and the fix."""


class DatasetWarning(UserWarning):
    """Records were skipped while loading with ``skip_bad=True``."""


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    view = a.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class Dataset:
    """Accel-NASBench records as arrays (rows sorted by the integer ``N`` of ``result_N``).

    Attributes:
        names: record names (file stems such as ``"result_12"``), length ``n``.
        X: genes, ``(n, 28)`` int64 (see :mod:`benchmark.space`).
        labels: every target in :data:`benchmark.targets.TARGET_NAMES` -> ``(n,)`` float64, NaN where the
            record has no value for that target; a built benchmark's own targets (``read_records(...,
            targets=...)``) follow them.
        macs: ``(n,)`` multiply-accumulates in millions (``model_info.macs``).
        params: ``(n,)`` parameters in millions (``model_info.params``).
        source: the path the records were read from.
        sha256: SHA-256 of the archive file bytes; for a directory, of its records (see :func:`read_records`).
            A :meth:`subset` keeps the sha256 of its source.
        n_skipped: records skipped as invalid (``skip_bad=True``).

    Arrays are read-only views.
    """

    names: tuple[str, ...]
    X: IntArray
    labels: dict[str, FloatArray]
    macs: FloatArray
    params: FloatArray
    source: str
    sha256: str
    n_skipped: int = 0

    def __post_init__(self) -> None:
        n = len(self.names)
        X = np.asarray(self.X)
        if X.shape != (n, space.N_GENES) or X.dtype.kind not in "iu":
            raise ValueError(f"Dataset.X must be an integer array of shape ({n}, {space.N_GENES}), got "
                             f"{X.dtype} {X.shape}")
        missing = [t for t in TARGET_NAMES if t not in self.labels]
        extra = [t for t in self.labels if t not in TARGETS and not is_target(t)]
        if missing or extra:
            raise ValueError(f"Dataset.labels must have exactly the targets {TARGET_NAMES} (and known extra "
                             f"targets of a built benchmark); missing {missing}, unknown {extra}")
        labels: dict[str, FloatArray] = {}
        for t in (*TARGET_NAMES, *(t for t in self.labels if t not in TARGETS)):
            y = np.asarray(self.labels[t], dtype=np.float64)
            if y.shape != (n,):
                raise ValueError(f"Dataset.labels[{t!r}] must have shape ({n},), got {y.shape}")
            labels[t] = _readonly(y)
        for field in ("macs", "params"):
            v = np.asarray(getattr(self, field), dtype=np.float64)
            if v.shape != (n,):
                raise ValueError(f"Dataset.{field} must have shape ({n},), got {v.shape}")
            object.__setattr__(self, field, _readonly(v))
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "X", _readonly(X.astype(np.int64, copy=False)))
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Dataset(n={len(self)}, source={self.source!r}, sha256={self.sha256[:12]}..., " \
               f"n_skipped={self.n_skipped})"

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def subset(self, idx: ArrayLike) -> Dataset:
        """Rows selected by an index array ``(k,)`` or a boolean mask ``(n,)`` (same source and sha256)."""
        sel = np.asarray(idx)
        if sel.dtype == np.bool_:
            if sel.shape != (len(self),):
                raise IndexError(f"boolean mask must have shape ({len(self)},), got {sel.shape}")
            rows = np.flatnonzero(sel)
        else:
            if sel.size == 0:
                sel = sel.astype(np.int64)
            if sel.ndim != 1 or sel.dtype.kind not in "iu":
                raise IndexError(f"subset() takes a 1-d integer index array or a boolean mask, "
                                 f"got {sel.dtype} {sel.shape}")
            rows = sel.astype(np.int64)
            if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
                raise IndexError(f"row index out of range for a dataset of {len(self)} records")
        return Dataset(
            names=tuple(self.names[int(i)] for i in rows),
            X=self.X[rows],
            labels={t: y[rows] for t, y in self.labels.items()},
            macs=self.macs[rows],
            params=self.params[rows],
            source=self.source,
            sha256=self.sha256,
            n_skipped=self.n_skipped,
        )

    def index_of(self, names: str | Iterable[str]) -> IntArray:
        """Row positions ``(k,)`` of record names (``"result_12"``; a file name or path also works).

        Raises KeyError listing the names that are not in the dataset.
        """
        wanted = [names] if isinstance(names, str) else list(names)
        keys = [record_name(n) for n in wanted]
        pos = self._positions
        missing = [w for w, k in zip(wanted, keys, strict=True) if k not in pos]
        if missing:
            shown = ", ".join(map(repr, missing[:10]))
            if len(missing) > 10:
                shown += f" and {len(missing) - 10} more"
            raise KeyError(f"{len(missing)} record name(s) not in the dataset ({self.source}): {shown}")
        return np.fromiter((pos[k] for k in keys), dtype=np.int64, count=len(keys))


def record_name(name: str) -> str:
    """Record name of a file name or path: ``"../json/result_12.json"`` -> ``"result_12"``."""
    base = posixpath.basename(name.replace("\\", "/"))
    return base[:-5] if base.endswith(".json") else base


def load_dataset(
    path: str | os.PathLike[str] | None = None, *, skip_bad: bool = False, download: bool = True
) -> Dataset:
    """Find the data (see :func:`benchmark.sources.resolve_dataset`) and read it with :func:`read_records`."""
    return read_records(resolve_dataset(path, download=download), skip_bad=skip_bad)


# --------------------------------------------------------------------------------------------- reading


def _read_archive(path: Path) -> tuple[list[tuple[str, str, bytes]], str]:
    """``[(file name, location, bytes)]`` of the records in a tar archive, and the archive's sha256."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    out: list[tuple[str, str, bytes]] = []
    try:
        if not data:  # (tarfile would list why each of its four formats rejects it)
            raise EOFError("the file is empty, 0 bytes")
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = posixpath.basename(member.name)
                if RECORD_RE.fullmatch(base) is None:
                    continue
                fh = tar.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always have data
                    continue
                out.append((base, f"{path}:{member.name}", fh.read()))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(
            f"{path}: cannot read the archive ({type(exc).__name__}: {' '.join(str(exc).split())}); it is "
            f"truncated, corrupt or not a .tar.gz file. Delete it and re-download it (nasopt downloads it "
            f"into its cache when no data is found), or point NASOPT_DATASET at a good copy"
        ) from exc
    return out, sha


def _read_directory(path: Path) -> tuple[list[tuple[str, str, bytes]], str]:
    """``[(file name, location, bytes)]`` of the ``result_N.json`` under ``path``, and their content hash."""
    files = [p for p in path.rglob("result_*.json") if RECORD_RE.fullmatch(p.name) and p.is_file()]
    out = [(p.name, str(p), p.read_bytes()) for p in files]
    h = hashlib.sha256()
    for name, _, data in sorted(out, key=lambda r: r[0]):
        encoded = name.encode("utf-8")
        h.update(len(encoded).to_bytes(8, "little") + encoded + len(data).to_bytes(8, "little"))
        h.update(data)
    return out, h.hexdigest()


# ------------------------------------------------------------------------------------------ validation


class _BadRecord(Exception):
    """Internal: one record is invalid (message already names file and field)."""


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _section(rec: Mapping[str, Any], key: str, fname: str) -> Mapping[str, Any]:
    if key not in rec:
        raise _BadRecord(f"{fname}: missing field {key}")
    sec = rec[key]
    if not isinstance(sec, dict):
        raise _BadRecord(f"{fname}: field {key}: expected an object, got {_show(sec)}")
    return sec


def _number(node: Mapping[str, Any], path: tuple[str, ...], fname: str, *, nullable: bool) -> float:
    """Value at the last key of ``path`` in ``node`` (already the parent object) as a float; NaN for null."""
    key = path[-1]
    field = ".".join(path)
    if key not in node:
        raise _BadRecord(f"{fname}: missing field {field}")
    v = node[key]
    if v is None:
        if nullable:
            return math.nan
        raise _BadRecord(f"{fname}: field {field}: expected a number, got null")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        kind = "a number or null" if nullable else "a number"
        raise _BadRecord(f"{fname}: field {field}: expected {kind}, got {_show(v)}")
    try:
        x = float(v)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise _BadRecord(f"{fname}: field {field}: expected a finite number, got {_show(v)}")
    if x < 0:
        raise _BadRecord(f"{fname}: field {field}: expected a non-negative number, got {_show(v)}")
    return x


#: Record path of every value read, in column order: the labels (TARGET_NAMES order), then macs, params.
_VALUE_PATHS: tuple[tuple[str, ...], ...] = (
    *(TARGETS[t].record_path for t in TARGET_NAMES),
    ("model_info", "macs"),
    ("model_info", "params"),
)
_N_LABELS = len(TARGET_NAMES)
_ACCURACY_COL = TARGET_NAMES.index("accuracy")
_MAX_ACCURACY = 100.0
_ARCH_KEYS: tuple[str, ...] = tuple(space.gene_name(j) for j in range(space.N_GENES))
_ARCH_TYPES: tuple[type, ...] = tuple(bool if k.endswith("_se") else int for k in _ARCH_KEYS)


def _check_record(fname: str, rec: Any) -> tuple[dict[str, Any], list[float]]:
    """Careful validation of one parsed record: its architecture dict and its values (``_VALUE_PATHS``
    order, NaN for null labels). Raises :class:`_BadRecord` naming the file and the field."""
    if not isinstance(rec, dict):
        raise _BadRecord(f"{fname}: expected a JSON object with fields {', '.join(SECTIONS)}, "
                         f"got {_show(rec)}")
    sections = {s: _section(rec, s, fname) for s in SECTIONS}
    values: list[float] = []
    for col, path in enumerate(_VALUE_PATHS):
        node: Mapping[str, Any] = sections[path[0]]
        if len(path) == 3:  # platform_perf.<device>.<x>_mean; a device absent altogether = not measured
            if path[1] not in node:
                values.append(math.nan)
                continue
            sub = node[path[1]]
            if not isinstance(sub, dict):
                raise _BadRecord(f"{fname}: field {path[0]}.{path[1]}: expected an object, got {_show(sub)}")
            node = sub
        x = _number(node, path, fname, nullable=col < _N_LABELS)
        if col == _ACCURACY_COL and x > _MAX_ACCURACY:
            raise _BadRecord(f"{fname}: field {'.'.join(path)}: expected a percentage in [0, 100], "
                             f"got {_show(x)}")
        values.append(x)
    return dict(sections["architecture"]), values


def _fast_record(rec: Any) -> tuple[dict[str, Any], list[Any], list[float | None]] | None:
    """The common, well-formed case in few operations: ``(architecture dict, 28 gene values, values)``;
    None as soon as anything is unusual (then :func:`_check_record` decides and explains)."""
    try:
        arch = rec["architecture"]
        genes = [arch[k] for k in _ARCH_KEYS]
        values = [rec[p[0]][p[1]][p[2]] if len(p) == 3 else rec[p[0]][p[1]] for p in _VALUE_PATHS]
    except (KeyError, TypeError, IndexError):
        return None
    if len(arch) != space.N_GENES or tuple(map(type, genes)) != _ARCH_TYPES:
        return None
    for col, v in enumerate(values):
        if v is None:
            if col >= _N_LABELS:
                return None
        elif type(v) is not float or not 0.0 <= v < math.inf:
            return None
    if values[_ACCURACY_COL] is not None and values[_ACCURACY_COL] > _MAX_ACCURACY:
        return None
    return arch, genes, values


_ARCH_PREFIX = re.compile(r"^architecture \d+: ")
_ARCH_KEY = re.compile(r"'(block\d_(?:e|k|l|se))'")
_ARCH_BLOCK_FIELD = re.compile(r"block (\d) field '(e|k|l|se)'")


def _arch_reason(fname: str, exc: space.InvalidArchitectureError) -> str:
    msg = _ARCH_PREFIX.sub("", str(exc))
    m = _ARCH_KEY.search(msg)
    key = m.group(1) if m else None
    if key is None and (m2 := _ARCH_BLOCK_FIELD.search(msg)) is not None:
        key = f"block{m2.group(1)}_{m2.group(2)}"
    return f"{fname}: field architecture{'.' + key if key else ''}: {msg}"


def _genes_of(fname: str, arch: Mapping[str, Any]) -> IntArray:
    """``(28,)`` genes of one architecture dict via :func:`benchmark.space.from_dicts`; raises _BadRecord."""
    try:
        return space.from_dicts([arch])[0]
    except space.InvalidArchitectureError as exc:
        raise _BadRecord(_arch_reason(fname, exc)) from None


def _extra_value(rec: Any, path: tuple[str, ...], fname: str) -> float:
    """The value of an extra (built benchmark's) target at ``path`` of a record; NaN when absent or null."""
    node = rec
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return math.nan
    if not isinstance(node, dict):
        raise _BadRecord(f"{fname}: field {'.'.join(path[:-1])}: expected an object, got {_show(node)}")
    if path[-1] not in node:
        return math.nan
    return _number(node, path, fname, nullable=True)


def _parse_all(
    entries: list[tuple[str, str, bytes]],
    source: str,
    sha: str,
    skip_bad: bool,
    extra_targets: tuple[str, ...] = (),
) -> Dataset:
    """Validate and stack records (sorted by record number); raise on or skip bad ones. ``extra_targets``
    (a built benchmark's own targets) are read from their record paths too."""
    seen: dict[str, str] = {}
    for fname, where, _ in entries:
        if fname in seen:
            raise DatasetError(f"{source}: record {fname} appears twice ({seen[fname]} and {where}); "
                               f"keep one copy")
        seen[fname] = where
    if not entries:
        raise DatasetError(f"{source}: no result_N.json records found; point the loader at the "
                           f"Accel-NASBench archive (anb_dataset_jsons.tar.gz) or a directory of records")
    entries = sorted(entries, key=lambda e: int(e[0][7:-5]))  # "result_" N ".json"

    n = len(entries)
    X = np.zeros((n, space.N_GENES), dtype=np.int64)
    table = np.full((n, len(_VALUE_PATHS)), np.nan)
    bad: dict[int, str] = {}  # entry position -> reason
    fast_pos: list[int] = []
    fast_archs: list[dict[str, Any]] = []
    fast_genes: list[list[Any]] = []
    fast_values: list[list[float | None]] = []
    extra_paths = [get_target(t).record_path for t in extra_targets]
    extra_table = np.full((n, len(extra_paths)), np.nan)
    for i, (fname, _, raw) in enumerate(entries):
        try:
            rec = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            bad[i] = f"{fname}: invalid JSON ({exc})"
            continue
        except RecursionError:
            bad[i] = f"{fname}: invalid JSON (nested too deeply)"
            continue
        if extra_paths:
            try:
                extra_table[i] = [_extra_value(rec, p, fname) for p in extra_paths]
            except _BadRecord as exc:
                bad[i] = str(exc)
                continue
        fast = _fast_record(rec)
        if fast is not None:
            fast_pos.append(i)
            fast_archs.append(fast[0])
            fast_genes.append(fast[1])
            fast_values.append(fast[2])
            continue
        try:
            arch, values = _check_record(fname, rec)
            X[i] = _genes_of(fname, arch)
            table[i] = values
        except _BadRecord as exc:
            bad[i] = str(exc)

    if fast_pos:
        pos = np.asarray(fast_pos)
        table[pos] = np.array(fast_values, dtype=np.float64)  # None -> NaN
        real = np.array(fast_genes, dtype=np.int64)  # (k, 28) real values, SE as 0/1
        try:
            X[pos] = space.encode_values(real[:, 0::4], real[:, 1::4], real[:, 2::4], real[:, 3::4])
        except space.InvalidArchitectureError:
            for i, arch in zip(fast_pos, fast_archs, strict=True):  # name every bad one
                try:
                    X[i] = _genes_of(entries[i][0], arch)
                except _BadRecord as exc:
                    bad[i] = str(exc)

    if bad:
        order = sorted(bad)
        if not skip_bad:
            more = f" (and {len(bad) - 1} more invalid record(s))" if len(bad) > 1 else ""
            raise DatasetError(f"{bad[order[0]]}{more} [record {entries[order[0]][1]}]; fix or remove the "
                               f"record, or load with skip_bad=True to skip invalid records")
        if len(bad) == n:
            raise DatasetError(f"{source}: all {n} records are invalid; first problem: {bad[order[0]]}")
        shown = "; ".join(bad[i] for i in order[:N_REASONS_SHOWN])
        warnings.warn(
            f"skipped {len(bad)} invalid record(s) of {n} in {source}: {shown}"
            + (" ..." if len(bad) > N_REASONS_SHOWN else ""),
            DatasetWarning,
            stacklevel=3,
        )
    keep = np.array([i for i in range(n) if i not in bad], dtype=np.int64)
    return Dataset(
        names=tuple(entries[i][0][:-5] for i in keep),
        X=X[keep],
        labels={
            **{t: table[keep, c] for c, t in enumerate(TARGET_NAMES)},
            **{t: extra_table[keep, c] for c, t in enumerate(extra_targets)},
        },
        macs=table[keep, _N_LABELS],
        params=table[keep, _N_LABELS + 1],
        source=source,
        sha256=sha,
        n_skipped=len(bad),
    )


def read_records(
    path: str | os.PathLike[str], *, skip_bad: bool = False, targets: Iterable[str] = ()
) -> Dataset:
    """Read and validate the records of a ``.tar.gz`` archive (in memory) or a directory (recursively;
    a directory holding an ``anb_dataset*.tar.gz`` archive means that archive).

    ``sha256`` is the hash of the archive file bytes; for a directory it is the hash of its records sorted
    by file name, each fed as ``len(name) | name | len(bytes) | bytes`` (lengths as 8-byte little-endian),
    so the same record files give the same hash wherever they lie.
    Raises :class:`DatasetError` for an unreadable archive or (unless ``skip_bad``) an invalid record.
    ``targets``: more targets to read than the built-in ones (a built benchmark's devices, registered with
    :func:`benchmark.targets.register_target`), each from its record path (absent = NaN).
    """
    p = Path(path).expanduser()
    if p.is_dir() and (found := find_data(p)) is not None and found.is_file():
        p = found  # a directory holding the archive, like the shared data directory
    if p.is_dir():
        entries, sha = _read_directory(p)
    elif p.is_file():
        entries, sha = _read_archive(p)
    else:
        raise DatasetNotFoundError(f"dataset path {str(p)!r} does not exist")
    extra = tuple(t for t in targets if t not in TARGETS)
    return _parse_all(entries, str(p), sha, skip_bad, extra)
