"""Calibration images for INT8 quantization: a deterministic choice from an ImageNet-layout folder, and the
evaluation preprocessing that turns them into network inputs.

An ImageNet-layout folder holds one sub-folder per class (``n01440764/``, ...) with the images inside (the
``train/`` or ``val/`` folder of an ImageNet copy; a flat folder of images works too). :func:`select_images`
takes ``n`` images spread over the classes (round robin over the sorted classes, a seeded shuffle inside
each), so the same folder and seed always give the same list. :func:`load_images` applies the standard
evaluation transform -- resize the shorter side to ``resolution / 0.875``, centre crop, scale to [0, 1],
normalise with the ImageNet mean/std -- the same one the FPGA bundle's ``model_def.py`` applies in the
Vitis AI docker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark._typing import FloatArray
from benchmark.errors import NasoptError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875


class CalibrationError(NasoptError, ValueError):
    """A calibration folder that is missing, empty or unreadable (the message names it)."""


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def select_images(root: str | os.PathLike[str], n: int = 150, seed: int = 0) -> list[Path]:
    """``n`` images of an ImageNet-layout folder (or all, if it holds fewer), as paths under ``root``."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise CalibrationError(
            f"calibration folder {str(folder)!r} does not exist or is not a folder; "
            "give an ImageNet-layout folder (one sub-folder of images per class)"
        )
    if n < 1:
        raise CalibrationError(f"the number of calibration images must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    pools = [_images_in(c) for c in classes]
    pools = [[p[i] for i in rng.permutation(len(p))] for p in pools if p]
    flat = _images_in(folder)
    if flat:
        pools.append([flat[i] for i in rng.permutation(len(flat))])
    if not pools:
        raise CalibrationError(
            f"calibration folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
            "in it or in its class sub-folders"
        )
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < n and any(depth < len(p) for p in pools):
        chosen.extend(p[depth] for p in pools if depth < len(p))
        depth += 1
    return chosen[:n]


def preprocess(path: str | os.PathLike[str], resolution: int = 224) -> FloatArray:
    """One image as a ``(3, r, r)`` float32 network input (resize, centre crop, normalise)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read calibration image {str(path)!r}: {exc}") from exc
    short = round(resolution / CROP_FRACTION)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    x: Any = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def load_images(paths: Sequence[str | os.PathLike[str]], resolution: int = 224) -> FloatArray:
    """``(n, 3, r, r)`` float32 inputs of the images at ``paths``."""
    if not paths:
        raise CalibrationError("no calibration images to load")
    return np.stack([preprocess(p, resolution) for p in paths])
