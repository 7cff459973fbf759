"""The NVIDIA DALI backend (``data.backend=dali``): the ImageNet-layout folder read by DALI pipelines.

Training: ``fn.readers.file`` over the epoch's files in the sampler's order (:class:`~.data.TrainBatches`, a
pure function of ``(seed, epoch)``), laid out so that DALI's shard ``rank`` of ``world`` (``shard_id`` /
``num_shards``) is exactly the rank's share of every global batch -- the same images, batches and per-rank
split as the folder backends, ``train_fraction`` included; then ``fn.decoders.image_random_crop`` (DALI's
RandomResizedCrop: ``random_area`` = the scheme's ``rrc_scale``, aspect 3/4-4/3, 10 attempts, fused with the
decoder), ``fn.resize`` to the epoch's resolution (a pipeline per epoch, so progressive resizing follows
the scheme), ``fn.flip`` with ``fn.random.coin_flip``. Validation: ``fn.readers.file`` sharded by rank, the
central square of side ``val_crop * min(h, w)`` (``fn.crop``), resized to ``val_res``.

Decoding runs on the CPU (``device="cpu"``) or, where CUDA is available, on the GPU (``"mixed"``: nvJPEG);
batches are ``(B, 3, r, r)`` uint8 on that device and ``(B,)`` int64 labels.

Randomness: DALI's own generators, one per pipeline seeded from ``(seed, epoch, rank)``; the draws do not
depend on the number of threads, but they do depend on how many images a pipeline has already produced, so
resuming at step ``s`` replays the epoch's first ``s`` batches (decoded and dropped) and then continues
bitwise identically. The crop follows DALI's algorithm (area and log-aspect drawn uniformly, like
torchvision's, but DALI's generators and its fallback to the whole image), not the folder backends' draws.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from benchmark.errors import ConfigurationError

EXTRA = "train-dali"


def require_dali() -> Any:
    """The ``nvidia.dali`` module, or a one-line error naming the extra."""
    try:
        import nvidia.dali as dali
    except ImportError as exc:
        raise ConfigurationError(
            f'data.backend=dali needs NVIDIA DALI (pip install -e ".[{EXTRA}]", the nvidia-dali-cuda120 '
            f"wheel, which also runs on CPU); or use data.backend=pil"
        ) from exc
    return dali


def _dali() -> tuple[Any, Any, Any]:
    """DALI's ``fn``, ``pipeline_def`` and ``types``, as Any (typed alike with DALI installed or not)."""
    dali: Any = importlib.import_module("nvidia.dali")
    return dali.fn, dali.pipeline_def, dali.types


def _to_torch(tl: Any) -> torch.Tensor:
    """One DALI output batch (CPU or GPU TensorList of equal shapes) as an owned torch tensor."""
    from nvidia.dali.backend import TensorListGPU

    t = tl.as_tensor()
    if isinstance(tl, TensorListGPU):  # copy into a CUDA tensor on the current stream
        from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

        out = torch.empty(t.shape(), dtype=to_torch_type[t.dtype], device="cuda")
        feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream())
        return out
    return torch.from_numpy(np.array(t))


