"""FPGA measurements through a Vitis AI deploy bundle (the ZCU102's ``DPUCZDX8G_ISA1_B4096`` and the VCK190's
``DPUCVDX8G``, the dataset's two DPUs).

The Vitis AI quantizer, compiler and VART runtime exist only in the Vitis AI docker and on the board images,
so nasopt cannot measure a DPU itself. :func:`write_bundle` writes a folder that carries a network through
that toolchain, and :func:`import_results` reads the board's numbers back as :class:`Measurement` objects.

The bundle (the PyTorch flow of Vitis AI 3.5, ``vai_q_pytorch``, which every Vitis AI PyTorch docker ships;
its scripts are Python 3.8 / torch 1.13 code and import nothing of nasopt)::

    manifest.json         architecture, board, DPU, arch.json, resolution, files and their sha256, versions
    weights.safetensors   the float network's weights (+ architecture and model config in its metadata)
    model_def.py          the network as a self-contained torch module, a pickle-free safetensors reader,
                          the calibration preprocessing
    calib_images.txt      the calibration images (paths relative to the calibration folder), if one was given
    quantize_compile.py   docker: INT8 post-training quantization (torch_quantizer calib -> test -> xmodel),
                          then vai_c_xir against the board's arch.json -> compiled/<net>.xmodel
    run_board.py          board: VART latency (1 thread) and throughput (5 / 6 threads) -> results JSON
    README.txt            the three commands

The ONNX flow (``vai_q_onnx``) was not chosen: the PyTorch flow is the one whose quantizer and compiler
handle every layer of these networks (hard-sigmoid squeeze-excite, depthwise convolutions) on both DPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark import space
from benchmark._io import atomic_write_text, package_versions
from benchmark.errors import ConfigurationError, NasoptError
from nasopt.validation.measure.base import Measurement, MeasurementError, Protocol
from nasopt.validation.measure.calibration import select_images

BUNDLE_FORMAT = "nasopt-fpga-bundle"
BUNDLE_VERSION = 1
RESULTS_FORMAT = "nasopt-measurements"
#: the bundle's scripts, shipped beside this module
SCRIPTS_DIR = Path(__file__).resolve().parent / "vitis_ai"
SCRIPTS = ("model_def.py", "quantize_compile.py", "run_board.py")
#: the Python the scripts target (Vitis AI 3.5 docker: Python 3.8, torch 1.13)
TARGET_PYTHON = (3, 8)
_ARCH_DIR = "/opt/vitis_ai/compiler/arch"


class FpgaBundleError(NasoptError, ValueError):
    """A deploy bundle that cannot be written (unknown board, bad calibration folder, existing folder)."""


@dataclass(frozen=True)
class Board:
    """A Vitis AI board target: its DPU, the compiler's arch file in the docker, the dataset's protocol."""

    name: str
    dpu: str
    arch_json: str
    #: the DPU's batch (fixed by the compiled DPU; the runner reads it from the xmodel)
    batch: int
    latency_threads: int
    throughput_threads: int


BOARDS: dict[str, Board] = {
    "zcu102": Board("zcu102", "DPUCZDX8G_ISA1_B4096", f"{_ARCH_DIR}/DPUCZDX8G/ZCU102/arch.json", 1, 1, 5),
    "vck190": Board("vck190", "DPUCVDX8G", f"{_ARCH_DIR}/DPUCVDX8G/VCK190/arch.json", 6, 1, 6),
}


def board(name: str) -> Board:
    """The board called ``name`` (``zcu102``, ``vck190``; case-insensitive)."""
    key = str(name).strip().lower()
    if key not in BOARDS:
        known = ", ".join(f"{b.name} ({b.dpu})" for b in BOARDS.values())
        raise FpgaBundleError(f"unknown FPGA board {name!r}; choose one of {known}")
    return BOARDS[key]


@dataclass(frozen=True)
class FpgaBundle:
    """A written deploy bundle: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    def file(self, name: str) -> Path:
        """A file of the bundle."""
        return self.path / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _network(model_or_arch: Any, seed: int) -> Any:
    """An :class:`ArchNet` as given, or built from an architecture with torch's RNG seeded locally."""
    import torch

    from nasopt.validation.model import ArchNet, build_model

    if isinstance(model_or_arch, ArchNet):
        return model_or_arch.eval()
    if isinstance(model_or_arch, torch.nn.Module):
        raise ConfigurationError(
            "an FPGA bundle needs a network built by nasopt.validation.model.build_model (an ArchNet), "
            f"got {type(model_or_arch).__name__}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model_or_arch).eval()


def write_bundle(
    model_or_arch: Any,
    out_dir: str | os.PathLike[str],
    board_name: str = "zcu102",
    *,
    calibration_dir: str | os.PathLike[str] | None = None,
    n_calibration: int = 150,
    resolution: int = 224,
    seed: int = 0,
    net_name: str | None = None,
    overwrite: bool = False,
) -> FpgaBundle:
    """Write the deploy bundle of a network (an ArchNet, keeping its weights) or an architecture (built with
    ``seed``) for ``board_name`` into ``out_dir``.

    ``calibration_dir``: an ImageNet-layout folder; ``n_calibration`` of its images (150, as the dataset) are
    listed for the quantizer. Without it the docker script calibrates on random inputs (speed is right,
    accuracy is not). The folder is written beside ``out_dir`` and moved into place when complete.
    """
    from nasopt.validation.model import save_weights

    target = board(board_name)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 32:
        raise ConfigurationError(f"bundle resolution must be an integer >= 32, got {resolution!r}")
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FpgaBundleError(f"bundle folder {str(out)!r} exists and is not empty; pass overwrite=True")
    root = None if calibration_dir is None else Path(calibration_dir).expanduser().resolve()
    images = [] if root is None else select_images(root, n_calibration, seed)
    model = _network(model_or_arch, seed)
    arch = model.arch_string
    name = net_name or f"nasopt_{hashlib.sha256(arch.encode()).hexdigest()[:10]}"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for script in SCRIPTS:
            shutil.copyfile(SCRIPTS_DIR / script, tmp / script)
        save_weights(model, tmp / "weights.safetensors")
        calibration: dict[str, Any] | None = None
        if root is not None:
            names = [p.resolve().relative_to(root).as_posix() for p in images]
            atomic_write_text(tmp / "calib_images.txt", "\n".join(names) + "\n")
            calibration = {"root": str(root), "list": "calib_images.txt", "count": len(names)}
        atomic_write_text(tmp / "README.txt", _readme(target, arch, name, calibration is not None))
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "arch": arch,
            "model_config": model.config.to_dict(),
            "board": target.name,
            "dpu": target.dpu,
            "arch_json": target.arch_json,
            "batch": target.batch,
            "latency_threads": target.latency_threads,
            "throughput_threads": target.throughput_threads,
            "resolution": resolution,
            "net_name": name,
            "weights": "weights.safetensors",
            "calibration": calibration,
            "n_calibration": n_calibration,
            "target_python": ".".join(map(str, TARGET_PYTHON)),
            "files": files,
            "versions": package_versions(("nasopt", "torch", "numpy")),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FpgaBundle(out, manifest)


def read_bundle(path: str | os.PathLike[str], verify: bool = True) -> FpgaBundle:
    """A written bundle; with ``verify``, every listed file's sha256 is checked."""
    p = Path(path)
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FpgaBundleError(f"{p}: not a deploy bundle (manifest.json unreadable: {exc})") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise FpgaBundleError(f"{p}/manifest.json: not a {BUNDLE_FORMAT} manifest")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            f = p / name
            if not f.is_file() or _sha256(f) != digest:
                raise FpgaBundleError(
                    f"{f}: missing or changed since the bundle was written (sha256 differs)"
                )
    return FpgaBundle(p, manifest)


def _readme(target: Board, arch: str, net_name: str, calibrated: bool) -> str:
    calib = (
        "calib_images.txt lists the calibration images relative to the folder recorded in manifest.json;\n"
        "pass --calib-root if the docker sees that folder elsewhere."
        if calibrated
        else "No calibration folder was given: random inputs calibrate (speed is right, accuracy is not)."
    )
    return (
        f"nasopt FPGA deploy bundle: {arch}\n"
        f"board {target.name}, DPU {target.dpu}, compiled network name {net_name}\n\n"
        "1. In the Vitis AI 3.5 PyTorch docker (conda activate vitis-ai-pytorch), in this folder:\n"
        "       python quantize_compile.py            # INT8 quantization + vai_c_xir\n"
        f"   {calib}\n"
        "2. Copy this folder to the board and run:\n"
        "       python3 run_board.py                  # latency and throughput -> results_<board>.json\n"
        "3. On the host: nasopt.validation.measure.fpga.import_results('results_<board>.json')\n"
    )


# ------------------------------------------------------------------------------------------- results

_MEASUREMENT_KEYS = (
    "arch",
    "device",
    "metric",
    "unit",
    "mean",
    "std",
    "median",
    "robust_std",
    "n",
    "n_rejected",
    "samples",
    "protocol",
    "environment",
)
_PROTOCOL_KEYS = ("backend", "metric", "batch", "resolution", "precision", "warmup", "repeats", "passes")


def _measurement(source: str, i: int, d: Any) -> Measurement:
    where = f"{source}: measurement {i}"
    if not isinstance(d, Mapping):
        raise MeasurementError(f"{where} is not a JSON object")
    proto = d.get("protocol")
    if not isinstance(proto, Mapping):
        proto = {}
    missing = [k for k in _MEASUREMENT_KEYS if k not in d]
    missing += [f"protocol.{k}" for k in _PROTOCOL_KEYS if "protocol" in d and k not in proto]
    if missing:
        raise MeasurementError(f"{where} lacks {', '.join(missing)}; write it with the bundle's run_board.py")
    try:
        space.parse(d["arch"])
        samples = [float(v) for v in d["samples"]]
        proto_d = {k: proto[k] for k in (*_PROTOCOL_KEYS, "threads", "options") if k in proto}
        # one owner of the statistics: recomputed from the raw samples
        return Measurement.from_samples(
            str(d["arch"]),
            str(d["device"]),
            str(d["metric"]),
            samples,
            Protocol.from_dict(proto_d),
            dict(d.get("environment") or {}),
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise MeasurementError(f"{where} is malformed: {exc}") from exc


def import_results(path: str | os.PathLike[str]) -> list[Measurement]:
    """The measurements of a results JSON written by the bundle's ``run_board.py`` (or a list of
    :meth:`Measurement.to_dict` objects). Mean, std and rejection are recomputed from the raw samples with
    :func:`~nasopt.validation.measure.stats.summarize`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeasurementError(f"cannot read measurement results {str(p)!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise MeasurementError(f"{p}: not valid JSON ({exc})") from exc
    if isinstance(data, Mapping) and "measurements" in data:
        if data.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise MeasurementError(f"{p}: format {data.get('format')!r}, expected {RESULTS_FORMAT!r}")
        items = data["measurements"]
    elif isinstance(data, Mapping):
        items = [data]
    else:
        items = data
    if not isinstance(items, list) or not items:
        raise MeasurementError(f"{p}: holds no measurements")
    return [_measurement(str(p), i, d) for i, d in enumerate(items)]


__all__ = [
    "BOARDS",
    "Board",
    "FpgaBundle",
    "FpgaBundleError",
    "board",
    "import_results",
    "read_bundle",
    "write_bundle",
]
