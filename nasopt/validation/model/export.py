"""Export a built network for the runtimes that measure it: ONNX (onnxruntime, TensorRT, Vitis AI's ONNX
flow), TorchScript and ``torch.export`` programs; and weights as safetensors (no pickle on the load path)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark._io import atomic_write_bytes
from benchmark.errors import ConfigurationError, NasoptError
from nasopt.validation.model.network import ArchNet, ModelConfig

FORMATS = ("onnx", "torchscript", "export")
#: The ONNX opset written: 17 is read by onnxruntime >= 1.11, TensorRT >= 8.6 and the Vitis AI 3.5 ONNX flow.
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class ExportError(NasoptError, RuntimeError):
    """A model could not be exported or its weights read back."""


def example_input(batch: int = 1, resolution: int = 224) -> torch.Tensor:
    """A ``(batch, 3, resolution, resolution)`` float input (fixed seed, so exports are reproducible)."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, resolution, resolution, generator=g)


def onnx_bytes(model: nn.Module, resolution: int = 224, *, dynamic_batch: bool = True) -> bytes:
    """The model as an ONNX graph (input ``input`` ``(batch, 3, r, r)``, output ``logits``), batch dynamic.

    Uses torch's TorchScript-based exporter, which needs no extra package and writes graphs that older
    toolchains (the Vitis AI docker's) read; the model is exported in evaluation mode.
    """
    import io

    was_training = model.training
    model.eval()
    buf = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (example_input(1, resolution),),
                buf,  # type: ignore[arg-type]  # a file object is accepted
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return buf.getvalue()


def export_model(
    model: nn.Module, path: str | os.PathLike[str], fmt: str = "onnx", *, resolution: int = 224
) -> Path:
    """Write ``model`` to ``path`` as ``fmt`` (``onnx``, ``torchscript`` or ``export`` = a ``torch.export``
    ``.pt2`` program), atomically; returns the path. The batch dimension is dynamic in every format."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(path)
    was_training = model.training
    model.eval()
    try:
        if fmt == "onnx":
            atomic_write_bytes(out, onnx_bytes(model, resolution))
        elif fmt == "torchscript":
            import io

            scripted = torch.jit.trace(model, example_input(2, resolution), check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(scripted, buf)
            atomic_write_bytes(out, buf.getvalue())
        else:
            import io

            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.export.export(
                model, (example_input(2, resolution),), dynamic_shapes=({0: batch},)
            )
            buf = io.BytesIO()
            torch.export.save(program, buf)
            atomic_write_bytes(out, buf.getvalue())
    finally:
        model.train(was_training)
    return out


# ------------------------------------------------------------------------------------------ weights

_META_KEY = "nasopt"


def save_weights(model: ArchNet, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write the model's state (parameters and buffers) as a safetensors file whose metadata holds the
    architecture and :class:`ModelConfig`, so :func:`load_weights` rebuilds the same network."""
    from safetensors.torch import save

    meta = {"arch": model.arch_string, "config": model.config.to_dict(), **(extra or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(Path(path), save(state, metadata={_META_KEY: json.dumps(meta)}))
    return Path(path)


def read_weights_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The nasopt metadata of a safetensors weight file (architecture, model config, anything extra)."""
    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except Exception as exc:  # safetensors raises its own SafetensorError, an Exception subclass
        raise ExportError(f"{p}: not a readable safetensors weight file ({exc})") from exc
    if raw is None:
        raise ExportError(
            f"{p}: a safetensors file without nasopt metadata (architecture, config); "
            f"write it with nasopt.validation.model.save_weights"
        )
    meta: dict[str, Any] = json.loads(raw)
    return meta


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> ArchNet:
    """Rebuild the network saved by :func:`save_weights` and load its state (no pickle involved)."""
    from safetensors.torch import load_file

    from nasopt.validation.model.network import build_model

    meta = read_weights_metadata(path)
    cfg = ModelConfig(**meta["config"])
    model = build_model(
        meta["arch"],
        cfg.num_classes,
        activation=cfg.activation,
        gate=cfg.gate,
        drop_path_rate=cfg.drop_path_rate,
        dropout=cfg.dropout,
        skeleton=cfg.skeleton,
        device=device,
    )
    state = load_file(str(path), device=str(torch.device(device)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{path}: weights do not fit the architecture in its metadata ({exc})") from exc
    return model
