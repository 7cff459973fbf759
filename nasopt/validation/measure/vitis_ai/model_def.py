"""The bundle's float network, self-contained: the Accel-NASBench architecture as a torch module, its weights
from ``weights.safetensors`` (read here without the safetensors package and without pickle), and the
calibration images' preprocessing.

Written by nasopt into an FPGA deploy bundle; runs in the Vitis AI 3.5 docker (Python 3.8, torch 1.13) with
no nasopt installed. The module names equal nasopt's ``ArchNet``, so nasopt's state dict loads as it is.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np
import torch
from torch import nn

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
STRIDES = (1, 2, 2, 2, 1, 2, 1)
OUT_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875

_BLOCK = re.compile(r"e(\d)k(\d)l(\d)([+-])")


def parse_arch(arch: str) -> list[tuple[int, int, int, bool]]:
    """``"e1k3l1+ e6k3l2- ..."`` -> seven ``(expansion, kernel, layers, squeeze_excite)``."""
    blocks = [_BLOCK.fullmatch(tok) for tok in arch.split()]
    if len(blocks) != len(STRIDES) or any(b is None for b in blocks):
        raise ValueError("not an architecture string of seven blocks 'e<e>k<k>l<l><+|->': %r" % arch)
    return [(int(b.group(1)), int(b.group(2)), int(b.group(3)), b.group(4) == "+") for b in blocks if b]


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "hardswish":
        return nn.Hardswish(inplace=True)
    raise ValueError("unknown activation %r" % name)


def _gate(name: str) -> nn.Module:
    if name == "hardsigmoid":
        return nn.Hardsigmoid(inplace=True)
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError("unknown squeeze-excite gate %r" % name)


def conv_bn(
    c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: Any = None
) -> nn.Sequential:
    """k x k conv (no bias) + BN [+ activation]."""
    layers = [
        nn.Conv2d(c_in, c_out, k, stride, padding=(k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act is not None:
        layers.append(_activation(act))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, hidden: int, squeeze: int, act: str, gate: str) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(hidden, squeeze, 1, bias=True)
        self.act = _activation(act)
        self.expand = nn.Conv2d(squeeze, hidden, 1, bias=True)
        self.gate = _gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual (inference only: stochastic depth is the identity)."""

    def __init__(self, c_in: int, c_out: int, e: int, k: int, stride: int, se: bool, act: str, gate: str):
        super().__init__()
        hidden = c_in * e
        layers: list[nn.Module] = []
        if e != 1:
            layers.append(conv_bn(c_in, hidden, 1, act=act))
        layers.append(conv_bn(hidden, hidden, k, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, max(1, c_in // 4), act, gate))
        layers.append(conv_bn(hidden, c_out, 1))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class ArchNet(nn.Module):
    """Stem -> seven MBConv stages -> 1x1 head -> pool -> classifier; ``(N, 3, r, r) -> (N, classes)``."""

    def __init__(
        self, arch: str, num_classes: int = 1000, activation: str = "relu", gate: str = "hardsigmoid"
    ):
        super().__init__()
        self.stem = conv_bn(3, STEM_CHANNELS, 3, 2, act=activation)
        stages: list[nn.Module] = []
        c_in = STEM_CHANNELS
        for b, (e, k, n, se) in enumerate(parse_arch(arch)):
            layers: list[nn.Module] = []
            for j in range(n):
                stride = STRIDES[b] if j == 0 else 1
                layers.append(MBConv(c_in, OUT_CHANNELS[b], e, k, stride, se, activation, gate))
                c_in = OUT_CHANNELS[b]
            stages.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*stages)
        self.head = conv_bn(OUT_CHANNELS[-1], HEAD_CHANNELS, 1, act=activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


# ---- weights: the safetensors format (8-byte header length, JSON header, raw little-endian tensors)
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file."""
    with open(path, "rb") as fh:
        data = fh.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise ValueError(
                "%s: tensor %s has dtype %s, which this reader does not know" % (path, name, info["dtype"])
            )
        begin, end = info["data_offsets"]
        arr = np.frombuffer(body[begin:end], dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = torch.from_numpy(
            arr.reshape(info["shape"]).astype(arr.dtype.newbyteorder("="), copy=True)
        )
    return tensors, meta


def load_network(weights: str) -> ArchNet:
    """The network saved by nasopt (``save_weights``): architecture and config from the file's metadata."""
    tensors, meta = read_safetensors(weights)
    info = json.loads(meta["nasopt"])
    cfg = info.get("config", {})
    model = ArchNet(
        info["arch"],
        int(cfg.get("num_classes", 1000)),
        cfg.get("activation", "relu"),
        cfg.get("gate", "hardsigmoid"),
    )
    model.load_state_dict(tensors, strict=True)
    return model.eval()


# ---- calibration images: the evaluation transform nasopt uses (nasopt.validation.measure.calibration)
def preprocess(path: str, resolution: int = 224) -> np.ndarray:
    """One image as a ``(3, r, r)`` float32 input: resize the shorter side to r / 0.875, centre crop,
    normalise."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    short = int(round(resolution / CROP_FRACTION))
    w, h = img.size
    scale = short / float(min(w, h))
    bilinear = getattr(Image, "Resampling", Image).BILINEAR  # Pillow >= 9.1, and older ones
    img = img.resize((max(short, int(round(w * scale))), max(short, int(round(h * scale)))), bilinear)
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    x: Any = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
