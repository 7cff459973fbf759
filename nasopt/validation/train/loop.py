"""The training and evaluation loops: pure functions of a model, batches and an optimizer, the same on CPU
and GPU, one process or many (counts are local; the caller sums them across ranks)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from nasopt.validation.train import xla
from nasopt.validation.train.data import normalize

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Meter:
    """Sums over the images of one epoch (or evaluation): loss x images, top-1/top-5 hits, images, steps.

    Batches are summed on their device (no host synchronisation per step); reading a sum (``to_dict``,
    ``as_tensor``, the properties) moves the device sums into the float fields first.
    """

    loss_sum: float = 0.0
    correct1: float = 0.0
    correct5: float = 0.0
    n: float = 0.0
    steps: int = 0
    _pending: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Add one batch: mean ``loss`` of ``(B, C)`` ``logits`` against ``(B,)`` labels."""
        b = y.shape[0]
        k = min(5, logits.shape[1])
        top = logits.detach().topk(k, dim=1).indices  # (B, k)
        hits = top.eq(y.view(-1, 1))
        batch = torch.stack(
            [loss.detach().double() * b, hits[:, 0].sum().double(), hits.any(dim=1).sum().double()]
        )
        self._pending = batch if self._pending is None else self._pending + batch
        self.n += b
        self.steps += 1

    def flush(self) -> None:
        """Move the device sums into the float fields."""
        if self._pending is not None:
            loss, c1, c5 = self._pending.tolist()
            self.loss_sum += loss
            self.correct1 += c1
            self.correct5 += c5
            self._pending = None

    def as_tensor(self) -> torch.Tensor:
        """``(5,)`` float64, for summing across ranks."""
        self.flush()
        return torch.tensor(
            [self.loss_sum, self.correct1, self.correct5, self.n, self.steps], dtype=torch.float64
        )

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> Meter:
        v = t.tolist()
        return cls(v[0], v[1], v[2], v[3], int(v[4]))

    def to_dict(self) -> dict[str, Any]:
        self.flush()
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    @property
    def loss(self) -> float:
        self.flush()
        return self.loss_sum / self.n if self.n else float("nan")

    @property
    def top1(self) -> float:
        """Percent, from the summed counts."""
        self.flush()
        return 100.0 * self.correct1 / self.n if self.n else float("nan")

    @property
    def top5(self) -> float:
        self.flush()
        return 100.0 * self.correct5 / self.n if self.n else float("nan")


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda" and precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type="cuda", dtype=AUTOCAST_DTYPES[precision])
    if device.type == "xla" and (dtype := xla.autocast_dtype(precision)) is not None:
        return torch.autocast(device_type="xla", dtype=dtype)
    return contextlib.nullcontext()


def _step_end(device: torch.device) -> None:
    """Close a step: on XLA cut the lazy graph and dispatch it; nothing elsewhere."""
    if device.type == "xla":
        xla.sync()


def _inputs(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = normalize(x.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    lr_of_step: Callable[[int], float],
    *,
    device: torch.device,
    start_step: int = 0,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    ema: Any = None,
    erase: Callable[[torch.Tensor], torch.Tensor] | None = None,
    meter: Meter | None = None,
    after_step: Callable[[int, Meter], bool] | None = None,
) -> tuple[Meter, bool]:
    """Train on ``batches`` (``(B, 3, r, r)`` uint8 images, ``(B,)`` labels), setting the learning rate
    ``lr_of_step(step)`` before every step (``step`` counts from ``start_step`` within the epoch).

    ``after_step(step, meter)`` runs after each optimizer step; when it returns True the epoch stops there.
    Returns the (local) meter and whether the epoch was stopped early.
    """
    meter = meter if meter is not None else Meter()
    model.train()
    step = start_step
    for x, y in batches:
        lr = lr_of_step(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs = _inputs(x, device, channels_last)
        if erase is not None:
            inputs = erase(inputs)
        y = y.to(device, non_blocking=True)
        with _autocast(device, precision):
            logits = model(inputs)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if ema is not None:
            ema.update(getattr(model, "module", model))  # the network itself, not its DDP wrapper
        meter.add(loss, logits.float(), y)
        _step_end(device)
        step += 1
        if after_step is not None and after_step(step, meter):
            return meter, True
    return meter, False


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    criterion: nn.Module,
    *,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
) -> Meter:
    """Loss and top-1/top-5 counts of ``model`` in evaluation mode over ``batches`` (local counts)."""
    model.eval()
    meter = Meter()
    for x, y in batches:
        inputs = _inputs(x, device, channels_last)
        y = y.to(device, non_blocking=True)
        with _autocast(device, precision):
            logits = model(inputs)
            loss = criterion(logits.float(), y)
        meter.add(loss, logits.float(), y)
        _step_end(device)
    return meter
