"""A benchmark build's training job (``nasopt benchmark build``): one architecture in the build's skeleton,
with torch's thread count set first (the validation stage owns torch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def train_record(
    arch: Any,
    scheme: Any,
    data: Mapping[str, Any],
    out_dir: str,
    *,
    seed: int,
    skeleton: Any,
    threads: int | None,
    stop: Any = None,
) -> dict[str, Any]:
    """Train ``arch`` (:func:`nasopt.validation.train.train`) and return its Accel-NASBench record; with a
    ``stop`` flag (:class:`nasopt.signals.StopFlag`) the caller handles the signals, and a raised flag stops
    the training at its next step with a checkpoint (``TrainingStopped``)."""
    import torch

    from nasopt.validation.train import train

    if threads is not None:
        torch.set_num_threads(int(threads))
    res = train(
        arch,
        scheme,
        dict(data),
        out_dir,
        seed=seed,
        skeleton=skeleton,
        stop=stop,
        handle_signals=stop is None,
    )
    return dict(res.record)
