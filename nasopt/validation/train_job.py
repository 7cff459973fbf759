"""The validation plan's training job: train one candidate with a scheme through the training package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import ConfigurationError


def run_train_job(job: Any, job_dir: Path) -> dict[str, Any]:
    """Train ``job.arch`` with ``job.settings`` (``scheme`` and the training options) into ``job_dir/train``;
    returns ``val_top1``, ``val_top5``, ``train_time``, the output directory and whether the accuracy compares
    with the benchmark's (the proxified scheme on ImageNet)."""
    try:
        from nasopt.validation import train as training
    except ImportError as exc:
        raise ConfigurationError(f"training jobs need the training package ({exc})") from exc
    settings = dict(job.settings)
    return dict(training.run_for_validation(job.arch, job_dir / "train", **settings))
