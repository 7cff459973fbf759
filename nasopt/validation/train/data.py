"""Image data for training: ImageNet-layout folders, deterministic per-sample augmentation, resumable
samplers.

Layout: ``<root>/train/<class>/*.JPEG`` and ``<root>/val/<class>/*.JPEG`` (ILSVRC2012 after
``python -m nasopt.validation.train.prepare val-to-folders``); classes are the sorted sub-folder names.
The root is an argument or ``$NASOPT_IMAGENET`` -- never a path in the code.

Decoding and augmentation: PIL (always; no torchvision needed) or torchvision's decoder and resize kernels
(``backend="torchvision"``, where it is installed); FFCV ``.beton`` files (``backend="ffcv"``,
ffcv_data.py) and NVIDIA DALI pipelines (``backend="dali"``, dali_data.py) where those are installed:
:func:`read_splits` and :func:`make_source` choose among them, all serving the same batches. Every sample's
augmentation (folder backends) draws from its own RNG seeded
by ``(seed, epoch, index)``, so a batch is the same whatever the number of ranks or workers, and a run resumed
mid-epoch sees exactly the images it would have seen. Samplers are pure functions of ``(seed, epoch)``: their
position is the step counter in the checkpoint. The loader returns ``uint8`` images ``(N, 3, r, r)``;
normalisation (and random erasing) happens on the training device (:func:`normalize`).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from benchmark.errors import ConfigurationError, NasoptError

ENV_ROOT = "NASOPT_IMAGENET"
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
FOLDER_BACKENDS = ("pil", "torchvision")  # decoded image by image by :class:`ImageFolder`
BACKENDS = (*FOLDER_BACKENDS, "ffcv", "dali")  # ffcv_data.py, dali_data.py (optional extras)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class DataLayoutError(NasoptError, ValueError):
    """The image folder is missing or not in the ImageNet layout (the message names the path)."""


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The dataset root: ``root`` if given, else ``$NASOPT_IMAGENET``."""
    if root is None or str(root) == "":
        env = os.environ.get(ENV_ROOT)
        if not env:
            raise DataLayoutError(
                f"no image dataset given: pass data.root=<folder with train/ and val/> or set {ENV_ROOT}"
            )
        root = env
    return Path(root).expanduser()


def _expected(split: str) -> str:
    return f"expected class folders holding images, '{split}/<class>/*.JPEG' (the ImageNet layout)"


def scan_split(root: Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(file, label)])`` of ``root/split``: classes sorted, files sorted within each class."""
    d = root / split
    if not d.is_dir():
        raise DataLayoutError(f"{d}: no such folder; {_expected(split)}")
    classes = sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        loose = sum(1 for e in os.scandir(d) if e.is_file())
        hint = (
            f" (it holds {loose} loose files: a flat ILSVRC2012 val folder? run "
            f"'python -m nasopt.validation.train.prepare val-to-folders {d} <ground truth>')"
            if loose
            else ""
        )
        raise DataLayoutError(f"{d}: no class folders; {_expected(split)}{hint}")
    samples: list[tuple[str, int]] = []
    for label, c in enumerate(classes):
        files = sorted(
            e.path for e in os.scandir(d / c) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise DataLayoutError(f"{d / c}: no images ({', '.join(IMAGE_EXTENSIONS)}); {_expected(split)}")
        samples.extend((f, label) for f in files)
    return classes, samples


def subset(samples: Sequence[tuple[str, int]], fraction: float, seed: int) -> list[tuple[str, int]]:
    """A class-stratified ``fraction`` of ``samples`` (at least one per class), chosen by ``seed``;
    order kept."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigurationError(f"data.train_fraction must be in (0, 1], got {fraction!r}")
    if fraction == 1.0:
        return list(samples)
    labels = np.array([s[1] for s in samples])
    rng = np.random.default_rng([seed, 7919])
    keep: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, round(fraction * len(idx)))
        keep.extend(rng.choice(idx, size=k, replace=False).tolist())
    return [samples[i] for i in sorted(keep)]


# ------------------------------------------------------------------------------------------ transforms


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch (a 64-bit mix of the three)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return (x * 0xD6E8FEB86659FD93) & (2**63 - 1)


