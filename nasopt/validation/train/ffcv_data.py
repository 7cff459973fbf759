"""The FFCV backend (``data.backend=ffcv``): ``.beton`` files written as the dataset wrote them, read by
FFCV's JIT-compiled loader.

Writer (:func:`write_ffcv`, ``python -m nasopt.validation.train.prepare ffcv ROOT OUT``): ``OUT/train.beton``
and ``OUT/val.beton`` with fields ``image`` = ``RGBImageField(write_mode="jpg", max_resolution=400,
jpeg_quality=90)`` (every image re-encoded as JPEG, quality 90, its longer side shrunk to at most 400 px with
OpenCV's INTER_AREA; smaller images kept as they are) and ``label`` = ``IntField()``, in the sorted order of
:func:`nasopt.validation.train.data.scan_split`; ``OUT/ffcv.json`` holds the class names and the settings.
``--write-mode proportion --compress-probability 0.5`` gives ffcv-imagenet's mix of raw and JPEG images.

Loader (:class:`FfcvSource`): the epoch's order is the sampler's (:class:`~.data.TrainBatches`, a pure
function of ``(seed, epoch)``, per-rank shares exactly as the folder loader), handed to FFCV as its
traversal order, so ``train_fraction``, sharding and resuming at a step are the same as for the folder
backends. The crop and flip run inside a decoder compiled per epoch (1-5 s here) that seeds numba's RNG from
``(seed, epoch, image index)`` before each image: an image's augmentation is the same for any number of FFCV
threads and after a resume, so an interrupted run resumes bitwise identically. (FFCV's own
``RandomResizedCropRGBImageDecoder`` and ``RandomHorizontalFlip`` draw from numba's unseeded per-thread
streams: with them no run repeats, let alone resumes exactly.) The crop box is FFCV's ``get_random_crop``
(torchvision's algorithm, like ours, but numpy's draws and ``int(uniform)`` offsets), resized with OpenCV's
INTER_AREA from the re-encoded <= 400 px image (the folder backends: PIL bilinear from the original JPEG).
Validation is FFCV's centre crop (side ``int(val_crop * min(h, w))``; ours rounds) resized to ``val_res``.
"""

from __future__ import annotations

import functools
import json
import os
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark._io import atomic_write_text
from benchmark.errors import ConfigurationError, NasoptError
from nasopt.validation.train.data import DataLayoutError, scan_split

EXTRA = "train-ffcv"
INDEX_FILE = "ffcv.json"
FORMAT = 1
WRITE_MODES = ("jpg", "proportion", "raw", "smart")


@dataclass(frozen=True)
class FieldSettings:
    """How images are stored in the ``.beton`` files (the dataset's: JPEG quality 90, longer side <= 400)."""

    max_resolution: int = 400
    jpeg_quality: int = 90
    write_mode: str = "jpg"
    compress_probability: float = 0.5

    def __post_init__(self) -> None:
        if self.write_mode not in WRITE_MODES:
            raise ConfigurationError(
                f"--write-mode must be one of {', '.join(WRITE_MODES)}, got {self.write_mode!r}"
            )
        if not 1 <= self.jpeg_quality <= 100 or self.max_resolution < 1:
            raise ConfigurationError(
                f"--jpeg-quality must be in 1..100 and --max-resolution positive, got "
                f"{self.jpeg_quality} and {self.max_resolution}"
            )


def require_ffcv() -> Any:
    """The ``ffcv`` module, or a one-line error naming the extra."""
    try:
        import ffcv
    except ImportError as exc:
        raise ConfigurationError(
            f"data.backend=ffcv needs FFCV (apt-get install -y libopencv-dev libturbojpeg0-dev pkg-config; "
            f'pip install -e ".[{EXTRA}]"); or use data.backend=pil'
        ) from exc
    return ffcv


class _Images:
    """``(H, W, 3) uint8 image, label`` of each sample, for FFCV's writer (forked into its workers)."""

    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8), label


