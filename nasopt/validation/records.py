"""Measurements (and trained results) as Accel-NASBench records, so the benchmark's own loader reads them.

A record is ``result_<N>.json`` with the upstream sections ``architecture`` (the upstream dict),
``metrics`` (``val_top1``, ``val_top5``, ``train_time``; null when not trained), ``model_info`` (MACs and
parameters in millions, from :mod:`benchmark.macs`) and ``platform_perf`` (``<metric>_<device>`` ->
``{"<metric>_mean": .., "<metric>_std": ..}``). Beside it, ``result_<N>.provenance.json`` keeps what the
record cannot: every sample, the protocol and the environment of each measurement. A directory of records is
what ``nasopt bench evaluate --test DIR`` and :func:`benchmark.dataset.read_records` take.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark import macs, space
from benchmark._io import atomic_write_text, package_versions
from benchmark.errors import NasoptError
from nasopt.validation.measure.base import Measurement, MeasurementError

PROVENANCE_SUFFIX = ".provenance.json"
_RESULT_RE = re.compile(r"result_(\d+)\.json")
FORMAT_VERSION = 1


class RecordError(NasoptError, ValueError):
    """A measurement record that cannot be written or read."""


def record_for(
    arch: Any, measurements: Sequence[Measurement] = (), metrics: Mapping[str, float | None] | None = None
) -> dict[str, Any]:
    """The Accel-NASBench record of one architecture: its measurements' means/stds in ``platform_perf``
    and, when given, trained ``metrics`` (``val_top1``, ``val_top5``, ``train_time``)."""
    genes = space.parse(arch)
    m_macs, m_params = macs.macs_params(genes)
    perf: dict[str, dict[str, float | None]] = {}
    for m in measurements:
        if space.to_string(space.parse(m.arch)) != space.to_string(genes):
            raise RecordError(f"measurement of {m.arch!r} given for the record of {space.to_string(genes)!r}")
        if m.target in perf:
            raise RecordError(
                f"two measurements of {m.target} for {m.arch!r}; keep one per device and metric"
            )
        perf[m.target] = {f"{m.metric}_mean": float(m.mean), f"{m.metric}_std": float(m.std)}
    given = dict(metrics or {})
    unknown = set(given) - {"val_top1", "val_top5", "train_time"}
    if unknown:
        raise RecordError(f"unknown record metrics {sorted(unknown)}; known: val_top1, val_top5, train_time")
    return {
        "architecture": space.to_dicts(genes)[0],
        "metrics": {
            k: (None if given.get(k) is None else float(given[k]))  # type: ignore[arg-type]
            for k in ("val_top1", "val_top5", "train_time")
        },
        "model_info": {"macs": round(float(m_macs[0]), 6), "params": round(float(m_params[0]), 6)},
        "platform_perf": perf,
    }


def _next_index(out_dir: Path) -> int:
    used = [int(m.group(1)) for p in out_dir.glob("result_*.json") if (m := _RESULT_RE.fullmatch(p.name))]
    return max(used, default=-1) + 1


def write_record(
    out_dir: str | os.PathLike[str],
    arch: Any,
    measurements: Sequence[Measurement] = (),
    metrics: Mapping[str, float | None] | None = None,
    extra_provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``result_<N>.json`` (the next free N) and its provenance beside it, atomically; returns the
    record's path. Existing records are never overwritten."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = record_for(arch, measurements, metrics)
    n = _next_index(out)
    path = out / f"result_{n}.json"
    provenance = {
        "format_version": FORMAT_VERSION,
        "record": path.name,
        "arch": space.to_string(space.parse(arch)),
        "measurements": [m.to_dict() for m in measurements],
        "software": package_versions(),
        **dict(extra_provenance or {}),
    }
    atomic_write_text(out / f"result_{n}{PROVENANCE_SUFFIX}", json.dumps(provenance, indent=1))
    atomic_write_text(path, json.dumps(record, indent=1))
    return path


def write_measurements(out_dir: str | os.PathLike[str], measurements: Iterable[Measurement]) -> list[Path]:
    """One record per architecture (its measurements grouped), in first-seen order; returns the paths."""
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(space.to_string(space.parse(m.arch)), []).append(m)
    return [write_record(out_dir, arch, ms) for arch, ms in groups.items()]


def read_provenance(record_path: str | os.PathLike[str]) -> list[Measurement]:
    """The measurements stored beside a record (``result_<N>.provenance.json``)."""
    p = Path(record_path)
    prov = p.with_name(p.name.removesuffix(".json") + PROVENANCE_SUFFIX)
    try:
        data = json.loads(prov.read_text())
        return [Measurement.from_dict(d) for d in data["measurements"]]
    except FileNotFoundError as exc:
        raise MeasurementError(f"{prov}: no provenance file beside {p.name}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MeasurementError(f"{prov}: not a nasopt provenance file ({type(exc).__name__}: {exc})") from exc


def read_measurements_json(path: str | os.PathLike[str]) -> list[Measurement]:
    """Measurements from a JSON file holding one :meth:`Measurement.to_dict` object, a list of them, or
    ``{"measurements": [...]}`` (what the FPGA board runner and ``nasopt measure --json`` write)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise MeasurementError(f"{p}: no such results file") from exc
    except (OSError, ValueError) as exc:
        raise MeasurementError(f"{p}: not a JSON results file ({type(exc).__name__}: {exc})") from exc
    items = data.get("measurements", data) if isinstance(data, dict) and "measurements" in data else data
    items = items if isinstance(items, list) else [items]
    out: list[Measurement] = []
    for i, d in enumerate(items):
        try:
            out.append(Measurement.from_dict(d))
        except (KeyError, TypeError, ValueError) as exc:
            raise MeasurementError(
                f"{p}: entry {i} is not a measurement ({type(exc).__name__}: {exc})"
            ) from exc
    return out
