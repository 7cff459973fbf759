"""Shared fixtures. Tests that need the dataset find it the way the program does (NASOPT_DATASET in CI).

No test may touch the network: ``urllib.request.urlopen`` is replaced for the whole session by a stub that
fails; tests of the download code monkeypatch their own fake server over it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import space
from benchmark.dataset import Dataset, read_records
from benchmark.sources import ENV_DATASET, DatasetNotFoundError, resolve_dataset, resolve_split_dir
from benchmark.targets import DEVICES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "accel-nasbench"


def _dataset_path() -> Path | None:
    """The data the program would use, never downloading: ``$NASOPT_DATASET`` (an error there fails loudly),
    else the user cache, else the shared development copy next to the repository; None if none exists."""
    if os.environ.get(ENV_DATASET):
        return resolve_dataset(None, download=False)
    try:
        return resolve_dataset(None, download=False)
    except DatasetNotFoundError:
        pass
    if SHARED.is_dir():
        try:
            return resolve_dataset(SHARED, download=False)
        except DatasetNotFoundError:
            return None
    return None


# kept for callers of the old name
_dataset_archive = _dataset_path


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "a test tried to reach the network through urllib.request.urlopen; "
        "monkeypatch a local fake (see tests/test_sources.py)"
    )


@pytest.fixture(scope="session", autouse=True)
def _block_network() -> Iterator[None]:
    """Session-wide: ``urllib.request.urlopen`` fails (session scope keeps hypothesis health checks happy)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(urllib.request, "urlopen", _no_network)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def anb_dataset_path() -> Path:
    """Path of the data as :func:`benchmark.sources.resolve_dataset` resolves it (skips if absent)."""
    path = _dataset_path()
    if path is None:
        pytest.skip("Accel-NASBench data not found: set NASOPT_DATASET")
    return path


@pytest.fixture(scope="session")
def anb_records(anb_dataset_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Raw upstream records ``(file name, parsed JSON)`` from the data (archive or directory)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if anb_dataset_path.is_dir():
        for p in sorted(anb_dataset_path.rglob("result_*.json")):
            out.append((p.name, json.loads(p.read_bytes())))
        return out
    with tarfile.open(anb_dataset_path, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                fh = tar.extractfile(member)
                assert fh is not None
                out.append((Path(member.name).name, json.loads(fh.read())))
    return out


@pytest.fixture(scope="session")
def anb_dataset(anb_dataset_path: Path) -> Dataset:
    """The loaded :class:`benchmark.dataset.Dataset` (skips if the data is absent)."""
    return read_records(anb_dataset_path)


@pytest.fixture(scope="session")
def anb_split_dir(anb_dataset_path: Path) -> Path:
    """Directory of the default split files for the resolved data (skips if absent; never downloads)."""
    found = resolve_split_dir(anb_dataset_path)
    if found is None:
        pytest.skip("default split files not found next to the data or in the cache")
    return found


Records = dict[str, dict[str, Any] | bytes]


class RecordKit:
    """Builds synthetic upstream-style records and writes them as a directory or a ``.tar.gz``."""

    @staticmethod
    def record(seed: int) -> dict[str, Any]:
        """A valid record (deterministic in ``seed``) with the upstream layout and plausible numbers."""
        rng = np.random.default_rng(seed)
        arch = space.to_dicts(space.sample(1, rng))[0]
        perf: dict[str, Any] = {}
        for d in ("zcu102", "vck190"):
            perf[f"latency_{d}"] = {"latency_mean": float(rng.uniform(1, 10)), "latency_std": None}
        for d in DEVICES:
            perf[f"throughput_{d}"] = {
                "throughput_mean": float(rng.uniform(100, 10000)),
                "throughput_std": float(rng.uniform(0, 10)),
            }
        return {
            "architecture": arch,
            "metrics": {
                "val_top1": float(rng.uniform(50, 70)),
                "val_top5": float(rng.uniform(75, 90)),
                "train_time": float(rng.uniform(1000, 3000)),
            },
            "model_info": {"macs": float(rng.uniform(100, 600)), "params": float(rng.uniform(2, 8))},
            "platform_perf": perf,
        }

    @staticmethod
    def records(numbers: list[int] | range) -> Records:
        """``{"result_N.json": record}`` for the given record numbers."""
        return {f"result_{n}.json": RecordKit.record(n) for n in numbers}

    @staticmethod
    def encode(rec: dict[str, Any] | bytes) -> bytes:
        return rec if isinstance(rec, bytes) else json.dumps(rec).encode()

    @staticmethod
    def write_dir(root: Path, records: Records, sub: str = "anb_dataset_jsons") -> Path:
        """Write records as ``root/sub/result_N.json``; returns ``root``."""
        d = root / sub if sub else root
        d.mkdir(parents=True, exist_ok=True)
        for name, rec in records.items():
            (d / name).write_bytes(RecordKit.encode(rec))
        return root

    @staticmethod
    def write_tar(path: Path, records: Records, prefix: str = "anb_dataset_jsons/") -> Path:
        """Write records into a ``.tar.gz`` under ``prefix`` (upstream layout); returns ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w:gz") as tar:
            for name, rec in records.items():
                data = RecordKit.encode(rec)
                info = tarfile.TarInfo(prefix + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path


@pytest.fixture(scope="session")
def anb_kit() -> type[RecordKit]:
    """Synthetic-record helpers (:class:`RecordKit`) for dataset, source and split tests."""
    return RecordKit


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny torch ops (REINFORCE, BO) only wait on each other's threads on a 2-core machine."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