def write_ffcv(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: FieldSettings = FieldSettings(),
    *,
    workers: int = 1,
    splits: Sequence[str] = ("train", "val"),
) -> Path:
    """Write ``out/<split>.beton`` for each split of the ImageNet-layout folder ``root`` and ``out/ffcv.json``
    (classes, counts, field settings). Returns ``out``."""
    root_p, out_p = Path(root), Path(out)
    scanned = {split: scan_split(root_p, split) for split in splits}  # a bad layout fails before any import
    classes = scanned[splits[0]][0]
    for split in splits:
        if scanned[split][0] != classes:
            raise DataLayoutError(f"{root_p}: {split}/ has other class folders than {splits[0]}/")
    require_ffcv()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    out_p.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"format": FORMAT, "source": str(root_p), "field": vars(settings).copy()}
    for split in splits:
        samples = scanned[split][1]
        tmp = out_p / f".{split}.beton.tmp"
        writer = DatasetWriter(
            str(tmp),
            {
                "image": RGBImageField(
                    write_mode=settings.write_mode,
                    max_resolution=settings.max_resolution,
                    jpeg_quality=settings.jpeg_quality,
                    compress_probability=settings.compress_probability,
                ),
                "label": IntField(),
            },
            num_workers=max(1, workers),
        )
        writer.from_indexed_dataset(_Images(samples))
        os.replace(tmp, out_p / f"{split}.beton")
        index[f"n_{split}"] = len(samples)
    index["classes"] = classes
    atomic_write_text(out_p / INDEX_FILE, json.dumps(index, indent=2) + "\n")
    return out_p


def _hint(root: Path) -> str:
    return (
        f"expected {root}/{{train,val}}.beton and {INDEX_FILE}; write them with 'python -m "
        f"nasopt.validation.train.prepare ffcv <ImageNet folder> {root}'"
    )


