"""Benchmark targets: names, units, optimisation sense and where each lives in an upstream record."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark._typing import FloatArray
from benchmark.errors import NasoptError


@dataclass(frozen=True)
class Target:
    """One quantity the benchmark predicts."""

    name: str
    unit: str
    maximize: bool
    #: ("metrics", "val_top1") or ("platform_perf", "throughput_a100", "throughput_mean")
    record_path: tuple[str, ...]
    description: str
    #: measured on a hardware device (throughput or latency)
    is_device: bool = False
    #: a cost (hardware or training time): positive, and close to additive over layers in latency space
    is_cost: bool = False
    #: a rate (img/s): its latency-space value is ``1000 / value`` (ms per 1000 images)
    is_rate: bool = False

    def to_latency_space(self, values: FloatArray) -> FloatArray:
        """Values ``(n,)`` in the space where a cost is additive over layers: ``1000 / value`` for a rate,
        else as they are."""
        return 1000.0 / values if self.is_rate else values

    def from_latency_space(self, values: FloatArray) -> FloatArray:
        """Inverse of :meth:`to_latency_space` (the same map: ``1000 / z`` is its own inverse)."""
        return self.to_latency_space(values)


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
        is_cost=True,
        is_rate=True,
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
        is_cost=True,
    )
    for d in ("zcu102", "vck190")
]
_TARGETS.append(
    Target(
        "train_time",
        "s",
        False,
        ("metrics", "train_time"),
        "training time of the proxified scheme",
        is_cost=True,
    )
)

TARGETS: dict[str, Target] = {t.name: t for t in _TARGETS}
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)
#: targets of devices a user added (``nasopt device add``), registered at run time (:func:`register_target`)
#: or found in the user's device store (:mod:`benchmark.devices`) on first use; never part of TARGET_NAMES
USER_TARGETS: dict[str, Target] = {}
#: normalisation boxes ``(ideal, nadir)`` of targets registered with one (a built benchmark's devices)
REGISTERED_BOXES: dict[str, tuple[float, float]] = {}


class UnknownTargetError(NasoptError, KeyError):
    """A target name that the benchmark does not know."""

    def __str__(self) -> str:
        return str(self.args[0])


def register_target(target: Target, box: tuple[float, float] | None = None) -> Target:
    """Make a user device's target (or a built benchmark's, :mod:`benchmark.built`) known in this process (a
    built-in name cannot be taken); ``box`` is its normalisation box ``(ideal, nadir)``, if it has one."""
    if target.name in TARGETS:
        raise UnknownTargetError(f"{target.name!r} is a built-in target; a user device needs another name")
    USER_TARGETS[target.name] = target
    if box is not None:
        REGISTERED_BOXES[target.name] = (float(box[0]), float(box[1]))
    return target


def unregister_target(name: str) -> None:
    """Forget a user target in this process (after its device was removed)."""
    USER_TARGETS.pop(name, None)
    REGISTERED_BOXES.pop(name, None)


def registered_box(name: str) -> tuple[float, float] | None:
    """The box a target was registered with (:func:`register_target`), else None."""
    return REGISTERED_BOXES.get(name)


def _lookup(name: str) -> Target | None:
    if name in TARGETS:
        return TARGETS[name]
    if name not in USER_TARGETS:
        from benchmark.devices import discover_target

        found = discover_target(name)
        if found is not None:
            USER_TARGETS[name] = found
    return USER_TARGETS.get(name)


def is_target(name: str) -> bool:
    """Whether ``name`` is a built-in target or the target of a user device."""
    return _lookup(name) is not None


def get_target(name: str) -> Target:
    """Look up a target by name (built-in, or a user device's, see :mod:`benchmark.devices`); an unknown
    name lists the known ones."""
    found = _lookup(name)
    if found is None:
        from benchmark.devices import user_target_names

        user = user_target_names()
        extra = f"; user devices: {', '.join(user)}" if user else " (add a device: nasopt device add NAME)"
        raise UnknownTargetError(
            f"unknown benchmark target {name!r}; known targets: {', '.join(TARGET_NAMES)}{extra}"
        )
    return found


def check_targets(names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Normalise a target selection (None = all) and validate every name."""
    if names is None:
        return TARGET_NAMES
    if isinstance(names, str):
        names = [n for n in names.replace(",", " ").split() if n]
    for n in names:
        get_target(n)
    return tuple(names)
