"""The parts of the full scheme taken from timm (RMSprop-TF, model EMA, RandAugment, random erasing).

timm needs torchvision, and torchvision a matching torch (``torch==2.14.1 torchvision==0.29.1``), so it is an
optional extra (``pip install 'nasopt[train-full]'``); without it the full scheme is refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from benchmark.errors import ConfigurationError


def require_timm(what: str) -> Any:
    """The ``timm`` module, or a one-line error naming what needed it."""
    try:
        import timm
    except ImportError as exc:
        raise ConfigurationError(
            f"{what} uses timm's implementation, which is not installed: pip install 'nasopt[train-full]' "
            f"(timm with torch==2.14.1 torchvision==0.29.1)"
        ) from exc
    return timm


def rmsprop_tf(params: Iterable[Any], lr: float, *, alpha: float, eps: float, momentum: float) -> Any:
    """timm's TensorFlow-style RMSprop (eps inside the square root, momentum on the scaled step)."""
    require_timm("optimizer=rmsprop_tf")
    from timm.optim import RMSpropTF

    return RMSpropTF(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum)


def model_ema(model: torch.nn.Module, decay: float) -> Any:
    """timm's ``ModelEmaV3``: an exponential moving average of the weights and buffers (``.module``)."""
    require_timm("ema_decay")
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay)


def rand_augment(spec: str, resolution: int, mean: tuple[float, float, float]) -> Any:
    """timm's RandAugment for PIL images, e.g. ``spec="rand-m9-mstd0.5"``."""
    require_timm("randaugment")
    from timm.data.auto_augment import rand_augment_transform

    hparams = {"translate_const": int(resolution * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
    return rand_augment_transform(spec, hparams)


def random_erasing(probability: float, device: torch.device) -> Any:
    """timm's per-pixel random erasing on normalised ``(N, 3, H, W)`` batches."""
    require_timm("random_erasing")
    from timm.data.random_erasing import RandomErasing

    return RandomErasing(probability=probability, mode="pixel", device=str(device))
