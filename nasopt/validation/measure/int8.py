"""An INT8 estimate on the CPU before a board is used: onnxruntime static quantization of the exported network
and how far its predictions move from the float network's.

:func:`quantize_int8` exports the network to ONNX and quantizes it with
``onnxruntime.quantization.quantize_static`` -- QDQ format, per-channel INT8 weights, UINT8 activations
calibrated (min/max) on a few images. :func:`int8_estimate` runs float and INT8 models on a labelled batch
and reports the top-1 agreement, the accuracy of each and the drop, the logit error, and optionally the INT8
model's CPU latency through the onnxruntime backend (:class:`Int8OnnxBackend`).

This is an estimate of what INT8 post-training quantization costs a network, not the DPU's numbers: the
Vitis AI quantizer uses power-of-two scales and its own calibration, so expect the same order of drop, not
the same digits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from benchmark._typing import FloatArray, IntArray
from benchmark.errors import ConfigurationError
from nasopt.validation.measure.base import BackendUnavailableError, Measurement
from nasopt.validation.measure.calibration import CalibrationError, load_images, select_images
from nasopt.validation.measure.cpu import OnnxRuntimeBackend

#: images per calibration batch fed to onnxruntime's calibrator
CALIBRATION_BATCH = 8


def _require_ort() -> None:
    why = OnnxRuntimeBackend.availability()
    if why is not None:
        raise BackendUnavailableError(f"the INT8 estimate needs onnxruntime: {why}")


def _as_inputs(data: Any, resolution: int, n: int, seed: int, what: str) -> FloatArray:
    """``(n, 3, r, r)`` float32 inputs: an array as given, or ``n`` images of an ImageNet-layout folder."""
    if isinstance(data, (str, os.PathLike)):
        return load_images(select_images(data, n, seed), resolution)
    x = np.asarray(data, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[0] < 1:
        raise ConfigurationError(
            f"{what} must be an (n, 3, r, r) array or an image folder, got shape {x.shape}"
        )
    return np.ascontiguousarray(x)


def labelled_images(
    root: str | os.PathLike[str], n: int = 256, resolution: int = 224, seed: int = 0
) -> tuple[FloatArray, IntArray]:
    """``(n, 3, r, r)`` images and ``(n,)`` labels of an ImageNet-layout folder; a label is the index of the
    image's class folder among the sorted class folders (the standard ImageNet class order)."""
    folder = Path(root).expanduser()
    paths = select_images(folder, n, seed)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    if any(p.parent.name not in index for p in paths):
        raise CalibrationError(f"{str(folder)!r} has images outside class folders; labels need one per class")
    labels = np.array([index[p.parent.name] for p in paths], dtype=np.int64)
    return load_images(paths, resolution), labels


class _ArrayReader:
    """An onnxruntime ``CalibrationDataReader`` over ``(n, 3, r, r)`` inputs, in batches."""

    def __init__(self, images: FloatArray, input_name: str, batch: int = CALIBRATION_BATCH) -> None:
        self._batches: Iterator[dict[str, FloatArray]] = iter(
            [{input_name: images[i : i + batch]} for i in range(0, len(images), batch)]
        )

    def get_next(self) -> dict[str, FloatArray] | None:
        return next(self._batches, None)


def quantize_int8(
    model: Any,
    calibration: Any,
    resolution: int = 224,
    *,
    per_channel: bool = True,
    n_calibration: int = 32,
    seed: int = 0,
) -> bytes:
    """The network (an ArchNet or any ``torch.nn.Module``) as a statically quantized INT8 ONNX model (QDQ,
    per-channel weights), calibrated on ``calibration`` (``(n, 3, r, r)`` inputs or an image folder, of which
    ``n_calibration`` images are used)."""
    _require_ort()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from nasopt.validation.model.export import INPUT_NAME, onnx_bytes

    images = _as_inputs(calibration, resolution, n_calibration, seed, "calibration")

    class Reader(_ArrayReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="nasopt-int8-") as tmp, _quiet_root_logger():
        src, pre, dst = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes(model, resolution))
        # shape inference and graph clean-up first (the exporter's shared initialisers come out as Identity
        # nodes, which the quantizer would leave unquantized)
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre),
            str(dst),
            Reader(images, INPUT_NAME),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return dst.read_bytes()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs advice through the root logger; keep it to errors while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


class Int8OnnxBackend(OnnxRuntimeBackend):
    """The onnxruntime CPU backend running a given quantized ONNX model (the network passed to
    :meth:`measure` names the architecture; its graph is ``onnx_model``). Not registered: made by
    :func:`int8_estimate`."""

    name: ClassVar[str] = "onnxruntime"
    precisions: ClassVar[tuple[str, ...]] = ("int8",)
    default_precision: ClassVar[str] = "int8"

    def __init__(self, *, onnx_model: bytes = b"", **settings: Any) -> None:
        super().__init__(**settings)
        if not onnx_model:
            raise ConfigurationError("Int8OnnxBackend needs onnx_model, the quantized graph's bytes")
        self.onnx_model = onnx_model

    def options(self) -> dict[str, Any]:
        return {**super().options(), "quantization": "onnxruntime-static-qdq-per-channel"}

    def graph(self, model: Any) -> bytes:
        return self.onnx_model


