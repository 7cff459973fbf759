"""The validation plan's training job: train one candidate with a scheme through the training package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import ConfigurationError

#: job settings that go to :class:`~nasopt.validation.train.DataConfig`; the rest override the scheme
_DATA_KEYS = ("data", "root", "train_fraction", "workers", "backend", "val_batch")
_RUN_KEYS = ("seed", "device", "deterministic", "threads")


def run_train_job(job: Any, job_dir: Path) -> dict[str, Any]:
    """Train ``job.arch`` with ``job.settings`` (``scheme``, data keys, scheme overrides such as
    ``epochs=2``) into ``job_dir/train``; returns ``val_top1``, ``val_top5``, ``train_time``, the run
    directory, and whether the accuracy compares with the benchmark's (the proxified scheme on ImageNet)."""
    from nasopt.validation.train import DataConfig, get_scheme, train

    settings = dict(job.settings)
    scheme_name = settings.pop("scheme", None)
    if not scheme_name:
        raise ConfigurationError("a training job needs a scheme (smoke, proxified, full)")
    data_opts = {k: settings.pop(k) for k in list(settings) if k in _DATA_KEYS}
    if "data" in data_opts:
        data_opts["root"] = data_opts.pop("data")
    run_opts = {k: settings.pop(k) for k in list(settings) if k in _RUN_KEYS}
    threads = run_opts.pop("threads", None)
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    scheme = get_scheme(scheme_name, **settings)
    result = train(job.arch, scheme, DataConfig(**data_opts), job_dir / "train", handle_signals=False,
                   **run_opts)
    metrics = result.record["metrics"]
    root = str(data_opts.get("root") or "")
    return {
        "val_top1": metrics.get("val_top1"),
        "val_top5": metrics.get("val_top5"),
        "train_time": metrics.get("train_time"),
        "run_dir": str(result.run_dir),
        "scheme": scheme.name,
        # only the dataset's own scheme on ImageNet predicts what the benchmark's accuracy target means
        "comparable": scheme.name == "proxified" and "imagenet" in root.lower(),
    }
