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
) -> dict[str, Any]:
    """Train ``arch`` (:func:`nasopt.validation.train.train`) and return its Accel-NASBench record."""
    import torch

    from nasopt.validation.train import train

    if threads is not None:
        torch.set_num_threads(int(threads))
    return dict(train(arch, scheme, dict(data), out_dir, seed=seed, skeleton=skeleton).record)
