"""Shared fixtures. Tests that need the dataset find it the way the program does (NASOPT_DATASET in CI)."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "accel-nasbench"


def _dataset_archive() -> Path | None:
    env = os.environ.get("NASOPT_DATASET")
    candidates = [Path(env)] if env else []
    candidates.append(SHARED)
    for c in candidates:
        if c.is_file():
            return c
        if c.is_dir():
            hits = sorted(c.glob("anb_dataset*.tar.gz"))
            if hits:
                return hits[0]
    return None


@pytest.fixture(scope="session")
def anb_records() -> list[tuple[str, dict[str, Any]]]:
    """Raw upstream records ``(file name, parsed JSON)`` from the dataset archive (skips if absent)."""
    path = _dataset_archive()
    if path is None:
        pytest.skip("Accel-NASBench data not found: set NASOPT_DATASET")
    out: list[tuple[str, dict[str, Any]]] = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                fh = tar.extractfile(member)
                assert fh is not None
                out.append((Path(member.name).name, json.loads(fh.read())))
    return out
