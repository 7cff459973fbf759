"""Built benchmarks: archives that ``nasopt benchmark build`` wrote, read like the built-in data.

An archive is a ``.tar.gz`` whose *first* member is ``benchmark.json`` (the metadata), followed by
``records/result_N.json`` in the Accel-NASBench layout. The metadata says what the benchmark is: its
``targets`` (accuracy, training time and the measured devices, each with its record path, unit, sense and a
normalisation box), the macro ``skeleton``, ``num_classes``, the input ``resolution``, the spec it was built
from, the counts and the SHA-256 of every record. :func:`read_info` peeks at the first member only, so telling
a built archive from the upstream one costs a few milliseconds; :func:`verify` checks every record against
its checksum (done before a fit).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import geometry
from benchmark.errors import NasoptError
from benchmark.targets import REGISTERED_BOXES, TARGETS, Target, register_target

META_NAME = "benchmark.json"
FORMAT = "nasopt-built-benchmark"
FORMAT_VERSION = 1


class BuiltBenchmarkError(NasoptError, ValueError):
    """A built benchmark's archive or metadata is corrupt, or a target it does not have was asked of it."""


@dataclass(frozen=True)
class BuiltInfo:
    """What a built archive's metadata says.

    Attributes:
        path: the archive; name: the benchmark's name; meta: the whole ``benchmark.json``;
        targets: its targets (built-in :class:`Target` objects for built-in names, e.g. ``accuracy``);
        boxes: normalisation box ``(ideal, nadir)`` per target that has one;
        skeleton, num_classes, resolution: the networks the records are of.
    """

    path: Path
    name: str
    meta: dict[str, Any]
    targets: tuple[Target, ...]
    boxes: dict[str, tuple[float, float]]
    skeleton: geometry.Skeleton
    num_classes: int
    resolution: int

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)

    @property
    def extra_targets(self) -> tuple[str, ...]:
        """Targets that are not built-in names (read from the records beside the built-in ones)."""
        return tuple(t.name for t in self.targets if t.name not in TARGETS)

    def check_targets(self, names: Iterable[str]) -> None:
        """Raise :class:`BuiltBenchmarkError` (one line) for a name this benchmark has no data for."""
        missing = [n for n in names if n not in self.target_names]
        if missing:
            built_in = [n for n in missing if n in TARGETS]
            what = "built-in target" if built_in == missing else "target"
            raise BuiltBenchmarkError(
                f"{what}(s) {', '.join(missing)} not in the built benchmark {self.name!r} ({self.path}); its "
                f"targets: {', '.join(self.target_names)}"
            )


def redirect(path: Path) -> Path:
    """A build directory (holding ``benchmark.json`` beside its archive) means its archive."""
    side = path / META_NAME
    if path.is_dir() and side.is_file():
        try:
            archive = path / json.loads(side.read_text())["archive"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BuiltBenchmarkError(
                f"{side} is corrupt ({type(exc).__name__}); rebuild it (nasopt benchmark build) or point at "
                f"the "
                f".tar.gz"
            ) from None
        if not archive.is_file():
            raise BuiltBenchmarkError(
                f"{path}: its build is unfinished or its archive {archive.name} is gone; run the build again"
            )
        return archive
    return path


def _first_member(path: Path) -> bytes | None:
    """The bytes of the archive's first member when it is ``benchmark.json``, else None."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            member = tar.next()
            if member is None or member.name != META_NAME or not member.isfile():
                return None
            fh = tar.extractfile(member)
            return None if fh is None else fh.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return None  # not a readable archive: the record reader says why


def read_info(path: str | os.PathLike[str]) -> BuiltInfo | None:
    """The metadata of a built archive, or None for any other data (the upstream archive, a directory)."""
    p = Path(path)
    if not p.is_file():
        return None
    raw = _first_member(p)
    if raw is None:
        return None
    return parse_meta(raw, p)


def parse_meta(raw: bytes, path: Path) -> BuiltInfo:
    """Validate ``benchmark.json`` bytes; :class:`BuiltBenchmarkError` names the field."""
    where = f"{path}:{META_NAME}"
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"format_version {meta.get('format_version')!r}; this nasopt reads {FORMAT_VERSION}"
            )
        targets: list[Target] = []
        boxes: dict[str, tuple[float, float]] = {}
        for t in meta["targets"]:
            name = str(t["name"])
            if name in TARGETS:
                targets.append(TARGETS[name])
            else:
                targets.append(
                    Target(
                        name,
                        str(t["unit"]),
                        bool(t["maximize"]),
                        tuple(str(k) for k in t["record_path"]),
                        str(t.get("description", "")),
                        is_device=bool(t.get("is_device", False)),
                        is_cost=bool(t.get("is_cost", False)),
                        is_rate=bool(t.get("is_rate", False)),
                    )
                )
            if t.get("box") is not None:
                ideal, nadir = t["box"]
                boxes[name] = (float(ideal), float(nadir))
        if not targets or targets[0].name != "accuracy":
            raise ValueError("targets must start with accuracy")
        info = BuiltInfo(
            path=path,
            name=str(meta["name"]),
            meta=meta,
            targets=tuple(targets),
            boxes=boxes,
            skeleton=geometry.Skeleton.from_dict(meta["skeleton"]),
            num_classes=int(meta["num_classes"]),
            resolution=int(meta["resolution"]),
        )
        if not isinstance(meta.get("checksums"), dict) or not meta["checksums"]:
            raise ValueError("no record checksums")
    except (ValueError, KeyError, TypeError, NasoptError) as exc:
        raise BuiltBenchmarkError(
            f"{where} is corrupt ({type(exc).__name__}: {exc}); rebuild the benchmark (nasopt benchmark "
            f"build) or get a good copy of the archive"
        ) from None
    return info


def register(info: BuiltInfo) -> None:
    """Make the benchmark's own targets (its devices') known in this process, and every target's box (a
    problem's normalisation: ImageNet's accuracy box would not fit another dataset's accuracy)."""
    forget_boxes()
    for t in info.targets:
        if t.name not in TARGETS:
            register_target(t, box=info.boxes.get(t.name))
        elif t.name in info.boxes:
            REGISTERED_BOXES[t.name] = info.boxes[t.name]


