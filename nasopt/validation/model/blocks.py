"""The building blocks of the search space's networks: conv-BN-activation, squeeze-excite, MBConv, drop path.

Written from the MnasNet / EfficientNet specification (Tan & Le) and Accel-NASBench's description of its
networks; the layer order and bias/BN choices are the ones whose ``thop`` counts equal the dataset's
``model_info`` (see :mod:`benchmark.macs`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.errors import ConfigurationError
from benchmark.geometry import LayerSpec, squeeze_channels

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
}
GATES: dict[str, Callable[[], nn.Module]] = {
    "hardsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``silu``, ``hardswish``)."""
    if name not in ACTIVATIONS:
        raise ConfigurationError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_gate(name: str) -> nn.Module:
    """A fresh squeeze-excite gate by name (``hardsigmoid``, ``sigmoid``)."""
    if name not in GATES:
        raise ConfigurationError(f"unknown squeeze-excite gate {name!r}; choose one of {', '.join(GATES)}")
    return GATES[name]()


class ConvBNAct(nn.Sequential):
    """k x k convolution (no bias, "same" padding) + BatchNorm, optionally followed by an activation."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = "relu",
        device: torch.device | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                c_in,
                c_out,
                kernel,
                stride,
                padding=(kernel - 1) // 2,
                groups=groups,
                bias=False,
                device=device,
            ),
            nn.BatchNorm2d(c_out, device=device),
        ]
        if activation is not None:
            layers.append(make_activation(activation))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention on ``hidden`` channels with a ``squeeze``-wide bottleneck of biased 1x1 convs."""

    def __init__(
        self,
        hidden: int,
        squeeze: int,
        activation: str = "relu",
        gate: str = "hardsigmoid",
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(hidden, squeeze, 1, bias=True, device=device)
        self.act = make_activation(activation)
        self.expand = nn.Conv2d(squeeze, hidden, 1, bias=True, device=device)
        self.gate = make_gate(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, hidden, H, W) -> (N, hidden, H, W)``."""
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability ``p``, scaling the
    kept ones by ``1 / (1 - p)``; the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigurationError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, ...) -> (N, ...)``."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Inverted-residual layer: [1x1 expand] -> k x k depthwise -> [squeeze-excite] -> 1x1 project
    (+ shortcut).

    The squeeze-excite bottleneck is a quarter of the layer's *input* width, as in MnasNet and EfficientNet.
    """

    def __init__(
        self,
        spec: LayerSpec,
        activation: str = "relu",
        gate: str = "hardsigmoid",
        drop_path: float = 0.0,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        hidden = spec.hidden
        layers: list[nn.Module] = []
        if spec.expansion != 1:
            layers.append(ConvBNAct(spec.c_in, hidden, 1, activation=activation, device=device))
        layers.append(
            ConvBNAct(
                hidden, hidden, spec.kernel, spec.stride, groups=hidden, activation=activation, device=device
            )
        )
        if spec.se:
            layers.append(SqueezeExcite(hidden, squeeze_channels(spec.c_in), activation, gate, device=device))
        layers.append(ConvBNAct(hidden, spec.c_out, 1, activation=None, device=device))
        self.body = nn.Sequential(*layers)
        self.drop_path = DropPath(drop_path) if spec.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)``."""
        out = self.body(x)
        if self.drop_path is not None:
            out = x + self.drop_path(out)
        return out
