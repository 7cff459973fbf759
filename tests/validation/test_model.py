"""The built networks are exactly the dataset's: parameters of every record, thop MACs on a sample, the
analytic counter equal to the built model, exports that compute the same function, weights without pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from benchmark import geometry, macs, space  # noqa: E402
from benchmark.errors import ConfigurationError  # noqa: E402
from nasopt.validation.model import (  # noqa: E402
    ExportError,
    build_model,
    count_parameters,
    export_model,
    load_weights,
    onnx_bytes,
    read_weights_metadata,
    save_weights,
)
from nasopt.validation.model.blocks import MBConv  # noqa: E402

B0 = "efficientnet_b0"


def _record_archs(anb_records: list[tuple[str, dict[str, Any]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = space.from_dicts([rec["architecture"] for _, rec in anb_records])
    return (
        X,
        np.array([rec["model_info"]["params"] for _, rec in anb_records]),
        np.array([rec["model_info"]["macs"] for _, rec in anb_records]),
    )


def _calibrated(model: torch.nn.Module, resolution: int = 64) -> torch.nn.Module:
    """Give BatchNorm realistic running statistics (a fresh network's outputs are ~0 in eval mode)."""
    g = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, resolution, resolution, generator=g))
    return model.eval()


def test_efficientnet_b0_counts_match_thop_and_torchvision() -> None:
    thop = pytest.importorskip("thop")
    model = build_model(B0).eval()
    assert count_parameters(model) == 5_288_548
    m, p = thop.profile(model, inputs=(torch.zeros(1, 3, 224, 224),), verbose=False)
    assert (int(m), int(p)) == (415_145_024, 5_288_548)


@pytest.mark.dataset
def test_parameters_of_every_record_via_its_layers(anb_records: list[tuple[str, dict[str, Any]]]) -> None:
    """Every record's params = the built stem + its built MBConv layers + the built head (each distinct layer
    built once); the full networks are built for every record in the slow test below."""
    X, want, _ = _record_archs(anb_records)
    net = build_model(B0, device="meta")
    fixed = sum(count_parameters(part) for part in (net.stem, net.head, net.classifier))
    cache: dict[geometry.LayerSpec, int] = {}
    got = np.empty(len(X))
    for i, x in enumerate(X):
        total = fixed
        for spec in geometry.layer_plan(x):
            if spec not in cache:
                cache[spec] = count_parameters(MBConv(spec, device=torch.device("meta")))
            total += cache[spec]
        got[i] = total / 1e6
    bad = np.flatnonzero(np.abs(got - want) > 1e-6)
    assert bad.size == 0, (
        f"{bad.size} records differ, e.g. {anb_records[bad[0]][0]}: {got[bad[0]]} vs {want[bad[0]]}"
    )
    assert count_parameters(net) == fixed + sum(
        count_parameters(m) for m in net.blocks.modules() if isinstance(m, MBConv)
    )


@pytest.mark.slow
@pytest.mark.dataset
def test_parameters_of_every_record_built_whole(anb_records: list[tuple[str, dict[str, Any]]]) -> None:
    X, want, _ = _record_archs(anb_records)
    got = np.array([count_parameters(build_model(x, device="meta")) for x in X]) / 1e6
    bad = np.flatnonzero(np.abs(got - want) > 1e-6)
    assert bad.size == 0, f"{bad.size} of {len(X)} records differ, e.g. {anb_records[bad[0]][0]}"


@pytest.mark.dataset
def test_thop_macs_on_a_sample_of_records(anb_records: list[tuple[str, dict[str, Any]]]) -> None:
    thop = pytest.importorskip("thop")
    X, want_params, want_macs = _record_archs(anb_records)
    rows = np.random.default_rng(0).choice(len(X), 50, replace=False)
    for r in rows:
        model = build_model(X[r]).eval()
        m, p = thop.profile(model, inputs=(torch.zeros(1, 3, 224, 224),), verbose=False)
        assert m / 1e6 == pytest.approx(want_macs[r], abs=1e-6), anb_records[r][0]
        assert p / 1e6 == pytest.approx(want_params[r], abs=1e-6), anb_records[r][0]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**62))
def test_analytic_counter_equals_the_built_model(seed: int) -> None:
    x = space.sample(1, np.random.default_rng(seed))[0]
    _, params = macs.count_macs_params(x)
    assert count_parameters(build_model(x, device="meta")) == int(params[0])


def test_structure_follows_the_genes() -> None:
    x = space.from_string("e1k3l1- e4k5l2+ e6k3l3- e4k5l1+ e6k5l2- e1k3l4+ e6k5l1-")
    model = build_model(x, num_classes=10, device="meta")
    layers = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(layers) == 1 + 2 + 3 + 1 + 2 + 4 + 1
    assert [len(stage) for stage in model.blocks] == [1, 2, 3, 1, 2, 4, 1]
    first = layers[1]  # block 1, layer 0: 16 -> 24, stride 2, e4 k5 SE, squeeze = 16 // 4
    assert (first.spec.c_in, first.spec.c_out, first.spec.stride, first.spec.kernel) == (16, 24, 2, 5)
    se = first.body[2]
    assert se.reduce.out_channels == 4 and se.reduce.bias is not None
    assert isinstance(se.gate, torch.nn.Hardsigmoid)
    assert (
        first.drop_path is None and layers[2].drop_path is not None
    )  # residual only at stride 1, same width
    assert model.classifier.out_features == 10 and model.dropout.p == 0.2
    rates = [m.drop_path.p for m in layers if m.drop_path is not None]
    assert rates == sorted(rates) and max(rates) < 0.2  # stochastic depth grows linearly with depth