def scan_beton(root: Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(row index as text, label)])`` of ``root/<split>.beton`` (labels read from its metadata,
    no image decoded)."""
    idx_path, beton = root / INDEX_FILE, root / f"{split}.beton"
    for p in (idx_path, beton):
        if not p.is_file():
            raise DataLayoutError(f"{p}: not found; {_hint(root)}")
    try:
        index = json.loads(idx_path.read_text())
        classes = [str(c) for c in index["classes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataLayoutError(
            f"{idx_path}: not an index written by the ffcv writer ({exc}); {_hint(root)}"
        ) from exc
    require_ffcv()
    from ffcv.reader import Reader

    try:
        reader = Reader(str(beton))
        field = f"f{list(reader.handlers).index('label')}"  # FFCV names metadata columns by position
        labels = np.asarray(reader.metadata[field], dtype=np.int64)
    except Exception as exc:  # FFCV raises bare errors on a truncated or foreign file
        raise DataLayoutError(
            f"{beton}: not a readable .beton file ({type(exc).__name__}); {_hint(root)}"
        ) from exc
    if len(labels) != index.get(f"n_{split}", len(labels)) or (len(labels) and labels.max() >= len(classes)):
        raise DataLayoutError(f"{beton}: does not match {idx_path} (rewrite both); {_hint(root)}")
    return classes, [(str(i), int(lab)) for i, lab in enumerate(labels)]


# --------------------------------------------------------------------------------------------- decoders


@functools.cache
def _decoders() -> tuple[type, type]:
    """The seeded train decoder and the centre-crop decoder (built on first use: FFCV imports lazily)."""
    from ffcv.fields.rgb_image import (
        IMAGE_MODES,
        CenterCropRGBImageDecoder,
        ResizedCropRGBImageDecoder,
        get_random_crop,
    )
    from ffcv.libffcv import imdecode, resize_crop
    from ffcv.pipeline.compiler import Compiler

    def flip_columns(img: np.ndarray) -> None:
        w = img.shape[1]
        for x in range(w // 2):
            for y in range(img.shape[0]):
                for c in range(img.shape[2]):
                    t = img[y, x, c]
                    img[y, x, c] = img[y, w - 1 - x, c]
                    img[y, w - 1 - x, c] = t

    class SeededRandomResizedCrop(ResizedCropRGBImageDecoder):
        """RandomResizedCrop + horizontal flip, numba's RNG seeded per image from ``base`` and its index."""

        def __init__(self, output_size: tuple[int, int], scale: tuple[float, float], hflip: bool) -> None:
            super().__init__(output_size)
            self.scale, self.ratio, self.hflip, self.base = scale, (3 / 4, 4 / 3), hflip, 0

        @property
        def get_crop_generator(self) -> Any:
            return get_random_crop

        def generate_code(self) -> Any:
            jpg = IMAGE_MODES["jpg"]
            mem_read = self.memory_read
            my_range = Compiler.get_iterator()
            imdecode_c = Compiler.compile(imdecode)
            resize_crop_c = Compiler.compile(resize_crop)
            get_crop_c = Compiler.compile(get_random_crop)
            flip_c = Compiler.compile(flip_columns)
            scale, ratio = np.array(self.scale), np.array(self.ratio)
            base, hflip = np.int64(self.base), self.hflip
            mult, prime = np.int64(2654435761), np.int64(4294967291)

            def decode(batch_indices, my_storage, metadata, storage_state):
                destination, temp_storage = my_storage
                for dst_ix in my_range(len(batch_indices)):
                    source_ix = batch_indices[dst_ix]
                    # numba's generator is per thread: seeded here, the draws below are this image's alone
                    np.random.seed((base + np.int64(source_ix) * mult) % prime)  # noqa: NPY002
                    field = metadata[source_ix]
                    image_data = mem_read(field["data_ptr"], storage_state)
                    height = np.uint32(field["height"])
                    width = np.uint32(field["width"])
                    if field["mode"] == jpg:
                        temp_buffer = temp_storage[dst_ix]
                        imdecode_c(
                            image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1, False, False
                        )
                        temp_buffer = temp_buffer.reshape(-1)[: 3 * height * width]
                        temp_buffer = temp_buffer.reshape(height, width, 3)
                    else:
                        temp_buffer = image_data.reshape(height, width, 3)
                    i, j, h, w = get_crop_c(height, width, scale, ratio)
                    resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
                    if hflip and np.random.random() < 0.5:  # noqa: NPY002
                        flip_c(destination[dst_ix])
                return destination[: len(batch_indices)]

            decode.__dict__["is_parallel"] = True  # FFCV compiles it with prange
            return decode

    return SeededRandomResizedCrop, CenterCropRGBImageDecoder


_KEEP: list[Any] = []


class _Order:
    """The traversal order FFCV asks for each epoch: the rank's images in the sampler's order."""

    def __init__(self) -> None:
        self.order = np.zeros(0, dtype=np.uint64)

    def sample_order(self, epoch: int) -> np.ndarray:
        return self.order


class FfcvError(NasoptError, RuntimeError):
    """FFCV's loader thread failed (its traceback is printed above this error)."""


def _next(it: Any) -> Any:
    """FFCV's next batch, or None at the end; FFCV's own ``__next__`` waits forever when its thread died."""
    while True:
        try:
            item = it.output_queue.get(timeout=1.0)
        except queue.Empty:
            if not it.is_alive():
                raise FfcvError(
                    f"FFCV's loader thread for {it.loader.fname} died (its error is printed above)"
                ) from None
            continue
        if item is None:
            return None
        slot, result = item
        if torch.cuda.is_available():  # FFCV copies on its own streams
            torch.cuda.current_stream().wait_stream(it.cuda_streams[slot])
        return result


