"""``build_model``: any architecture of the search space as a PyTorch network.

The network is exactly the one Accel-NASBench trained and measured: its parameter count equals the records'
``model_info.params`` and ``thop`` counts their ``model_info.macs`` at 224 px (tests/validation/test_model.py
checks both against the data). Geometry comes from :mod:`benchmark.geometry`, the same module the analytic
counter :mod:`benchmark.macs` uses.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from benchmark import geometry, space
from benchmark.errors import ConfigurationError
from nasopt.validation.model.blocks import ACTIVATIONS, GATES, ConvBNAct, MBConv


@dataclass(frozen=True)
class ModelConfig:
    """What, besides the architecture, defines a built network (stored beside exported weights).

    The defaults are the dataset's networks: ReLU with a hard-sigmoid squeeze-excite gate, stochastic depth
    0.2 (linearly increasing over the layers) and dropout 0.2 before the classifier. The EfficientNet-style
    full scheme uses ``activation="silu", gate="sigmoid"``.
    """

    num_classes: int = geometry.NUM_CLASSES
    activation: str = "relu"
    gate: str = "hardsigmoid"
    drop_path_rate: float = 0.2
    dropout: float = 0.2
    #: the macro skeleton (widths, strides); a mapping (from exported metadata) is converted
    skeleton: geometry.Skeleton = geometry.MNASNET

    def __post_init__(self) -> None:
        if not isinstance(self.skeleton, geometry.Skeleton):
            if not isinstance(self.skeleton, Mapping):
                raise ConfigurationError(
                    f"skeleton must be a benchmark.geometry.Skeleton or a mapping, got {self.skeleton!r}"
                )
            object.__setattr__(self, "skeleton", geometry.Skeleton.from_dict(self.skeleton))
        if (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, (int, np.integer))
            or self.num_classes < 1
        ):
            raise ConfigurationError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        if self.activation not in ACTIVATIONS:
            raise ConfigurationError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.gate not in GATES:
            raise ConfigurationError(
                f"unknown squeeze-excite gate {self.gate!r}; choose one of {', '.join(GATES)}"
            )
        for name in ("drop_path_rate", "dropout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) < 1.0:
                raise ConfigurationError(f"{name} must be a number in [0, 1), got {v!r}")
            object.__setattr__(self, name, float(v))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON / safetensors metadata."""
        d = asdict(self)
        d["skeleton"] = self.skeleton.to_dict()
        return d


