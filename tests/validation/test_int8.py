"""The INT8 estimate on the CPU: onnxruntime static quantization (QDQ, per-channel) of a small network, its
agreement with the float network on a batch, its accuracy drop against labels, and its CPU latency through
the onnxruntime backend (never asserted as a speed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import onnx
import torch

from benchmark.errors import ConfigurationError
from nasopt.validation.measure.int8 import int8_estimate, labelled_images, quantize_int8
from nasopt.validation.model import build_model

ARCH = "e1k3l1- e4k3l1+ e1k3l1- e4k3l1+ e1k3l1- e1k3l1- e1k3l1-"
R = 48


def _network(x: np.ndarray) -> torch.nn.Module:
    """A small network whose BatchNorm statistics come from ``x`` (so its activations have a trained
    network's scale, not a fresh one's vanishing ones)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(ARCH, num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the batch
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x))
    return model.eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.nn.Module, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, R, R)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    calib = rng.standard_normal((16, 3, R, R)).astype(np.float32)
    return _network(x), x, y, calib


def test_quantized_graph_is_qdq_per_channel(data: tuple) -> None:
    model, _, _, calib = data
    g = onnx.load_from_string(quantize_int8(model, calib, R))
    ops = {n.op_type for n in g.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in g.graph.initializer}
    # a per-channel weight: its DequantizeLinear scale holds one value per output channel
    weight_scales = [
        inits[n.input[1]] for n in g.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    ]
    assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales)
    assert any(i.data_type == onnx.TensorProto.INT8 for i in g.graph.initializer)


def test_int8_estimate_agrees_with_float(data: tuple) -> None:
    model, x, y, calib = data
    e = int8_estimate(model, x, y, calibration=calib, latency=True, repeats=3, warmup=1)
    assert e.n == 40 and e.n_calibration == 16 and e.resolution == R
    for v in (e.top1_agreement, e.float_top1, e.int8_top1, e.max_abs_logit_error, e.relative_logit_error):
        assert v is not None and math.isfinite(v)
    assert e.accuracy_drop == pytest.approx(e.float_top1 - e.int8_top1)  # type: ignore[operator]
    assert 0.0 <= e.float_top1 <= 100.0 and 0.0 <= e.int8_top1 <= 100.0  # type: ignore[operator]
    # INT8 logits close-ish to float: most top-1 predictions kept, logits within a fraction of their norm
    assert e.top1_agreement >= 0.6 and e.relative_logit_error < 0.5
    lat = e.latency
    assert lat is not None and lat.unit == "ms" and lat.mean > 0 and lat.protocol.precision == "int8"
    assert lat.protocol.batch == 1 and lat.protocol.threads == 1 and lat.arch == ARCH
    assert dict(lat.protocol.options)["quantization"].startswith("onnxruntime-static-qdq")
    d = e.to_dict()
    assert d["latency"]["protocol"]["precision"] == "int8" and d["quantization"]["per_channel"] is True


def test_without_labels_and_calibrated_on_the_batch(data: tuple) -> None:
    model, x, _, _ = data
    e = int8_estimate(model, x[:12], n_calibration=8)
    assert e.float_top1 is None and e.accuracy_drop is None and e.latency is None
    assert e.n_calibration == 8 and 0.0 <= e.top1_agreement <= 1.0


def test_images_from_an_imagenet_folder(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in range(2):
        (tmp_path / f"n{c}").mkdir()
        for i in range(3):
            img = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / f"n{c}" / f"{i}.png")
    x, y = labelled_images(tmp_path, n=6, resolution=32)
    assert x.shape == (6, 3, 32, 32) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(ARCH, num_classes=2).eval()
    e = int8_estimate(model, x, y, calibration=tmp_path, n_calibration=4)
    assert e.n_calibration == 4 and e.n == 6 and math.isfinite(e.relative_logit_error)


def test_bad_inputs_are_one_line(data: tuple) -> None:
    model, x, y, _ = data
    for kwargs, message in (
        ({"images": x[0]}, r"images must be an \(n, 3, r, r\) array"),
        ({"images": x, "labels": y[:3]}, r"labels must be \(40,\)"),
        ({"images": x, "resolution": 64}, "images are 48 px but resolution=64"),
    ):
        with pytest.raises(ConfigurationError, match=message) as info:
            int8_estimate(model, **kwargs)
        assert "\n" not in str(info.value)
