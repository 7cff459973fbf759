"""Training checkpoints: atomic ``torch.save`` files of plain tensors, dicts and lists (loaded with
``weights_only=True``, so no pickle code runs on load), one per rank and step, the last two kept.

File names: ``<dir>/step<global step, 9 digits>.rank<r>.pt``. A run resumes from the newest step that every
rank has written (a kill between two ranks' writes leaves the previous step for all of them).
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.errors import NasoptError

_NAME = re.compile(r"step(\d{9})\.rank(\d+)\.pt")
KEEP = 2


class CheckpointError(NasoptError, RuntimeError):
    """A training checkpoint could not be read or does not belong to this run."""


def path_for(directory: Path, step: int, rank: int) -> Path:
    """The checkpoint file of ``rank`` at global ``step``."""
    return directory / f"step{step:09d}.rank{rank}.pt"


def steps_of(directory: Path, rank: int) -> list[int]:
    """Global steps for which ``rank`` has a checkpoint, ascending."""
    if not directory.is_dir():
        return []
    out = [
        int(m.group(1))
        for p in directory.iterdir()
        if (m := _NAME.fullmatch(p.name)) and int(m.group(2)) == rank
    ]
    return sorted(out)


def save(state: dict[str, Any], directory: Path, step: int, rank: int) -> Path:
    """Write ``state`` atomically (temporary file, fsync, ``os.replace``); keep this rank's last two."""
    directory.mkdir(parents=True, exist_ok=True)
    target = path_for(directory, step, rank)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in steps_of(directory, rank)[:-KEEP]:
        path_for(directory, old, rank).unlink(missing_ok=True)
    return target


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (``weights_only=True``: plain data only). For an XLA device
    the tensors stay on the CPU (``load_state_dict`` copies them into the device's parameters)."""
    if torch.device(device).type == "xla":
        device = "cpu"
    try:
        state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file; torch raises several kinds
        raise CheckpointError(
            f"{path}: unreadable training checkpoint ({type(exc).__name__}: {exc}); delete it to resume "
            f"from the one before"
        ) from exc
    return state


# ------------------------------------------------------------------------------------------ RNG states


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every RNG state of this process as tensors: torch CPU (and CUDA), numpy's and Python's globals."""
    py_version, py_state, py_gauss = random.getstate()
    _np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": [] if py_gauss is None else [float(py_gauss)],
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_gauss": [int(np_has_gauss), float(np_gauss)],
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "xla":
        from nasopt.validation.train import xla

        out["xla"] = [xla.rng_state()]  # a 64-bit seed, as a Python int
    return out


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"].cpu())
    gauss = state["python_gauss"][0] if state["python_gauss"] else None
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), gauss))
    keys = state["numpy"].cpu().numpy().astype(np.uint32)
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", keys, state["numpy_pos"], int(has_gauss), float(cached))
    )
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    if device.type == "xla" and "xla" in state:
        from nasopt.validation.train import xla

        xla.set_rng_state(int(state["xla"][0]))