@dataclass(frozen=True)
class Int8Estimate:
    """INT8 vs float on ``n`` images. Accuracies in % (None without labels); ``accuracy_drop`` =
    float - INT8 top-1 in percentage points; logit errors over the ``(n, classes)`` logits."""

    arch: str
    n: int
    n_calibration: int
    resolution: int
    top1_agreement: float
    float_top1: float | None
    int8_top1: float | None
    accuracy_drop: float | None
    max_abs_logit_error: float
    relative_logit_error: float
    quantization: dict[str, Any] = field(default_factory=dict)
    latency: Measurement | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        d = asdict(self)
        d["latency"] = None if self.latency is None else self.latency.to_dict()
        return d


def _run(session: Any, images: FloatArray, batch: int = 32) -> FloatArray:
    from nasopt.validation.model.export import INPUT_NAME

    outs = [session.run(None, {INPUT_NAME: images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(outs).astype(np.float64)


def int8_estimate(
    model_or_arch: Any,
    images: Any,
    labels: ArrayLike | None = None,
    *,
    calibration: Any = None,
    resolution: int | None = None,
    n_calibration: int = 32,
    per_channel: bool = True,
    latency: bool = False,
    threads: int = 1,
    seed: int = 0,
    **latency_settings: Any,
) -> Int8Estimate:
    """Quantize a network (or an architecture, built with torch's global RNG) to INT8 and compare it with the
    float network on ``images`` (``(n, 3, r, r)``) with optional ``(n,)`` ``labels``.

    ``calibration``: ``(m, 3, r, r)`` inputs or an image folder; by default the first ``n_calibration`` of
    ``images`` (calibrating on the evaluated images flatters the estimate slightly; pass other images for an
    honest one). ``latency=True`` also measures the INT8 model's batch-1 CPU latency with ``threads``
    onnxruntime threads (``latency_settings`` go to the backend: ``repeats``, ``warmup``, ...).
    """
    _require_ort()
    from nasopt.validation.measure.base import _as_model
    from nasopt.validation.model.export import onnx_bytes

    model = _as_model(model_or_arch)
    x = _as_inputs(images, resolution or 224, 256, seed, "images")
    r = int(x.shape[-1])
    if resolution is not None and resolution != r:
        raise ConfigurationError(f"images are {r} px but resolution={resolution}")
    y = None if labels is None else np.asarray(labels, dtype=np.int64).ravel()
    if y is not None and y.shape != (len(x),):
        raise ConfigurationError(f"labels must be ({len(x)},) for {len(x)} images, got shape {y.shape}")
    calib = (
        x[:n_calibration]
        if calibration is None
        else _as_inputs(calibration, r, n_calibration, seed, "calibration")
    )
    q = quantize_int8(model, calib, r, per_channel=per_channel, n_calibration=n_calibration, seed=seed)

    ort_backend = OnnxRuntimeBackend(threads=threads)
    f_logits = _run(ort_backend.session(onnx_bytes(model, r)), x)
    q_logits = _run(ort_backend.session(q), x)
    f_top, q_top = f_logits.argmax(1), q_logits.argmax(1)
    err = q_logits - f_logits
    f_acc = None if y is None else float(100.0 * np.mean(f_top == y))
    q_acc = None if y is None else float(100.0 * np.mean(q_top == y))
    measured = None
    if latency:
        settings = {"metric": "latency", "batch": 1, "resolution": r, "threads": threads, **latency_settings}
        measured = Int8OnnxBackend(onnx_model=q, **settings).measure(model)
    return Int8Estimate(
        arch=getattr(model, "arch_string", ""),
        n=len(x),
        n_calibration=len(calib),
        resolution=r,
        top1_agreement=float(np.mean(f_top == q_top)),
        float_top1=f_acc,
        int8_top1=q_acc,
        accuracy_drop=None if f_acc is None or q_acc is None else f_acc - q_acc,
        max_abs_logit_error=float(np.max(np.abs(err))),
        relative_logit_error=float(np.linalg.norm(err)) / max(float(np.linalg.norm(f_logits)), 1e-12),
        quantization={
            "runtime": "onnxruntime.quantization.quantize_static",
            "format": "QDQ",
            "per_channel": per_channel,
            "weights": "int8",
            "activations": "uint8",
            "calibration": "minmax",
        },
        latency=measured,
    )


__all__ = ["Int8Estimate", "Int8OnnxBackend", "int8_estimate", "labelled_images", "quantize_int8"]
