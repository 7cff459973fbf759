"""The macro geometry of the search space's networks: stem, seven MBConv stages and head.

One place for the numbers that both the analytic counter (:mod:`benchmark.macs`) and the PyTorch model
builder (:mod:`nasopt.validation.model`) use, so the two can never disagree. The networks are the
MnasNet/EfficientNet-B0 skeleton that Accel-NASBench trained: a 3x3 stride-2 stem to 32 channels, seven stages
with fixed output widths and strides whose per-stage expansion, kernel, depth and squeeze-excite are the
architecture's genes, and a 1x1 head to 1280 channels before pooling and the classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from numpy.typing import ArrayLike

from benchmark import space

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


def layer_plan(arch: ArrayLike) -> list[LayerSpec]:
    """The MBConv layers of one architecture (a ``(28,)`` gene vector or a batch of one), in order."""
    dec = space.decode(arch)
    if dec["e"].shape[0] != 1:
        raise ValueError(f"layer_plan takes one architecture, got {dec['e'].shape[0]}")
    plan: list[LayerSpec] = []
    c_in = STEM_CHANNELS
    for b in range(space.N_BLOCKS):
        for j in range(int(dec["l"][0, b])):
            plan.append(
                LayerSpec(
                    block=b,
                    index=j,
                    c_in=c_in if j == 0 else OUT_CHANNELS[b],
                    c_out=OUT_CHANNELS[b],
                    expansion=int(dec["e"][0, b]),
                    kernel=int(dec["k"][0, b]),
                    stride=STRIDES[b] if j == 0 else 1,
                    se=bool(dec["se"][0, b]),
                )
            )
        c_in = OUT_CHANNELS[b]
    return plan
