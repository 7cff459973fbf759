"""One training job of :class:`nasopt.proxy.search.TrainingEvaluator`: an architecture x scheme x data
fraction x seed, trained by :func:`nasopt.validation.train.train` into its run directory (the run's
Accel-NASBench record is the cache: a job whose record exists is read, never trained again).

A job is a plain JSON-able dict (``arch``, ``scheme`` (every TrainScheme field), ``data``, ``out_dir``,
``seed``, ``skeleton``, ``device``, ``threads``, ``verbose``) so it can run in a worker process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = json.loads(path.read_text())
        return out
    except (OSError, ValueError):
        return None


def job_record(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record of a finished training job, or None."""
    from nasopt.validation.train.run import as_skeleton, genes_of, record_file, run_id
    from nasopt.validation.train.schemes import TrainScheme

    scheme = TrainScheme(**{**job["scheme"], "rrc_scale": tuple(job["scheme"]["rrc_scale"])})
    fraction = float((job.get("data") or {}).get("train_fraction", 1.0))
    rid = run_id(genes_of(job["arch"]), scheme, job["seed"], as_skeleton(job["skeleton"]), fraction)
    return _read_json(Path(job["out_dir"]) / rid / record_file(rid))


def train_job(job: Mapping[str, Any]) -> None:
    """Train one job of :class:`TrainingEvaluator` (a top-level function: it runs in worker processes);
    a finished run is left alone."""
    if job_record(job) is not None:
        return
    import torch

    from nasopt.validation.train import train
    from nasopt.validation.train.schemes import TrainScheme

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    scheme = TrainScheme(**{**job["scheme"], "rrc_scale": tuple(job["scheme"]["rrc_scale"])})
    train(
        job["arch"],
        scheme,
        job["data"],
        job["out_dir"],
        seed=job["seed"],
        device=job["device"],
        skeleton=job["skeleton"],
        verbose=bool(job.get("verbose")),
    )
