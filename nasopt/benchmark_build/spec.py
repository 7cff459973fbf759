"""What a built benchmark is made of: :class:`BenchmarkSpec` (frozen, hashed) and its devices.

A spec comes from a YAML file and/or ``key=value`` overrides (the syntax of ``nasopt search``:
``n_architectures=200 proxy.epochs=2 'seeds=[0,1]'``), or from Python. Its :meth:`BenchmarkSpec.digest`
covers everything that decides the records (data, classes, resolution, skeleton, the effective training
scheme, train fraction, seeds, sampling, devices and their protocol); the execution settings (engine, its
options, parallelism, threads, a synthetic trainer's delay) are left out, so moving a build from the laptop
to SLURM keeps it the same build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import geometry
from benchmark.devices import NAME_RE
from benchmark.errors import ConfigurationError

#: fewest architectures a build may have: the surrogate ensemble holds out one fold per member (5)
MIN_ARCHITECTURES = 10
SAMPLINGS = ("uniform", "cover")
TRAINERS = ("torch", "synthetic")
#: execution engines: in this process, or through :mod:`nasopt.engines`
ENGINE_KINDS = ("local", "submitit_local", "slurm", "ray")
#: spec fields that change how a build runs, not what it produces (not part of the digest)
EXECUTION_FIELDS = ("engine", "engine_options", "max_parallel", "threads", "trainer_options", "shard")
#: measurement settings a device may fix (the rest are the backend's defaults)
DEVICE_SETTINGS = ("batch", "threads", "warmup", "repeats", "passes")


class BuildSpecError(ConfigurationError):
    """A benchmark spec that cannot be built; the message names the setting and the fix."""


@dataclass(frozen=True)
class DeviceSpec:
    """One device every architecture is measured on; its target is ``<metric>_<name>``.

    Attributes:
        name: device name (lower case, e.g. ``cpu``); backend: a measurement backend
            (:data:`nasopt.validation.measure.BACKENDS`: ``onnxruntime``, ``torch-cpu``, ``cuda``...) or
            ``synthetic`` (an analytic stand-in for tests); metric: ``latency`` or ``throughput``;
        batch/threads/warmup/repeats/passes: the protocol (None: the backend's default);
        options: extra backend settings (``noise`` of ``synthetic``).
    """

    name: str = "cpu"
    backend: str = "onnxruntime"
    metric: str = "latency"
    batch: int | None = 1
    threads: int | None = 1
    warmup: int | None = None
    repeats: int | None = None
    passes: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.fullmatch(self.name):
            raise BuildSpecError(
                f"benchmark spec: devices: name {self.name!r}: use lower-case letters, digits and '_' "
                f"(start with a letter), e.g. cpu"
            )
        if self.metric not in ("latency", "throughput"):
            raise BuildSpecError(
                f"benchmark spec: device {self.name!r}: metric {self.metric!r}: choose latency or throughput"
            )
        for k in DEVICE_SETTINGS:
            v = getattr(self, k)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "warmup" else 1)
            ):
                raise BuildSpecError(
                    f"benchmark spec: device {self.name!r}: {k}={v!r}: give a positive integer or null"
                )
        object.__setattr__(self, "options", dict(self.options))

    @property
    def target(self) -> str:
        return f"{self.metric}_{self.name}"

    def settings(self) -> dict[str, Any]:
        """The backend settings (protocol values given, plus ``options``)."""
        out = {k: getattr(self, k) for k in DEVICE_SETTINGS if getattr(self, k) is not None}
        return {**out, **dict(self.options)}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["options"] = dict(self.options)
        return d


def _as_devices(value: Any) -> tuple[DeviceSpec, ...]:
    if isinstance(value, DeviceSpec):
        return (value,)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise BuildSpecError(
            f"benchmark spec: devices must be a list of devices ({{name: cpu, backend: onnxruntime}}), "
            f"got {value!r}"
        )
    out = []
    for d in value:
        if isinstance(d, DeviceSpec):
            out.append(d)
            continue
        if not isinstance(d, Mapping):
            raise BuildSpecError(f"benchmark spec: a device must be a mapping of settings, got {d!r}")
        known = {f.name for f in dataclasses.fields(DeviceSpec)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BuildSpecError(
                f"benchmark spec: device setting(s) {', '.join(unknown)} unknown; "
                f"known: {', '.join(sorted(known))}"
            )
        out.append(DeviceSpec(**dict(d)))
    targets = [d.target for d in out]
    if len(set(targets)) != len(targets):
        raise BuildSpecError(
            f"benchmark spec: devices: a target appears twice ({targets}); name each device once"
        )
    return tuple(out)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything a benchmark build needs (see the module docstring; field docs in the README).

    Attributes:
        name: the benchmark's name (archive ``<name>.tar.gz``); data: root of an ImageNet-layout image
            folder (``train/<class>/*``, ``val/<class>/*``); dataset: a label for the data (metadata);
        num_classes: classes (None: counted from ``data/train``); resolution: the input side the devices
            measure and MACs are counted at (None: the scheme's validation side);
        skeleton: a width multiplier of the MnasNet skeleton (``0.25``) or a mapping of
            :class:`benchmark.geometry.Skeleton` settings;
        scheme + proxy: the training scheme (``smoke``, ``proxified``, ``full``) and overrides of its settings
            (the proxy's knobs); proxy_file: a JSON file of a proxy search (``nasopt proxy search``) whose
            scheme settings are applied after ``proxy``; train_fraction: fraction of the training images;
        seeds: training seeds per architecture (devices are measured once per architecture);
        sampling: ``uniform`` or ``cover`` (a covering design: every gene level about equally often);
        n_architectures, sample_seed: how many architectures, and the seed that draws them;
        devices: :class:`DeviceSpec` list; trainer: ``torch`` (real training) or ``synthetic`` (tests);
        engine, engine_options, max_parallel: where the training jobs run (``local`` in this process;
            ``submitit_local``, ``slurm``, ``ray`` through :mod:`nasopt.engines`); threads: torch threads per
            training; trainer_options: settings of the synthetic trainer (``delay`` seconds per run);
        shard: ``"i/k"`` to build only every k-th job from the i-th, in parallel with the other shards.
    """

    name: str = "custom"
    data: str | None = None
    dataset: str = ""
    num_classes: int | None = None
    resolution: int | None = None
    skeleton: float | Mapping[str, Any] = 1.0
    scheme: str = "smoke"
    proxy: Mapping[str, Any] = field(default_factory=dict)
    proxy_file: str | None = None
    train_fraction: float = 1.0
    seeds: tuple[int, ...] = (0,)
    sampling: str = "uniform"
    n_architectures: int = 200
    sample_seed: int = 0
    devices: tuple[DeviceSpec, ...] = (DeviceSpec(),)
    trainer: str = "torch"
    engine: str = "local"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    max_parallel: int = 1
    threads: int | None = 1
    trainer_options: Mapping[str, Any] = field(default_factory=dict)
    shard: str | None = None

    def __post_init__(self) -> None:
        def bad(key: str, want: str) -> BuildSpecError:
            return BuildSpecError(f"benchmark spec: {key}={getattr(self, key)!r}: {want}")

        if (
            not isinstance(self.name, str)
            or not self.name
            or not all(c.isalnum() or c in "-_." for c in self.name)
        ):
            raise bad("name", "use letters, digits, '-', '_' or '.' (it names the archive)")
        n = self.n_architectures
        if isinstance(n, bool) or not isinstance(n, int) or n < MIN_ARCHITECTURES:
            raise bad(
                "n_architectures",
                f"build at least {MIN_ARCHITECTURES} architectures (the surrogates hold out one fold per "
                f"ensemble member; 200 or more for a useful benchmark)",
            )
        if self.sampling not in SAMPLINGS:
            raise bad("sampling", f"choose {' or '.join(SAMPLINGS)}")
        if self.trainer not in TRAINERS:
            raise bad("trainer", f"choose {' or '.join(TRAINERS)}")
        if self.engine not in ENGINE_KINDS:
            raise bad("engine", f"choose one of {', '.join(ENGINE_KINDS)}")
        seeds = tuple(self.seeds) if isinstance(self.seeds, (list, tuple)) else (self.seeds,)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise bad("seeds", "give a list of non-negative integers, e.g. [0] or [0,1,2]")
        if len(set(seeds)) != len(seeds):
            raise bad("seeds", "each seed once")
        object.__setattr__(self, "seeds", seeds)
        if self.num_classes is not None and (
            isinstance(self.num_classes, bool)
            or not isinstance(self.num_classes, int)
            or self.num_classes < 2
        ):
            raise bad("num_classes", "give an integer >= 2 or null (counted from data/train)")
        if self.resolution is not None and (
            isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or self.resolution < 8
        ):
            raise bad("resolution", "give an input side in pixels (>= 8) or null (the scheme's val_res)")
        if (
            isinstance(self.train_fraction, bool)
            or not isinstance(self.train_fraction, (int, float))
            or not (0.0 < float(self.train_fraction) <= 1.0)
        ):
            raise bad("train_fraction", "give a fraction in (0, 1]")
        object.__setattr__(self, "train_fraction", float(self.train_fraction))
        if (
            isinstance(self.max_parallel, bool)
            or not isinstance(self.max_parallel, int)
            or self.max_parallel < 1
        ):
            raise bad("max_parallel", "give a positive integer")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise bad("threads", "give a positive integer or null (torch's default)")
        if (
            isinstance(self.sample_seed, bool)
            or not isinstance(self.sample_seed, int)
            or self.sample_seed < 0
        ):
            raise bad("sample_seed", "give a non-negative integer")
        if self.shard is not None:
            self.shard_index()
        object.__setattr__(self, "devices", _as_devices(self.devices))
        for k in ("proxy", "engine_options", "trainer_options"):
            v = getattr(self, k)
            if not isinstance(v, Mapping):
                raise bad(k, "give a mapping of settings")
            object.__setattr__(self, k, dict(v))
        if self.trainer == "torch" and not self.data:
            raise bad(
                "data", "give the root of an ImageNet-layout image folder (data=/path with train/ and val/)"
            )
        self.skeleton_obj()  # validates
        self.train_scheme()  # validates the scheme and the proxy's settings

    def shard_index(self) -> tuple[int, int]:
        """``(i, k)`` of ``shard="i/k"``: this process builds every k-th job from the i-th (0-based);
        ``(0, 1)`` without a shard. Shards of one build run at once in the same directory (each its own
        lock); the one that finds every record there writes the archive."""
        if self.shard is None:
            return 0, 1
        try:
            i_s, k_s = str(self.shard).split("/")
            i, k = int(i_s), int(k_s)
            if not 0 <= i < k:
                raise ValueError
        except ValueError:
            raise BuildSpecError(
                f"benchmark spec: shard={self.shard!r}: give i/k with 0 <= i < k, e.g. shard=0/3"
            ) from None
        return i, k

    # ---- derived values ---------------------------------------------------------------------------------
    def skeleton_obj(self) -> geometry.Skeleton:
        """The :class:`~benchmark.geometry.Skeleton` the networks are built in."""
        sk = self.skeleton
        if isinstance(sk, Mapping):
            return geometry.Skeleton.from_dict(sk)
        if isinstance(sk, (int, float)) and not isinstance(sk, bool):
            return geometry.MNASNET if float(sk) == 1.0 else geometry.MNASNET.scaled(float(sk))
        raise BuildSpecError(
            f"benchmark spec: skeleton={sk!r}: give a width multiplier (0.25) or a mapping of "
            f"skeleton settings"
        )

    def proxy_settings(self) -> dict[str, Any]:
        """The scheme overrides: ``proxy``, then those of ``proxy_file`` (see :func:`read_proxy_file`)."""
        out = dict(self.proxy)
        if self.proxy_file:
            out.update(read_proxy_file(self.proxy_file)[0])
        return out

    def effective_train_fraction(self) -> float:
        if self.proxy_file:
            frac = read_proxy_file(self.proxy_file)[1]
            if frac is not None:
                return frac
        return self.train_fraction

    def train_scheme(self) -> Any:
        """The :class:`nasopt.validation.train.schemes.TrainScheme` every architecture is trained with."""
        from nasopt.validation.train.schemes import get_scheme

        try:
            return get_scheme(self.scheme).with_overrides(self.proxy_settings())
        except (ConfigurationError, TypeError, ValueError) as exc:
            raise BuildSpecError(f"benchmark spec: scheme {self.scheme!r} / proxy: {exc}") from None

    def effective_resolution(self) -> int:
        return int(self.resolution) if self.resolution is not None else int(self.train_scheme().val_res)

    def classes(self) -> list[str]:
        """Class folder names of ``data/train`` (empty for the synthetic trainer without data)."""
        if not self.data:
            return []
        root = Path(self.data).expanduser()
        train = root / "train"
        if not train.is_dir():
            raise BuildSpecError(
                f"benchmark spec: data={self.data!r}: no train/ folder there; give the root of an "
                f"ImageNet-layout image folder (train/<class>/*, val/<class>/*)"
            )
        return sorted(d.name for d in train.iterdir() if d.is_dir())

    def effective_num_classes(self) -> int:
        if self.num_classes is not None:
            found = self.classes()
            if found and len(found) != self.num_classes:
                raise BuildSpecError(
                    f"benchmark spec: num_classes={self.num_classes} but {self.data}/train has {len(found)} "
                    f"class folders; fix num_classes or leave it null"
                )
            return int(self.num_classes)
        found = self.classes()
        if len(found) < 2:
            raise BuildSpecError(
                f"benchmark spec: data={self.data!r}: {len(found)} class folder(s) in train/; "
                f"give num_classes "
                f"or a folder with at least 2 classes"
            )
        return len(found)

    # ---- identity ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values of every field."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["devices"] = [x.to_dict() for x in self.devices]
        d["seeds"] = list(self.seeds)
        for k in ("proxy", "engine_options", "trainer_options"):
            d[k] = dict(d[k])
        if isinstance(self.skeleton, Mapping):
            d["skeleton"] = dict(self.skeleton)
        return d

    def identity(self) -> dict[str, Any]:
        """What decides the records: the effective settings (the digest's input)."""
        d = self.to_dict()
        for k in (*EXECUTION_FIELDS, "proxy", "proxy_file", "skeleton", "num_classes", "resolution", "data"):
            d.pop(k, None)
        d["data"] = None if self.data is None else os.path.abspath(Path(self.data).expanduser())
        d["train_scheme"] = self.train_scheme().to_dict()
        d["train_fraction"] = self.effective_train_fraction()
        d["skeleton"] = self.skeleton_obj().to_dict()
        d["num_classes"] = self.effective_num_classes()
        d["resolution"] = self.effective_resolution()
        return d

    def digest(self) -> str:
        """16 hex digits of the sha256 of :meth:`identity`."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BenchmarkSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BuildSpecError(
                f"benchmark spec: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(d)
        if "seeds" in values and isinstance(values["seeds"], list):
            values["seeds"] = tuple(values["seeds"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise BuildSpecError(f"benchmark spec: {exc}") from None


def read_proxy_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], float | None]:
    """Scheme overrides and the train fraction from a proxy search's JSON: ``{"scheme": {...},
    "train_fraction": f}`` (``"proxy"`` instead of ``"scheme"``, or the knobs at the top level, also work);
    keys that are not scheme settings are ignored, except ``train_fraction``."""
    from nasopt.validation.train.schemes import TrainScheme

    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise BuildSpecError(
            f"benchmark spec: proxy_file={str(p)!r}: cannot read it ({type(exc).__name__}); give the JSON a "
            f"proxy search wrote, or leave proxy_file null"
        ) from None
    if not isinstance(data, dict):
        raise BuildSpecError(f"benchmark spec: proxy_file={str(p)!r}: expected a JSON object")
    node = data.get("scheme", data.get("proxy", data))
    if not isinstance(node, dict):
        node = data
    fields = {f.name for f in dataclasses.fields(TrainScheme)} - {"name"}
    overrides = {k: v for k, v in node.items() if k in fields}
    frac = node.get("train_fraction", data.get("train_fraction"))
    if isinstance(data.get("data"), dict) and frac is None:
        frac = data["data"].get("train_fraction")
    return overrides, (None if frac is None else float(frac))


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None, overrides: Sequence[str] = ()
) -> BenchmarkSpec:
    """A spec from a YAML file (or a mapping) and ``key=value`` overrides (OmegaConf dot-list syntax:
    ``proxy.epochs=2``, ``'seeds=[0,1]'``, ``'devices=[{name: cpu, backend: onnxruntime}]'``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base: dict[str, Any] = {}
    if isinstance(source, Mapping):
        base = dict(source)
    elif source is not None:
        p = Path(source).expanduser()
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
        except (OSError, OmegaConfBaseException, ValueError) as exc:
            raise BuildSpecError(
                f"benchmark spec {str(p)!r}: cannot read it ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(loaded, dict):
            raise BuildSpecError(f"benchmark spec {str(p)!r}: expected a YAML mapping of settings")
        base = {str(k): v for k, v in loaded.items()}
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise BuildSpecError(
            f"benchmark spec: override {bad[0]!r} is not key=value (e.g. n_architectures=200)"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.create(base), OmegaConf.from_dotlist(list(overrides)))
        plain = OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, ValueError) as exc:
        raise BuildSpecError(f"benchmark spec: bad override ({type(exc).__name__}: {exc})") from None
    assert isinstance(plain, dict)
    return BenchmarkSpec.from_dict({str(k): v for k, v in plain.items()})


__all__ = [
    "EXECUTION_FIELDS",
    "MIN_ARCHITECTURES",
    "BenchmarkSpec",
    "BuildSpecError",
    "DeviceSpec",
    "load_spec",
    "read_proxy_file",
]
