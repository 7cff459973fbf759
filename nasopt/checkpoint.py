"""Atomic, pickle-free checkpoints: a state tree as JSON + ``.npz`` arrays, plus a parquet trial table.

A state tree is made of dicts (string keys), lists/tuples, JSON scalars (``None``, bool, int, float, str)
and numpy arrays (any numeric/bool dtype, any shape). :func:`split_tree` replaces each array by a
``{"__ndarray__": "<path>"}`` marker and collects the arrays under their path keys (``"optimizer/pop_X"``);
:func:`join_tree` is its inverse. Numpy scalars become Python scalars and tuples come back as lists.

On disk a checkpoint is a directory ``<name>/`` with ``state.json``, ``arrays.npz`` and optionally
``trials_checkpoint.parquet``. :func:`save_checkpoint` writes a fresh ``<name>.tmp/`` and swaps it in with
``os.replace`` (the previous one briefly becomes ``<name>.old/``), so a process killed at any moment leaves
either the old or the new checkpoint complete; :func:`load_checkpoint` finds whichever is there, and a
complete one whose files turn out unreadable (truncated) gives way to a valid twin, else a one-line
:class:`CheckpointError` names the file. A failed write removes its ``<name>.tmp/``. That
holds for a killed *process* without ``fsync`` (the OS keeps the written pages); set
:data:`benchmark._io.FSYNC` (or pass ``fsync=True``) to also survive an OS crash or power loss, at some cost
per checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark._io import atomic_write_text, fsync_file
from benchmark.errors import NasoptError

ARRAY_MARK = "__ndarray__"
STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"
TRIALS_FILE = "trials_checkpoint.parquet"


class CheckpointError(NasoptError, ValueError):
    """A state tree cannot be stored, or a checkpoint on disk is unreadable."""


def _escape(key: str) -> str:
    """A dict key as one path component: percent-encoded except ``[A-Za-z0-9_-]`` (``/``, ``.``, controls)."""
    from urllib.parse import quote

    return quote(key, safe="").replace(".", "%2E").replace("~", "%7E") or "%"


def split_tree(tree: Any, prefix: str = "") -> tuple[Any, dict[str, np.ndarray]]:
    """Split ``tree`` into a JSON-able tree and ``{path: array}``; arrays are replaced by markers."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, np.ndarray):
            if node.dtype.kind not in "biufc":
                raise CheckpointError(
                    f"state entry {path or '/'!r}: arrays of dtype {node.dtype} cannot be stored without "
                    f"pickle; use numeric or bool arrays (or lists of str)"
                )
            key = path or "root"
            arrays[key] = node
            return {ARRAY_MARK: key}
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if not isinstance(k, str):
                    raise CheckpointError(
                        f"state entry {path or '/'!r}: dict key {k!r} is a {type(k).__name__}; "
                        "JSON needs str keys"
                    )
                if k == ARRAY_MARK:
                    raise CheckpointError(f"state entry {path or '/'!r}: the key {ARRAY_MARK!r} is reserved")
                out[k] = walk(v, f"{path}/{_escape(k)}" if path else _escape(k))
            return out
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(node)]
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise CheckpointError(
            f"state entry {path or '/'!r} has type {type(node).__name__}; a state tree holds only dicts, "
            "lists, JSON scalars and numpy arrays"
        )

    return walk(tree, prefix), arrays


def join_tree(tree: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Inverse of :func:`split_tree`."""
    if isinstance(tree, dict):
        if set(tree) == {ARRAY_MARK}:
            key = tree[ARRAY_MARK]
            if key not in arrays:
                raise CheckpointError(f"checkpoint is missing array {key!r}")
            return np.asarray(arrays[key])
        return {k: join_tree(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join_tree(v, arrays) for v in tree]
    return tree


def save_checkpoint(
    directory: str | Path,
    state: Mapping[str, Any],
    trials: pd.DataFrame | None = None,
    fsync: bool | None = None,
) -> None:
    """Atomically replace the checkpoint ``directory`` by ``state`` (+ ``trials``)."""
    final = Path(directory)
    tmp = final.with_name(final.name + ".tmp")
    old = final.with_name(final.name + ".old")
    json_tree, arrays = split_tree(dict(state))
    text = json.dumps(json_tree, indent=1, allow_nan=True)
    if not final.exists() and not old.exists() and checkpoint_path(directory) == tmp:
        os.replace(tmp, final)  # the only complete checkpoint (a kill just before its first swap): keep it
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        with open(tmp / ARRAYS_FILE, "wb") as fh:
            savez: Any = np.savez  # (numpy's stubs reject **arrays: the allow_pickle keyword)
            savez(fh, **arrays)
        fsync_file(tmp / ARRAYS_FILE, fsync)
        if trials is not None:
            trials.to_parquet(tmp / TRIALS_FILE, index=False)
            fsync_file(tmp / TRIALS_FILE, fsync)
        # written last and atomically: a checkpoint.tmp/ holding state.json is complete, whenever a kill hits
        atomic_write_text(tmp / STATE_FILE, text, fsync)
    except BaseException:  # a full disk, a signal: leave no half-written checkpoint.tmp/ behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    # else: a crash between the two renames of an earlier save left only `old`; keep it until `tmp` is in
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _candidates(directory: str | Path) -> list[Path]:
    final = Path(directory)
    # ``.tmp`` last: complete (state.json is written last) only when a kill hit between its last write and
    # the swap of a first checkpoint
    return [final.with_name(final.name + suffix) for suffix in ("", ".old", ".tmp")]


def checkpoint_path(directory: str | Path) -> Path | None:
    """The complete checkpoint at ``directory`` (or its ``.old``/``.tmp`` twin after an interrupted swap), or
    None."""
    for cand in _candidates(directory):
        if (cand / STATE_FILE).is_file() and (cand / ARRAYS_FILE).is_file():
            return cand
    return None


def _read(path: Path) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One checkpoint directory; a file that cannot be read is named in a one-line CheckpointError."""
    current = path / STATE_FILE
    try:
        json_tree = json.loads(current.read_text(encoding="utf-8"))
        current = path / ARRAYS_FILE
        with np.load(current, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        current = path / TRIALS_FILE
        trials = pd.read_parquet(current) if current.is_file() else None
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{current} is truncated or corrupt ({type(exc).__name__}: {detail})") from exc
    state = join_tree(json_tree, arrays)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} does not hold a mapping")
    return state, trials


def load_checkpoint(directory: str | Path) -> tuple[dict[str, Any], pd.DataFrame | None] | None:
    """``(state, trials)`` of the checkpoint at ``directory``, or None when there is none.

    A complete checkpoint whose files cannot be read gives way to a valid ``.old`` (or ``.tmp``) twin;
    when none is valid, a one-line :class:`CheckpointError` names the bad file.
    """
    first: CheckpointError | None = None
    for cand in _candidates(directory):
        if not ((cand / STATE_FILE).is_file() and (cand / ARRAYS_FILE).is_file()):
            continue
        try:
            return _read(cand)
        except CheckpointError as exc:
            if cand.name.endswith(".tmp"):  # a write that never completed (older versions wrote state.json
                continue  # in place): it is no checkpoint, never a reason to refuse the run
            first = first or exc
    if first is not None:
        raise CheckpointError(
            f"checkpoint unreadable: {first}; no valid {Path(directory).name}.old/ to fall back on; "
            "use another "
            "run directory, or start afresh here (Python: overwrite=True; nasopt search: overwrite=true)"
        ) from first
    return None