class DaliSource:
    """Train and validation batches of the folder's samples for one rank (see the module docstring)."""

    def __init__(
        self,
        train_samples: Sequence[tuple[str, int]],
        val_samples: Sequence[tuple[str, int]],
        scale: tuple[float, float],
        hflip: bool,
        val_crop: float,
        seed: int,
        rank: int = 0,
        world: int = 1,
        workers: int = 0,
        device: torch.device | None = None,
    ) -> None:
        require_dali()
        self.train_files = [f for f, _ in train_samples]
        self.train_labels = np.array([lab for _, lab in train_samples], dtype=np.int32)
        self.val_files = [f for f, _ in val_samples]
        self.val_labels = [int(lab) for _, lab in val_samples]
        self.scale, self.hflip, self.val_crop = scale, hflip, val_crop
        self.seed, self.rank, self.world = seed, rank, world
        self.threads = max(1, workers)
        cuda = device is not None and device.type == "cuda"
        self.device_id = (device.index or 0) if cuda and device is not None else None
        self.decoder = "mixed" if cuda else "cpu"

    def _run(
        self, pipe: Any, batches: int, keep: Sequence[int]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``batches`` runs of ``pipe``; batch ``k`` trimmed to its first ``keep[k]`` images."""
        pipe.build()
        try:
            for k in range(batches):
                images, labels = pipe.run()
                x, y = _to_torch(images), _to_torch(labels).reshape(-1).to(torch.int64)
                if keep[k] < x.shape[0]:
                    x, y = x[: keep[k]], y[: keep[k]]
                yield x, y.to(x.device)
        finally:
            del pipe

    def train(
        self, epoch: int, resolution: int, global_batch: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's batches of ``epoch`` from step ``start`` at ``resolution`` px."""
        from nasopt.validation.train.data import TrainBatches, sample_seed

        fn, pipeline_def, types = _dali()

        n, w = len(self.train_files), self.world
        steps = TrainBatches.steps_per_epoch(n, global_batch)
        # the rank-major layout: shard r (DALI's contiguous split of the list) = rank r's share of every batch
        shares = [list(TrainBatches(n, global_batch, self.seed, epoch, resolution, r, w)) for r in range(w)]
        rows = np.array([i for r in range(w) for b in shares[r] for i, _, _ in b], dtype=np.int64)
        files = [self.train_files[i] for i in rows]
        labels = self.train_labels[rows].tolist()
        scale, hflip, decoder = list(self.scale), self.hflip, self.decoder

        @pipeline_def
        def pipe() -> Any:
            jpegs, lab = fn.readers.file(
                files=files, labels=labels, shard_id=self.rank, num_shards=w, random_shuffle=False, name="r"
            )
            img = fn.decoders.image_random_crop(
                jpegs,
                device=decoder,
                output_type=types.RGB,
                random_area=scale,
                random_aspect_ratio=[3 / 4, 4 / 3],
                num_attempts=10,
            )
            img = fn.resize(img, resize_x=resolution, resize_y=resolution, antialias=True)
            if hflip:
                img = fn.flip(img, horizontal=fn.random.coin_flip(probability=0.5))
            return fn.transpose(img, perm=[2, 0, 1]), lab

        p = pipe(
            batch_size=global_batch // w,
            num_threads=self.threads,
            device_id=self.device_id,
            seed=sample_seed(self.seed, epoch, self.rank) % 2**31,
            prefetch_queue_depth=1,
        )
        it = self._run(p, steps, [global_batch // w] * steps)
        for _ in range(start):  # replay: DALI's generators advance with every image produced
            next(it)
        return it

    def val(self, resolution: int, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rank's shard of the validation images, centre-cropped to ``resolution`` px."""
        fn, pipeline_def, types = _dali()
        dmath = importlib.import_module("nvidia.dali.math")

        n, w, r = len(self.val_files), self.world, self.rank
        size = (n * (r + 1)) // w - (n * r) // w  # DALI's shard size
        if size == 0:
            return iter(())
        batches = -(-size // batch)
        keep = [min(batch, size - k * batch) for k in range(batches)]
        files, labels, frac, decoder = self.val_files, self.val_labels, self.val_crop, self.decoder

        @pipeline_def
        def pipe() -> Any:
            jpegs, lab = fn.readers.file(
                files=files, labels=labels, shard_id=r, num_shards=w, random_shuffle=False,
                pad_last_batch=True, name="r",
            )
            shape = fn.peek_image_shape(jpegs)  # (h, w, c)
            side = fn.cast(dmath.min(shape[0], shape[1]), dtype=types.FLOAT) * frac
            img = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)
            img = fn.crop(img, crop_h=side, crop_w=side)
            img = fn.resize(img, resize_x=resolution, resize_y=resolution, antialias=True)
            return fn.transpose(img, perm=[2, 0, 1]), lab

        p = pipe(batch_size=batch, num_threads=self.threads, device_id=self.device_id, seed=0)
        return self._run(p, batches, keep)
