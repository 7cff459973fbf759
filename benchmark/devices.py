"""User devices: targets that a user added by measuring a device (``nasopt device add``), known at run time.

The benchmark reads a user device as data, so nothing here measures anything (measuring lives in
``nasopt.validation.devices``). A device is a directory ``<user cache>/devices/<NAME>/``:

- ``device.json``: the device's target (``latency_<NAME>`` or ``throughput_<NAME>``), how it was measured
  (backend, protocol, environment), the normalisation box derived once from its measurements, and a summary
  of its surrogate's fit;
- ``records/``: every measurement as an Accel-NASBench ``result_N.json`` (+ provenance beside it);
- ``surrogate/``: the fitted device surrogate (:class:`benchmark.surrogate.SurrogateModel`, no pickle).

:func:`discover_target` is how :func:`benchmark.targets.get_target` learns a user target in any process;
:func:`predict` is how the oracles answer queries of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark._io import atomic_write_text
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import NasoptError

DEVICE_FILE = "device.json"
RECORDS_DIR = "records"
SURROGATE_DIR = "surrogate"
FORMAT_VERSION = 1
METRICS = ("latency", "throughput")
UNITS = {"latency": "ms", "throughput": "img/s"}
#: a device name: lower-case letters, digits and underscores, starting with a letter
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TARGET_RE = re.compile(r"^(latency|throughput)_([a-z][a-z0-9_]{0,31})$")


class DeviceError(NasoptError, ValueError):
    """A user device that is missing, malformed, or named like a built-in target."""


def devices_root() -> Path:
    """Directory of the user's devices: ``<user cache>/devices`` (``$NASOPT_CACHE_DIR`` moves it)."""
    from benchmark.sources import cache_dir

    return cache_dir() / "devices"


def check_device_name(name: str) -> str:
    """``name`` if it can name a new device (pattern, and no clash with a built-in target or device)."""
    from benchmark.targets import DEVICES, TARGETS

    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise DeviceError(
            f"device name {name!r}: use lower-case letters, digits and '_' (start with a letter, at most "
            f"32), e.g. my_cpu"
        )
    clash = [t for t in (f"latency_{name}", f"throughput_{name}") if t in TARGETS]
    if name in DEVICES or clash:
        raise DeviceError(
            f"device name {name!r} clashes with the built-in target(s) {', '.join(clash) or name}; "
            f"choose another name"
        )
    return name


def target_name(device: str, metric: str) -> str:
    """The target a device's metric is queried as, e.g. ``latency_my_cpu``."""
    return f"{metric}_{device}"


@dataclass(frozen=True)
class UserDevice:
    """A device read from its ``device.json`` (see the module docstring).

    Attributes:
        name: device name; metric: ``latency`` or ``throughput``; path: its directory;
        normalization: ``(ideal, nadir)`` in natural units, or None before the first fit;
        info: the whole ``device.json``.
    """

    name: str
    metric: str
    path: Path
    normalization: tuple[float, float] | None
    info: dict[str, Any]

    @property
    def target(self) -> str:
        return target_name(self.name, self.metric)

    @property
    def records_dir(self) -> Path:
        return self.path / RECORDS_DIR

    @property
    def surrogate_dir(self) -> Path:
        return self.path / SURROGATE_DIR

    @property
    def fitted(self) -> bool:
        return (self.surrogate_dir / "meta.json").is_file()

    def as_target(self) -> Any:
        """The :class:`benchmark.targets.Target` of this device."""
        from benchmark.targets import Target

        rate = self.metric == "throughput"
        where = self.info.get("description") or f"{self.info.get('backend', '?')} on {self.name}"
        return Target(
            self.target,
            UNITS[self.metric],
            rate,
            ("platform_perf", self.target, f"{self.metric}_mean"),
            f"inference {self.metric} on the user device {self.name} ({where})",
            is_device=True,
            is_cost=True,
            is_rate=rate,
        )


def device_dir(name: str, root: Path | None = None) -> Path:
    return (root or devices_root()) / name


