"""Benchmark targets: names, units, optimisation sense and where each lives in an upstream record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One quantity the benchmark predicts."""

    name: str
    unit: str
    maximize: bool
    #: ("metrics", "val_top1") or ("platform_perf", "throughput_a100", "throughput_mean")
    record_path: tuple[str, ...]
    description: str
    #: devices: hardware cost, additive over layers in latency space
    is_device: bool = False


DEVICES = ("a100", "3090", "tpuv2", "tpuv3", "zcu102", "vck190")

_TARGETS: list[Target] = [
    Target("accuracy", "%", True, ("metrics", "val_top1"), "ImageNet top-1 validation accuracy (proxified)"),
]
_TARGETS += [
    Target(
        f"throughput_{d}",
        "img/s",
        True,
        ("platform_perf", f"throughput_{d}", "throughput_mean"),
        f"inference throughput on {d.upper()}",
        is_device=True,
    )
    for d in DEVICES
]
_TARGETS += [
    Target(
        f"latency_{d}",
        "ms",
        False,
        ("platform_perf", f"latency_{d}", "latency_mean"),
        f"inference latency on {d.upper()}",
        is_device=True,
    )
    for d in ("zcu102", "vck190")
]
_TARGETS.append(
    Target("train_time", "s", False, ("metrics", "train_time"), "training time of the proxified scheme")
)

TARGETS: dict[str, Target] = {t.name: t for t in _TARGETS}
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)


class UnknownTargetError(KeyError):
    """A target name that the benchmark does not know."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_target(name: str) -> Target:
    """Look up a target by name; an unknown name lists the known ones."""
    if name not in TARGETS:
        raise UnknownTargetError(
            f"unknown benchmark target {name!r}; known targets: {', '.join(TARGET_NAMES)}"
        )
    return TARGETS[name]


def check_targets(names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Normalise a target selection (None = all) and validate every name."""
    if names is None:
        return TARGET_NAMES
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    for n in names:
        get_target(n)
    return tuple(names)