def forget_boxes() -> None:
    """Drop the boxes a built benchmark registered for built-in target names (so the built-in data's own
    boxes apply again after it is loaded)."""
    for name in [n for n in REGISTERED_BOXES if n in TARGETS]:
        del REGISTERED_BOXES[name]


def check_dataset_setting(params: Mapping[str, Any]) -> None:
    """The surrogate's setting check (:func:`benchmark.sources.check_dataset_setting`); when the data is a
    built benchmark, also read its metadata (first member only) and register its targets, so a problem on
    them (``problem.objectives=[accuracy,latency_cpu]``) can be checked before anything is fitted."""
    from benchmark.sources import check_dataset_setting as check_files

    check_files(params)
    register_setting(params, strict=True)


def register_setting(params: Mapping[str, Any], *, strict: bool = False) -> BuiltInfo | None:
    """Register the targets of the built benchmark a surrogate setting names (``dataset``, else
    ``$NASOPT_DATASET``; nothing for other data or a path that is not there); returns its info. A corrupt
    metadata file raises with ``strict``, else is left for the loader to report."""
    from benchmark.sources import ENV_DATASET, find_data

    path = params.get("dataset") or os.environ.get(ENV_DATASET)
    found = find_data(path) if path else None
    if found is None:
        return None
    try:
        info = read_info(redirect(found))
    except BuiltBenchmarkError:
        if strict:
            raise
        return None  # loading it says what is wrong
    if info is not None:
        register(info)
    return info


def verify(info: BuiltInfo, entries: Iterable[tuple[str, bytes]]) -> None:
    """Check ``(member name, bytes)`` of every record against the metadata's checksums (one line on a
    mismatch, a missing or an unlisted record)."""
    want: dict[str, str] = dict(info.meta["checksums"])
    seen = set()
    for name, data in entries:
        key = name if name in want else f"records/{os.path.basename(name)}"
        if key not in want:
            raise BuiltBenchmarkError(
                f"{info.path}: record {name} is not listed in {META_NAME}; the archive was altered: "
                f"rebuild it"
            )
        if hashlib.sha256(data).hexdigest() != want[key]:
            raise BuiltBenchmarkError(
                f"{info.path}: record {key} does not match its checksum in {META_NAME} (corrupt or edited); "
                f"rebuild the benchmark or get a good copy"
            )
        seen.add(key)
    gone = sorted(set(want) - seen)
    if gone:
        raise BuiltBenchmarkError(
            f"{info.path}: {len(gone)} record(s) listed in {META_NAME} are missing (first {gone[0]}); the "
            f"archive is truncated: rebuild it"
        )


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_NAME",
    "BuiltBenchmarkError",
    "BuiltInfo",
    "check_dataset_setting",
    "forget_boxes",
    "parse_meta",
    "read_info",
    "redirect",
    "register",
    "register_setting",
    "verify",
]