def random_resized_crop_box(
    rng: random.Random,
    w: int,
    h: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of a RandomResizedCrop (torchvision's algorithm: 10 tries, then the
    central crop of the nearest allowed aspect ratio)."""
    area = w * h
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(lo, hi))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def center_crop_box(w: int, h: int, fraction: float) -> tuple[int, int, int, int]:
    """``(left, top, side, side)`` of the central square of side ``fraction * min(w, h)``."""
    side = max(1, round(fraction * min(w, h)))
    return (w - side) // 2, (h - side) // 2, side, side


@dataclass(frozen=True)
class Augment:
    """What the loader does to one image (the rest happens on the device, see :func:`normalize`)."""

    train: bool
    scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    val_crop: float = 0.875
    randaugment: str | None = None


class ImageFolder(torch.utils.data.Dataset[tuple[np.ndarray, int]]):
    """The images of one split. Indexed by keys ``(index, seed, resolution)`` from the samplers below;
    returns ``((r, r, 3) uint8 image, label)`` (batched to ``(N, 3, r, r)`` by :func:`collate`)."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        augment: Augment,
        backend: str = "pil",
    ) -> None:
        if backend not in FOLDER_BACKENDS:
            raise ConfigurationError(
                f"ImageFolder decodes with {', '.join(FOLDER_BACKENDS)}, not {backend!r} (see make_source)"
            )
        if backend == "torchvision":
            try:
                import torchvision  # noqa: F401
            except ImportError as exc:
                raise ConfigurationError(
                    "data.backend=torchvision needs torchvision (pip install torch==2.14.1 "
                    "torchvision==0.29.1); or use data.backend=pil"
                ) from exc
        self.samples = list(samples)
        self.classes = list(classes)
        self.augment = augment
        self.backend = backend
        self._randaug: Any = None

    def __len__(self) -> int:
        return len(self.samples)

    def _rand_augment(self, res: int) -> Any:
        if self._randaug is None:
            from nasopt.validation.train.timm_parts import rand_augment

            self._randaug = rand_augment(str(self.augment.randaugment), res, MEAN)
        return self._randaug

    def __getitem__(self, key: Any) -> tuple[np.ndarray, int]:
        index, seed, res = (int(k) for k in key)
        path, label = self.samples[index]
        a = self.augment
        rng = random.Random(seed)
        if self.backend == "torchvision" and not (a.train and a.randaugment):
            return self._tv_item(path, rng, res).permute(1, 2, 0).numpy(), label
        from PIL import Image

        with Image.open(path) as im:
            img = im.convert("RGB")
        w, h = img.size
        left, top, cw, ch = (
            random_resized_crop_box(rng, w, h, a.scale) if a.train else center_crop_box(w, h, a.val_crop)
        )
        img = img.resize((res, res), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
        if a.train and a.hflip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if a.train and a.randaugment:
            state = random.getstate()  # timm's ops draw from the module RNG: seed it, then put it back
            random.seed(rng.getrandbits(63))
            try:
                img = self._rand_augment(res)(img)
            finally:
                random.setstate(state)
        return np.asarray(img, dtype=np.uint8), label

    def _tv_item(self, path: str, rng: random.Random, res: int) -> torch.Tensor:
        import warnings

        from torchvision.io import ImageReadMode, decode_image, read_file
        from torchvision.transforms.v2 import functional as F

        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            img = decode_image(read_file(path), mode=ImageReadMode.RGB)  # (3, h, w) uint8
        h, w = img.shape[-2:]
        a = self.augment
        left, top, cw, ch = (
            random_resized_crop_box(rng, w, h, a.scale) if a.train else center_crop_box(w, h, a.val_crop)
        )
        out = F.resized_crop(img, top, left, ch, cw, [res, res], antialias=True)
        if a.train and a.hflip and rng.random() < 0.5:
            out = F.horizontal_flip(out)
        return out.contiguous()


# ------------------------------------------------------------------------------------------- samplers


class TrainBatches(torch.utils.data.Sampler[list[tuple[int, int, int]]]):
    """The local batches of one rank in one epoch, from step ``start`` on.

    The epoch's order is a permutation seeded by ``(seed, epoch)``; global batch ``b`` is positions
    ``[b * G, (b + 1) * G)`` of it (``G`` = global batch, the last partial one dropped) and rank ``r`` of
    ``W`` takes every ``W``-th image of it from ``r``: the union over ranks is the one-process batch.
    """

    def __init__(
        self,
        n: int,
        global_batch: int,
        seed: int,
        epoch: int,
        resolution: int,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
    ) -> None:
        if global_batch % world:
            raise ConfigurationError(
                f"scheme.batch_size={global_batch} is not divisible by the {world} ranks; pick a multiple"
            )
        if n < global_batch:
            raise ConfigurationError(
                f"the training set has {n} images, fewer than one batch (scheme.batch_size={global_batch})"
            )
        self.n, self.g, self.seed, self.epoch, self.res = n, global_batch, seed, epoch, resolution
        self.rank, self.world, self.start = rank, world, start

    @staticmethod
    def steps_per_epoch(n: int, global_batch: int) -> int:
        """Optimizer steps per epoch (full global batches)."""
        return n // global_batch

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch(self.n, self.g) - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        perm = np.random.default_rng([self.seed, self.epoch, 104729]).permutation(self.n)
        for b in range(self.start, self.steps_per_epoch(self.n, self.g)):
            batch = perm[b * self.g : (b + 1) * self.g][self.rank :: self.world]
            yield [(int(i), sample_seed(self.seed, self.epoch, int(i)), self.res) for i in batch]


class EvalBatches(torch.utils.data.Sampler[list[tuple[int, int, int]]]):
    """Rank ``r`` of ``W`` evaluates images ``r, r + W, ...`` (each image exactly once over all ranks)."""

    def __init__(self, n: int, batch: int, resolution: int, rank: int = 0, world: int = 1) -> None:
        self.idx = list(range(rank, n, world))
        self.batch, self.res = batch, resolution

    def __len__(self) -> int:
        return math.ceil(len(self.idx) / self.batch)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for s in range(0, len(self.idx), self.batch):
            yield [(i, 0, self.res) for i in self.idx[s : s + self.batch]]


def collate(items: Sequence[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[((r, r, 3) uint8, label)]`` -> ``(N, 3, r, r)`` uint8 (contiguous), ``(N,)`` int64 labels."""
    images = torch.from_numpy(np.stack([im for im, _ in items])).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([lab for _, lab in items], dtype=torch.int64)


def loader(
    dataset: ImageFolder,
    batches: torch.utils.data.Sampler[list[tuple[int, int, int]]],
    workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader[tuple[np.ndarray, int]]:
    """A DataLoader over ``batches``; its own generator, so creating it never draws from the global RNG."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, 3, r, r)`` uint8 -> normalised float (ImageNet mean/std), on the images' device."""
    mean = torch.tensor(MEAN, device=images.device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device, dtype=dtype).view(1, 3, 1, 1) * 255
    return (images.to(dtype) - mean) / std


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are read."""

    root: str | None = None
    train_fraction: float = 1.0
    workers: int = 0
    backend: str = "pil"
    val_batch: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigurationError(f"data.workers must be a non-negative integer, got {self.workers!r}")
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"data.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if not isinstance(self.val_batch, int) or self.val_batch < 1:
            raise ConfigurationError(f"data.val_batch must be a positive integer, got {self.val_batch!r}")
        subset([("x", 0)], float(self.train_fraction), 0)  # validates the fraction
        object.__setattr__(self, "train_fraction", float(self.train_fraction))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the root resolved later)."""
        return {
            "root": self.root,
            "train_fraction": self.train_fraction,
            "workers": self.workers,
            "backend": self.backend,
            "val_batch": self.val_batch,
        }


# -------------------------------------------------------------------------------------------- backends


class DataSource(Protocol):
    """What training reads: ``(B, 3, r, r)`` uint8 images and ``(B,)`` int64 labels, normalised later by
    :func:`normalize`."""

    def train(
        self, epoch: int, resolution: int, global_batch: int, start: int = 0
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's batches of ``epoch`` (global batch ``global_batch``) from step ``start`` on."""
        ...

    def val(self, resolution: int, batch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's share of the validation images (each image once over all ranks)."""
        ...


def require_backend(backend: str) -> None:
    """Refuse, in one line naming the extra to install, a backend whose package is missing."""
    if backend == "ffcv":
        from nasopt.validation.train.ffcv_data import require_ffcv

        require_ffcv()
    elif backend == "dali":
        from nasopt.validation.train.dali_data import require_dali

        require_dali()
    elif backend == "torchvision":
        ImageFolder([], [], Augment(False), "torchvision")  # its constructor checks torchvision


def read_splits(
    root: Path, backend: str = "pil"
) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """``(classes, train samples, val samples)`` of ``root``: ImageNet-layout folders, or for ``ffcv`` the
    folder of ``train.beton``/``val.beton`` (samples are then ``(row index, label)``)."""
    require_backend(backend)
    if backend == "ffcv":
        from nasopt.validation.train.ffcv_data import scan_beton

        scan = scan_beton
    else:
        scan = scan_split
    classes, train_samples = scan(root, "train")
    val_classes, val_samples = scan(root, "val")
    if val_classes != classes:
        raise ConfigurationError(
            f"{root}: train/ and val/ have different class folders ({len(classes)} vs {len(val_classes)}); "
            f"both need the same <class> names"
        )
    return classes, train_samples, val_samples


class FolderSource:
    """The PIL / torchvision backends: :class:`ImageFolder` + :class:`TrainBatches` / :class:`EvalBatches`
    through a DataLoader."""

    def __init__(
        self,
        train_set: ImageFolder,
        val_set: ImageFolder,
        seed: int,
        rank: int = 0,
        world: int = 1,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.train_set, self.val_set = train_set, val_set
        self.seed, self.rank, self.world, self.workers, self.pin = seed, rank, world, workers, pin_memory

    def train(
        self, epoch: int, resolution: int, global_batch: int, start: int = 0
    ) -> torch.utils.data.DataLoader[tuple[np.ndarray, int]]:
        batches = TrainBatches(
            len(self.train_set), global_batch, self.seed, epoch, resolution, self.rank, self.world, start
        )
        return loader(self.train_set, batches, self.workers, self.pin)

    def val(self, resolution: int, batch: int) -> torch.utils.data.DataLoader[tuple[np.ndarray, int]]:
        batches = EvalBatches(len(self.val_set), batch, resolution, self.rank, self.world)
        return loader(self.val_set, batches, self.workers, self.pin)


def make_source(
    dc: DataConfig,
    root: Path,
    classes: Sequence[str],
    train_samples: Sequence[tuple[str, int]],
    val_samples: Sequence[tuple[str, int]],
    augment: Augment,
    *,
    seed: int,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
) -> DataSource:
    """The batches of ``dc.backend`` for one rank; ``augment`` is the training augmentation (its
    ``val_crop`` the validation crop)."""
    if dc.backend in FOLDER_BACKENDS:
        return FolderSource(
            ImageFolder(train_samples, classes, augment, dc.backend),
            ImageFolder(val_samples, classes, Augment(False, val_crop=augment.val_crop), dc.backend),
            seed,
            rank,
            world,
            dc.workers,
            device is not None and device.type == "cuda",
        )
    if augment.randaugment:
        raise ConfigurationError(
            f"data.backend={dc.backend} has no RandAugment (scheme.randaugment={augment.randaugment!r}); use "
            f"data.backend=pil or torchvision, or scheme.randaugment=null"
        )
    if dc.backend == "ffcv":
        from nasopt.validation.train.ffcv_data import FfcvSource

        return FfcvSource(
            root,
            train_samples,
            val_samples,
            augment.scale,
            augment.hflip,
            augment.val_crop,
            seed,
            rank,
            world,
            dc.workers,
        )
    from nasopt.validation.train.dali_data import DaliSource

    return DaliSource(
        train_samples,
        val_samples,
        augment.scale,
        augment.hflip,
        augment.val_crop,
        seed,
        rank,
        world,
        dc.workers,
        device,
    )