def test_activation_and_gate_are_parameters() -> None:
    model = build_model(B0, activation="silu", gate="sigmoid", device="meta")
    assert any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.Hardsigmoid)) for m in model.modules())
    with pytest.raises(ConfigurationError, match="unknown activation 'gelu'"):
        build_model(B0, activation="gelu")
    with pytest.raises(ConfigurationError, match="num_classes"):
        build_model(B0, num_classes=0)


def test_forward_any_resolution_and_train_mode_drop_path() -> None:
    torch.manual_seed(0)
    model = build_model(B0, num_classes=7)
    for r in (32, 160, 192):
        assert model.eval()(torch.zeros(2, 3, r, r)).shape == (2, 7)
    model.train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)  # dropout and stochastic depth are active in training


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build_model(B0).state_dict()
    torch.manual_seed(3)
    b = build_model(B0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_onnx_matches_torch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = _calibrated(
        build_model("e6k5l2+ e4k3l2- e6k5l3+ e4k3l2+ e6k5l3- e6k3l2+ e6k5l1+", num_classes=100)
    )
    path = export_model(model, tmp_path / "m.onnx", "onnx", resolution=64)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
        want = model(x).detach().numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(want).max() > 1e-2  # a network with a real signal, not ~0 outputs
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
        assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_torchscript_and_torch_export_match(tmp_path: Path, fmt: str) -> None:
    torch.manual_seed(0)
    model = _calibrated(
        build_model("e1k3l1+ e4k3l1- e4k5l1+ e4k3l1- e4k5l1+ e4k3l1- e1k3l1+", num_classes=10)
    )
    path = export_model(model, tmp_path / f"m.{fmt}", fmt, resolution=64)
    x = torch.randn(3, 3, 64, 64)
    if fmt == "torchscript":
        loaded = torch.jit.load(str(path))
        got = loaded(x)
    else:
        got = torch.export.load(str(path)).module()(x)
    torch.testing.assert_close(got, model(x), atol=1e-5, rtol=1e-4)


def test_weights_round_trip_without_pickle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _calibrated(build_model(B0, num_classes=10, activation="silu", gate="sigmoid"))
    path = save_weights(model, tmp_path / "w.safetensors", extra={"trained_by": "test"})
    header_len = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: u64 length + JSON header
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    assert "nasopt" in header["__metadata__"]
    meta = read_weights_metadata(path)
    assert meta["arch"] == model.arch_string and meta["config"]["activation"] == "silu"
    assert meta["trained_by"] == "test"
    back = load_weights(path).eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(back(x), model(x))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ExportError, match="not a readable safetensors weight file"):
        load_weights(tmp_path / "bad.safetensors")


def test_onnx_bytes_keeps_training_mode() -> None:
    model = build_model("e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-")
    model.train()
    assert onnx_bytes(model, 32)[:2]  # non-empty
    assert model.training


def test_building_leaves_torch_default_initialisation_alone() -> None:
    """build_model skips torch's per-layer default init while it builds (its own replaces it), only then."""
    build_model(B0)
    conv, lin, bn = torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 4), torch.nn.BatchNorm2d(8)
    assert conv.weight.abs().sum() > 0 and lin.weight.abs().sum() > 0
    bn.running_var.fill_(5.0)
    bn.reset_parameters()
    assert torch.equal(bn.running_var, torch.ones(8))
    model = build_model(B0)  # and the built network is initialised by its own rule
    assert all(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("weight"))


@pytest.mark.parametrize(
    ("width", "resolution", "num_classes"), [(0.25, 32, 10), (0.5, 28, 10), (1.0, 96, 100)]
)
def test_other_skeletons_count_exactly_as_thop(width: float, resolution: int, num_classes: int) -> None:
    """A narrower skeleton, an odd input side (28 px: strides round up) and another class count: the analytic
    counter and the built network agree exactly, so a new benchmark's ``model_info`` is right."""
    thop = pytest.importorskip("thop")
    skeleton = geometry.MNASNET.scaled(width)
    X = space.sample(4, np.random.default_rng(int(width * 100) + resolution))
    m, p = macs.count_macs_params(X, skeleton=skeleton, resolution=resolution, num_classes=num_classes)
    for i in range(len(X)):
        net = build_model(X[i], num_classes=num_classes, skeleton=skeleton).eval()
        tm, tp = thop.profile(net, inputs=(torch.zeros(1, 3, resolution, resolution),), verbose=False)
        assert (int(tm), int(tp)) == (m[i], p[i])
        assert net(torch.zeros(2, 3, resolution, resolution)).shape == (2, num_classes)


def test_skeleton_round_trips_through_exported_weights(tmp_path: Path) -> None:
    skeleton = geometry.MNASNET.scaled(0.25)
    assert skeleton.out_channels == (8, 8, 16, 24, 32, 48, 80) and skeleton.head_channels == 320
    assert geometry.Skeleton.from_dict(skeleton.to_dict()) == skeleton
    assert skeleton.digest() != geometry.MNASNET.digest()
    torch.manual_seed(0)
    net = build_model("efficientnet_b0", num_classes=10, skeleton=skeleton)
    save_weights(net, tmp_path / "w.safetensors")
    back = load_weights(tmp_path / "w.safetensors")
    assert back.config.skeleton == skeleton
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(net.eval()(x), back.eval()(x))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"out_channels": [16, 24]}, "skeleton.out_channels must be 7 positive integers"),
        ({"strides": [1, 2, 2, 3, 1, 2, 1]}, "skeleton.strides must each be 1 or 2"),
        ({"head_channels": 0}, "skeleton.head_channels must be a positive integer"),
        ({"widths": 2}, "unknown skeleton setting(s) widths"),
    ],
)
def test_bad_skeleton_is_one_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        geometry.Skeleton.from_dict(settings)
    assert message in str(info.value) and "\n" not in str(info.value)