def _batches(it: Any, threads: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """FFCV's ``((B, r, r, 3) uint8, (B, 1) int)`` views of its ring buffers -> owned ``(B, 3, r, r)`` uint8
    and ``(B,)`` int64; torch's thread count put back (FFCV's worker thread sets it to its own)."""
    try:
        first = True
        while (item := _next(it)) is not None:
            if first:
                torch.set_num_threads(threads)
                first = False
            x, y = item
            yield x.permute(0, 3, 1, 2).contiguous(), y.reshape(-1).to(torch.int64)
    finally:
        it.close()
        torch.set_num_threads(threads)


class FfcvSource:
    """Train and validation batches of ``root/{train,val}.beton`` for one rank (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        train_samples: Sequence[tuple[str, int]],
        val_samples: Sequence[tuple[str, int]],
        scale: tuple[float, float],
        hflip: bool,
        val_crop: float,
        seed: int,
        rank: int = 0,
        world: int = 1,
        workers: int = 0,
    ) -> None:
        self.root, self.scale, self.hflip, self.val_crop = root, scale, hflip, val_crop
        self.train_rows = np.array([int(i) for i, _ in train_samples], dtype=np.uint64)
        self.val_rows = np.array([int(i) for i, _ in val_samples], dtype=np.uint64)
        self.seed, self.rank, self.world = seed, rank, world
        # FFCV has no in-process mode (0 workers = one thread), and numba refuses more threads than it started
        self.threads = max(1, workers)
        self._train: Any = None
        self._val: Any = None

    def _loader(self, split: str, batch: int, decoder: Any, drop_last: bool) -> Any:
        import numba
        from ffcv.fields.decoders import IntDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import ToTensor

        self.threads = min(self.threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", os.cpu_count() or 1)))
        threads = torch.get_num_threads()
        try:
            loader = Loader(
                str(self.root / f"{split}.beton"),
                batch_size=batch,
                num_workers=self.threads,
                order=OrderOption.SEQUENTIAL,
                pipelines={"image": [decoder, ToTensor()], "label": [IntDecoder(), ToTensor()]},
                drop_last=drop_last,
                seed=0,
            )
        finally:
            torch.set_num_threads(threads)
        _KEEP.append(loader)  # see train(): numba's finalizers must not run
        loader.traversal_order = _Order()
        loader._nasopt_decoder = decoder
        loader._nasopt_base = getattr(decoder, "base", None)  # the seed its code was compiled with
        return loader

    def train(
        self, epoch: int, resolution: int, global_batch: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's batches of ``epoch`` from step ``start`` at ``resolution`` px."""
        from nasopt.validation.train.data import TrainBatches, sample_seed

        batches = TrainBatches(
            len(self.train_rows), global_batch, self.seed, epoch, resolution, self.rank, self.world, start
        )
        local = global_batch // self.world
        base = sample_seed(self.seed, epoch, 0) % 2**31
        if self._train is None:
            rrc, _ = _decoders()
            dec = rrc((resolution, resolution), self.scale, self.hflip)
            dec.base = base
            self._train = self._loader("train", local, dec, True)  # compiles the decoder with ``base``
        loader = self._train
        picks = [i for b in batches for i, _, _ in b]
        order = self.train_rows[np.asarray(picks, dtype=np.int64)]
        loader.traversal_order.order = order
        loader.first_traversal_order = order  # FFCV's len() reads this
        dec = loader._nasopt_decoder
        dec.output_size = (resolution, resolution)
        threads = torch.get_num_threads()
        if loader._nasopt_base != base:
            # the epoch's seed is a constant of the compiled decoder, so each epoch compiles it again; the
            # old code is kept alive: numba's finalizer of a dropped dispatcher removes overloads that the
            # new one shares (seen with numba 0.68: KeyError at exit, or a loader thread dying compiling)
            _KEEP.append(loader.code)
            dec.base = base
            loader.generate_code()
            loader._nasopt_base = base
        return _batches(iter(loader), threads)

    def val(self, resolution: int, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's validation images ``rank, rank + world, ...`` centre-cropped to ``resolution`` px."""
        if self._val is None:
            _, center = _decoders()
            self._val = self._loader("val", batch, center((resolution, resolution), self.val_crop), False)
        loader = self._val
        order = self.val_rows[self.rank :: self.world]
        loader.traversal_order.order = order
        loader.first_traversal_order = order
        loader._nasopt_decoder.output_size = (resolution, resolution)
        return _batches(iter(loader), torch.get_num_threads())