def read_device(name: str, root: Path | None = None) -> UserDevice:
    """The device ``name``; :class:`DeviceError` (one line, with the fix) when it is missing or malformed."""
    path = device_dir(name, root)
    f = path / DEVICE_FILE
    if not f.is_file():
        known = device_names(root)
        listed = f"; user devices: {', '.join(known)}" if known else ""
        raise DeviceError(f"no user device {name!r} (no {f}); add it with: nasopt device add {name}{listed}")
    try:
        info = json.loads(f.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        metric = info["metric"]
        if metric not in METRICS or info.get("name") != name:
            raise ValueError(f"bad name/metric {info.get('name')!r}/{metric!r}")
        box = info.get("normalization")
        norm = None if box is None else (float(box["ideal"]), float(box["nadir"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeviceError(
            f"{f} is malformed ({type(exc).__name__}: {exc}); remove the device and add it again"
        ) from exc
    return UserDevice(name, metric, path, norm, info)


def write_device(path: Path, info: dict[str, Any]) -> None:
    """Write ``device.json`` into ``path`` atomically (``info`` needs ``name`` and ``metric``)."""
    path.mkdir(parents=True, exist_ok=True)
    info = {"format_version": FORMAT_VERSION, **info}
    atomic_write_text(path / DEVICE_FILE, json.dumps(info, indent=1, sort_keys=True))


def device_names(root: Path | None = None) -> list[str]:
    """Names of the user's devices (directories with a ``device.json``), sorted."""
    r = root or devices_root()
    if not r.is_dir():
        return []
    return sorted(d.name for d in r.iterdir() if (d / DEVICE_FILE).is_file() and NAME_RE.fullmatch(d.name))


def user_target_names(root: Path | None = None) -> list[str]:
    """Targets of the user's devices (those whose ``device.json`` is readable)."""
    out = []
    for n in device_names(root):
        try:
            out.append(read_device(n, root).target)
        except DeviceError:
            continue
    return out


def device_of_target(name: str) -> UserDevice | None:
    """The user device whose target is ``name`` (``latency_<NAME>`` / ``throughput_<NAME>``), or None."""
    m = _TARGET_RE.fullmatch(name)
    if m is None or not (device_dir(m.group(2)) / DEVICE_FILE).is_file():
        return None
    dev = read_device(m.group(2))
    return dev if dev.metric == m.group(1) else None


def discover_target(name: str) -> Any:
    """The :class:`~benchmark.targets.Target` of the user device behind ``name``, or None."""
    dev = device_of_target(name)
    return None if dev is None else dev.as_target()


def remove_device(name: str) -> Path:
    """Delete the device's directory and forget its target in this process; returns the path removed."""
    from benchmark.targets import unregister_target

    dev = read_device(name)
    shutil.rmtree(dev.path)
    unregister_target(dev.target)
    _SURROGATES.pop(str(dev.path), None)
    return dev.path


#: loaded device surrogates by directory, with the ``meta.json`` stamp they were loaded at
_SURROGATES: dict[str, tuple[tuple[int, int], Any]] = {}


def device_surrogate(target: str) -> Any:
    """The fitted :class:`~benchmark.surrogate.SurrogateModel` of a user target (reloaded when refitted)."""
    from benchmark.surrogate import SurrogateCacheError, SurrogateModel

    dev = device_of_target(target)
    if dev is None:
        raise DeviceError(
            f"{target!r} is not the target of a user device; list them with: nasopt device list"
        )
    meta = dev.surrogate_dir / "meta.json"
    if not meta.is_file():
        raise DeviceError(
            f"user device {dev.name!r} has no fitted surrogate yet ({meta} missing); finish it with: "
            f"nasopt device add {dev.name}"
        )
    st = os.stat(meta)
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _SURROGATES.get(str(dev.path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        model = SurrogateModel.load(dev.surrogate_dir)
    except SurrogateCacheError as exc:
        raise DeviceError(
            f"user device {dev.name!r}: its surrogate is unreadable ({exc}); refit it with: "
            f"nasopt device add {dev.name}"
        ) from exc
    _SURROGATES[str(dev.path)] = (stamp, model)
    return model


def predict(target: str, X: IntArray) -> tuple[FloatArray, FloatArray]:
    """Mean and calibrated std ``(n,)`` of a user target for a validated batch ``X (n, 28)``."""
    model = device_surrogate(target)
    mean, std = model.predict(np.asarray(X), (target,))[target]
    return mean, std


def surrogate_stamp(target: str) -> str:
    """12 hex digits identifying the fitted surrogate of a user target (of its ``meta.json``, which holds the
    digests of every file of the fit, so any refit changes it); ``unfitted`` before the first fit."""
    dev = device_of_target(target)
    if dev is None:
        raise DeviceError(
            f"{target!r} is not the target of a user device; list them with: nasopt device list"
        )
    meta = dev.surrogate_dir / "meta.json"
    try:
        return hashlib.sha256(meta.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return "unfitted"


def user_targets_in(targets: Iterable[str]) -> list[str]:
    """The targets of ``targets`` that belong to a user device (sorted, distinct; built-ins never look at
    the user cache)."""
    from benchmark.targets import TARGETS

    return sorted({t for t in targets if t not in TARGETS and device_of_target(t) is not None})


def qualified_digest(digest: str, targets: Iterable[str]) -> str:
    """``digest`` of an oracle, extended by the surrogate of every user target in ``targets``
    (``anb-...+latency_my_cpu@1a2b3c4d5e6f``): what identifies the values of a problem that uses user
    targets (runs and reference fronts). Unchanged when ``targets`` are all built-in."""
    user = user_targets_in(targets)
    return digest + "".join(f"+{t}@{surrogate_stamp(t)}" for t in user)


def provenance(targets: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per user target in ``targets``: its surrogate stamp, measurements, backend and stored box (for the
    provenance of fronts and reports); empty for built-in targets."""
    out = {}
    for t in user_targets_in(targets):
        dev = device_of_target(t)
        assert dev is not None
        fit = dev.info.get("fit") or {}
        out[t] = {
            "surrogate": surrogate_stamp(t),
            "n_records": fit.get("n_train"),
            "backend": dev.info.get("backend"),
            "normalization": None if dev.normalization is None else list(dev.normalization),
        }
    return out


def coverage(target: str) -> Any:
    """The :class:`~benchmark.coverage.TrainingCoverage` of a user target's surrogate (the device's
    measured range and architectures at its last fit), or None for a surrogate saved without one."""
    return device_surrogate(target).coverage


def measured_ranges(targets: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Per user target in ``targets``: ``(min, max)`` of the measurements its surrogate was fitted on
    (what :func:`benchmark.api.measured_ranges` is for the built-in ones); fitted devices only."""
    out = {}
    for t in user_targets_in(targets):
        dev = device_of_target(t)
        if dev is None or not dev.fitted:
            continue
        cov = coverage(t)
        if cov is not None and t in cov.ranges:
            out[t] = cov.ranges[t]
    return out


def normalization(target: str) -> tuple[float, float] | None:
    """The stored ``(ideal, nadir)`` box of a user target (natural units), None when it has none; a built
    benchmark's device target has the box its metadata gives (:func:`benchmark.targets.registered_box`)."""
    from benchmark.targets import registered_box

    box = registered_box(target)
    if box is not None:
        return box
    dev = device_of_target(target)
    return None if dev is None else dev.normalization


def read_device_records(records_dir: Path, target: str) -> tuple[IntArray, FloatArray, list[str]]:
    """The measurements of ``target`` in a directory of ``result_N.json`` records (sorted by N).

    Returns:
        genes ``(n, 28)``, values ``(n,)`` (records without the target are skipped) and the file names.
    """
    from benchmark import space

    metric = target.split("_", 1)[0]
    rows: list[tuple[int, str, dict[str, Any], float]] = []
    for p in Path(records_dir).glob("result_*.json"):
        m = re.fullmatch(r"result_(\d+)\.json", p.name)
        if m is None:
            continue
        try:
            rec = json.loads(p.read_text())
            value = rec["platform_perf"][target][f"{metric}_mean"]
            arch = rec["architecture"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if value is None or not np.isfinite(float(value)) or float(value) <= 0:
            continue
        rows.append((int(m.group(1)), p.name, arch, float(value)))
    rows.sort()
    if not rows:
        return np.zeros((0, space.N_GENES), dtype=np.int64), np.zeros(0), []
    X = space.from_dicts([r[2] for r in rows])
    return X, np.array([r[3] for r in rows]), [r[1] for r in rows]
