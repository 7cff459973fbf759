"""``build_benchmark(spec, out_dir)``: sample architectures, train each with the proxy, measure each on the
devices, write Accel-NASBench records, and pack them into an archive + metadata that
:func:`benchmark.load_benchmark` reads like the built-in data (:mod:`benchmark.built`).

The build directory::

    spec.json                  the spec and its digest (another spec in the same directory is refused)
    archs.json                 the sampled architectures (compact strings), in build order
    train/<run id>/            one training run per architecture x seed (nasopt.validation.train: resumable)
    measure/<target>/a<id>.json  one measurement per architecture and device (Measurement.to_dict)
    records/result_<N>.json    the merged record (training metrics, model_info, platform_perf) + provenance
    build.log                  one line per training and measurement done (what a resume skipped is not in it)
    <name>.tar.gz              the archive: benchmark.json (metadata) first, then records/
    benchmark.json             the metadata again, with the archive's sha256 (written last: the build is done)

Every finished training, measurement and record is a file written atomically, so a killed build (even
SIGKILL) continues where it stopped and redoes nothing finished; an interrupted training resumes from its
own checkpoint. A finished build is never rebuilt silently: building it again says so and returns it
(``overwrite=True`` starts over).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import built, space
from benchmark._io import atomic_write_bytes, atomic_write_text, package_versions, pid_alive
from benchmark._typing import IntArray
from benchmark.errors import NasoptError
from benchmark.macs import macs_params
from nasopt.benchmark_build.spec import EXECUTION_FIELDS, BenchmarkSpec, DeviceSpec
from nasopt.signals import StopFlag

SPEC_FILE = "spec.json"
ARCHS_FILE = "archs.json"
TRAIN_DIR = "train"
MEASURE_DIR = "measure"
RECORDS_DIR = "records"
LOG_FILE = "build.log"
LOCK_FILE = ".build.lock"
PROVENANCE_SUFFIX = ".provenance.json"


class BuildError(NasoptError, RuntimeError):
    """A build that cannot go on as asked (another spec in the directory, a running build, failed jobs)."""


class BuildStopped(Exception):
    """The build stopped on SIGINT/SIGTERM (an interrupted training after its checkpoint); the same call
    continues it."""


@dataclass
class BuildResult:
    """What one :func:`build_benchmark` call did.

    Attributes:
        out_dir: the build directory; archive: the archive (None until every record is there);
        meta: the archive's metadata; finished: whether the archive was written (now or before);
        already_built: the build was finished before this call (nothing was done);
        trained_now / measured_now: jobs this call ran; n_records: records in the build;
        failed: one line per training job that failed (rerun the build to retry them);
        seconds: wall time of the phases.
    """

    out_dir: Path
    archive: Path | None
    meta: dict[str, Any]
    finished: bool
    already_built: bool = False
    trained_now: int = 0
    measured_now: int = 0
    n_records: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _say(msg: str) -> None:
    print(f"[nasopt.benchmark] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------
# architectures
# ------------------------------------------------------------------------------------------------------
def sample_architectures(spec: BenchmarkSpec) -> IntArray:
    """The spec's ``n_architectures`` distinct architectures ``(n, 28)``: uniform over the space (redrawing
    repeats) or a covering design (:func:`nasopt.validation.devices.covering_design`)."""
    n = spec.n_architectures
    if spec.sampling == "cover":
        from nasopt.validation.devices import covering_design

        return covering_design(n, spec.sample_seed)
    rng = np.random.default_rng([spec.sample_seed, 17])
    X = space.sample(n, rng)
    for _ in range(100):
        _, first = np.unique(space.arch_id(X), return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        if not len(dup):
            break
        X[dup] = space.sample(len(dup), rng)
    return X


# ------------------------------------------------------------------------------------------------------
# training jobs (module level: the engines send them by reference)
# ------------------------------------------------------------------------------------------------------
def run_id_of(spec: BenchmarkSpec, genes: IntArray, seed: int) -> str:
    """The training run id of ``genes`` and ``seed`` (:func:`nasopt.validation.train.run.run_id`)."""
    from nasopt.validation.train.run import run_id

    return run_id(genes, spec.train_scheme(), seed, spec.skeleton_obj(), spec.effective_train_fraction())


def record_name(rid: str) -> str:
    from nasopt.validation.train.run import record_file

    return record_file(rid)


def train_job(
    spec_dict: Mapping[str, Any], arch: str, seed: int, train_dir: str, stop: StopFlag | None = None
) -> dict[str, Any]:
    """Train one architecture with one seed (or read its finished run) and return its training record
    (``stop``: the build's flag, raised by SIGINT/SIGTERM, when the job runs in the build's process)."""
    spec = BenchmarkSpec.from_dict(spec_dict)
    genes = space.parse(arch)
    rid = run_id_of(spec, genes, seed)
    done = Path(train_dir) / rid / record_name(rid)
    if done.is_file():
        out: dict[str, Any] = json.loads(done.read_text())
        return out
    if spec.trainer == "synthetic":
        return _synthetic_train(spec, genes, seed, Path(train_dir), rid)
    from nasopt.validation.benchmark_job import train_record

    return train_record(
        genes,
        spec.train_scheme(),
        {"root": spec.data, "train_fraction": spec.effective_train_fraction()},
        train_dir,
        seed=seed,
        skeleton=spec.skeleton_obj(),
        threads=spec.threads,
        stop=stop,
    )


def _synthetic_train(
    spec: BenchmarkSpec, genes: IntArray, seed: int, train_dir: Path, rid: str
) -> dict[str, Any]:
    """A stand-in "training" (tests, demos): the synthetic benchmark's accuracy and training time plus
    seeded noise, after ``trainer_options.delay`` seconds; every call is appended to ``train/calls.log``."""
    from benchmark.synthetic import SyntheticBenchmark

    train_dir.mkdir(parents=True, exist_ok=True)
    with open(train_dir / "calls.log", "a") as fh:
        fh.write(f"{rid}\n")
    time.sleep(float(spec.trainer_options.get("delay", 0.0)))
    pred = SyntheticBenchmark().query(genes[None, :], ["accuracy", "train_time"])
    rng = np.random.default_rng([seed, int(space.arch_id(genes[None, :])[0]) % (2**32)])
    top1 = float(np.clip(pred["accuracy"].mean[0] + rng.normal(0.0, 0.3), 0.0, 100.0))
    record = {
        "architecture": space.to_dicts(genes[None, :])[0],
        "metrics": {
            "val_top1": top1,
            "val_top5": min(100.0, top1 + 10.0),
            "train_time": float(pred["train_time"].mean[0]) / 100.0,
            "epochs": spec.train_scheme().epochs,
        },
        "model_info": {"macs": 0.0, "params": 0.0},
        "platform_perf": {},
        "nasopt": {"run_id": rid, "scheme": spec.train_scheme().name, "seed": seed, "trainer": "synthetic"},
    }
    d = train_dir / rid
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / record_name(rid), json.dumps(record, indent=1))
    return record


# ------------------------------------------------------------------------------------------------------
# the build directory
# ------------------------------------------------------------------------------------------------------
def _host() -> str:
    return socket.gethostname() or "host"


@contextlib.contextmanager
def _lock(out: Path, shard: tuple[int, int] = (0, 1)) -> Iterator[None]:
    """Hold ``out/.build.lock`` (pid@host; ``.build.lock.<i>of<k>`` for a shard); a lock of a live process
    of this host refuses the build."""
    path = out / (LOCK_FILE if shard == (0, 1) else f"{LOCK_FILE}.{shard[0]}of{shard[1]}")
    me = f"{os.getpid()}@{_host()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid_s, _, host = path.read_text().strip().partition("@")
                alive = host == _host() and pid_alive(int(pid_s))
            except (OSError, ValueError):
                alive = False
            if alive:
                raise BuildError(
                    f"{out} is being built by process {pid_s} (lock {path}); wait for it, or stop it first"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # left by a killed build
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() == me:
                path.unlink()


def _log(out: Path, line: str) -> None:
    with open(out / LOG_FILE, "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def _check_spec_file(out: Path, spec: BenchmarkSpec, digest: str) -> None:
    f = out / SPEC_FILE
    if f.is_file():
        try:
            stored = json.loads(f.read_text())
            other = stored["digest"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BuildError(
                f"{f} is unreadable ({type(exc).__name__}); this is not a benchmark build directory: choose "
                f"another --out, or remove it"
            ) from None
        if other != digest:
            raise BuildError(
                f"{out} holds the build of another spec (digest {other}, this spec {digest}); build into "
                f"another --out, or pass --overwrite to remove it and start over"
            )
        return
    atomic_write_text(
        f, json.dumps({"digest": digest, "spec": spec.to_dict(), "identity": spec.identity()}, indent=1)
    )


def _check_archs(out: Path, X: IntArray) -> None:
    f = out / ARCHS_FILE
    strings = [space.to_string(x) for x in X]
    if f.is_file():
        if json.loads(f.read_text()) != strings:
            raise BuildError(f"{f} lists other architectures than the spec draws; remove the build directory")
        return
    atomic_write_text(f, json.dumps(strings, indent=0))


def finished_build(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata of a finished build in ``out_dir`` (its ``benchmark.json`` and an archive whose sha256
    matches), else None."""
    out = Path(out_dir)
    f = out / built.META_NAME
    try:
        meta: dict[str, Any] = json.loads(f.read_text())
        archive = out / meta["archive"]
        ok = hashlib.sha256(archive.read_bytes()).hexdigest() == meta["archive_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if ok else None


# ------------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------------
class _Devices:
    """The spec's measurement backends, built on first use, and the cached measurements."""

    def __init__(self, spec: BenchmarkSpec, out: Path, backends: Mapping[str, Any] | None) -> None:
        self.spec, self.out = spec, out
        self._backends: dict[str, Any] = dict(backends or {})

    def path(self, dev: DeviceSpec, genes: IntArray) -> Path:
        return self.out / MEASURE_DIR / dev.target / f"a{int(space.arch_id(genes[None, :])[0])}.json"

    def backend(self, dev: DeviceSpec) -> Any:
        if dev.target not in self._backends:
            from nasopt.validation.devices import make_device_backend

            settings = {**dev.settings(), "resolution": self.spec.effective_resolution()}
            if dev.backend == "synthetic":
                settings.pop("resolution")
            self._backends[dev.target] = make_device_backend(dev.backend, dev.metric, dev.name, settings)
        return self._backends[dev.target]

    def measure(self, dev: DeviceSpec, genes: IntArray) -> tuple[dict[str, Any], bool]:
        """The measurement of ``genes`` on ``dev`` (``Measurement.to_dict``) and whether it was taken now."""
        f = self.path(dev, genes)
        if f.is_file():
            return json.loads(f.read_text()), False
        b = self.backend(dev)
        if dev.backend == "synthetic" or not hasattr(b, "prepare"):
            m = b.measure(genes)
        else:
            from nasopt.validation.model import build_model

            s = self.spec.train_scheme()
            net = build_model(
                genes,
                self.spec.effective_num_classes(),
                activation=s.activation,
                gate=s.gate,
                drop_path_rate=0.0,
                dropout=0.0,
                skeleton=self.spec.skeleton_obj(),
            )
            m = b.measure(net)
        d = m.to_dict()
        f.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(f, json.dumps(d, indent=1))
        return d, True


def _merged_record(
    spec: BenchmarkSpec, genes: IntArray, trained: Mapping[str, Any], measurements: list[dict[str, Any]]
) -> dict[str, Any]:
    """The build's record of one architecture x seed: the training record with ``model_info`` counted for
    the spec's skeleton, resolution and classes, and the measurements in ``platform_perf``."""
    macs, params = macs_params(
        genes,
        skeleton=spec.skeleton_obj(),
        resolution=spec.effective_resolution(),
        num_classes=spec.effective_num_classes(),
    )
    perf = {
        f"{m['metric']}_{m['device']}": {
            f"{m['metric']}_mean": float(m["mean"]),
            f"{m['metric']}_std": float(m["std"]),
        }
        for m in measurements
    }
    metrics = dict(trained["metrics"])
    return {
        "architecture": space.to_dicts(genes[None, :])[0],
        "metrics": metrics,
        "model_info": {"macs": float(macs[0]), "params": float(params[0])},
        "platform_perf": perf,
        "nasopt": {**dict(trained.get("nasopt", {})), "benchmark": spec.name, "spec_digest": spec.digest()},
    }


# ------------------------------------------------------------------------------------------------------
# the archive
# ------------------------------------------------------------------------------------------------------
def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A reproducible ``.tar.gz`` (fixed times, owners and order) of ``(name, bytes)`` members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _at(rec: Mapping[str, Any], path: list[str]) -> float:
    node: Any = rec
    for k in path:
        node = node.get(k) if isinstance(node, Mapping) else None
    return float("nan") if node is None else float(node)


def _write_archive(
    spec: BenchmarkSpec, out: Path, records: list[Path], n_archs: int, partial: bool = False
) -> dict[str, Any]:
    """Pack ``records`` (and their provenance) with the metadata into ``out/<name>.tar.gz``; write the
    metadata beside it last; return it. ``partial``: an unfinished build's records so far, into
    ``out/<name>.partial.tar.gz`` (metadata ``"partial": true``), and nothing beside it (the build stays
    unfinished)."""
    from nasopt.validation.devices import derive_box

    blobs = {p.name: p.read_bytes() for p in records}
    parsed = {name: json.loads(b) for name, b in blobs.items()}
    targets: list[dict[str, Any]] = [
        {
            "name": "accuracy",
            "unit": "%",
            "maximize": True,
            "record_path": ["metrics", "val_top1"],
            "description": f"top-1 validation accuracy on {spec.dataset or spec.name} "
            f"({spec.train_scheme().name})",
        },
        {
            "name": "train_time",
            "unit": "s",
            "maximize": False,
            "record_path": ["metrics", "train_time"],
            "description": f"training time of the scheme {spec.train_scheme().name!r} (s)",
            "is_cost": True,
        },
    ]
    for t in targets:  # boxes of accuracy and training time from the data (ImageNet's would not fit)
        vals = np.array([_at(r, t["record_path"]) for r in parsed.values()], dtype=float)
        ideal, nadir = derive_box(vals, vals[:0], bool(t["maximize"]))
        t["box"] = [min(ideal, 100.0), nadir] if t["name"] == "accuracy" else [ideal, nadir]
    counts: dict[str, Any] = {"architectures": n_archs, "records": len(records), "measured": {}}
    for dev in spec.devices:
        rate = dev.metric == "throughput"
        vals = np.array(
            [
                r["platform_perf"][dev.target][f"{dev.metric}_mean"]
                for r in parsed.values()
                if dev.target in r["platform_perf"]
            ],
            dtype=float,
        )
        counts["measured"][dev.target] = len(vals)
        ideal, nadir = derive_box(vals, vals[:0], rate)
        targets.append(
            {
                "name": dev.target,
                "unit": "img/s" if rate else "ms",
                "maximize": rate,
                "record_path": ["platform_perf", dev.target, f"{dev.metric}_mean"],
                "description": f"inference {dev.metric} on {dev.name} ({dev.backend}, batch {dev.batch})",
                "is_device": True,
                "is_cost": True,
                "is_rate": rate,
                "box": [ideal, nadir],
            }
        )
    sk = spec.skeleton_obj()
    meta: dict[str, Any] = {
        "format": built.FORMAT,
        "format_version": built.FORMAT_VERSION,
        "name": spec.name,
        "dataset": spec.dataset or spec.name,
        "spec": {k: v for k, v in spec.to_dict().items() if k not in EXECUTION_FIELDS},
        "spec_digest": spec.digest(),
        "train_scheme": spec.train_scheme().to_dict(),
        "train_fraction": spec.effective_train_fraction(),
        "skeleton": sk.to_dict(),
        "num_classes": spec.effective_num_classes(),
        "classes": spec.classes(),
        "resolution": spec.effective_resolution(),
        "targets": targets,
        "counts": counts,
        "checksums": {f"{RECORDS_DIR}/{n}": hashlib.sha256(b).hexdigest() for n, b in sorted(blobs.items())},
        "versions": package_versions(),
    }
    members = [(built.META_NAME, json.dumps(meta, indent=1, sort_keys=True).encode())]
    for name in sorted(blobs, key=lambda n: int(n[7:-5])):
        members.append((f"{RECORDS_DIR}/{name}", blobs[name]))
        prov = out / RECORDS_DIR / (name[:-5] + PROVENANCE_SUFFIX)
        if prov.is_file():
            members.append((f"{RECORDS_DIR}/{prov.name}", prov.read_bytes()))
    data = _tar_bytes(members)
    if partial:
        members[0] = (
            built.META_NAME,
            json.dumps({**meta, "partial": True}, indent=1, sort_keys=True).encode(),
        )
        data = _tar_bytes(members)
    archive = out / f"{spec.name}{'.partial' if partial else ''}.tar.gz"
    atomic_write_bytes(archive, data)
    if partial:
        return {**meta, "partial": True, "archive": archive.name}
    side = {
        **meta,
        "archive": archive.name,
        "archive_sha256": hashlib.sha256(data).hexdigest(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),  # not in the archive: its bytes are reproducible
    }
    atomic_write_text(out / built.META_NAME, json.dumps(side, indent=1, sort_keys=True))
    return side


def pack_partial(out_dir: str | os.PathLike[str]) -> Path:
    """Pack the records an unfinished (or running) build has so far into ``<name>.partial.tar.gz``, a built
    archive like the final one (``load_benchmark`` reads it), to look at a long build before it ends."""
    out = Path(out_dir)
    try:
        spec = BenchmarkSpec.from_dict(json.loads((out / SPEC_FILE).read_text())["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildError(
            f"{out} is not a benchmark build directory ({SPEC_FILE}: {type(exc).__name__})"
        ) from None
    records = sorted(
        p for p in (out / RECORDS_DIR).glob("result_*.json") if not p.name.endswith(PROVENANCE_SUFFIX)
    )
    if len(records) < 2:
        raise BuildError(f"{out}: {len(records)} record(s) so far; nothing to pack yet")
    meta = _write_archive(spec, out, records, spec.n_architectures, partial=True)
    return out / str(meta["archive"])


# ------------------------------------------------------------------------------------------------------
# the build
# ------------------------------------------------------------------------------------------------------
def build_benchmark(
    spec: BenchmarkSpec,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    verbose: bool = True,
    measure_backends: Mapping[str, Any] | None = None,
    on_record: Callable[[int, int], None] | None = None,
    handle_signals: bool = True,
) -> BuildResult:
    """Build (or continue building) ``spec`` into ``out_dir`` (default ``runs/benchmarks/<name>``); see the
    module docstring. ``measure_backends`` (``{target: backend}``) replaces the spec's backends (tests);
    ``on_record(done, total)`` is called after every record. SIGINT/SIGTERM (``handle_signals``) stop the
    build: on the local engine after the current training's checkpoint or between two jobs; on the others by
    cancelling every submitted job (a training checkpoints on the signal it gets). Either way
    :class:`BuildStopped`, and the same call resumes."""
    say = _say if verbose else (lambda _m: None)
    out = Path(out_dir) if out_dir is not None else Path("runs/benchmarks") / spec.name
    digest = spec.digest()
    if out.exists() and overwrite:
        for name in (SPEC_FILE, ARCHS_FILE, LOG_FILE, built.META_NAME, f"{spec.name}.tar.gz"):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        for name in (TRAIN_DIR, MEASURE_DIR, RECORDS_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with _lock(out, spec.shard_index()):
        _check_spec_file(out, spec, digest)
        done = finished_build(out)
        if done is not None:
            say(
                f"{out} is already built ({done['archive']}, {done['counts']['records']} records); "
                f"nothing to do "
                f"(pass --overwrite to build it again from scratch)"
            )
            return BuildResult(
                out,
                out / done["archive"],
                done,
                True,
                already_built=True,
                n_records=int(done["counts"]["records"]),
            )
        return _build(spec, out, say, measure_backends, on_record, handle_signals)


def _count(rec_dir: Path, rids: Mapping[Any, str]) -> int:
    return sum((rec_dir / record_name(r)).is_file() for r in rids.values())


def _build(
    spec: BenchmarkSpec,
    out: Path,
    say: Callable[[str], None],
    measure_backends: Mapping[str, Any] | None,
    on_record: Callable[[int, int], None] | None,
    handle_signals: bool,
) -> BuildResult:
    t_start = time.perf_counter()
    X = sample_architectures(spec)
    _check_archs(out, X)
    spec.effective_num_classes()  # the data is there (one line otherwise) before any job starts
    devices = _Devices(spec, out, measure_backends)
    rec_dir = out / RECORDS_DIR
    rec_dir.mkdir(exist_ok=True)
    train_dir = out / TRAIN_DIR
    jobs = [(i, seed) for i in range(len(X)) for seed in spec.seeds]
    rids = {(i, seed): run_id_of(spec, X[i], seed) for i, seed in jobs}
    shard, n_shards = spec.shard_index()
    mine = [j for n, j in enumerate(jobs) if n % n_shards == shard]
    pending = [j for j in mine if not (rec_dir / record_name(rids[j])).is_file()]
    total = len(jobs)
    say(
        f"{spec.name}: {_count(rec_dir, rids)} of {total} records done in {out}; {len(pending)} to go "
        + (f"in shard {shard}/{n_shards} " if n_shards > 1 else "")
        + f"(spec {spec.digest()}, trainer {spec.trainer}, engine {spec.engine})"
    )
    result = BuildResult(out, None, {}, False)
    timing = {"train": 0.0, "measure": 0.0}
    spec_dict = spec.to_dict()

    def finish(job: tuple[int, int], trained: Mapping[str, Any]) -> None:
        i, seed = job
        ms: list[dict[str, Any]] = []
        if seed == spec.seeds[0]:  # each architecture is measured once (its first seed's record holds it)
            for dev in spec.devices:
                t0 = time.perf_counter()
                m, now = devices.measure(dev, X[i])
                timing["measure"] += time.perf_counter() - t0
                if now:
                    result.measured_now += 1
                    _log(
                        out, f"measured {dev.target} a{int(space.arch_id(X[i][None, :])[0])} {m['mean']:.6g}"
                    )
                ms.append(m)
        rec = _merged_record(spec, X[i], trained, ms)
        name = record_name(rids[job])
        prov = {"run_id": rids[job], "measurements": ms, "spec_digest": spec.digest()}
        atomic_write_text(rec_dir / (name[:-5] + PROVENANCE_SUFFIX), json.dumps(prov, indent=1))
        atomic_write_text(rec_dir / name, json.dumps(rec, indent=1))
        n_done = _count(rec_dir, rids)
        perf = " ".join(f"{k}={v[next(iter(v))]:.4g}" for k, v in rec["platform_perf"].items())
        say(
            f"[{n_done}/{total}] {space.to_string(X[i])} s{seed}: top-1 {rec['metrics']['val_top1']:.2f} "
            f"train {rec['metrics']['train_time']:.1f} s {perf}"
        )
        if on_record is not None:
            on_record(n_done, total)

    def trained_now(job: tuple[int, int], rec: Mapping[str, Any], seconds: float) -> None:
        result.trained_now += 1
        timing["train"] += seconds
        _log(out, f"trained {rids[job]} top1={rec['metrics']['val_top1']}")

    if spec.engine == "local":
        stop = StopFlag()  # one flag for the whole build: a signal between two jobs stops it too
        with stop.handling_signals(handle_signals):
            for job in pending:
                if stop.reason is not None:
                    raise BuildStopped(
                        f"stopped by {stop.reason}; {_count(rec_dir, rids)} of {total} records done"
                    )
                i, seed = job
                rid = rids[job]
                reused = (train_dir / rid / record_name(rid)).is_file()
                t0 = time.perf_counter()
                try:
                    rec = train_job(spec_dict, space.to_string(X[i]), seed, str(train_dir), stop)
                except NasoptError:
                    raise
                except Exception as exc:  # a job that fails does not stop the build: retried next time
                    if type(exc).__name__ == "TrainingStopped":  # checkpointed on a signal: stop the build
                        raise BuildStopped(str(exc)) from None
                    result.failed.append(f"{space.to_string(X[i])} s{seed}: {type(exc).__name__}: {exc}")
                    continue
                if not reused:
                    trained_now(job, rec, time.perf_counter() - t0)
                finish(job, rec)
    else:
        from nasopt.engines import Engine, run_jobs

        args = [(spec_dict, space.to_string(X[i]), seed, str(train_dir.resolve())) for i, seed in pending]
        opts = {"folder": str((out / "jobs").resolve()), **dict(spec.engine_options)}
        t0 = time.perf_counter()
        stop = StopFlag()  # SIGINT/SIGTERM: cancel every submitted job (each checkpoints), then stop
        with stop.handling_signals(handle_signals), Engine(spec.engine, **opts) as eng:
            outcomes = run_jobs(eng, train_job, args, max_parallel=spec.max_parallel, stop=stop)
        if stop.reason is not None:
            raise BuildStopped(
                f"stopped by {stop.reason}: cancelled the submitted training jobs (each checkpoints on the "
                f"signal); {_count(rec_dir, rids)} of {total} records done; run the same build again to "
                f"resume"
            )
        elapsed = time.perf_counter() - t0
        for job, oc in zip(pending, outcomes, strict=True):
            if oc.error is not None:
                result.failed.append(f"{space.to_string(X[job[0]])} s{job[1]}: {oc.error}")
                continue
            trained_now(job, oc.value, elapsed / max(1, len(pending)))
            finish(job, oc.value)
    result.seconds = {**timing, "total": time.perf_counter() - t_start}
    records = [rec_dir / record_name(rids[j]) for j in jobs]
    result.n_records = sum(p.is_file() for p in records)
    if not result.failed and result.n_records < total:  # other shards are not done yet
        say(
            f"shard {shard}/{n_shards} done; {result.n_records} of {total} records so far: the last shard to "
            f"finish writes the archive"
        )
        return result
    if result.failed:
        say(
            f"{len(result.failed)} training job(s) failed (first: {result.failed[0]}); run the build "
            f"again to "
            f"retry them (finished ones are kept)"
        )
        return result
    meta = _write_archive(spec, out, records, len(X))
    result.archive, result.meta, result.finished = out / meta["archive"], meta, True
    say(f"wrote {result.archive} ({len(records)} records, sha256 {meta['archive_sha256'][:16]}...)")
    return result


__all__ = [
    "BuildError",
    "BuildResult",
    "BuildStopped",
    "build_benchmark",
    "finished_build",
    "pack_partial",
    "sample_architectures",
    "train_job",
]