class ArchNet(nn.Module):
    """Stem -> MBConv stages -> head -> pool -> dropout -> classifier, for one ``(28,)`` architecture.

    Attributes: ``arch`` (the ``(28,)`` genes), ``arch_string`` (compact form), ``config``
    (:class:`ModelConfig`).
    Input ``(N, 3, H, W)`` at any resolution (the dataset trains at 160-192 px, measures at 224-256 px);
    output ``(N, num_classes)`` logits.
    """

    def __init__(
        self, arch: ArrayLike, config: ModelConfig | None = None, device: torch.device | None = None
    ) -> None:
        """Modules on ``device`` with torch's default initialisation; :func:`build_model` builds on the
        ``meta`` device and initialises once, which is 2-3x faster."""
        super().__init__()
        genes = space.parse(arch) if not isinstance(arch, np.ndarray) else space.as_batch(arch)[0]
        self.arch = genes.copy()
        self.arch_string = space.to_string(genes)
        self.config = config or ModelConfig()
        cfg = self.config
        sk = cfg.skeleton
        self.stem = ConvBNAct(
            sk.in_channels,
            sk.stem_channels,
            sk.stem_kernel,
            sk.stem_stride,
            activation=cfg.activation,
            device=device,
        )
        plan = geometry.layer_plan(genes, sk)
        n = len(plan)
        stages: list[list[nn.Module]] = [[] for _ in range(space.N_BLOCKS)]
        for i, spec in enumerate(plan):  # stochastic depth grows linearly with depth, as in EfficientNet
            stages[spec.block].append(
                MBConv(spec, cfg.activation, cfg.gate, cfg.drop_path_rate * i / n, device=device)
            )
        self.blocks = nn.Sequential(*(nn.Sequential(*s) for s in stages))
        self.head = ConvBNAct(
            sk.out_channels[-1], sk.head_channels, 1, activation=cfg.activation, device=device
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(sk.head_channels, cfg.num_classes, device=device)

    def reset_parameters(self) -> None:
        """EfficientNet-style initialisation: He-normal (fan-out) convs, unit BN (fresh running statistics),
        uniform classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, head_channels)`` pooled features (1280 in the dataset's skeleton)."""
        return torch.flatten(self.pool(self.head(self.blocks(self.stem(x)))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, num_classes)``."""
        return self.classifier(self.dropout(self.features(x)))

    def no_weight_decay_names(self) -> list[str]:
        """Names of the parameters that training leaves out of weight decay: BatchNorm and bias terms."""
        return [name for name, p in self.named_parameters() if p.ndim <= 1]


def build_model(
    arch: Any,
    num_classes: int = geometry.NUM_CLASSES,
    *,
    activation: str = "relu",
    gate: str = "hardsigmoid",
    drop_path_rate: float = 0.2,
    dropout: float = 0.2,
    skeleton: geometry.Skeleton = geometry.MNASNET,
    device: str | torch.device = "cpu",
) -> ArchNet:
    """The network of ``arch`` (a compact string ``"e1k3l1+ e6k3l2+ ..."``, an upstream dict, 28 genes, or
    a reference name such as ``"efficientnet_b0"``), freshly initialised on ``device`` (in the global torch
    RNG's stream: seed with ``torch.manual_seed`` for identical weights).

    ``skeleton`` sets the macro widths and strides (default: the dataset's MnasNet skeleton).
    ``device="meta"`` builds the structure only (no memory, no initialisation; for counting and shapes).
    """
    if isinstance(arch, str) and arch.strip().lower().replace("-", "_") in space.REFERENCES:
        arch = space.reference(arch.strip())
    config = ModelConfig(
        num_classes=num_classes,
        activation=activation,
        gate=gate,
        drop_path_rate=drop_path_rate,
        dropout=dropout,
        skeleton=skeleton,
    )
    genes = space.parse(arch)
    # structure first, on the meta device and without torch's per-layer default initialisation (ours, below,
    # replaces it): building is then pure bookkeeping
    with _without_default_init():
        model = ArchNet(genes, config, device=torch.device("meta"))
    if torch.device(device).type != "meta":
        _materialize(model, torch.device(device))
        model.reset_parameters()
    return model


_INITIALISED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


@contextlib.contextmanager
def _without_default_init() -> Iterator[None]:
    """Skip ``reset_parameters`` of the layer types :meth:`ArchNet.reset_parameters` initialises itself, while
    a network is built (the same idea as Hugging Face's ``no_init_weights``); restored on exit."""
    own = {cls: cls.__dict__.get("reset_parameters") for cls in _INITIALISED}  # None: inherited
    try:
        for cls in _INITIALISED:
            cls.reset_parameters = lambda self: None  # type: ignore[method-assign]
        yield
    finally:
        for cls, fn in own.items():
            if fn is None:
                del cls.reset_parameters
            else:
                cls.reset_parameters = fn  # type: ignore[method-assign]


def _materialize(model: nn.Module, device: torch.device) -> None:
    """Give every meta parameter and buffer uninitialised storage on ``device`` (what ``Module.to_empty``
    does, several times faster: it skips the per-tensor layout inference of ``empty_like``)."""
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                module._parameters[name] = nn.Parameter(
                    torch.empty(p.shape, dtype=p.dtype, device=device), requires_grad=p.requires_grad
                )
        for name, b in module._buffers.items():
            if b is not None:
                module._buffers[name] = torch.empty(b.shape, dtype=b.dtype, device=device)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model`` (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
