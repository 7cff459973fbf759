"""Architectures as PyTorch networks: build, export (ONNX, TorchScript, ``torch.export``), save weights."""

from __future__ import annotations

from nasopt.validation.model.export import (
    FORMATS,
    ExportError,
    export_model,
    load_weights,
    onnx_bytes,
    read_weights_metadata,
    save_weights,
)
from nasopt.validation.model.network import ArchNet, ModelConfig, build_model, count_parameters

__all__ = [
    "FORMATS",
    "ArchNet",
    "ExportError",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "export_model",
    "load_weights",
    "onnx_bytes",
    "read_weights_metadata",
    "save_weights",
]
