"""The macro geometry of the search space's networks: stem, seven MBConv stages and head.

One place for the numbers that both the analytic counter (:mod:`benchmark.macs`) and the PyTorch model
builder (:mod:`nasopt.validation.model`) use, so the two can never disagree. The networks are the
MnasNet/EfficientNet-B0 skeleton that Accel-NASBench trained: a 3x3 stride-2 stem to 32 channels, seven stages
with fixed output widths and strides whose per-stage expansion, kernel, depth and squeeze-excite are the
architecture's genes, and a 1x1 head to 1280 channels before pooling and the classifier.

That skeleton is :data:`MNASNET`; a :class:`Skeleton` with other widths and strides (e.g. a narrower network
for a small dataset, :meth:`Skeleton.scaled`) defines a differently sized space of the same family: the genes
stay the same, the analytic counter and the model builder take the skeleton as a parameter.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from numpy.typing import ArrayLike

from benchmark import space
from benchmark.errors import ConfigurationError

#: Input resolution the dataset's MACs were counted at (the networks themselves take any resolution).
INPUT_SIZE = 224
IN_CHANNELS = 3
STEM_CHANNELS = 32
STEM_KERNEL = 3
STEM_STRIDE = 2
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
#: Per stage: the stride of its first layer and its output channels.
STRIDES = (1, 2, 2, 2, 1, 2, 1)
OUT_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
#: Total downsampling from input to the head's feature map.
TOTAL_STRIDE = STEM_STRIDE * math.prod(STRIDES)


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclass(frozen=True)
class Skeleton:
    """The macro skeleton around the genes: stem, the seven stages' output widths and first-layer strides,
    and the head. Frozen and hashable (it keys the analytic tables and a built benchmark's metadata)."""

    stem_channels: int = STEM_CHANNELS
    out_channels: tuple[int, ...] = OUT_CHANNELS
    strides: tuple[int, ...] = STRIDES
    head_channels: int = HEAD_CHANNELS
    stem_kernel: int = STEM_KERNEL
    stem_stride: int = STEM_STRIDE
    in_channels: int = IN_CHANNELS

    def __post_init__(self) -> None:
        for name in ("stem_channels", "head_channels", "stem_kernel", "stem_stride", "in_channels"):
            if not _positive_int(getattr(self, name)):
                raise ConfigurationError(
                    f"skeleton.{name} must be a positive integer, got {getattr(self, name)!r}"
                )
        for name in ("out_channels", "strides"):
            v = tuple(getattr(self, name))
            if len(v) != space.N_BLOCKS or not all(_positive_int(x) for x in v):
                raise ConfigurationError(
                    f"skeleton.{name} must be {space.N_BLOCKS} positive integers (one per stage), got {v!r}"
                )
            object.__setattr__(self, name, v)
        if not all(s in (1, 2) for s in self.strides):
            raise ConfigurationError(f"skeleton.strides must each be 1 or 2, got {self.strides!r}")

    @property
    def total_stride(self) -> int:
        """Downsampling from the input to the head's feature map."""
        return self.stem_stride * math.prod(self.strides)

    def scaled(self, width: float) -> Skeleton:
        """The same skeleton with every width (stem, stages, head) times ``width``, rounded to a multiple of 8
        as EfficientNet's width multiplier does (never below 8 nor 10 % under the exact product)."""
        if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0.0 < width <= 8.0:
            raise ConfigurationError(f"skeleton width multiplier must be in (0, 8], got {width!r}")

        def make_divisible(c: int) -> int:
            exact = c * width
            rounded = max(8, int(exact + 4) // 8 * 8)
            return rounded + 8 if rounded < 0.9 * exact else rounded

        return Skeleton(
            stem_channels=make_divisible(self.stem_channels),
            out_channels=tuple(make_divisible(c) for c in self.out_channels),
            strides=self.strides,
            head_channels=make_divisible(self.head_channels),
            stem_kernel=self.stem_kernel,
            stem_stride=self.stem_stride,
            in_channels=self.in_channels,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Skeleton:
        """Inverse of :meth:`to_dict`; ``None`` or ``{}`` is :data:`MNASNET`; unknown keys are one line."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            known = ", ".join(cls.__dataclass_fields__)
            raise ConfigurationError(f"unknown skeleton setting(s) {', '.join(unknown)}; known: {known}")
        for name in ("out_channels", "strides"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)

    def digest(self) -> str:
        """Stable 12-hex-digit hash of the settings (for cache keys)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: The dataset's skeleton (MnasNet / EfficientNet-B0 widths and strides).
MNASNET = Skeleton()


def squeeze_channels(c_in: int) -> int:
    """Width of a layer's squeeze-excite bottleneck: a quarter of the layer's *input* width (at least 1)."""
    return max(1, c_in // 4)


@dataclass(frozen=True)
class LayerSpec:
    """One MBConv layer of a network: stage ``block`` (0..6), position ``index`` in its stage."""

    block: int
    index: int
    c_in: int
    c_out: int
    expansion: int
    kernel: int
    stride: int
    se: bool

    @property
    def hidden(self) -> int:
        """Width of the expanded (depthwise) part."""
        return self.c_in * self.expansion

    @property
    def residual(self) -> bool:
        """Whether the layer has an identity shortcut (stride 1 and equal widths)."""
        return self.stride == 1 and self.c_in == self.c_out


def layer_plan(arch: ArrayLike, skeleton: Skeleton = MNASNET) -> list[LayerSpec]:
    """The MBConv layers of one architecture (a ``(28,)`` gene vector or a batch of one) in ``skeleton``,
    in order."""
    dec = space.decode(arch)
    if dec["e"].shape[0] != 1:
        raise ValueError(f"layer_plan takes one architecture, got {dec['e'].shape[0]}")
    plan: list[LayerSpec] = []
    c_in = skeleton.stem_channels
    widths, strides = skeleton.out_channels, skeleton.strides
    for b in range(space.N_BLOCKS):
        for j in range(int(dec["l"][0, b])):
            plan.append(
                LayerSpec(
                    block=b,
                    index=j,
                    c_in=c_in if j == 0 else widths[b],
                    c_out=widths[b],
                    expansion=int(dec["e"][0, b]),
                    kernel=int(dec["k"][0, b]),
                    stride=strides[b] if j == 0 else 1,
                    se=bool(dec["se"][0, b]),
                )
            )
        c_in = widths[b]
    return plan


def feature_size(resolution: int, skeleton: Skeleton = MNASNET) -> list[int]:
    """Side of the feature map after the stem and after each of the seven stages, for a square input of
    ``resolution`` pixels (``[stem, stage 0, ..., stage 6]``; 'same' padding: each stride rounds up)."""
    r = -(-int(resolution) // skeleton.stem_stride)
    sides = [r]
    for s in skeleton.strides:
        r = -(-r // s)
        sides.append(r)
    return sides
