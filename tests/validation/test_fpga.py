"""The FPGA deploy bundle: written with its manifest and calibration list, its scripts are Python 3.8 code,
its float network is nasopt's, its docker script runs the quantizer and compiler (fakes here), its board
runner measures through VART (a fake module whose jobs take a known time) and writes a JSON that
``import_results`` reads back; bad input gives one line."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from benchmark.errors import NasoptError
from nasopt.validation.measure import MeasurementError
from nasopt.validation.measure.calibration import CalibrationError, preprocess, select_images
from nasopt.validation.measure.fpga import (
    BOARDS,
    SCRIPTS,
    TARGET_PYTHON,
    FpgaBundleError,
    import_results,
    read_bundle,
    write_bundle,
)
from nasopt.validation.model import build_model
from nasopt.validation.testing import REQUIRED_ENVIRONMENT, SMALLEST

FAKES = Path(__file__).resolve().parent / "fake_vitis"
ARCH = "e1k3l1+ e4k5l2- e6k3l1+ e1k5l1- e4k3l2+ e6k5l1- e1k3l1+"


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ImageNet-layout folder: 3 classes of 4 random JPEGs of different sizes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for c in range(3):
        d = root / f"n0000000{c}"
        d.mkdir()
        for i in range(4):
            h, w = 40 + 7 * i, 50 + 5 * c
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"img_{i}.JPEG")
    (root / "n00000000" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def bundle(imagenet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "zcu102"
    write_bundle(ARCH, out, "zcu102", calibration_dir=imagenet, n_calibration=5, resolution=64)
    return out


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- the bundle ---------------------------------------------------------------------------------------
def test_bundle_files_and_manifest(bundle: Path, imagenet: Path) -> None:
    names = {p.name for p in bundle.iterdir()}
    assert {*SCRIPTS, "manifest.json", "weights.safetensors", "calib_images.txt", "README.txt"} <= names
    m = read_bundle(bundle).manifest  # verifies every sha256
    assert m["arch"] == ARCH and m["board"] == "zcu102" and m["dpu"] == "DPUCZDX8G_ISA1_B4096"
    assert m["arch_json"].endswith("DPUCZDX8G/ZCU102/arch.json") and m["resolution"] == 64
    assert (m["latency_threads"], m["throughput_threads"], m["batch"]) == (1, 5, 1)
    assert set(m["files"]) == names - {"manifest.json"} and m["target_python"] == "3.8"
    assert "nasopt" in m["versions"] or "torch" in m["versions"]
    # 5 images spread round robin over the 3 classes, relative to the recorded root
    listed = (bundle / "calib_images.txt").read_text().split()
    assert len(listed) == 5 and m["calibration"]["count"] == 5
    assert m["calibration"]["root"] == str(imagenet.resolve())
    assert sorted({n.split("/")[0] for n in listed[:3]}) == ["n00000000", "n00000001", "n00000002"]
    assert all((imagenet / n).is_file() and n.endswith(".JPEG") for n in listed)


def test_a_changed_bundle_file_is_detected(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / "run_board.py").write_text("# edited\n")
    with pytest.raises(FpgaBundleError, match=r"run_board\.py: missing or changed"):
        read_bundle(copy)


def test_vck190_bundle_and_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "v"
    b = write_bundle(SMALLEST, out, "VCK190", resolution=64)
    assert b.manifest["dpu"] == "DPUCVDX8G" and b.manifest["calibration"] is None
    assert (b.manifest["batch"], b.manifest["throughput_threads"]) == (6, 6)
    assert not (out / "calib_images.txt").exists()
    with pytest.raises(FpgaBundleError, match="exists and is not empty; pass overwrite=True") as info:
        write_bundle(SMALLEST, out, "vck190")
    assert "\n" not in str(info.value)
    write_bundle(ARCH, out, "vck190", overwrite=True)
    assert read_bundle(out).manifest["arch"] == ARCH
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_scripts_are_python_38(bundle: Path) -> None:
    for name in SCRIPTS:
        src = (bundle / name).read_text()
        ast.parse(src, filename=name, feature_version=TARGET_PYTHON)
        assert "nasopt" not in {n.split(".")[0] for n in _imports(src)}, f"{name} imports nasopt"
    py38 = _python38()
    if py38 is not None:  # a real 3.8 interpreter compiles them too, where one is installed
        for name in SCRIPTS:
            subprocess.run([py38, "-m", "py_compile", str(bundle / name)], check=True, capture_output=True)


def _python38(*modules: str) -> str | None:
    """A working Python 3.8 interpreter that imports ``modules``, if this machine has one:
    ``NASOPT_PYTHON38``, ``python3.8`` on the PATH, or pyenv's versions."""
    pyenv = sorted(map(str, Path.home().glob(".pyenv/versions/3.8*/bin/python")))
    candidates = [os.environ.get("NASOPT_PYTHON38"), shutil.which("python3.8"), *pyenv]
    for c in candidates:
        if c is None:
            continue
        imports = [f"import {m}" for m in modules]
        check = "; ".join(["import sys", "assert sys.version_info[:2] == (3, 8)", *imports])
        r = subprocess.run([c, "-c", check], capture_output=True)
        if r.returncode == 0:
            return c
    return None


def _imports(src: str) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_bundle_network_is_nasopt_network(bundle: Path, imagenet: Path) -> None:
    md = _load(bundle / "model_def.py", "bundle_model_def")
    net = md.load_network(str(bundle / "weights.safetensors"))
    torch.manual_seed(0)  # the bundle was built with seed 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = build_model(ARCH).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-5)
    assert md.STRIDES == (1, 2, 2, 2, 1, 2, 1) and md.OUT_CHANNELS[-1] == 320
    # the docker's preprocessing is nasopt's
    img = imagenet / (bundle / "calib_images.txt").read_text().split()[0]
    assert np.array_equal(md.preprocess(str(img), 64), preprocess(img, 64))
    assert preprocess(img, 64).shape == (3, 64, 64)


def test_a_trained_network_keeps_its_weights(tmp_path: Path) -> None:
    model = build_model(SMALLEST, num_classes=10, activation="silu", gate="sigmoid").eval()
    with torch.no_grad():
        model.classifier.bias.fill_(0.5)
    b = write_bundle(model, tmp_path / "b", resolution=64)
    net = _load(b.file("model_def.py"), "bundle_model_def2").load_network(str(b.file("weights.safetensors")))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-5)


# ---- the docker script, with a fake quantizer and compiler ---------------------------------------------
def test_quantize_compile_script(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    arch_json = tmp_path / "arch.json"
    arch_json.write_text('{"target": "fake"}')
    log = tmp_path / "nndct.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(FAKES),
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_NNDCT_LOG": str(log),
    }
    r = subprocess.run(
        [sys.executable, "quantize_compile.py", "--arch-json", str(arch_json)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    modes = [(e["event"], e["mode"]) for e in events]
    # 5 calibration images in batches of 8 -> one calibration pass; then one batch-1 pass and the export
    assert modes == [
        ("init", "calib"),
        ("forward", "calib"),
        ("export_quant_config", "calib"),
        ("init", "test"),
        ("forward", "test"),
        ("export_xmodel", "test"),
    ]
    assert events[1]["shape"] == [5, 3, 64, 64] and events[4]["shape"] == [1, 3, 64, 64]
    assert events[0]["bitwidth"] == 8 and events[0]["model"] == "ArchNet"
    assert events[0]["target"] == "DPUCZDX8G_ISA1_B4096"
    net = json.loads((work / "manifest.json").read_text())["net_name"]
    assert (work / "compiled" / f"{net}.xmodel").is_file() and "vai_c_xir -x" in r.stdout


def test_quantize_script_names_missing_calibration_images(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    r = subprocess.run(
        [sys.executable, "quantize_compile.py", "--calib-root", str(tmp_path / "elsewhere")],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(FAKES)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "5 of 5 calibration images are missing" in r.stderr


def test_docker_python_and_torch_run_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """The docker's Python 3.8 and torch 1.x (where such an interpreter is installed): the bundle's network
    gives nasopt's logits and the quantize script runs (fake quantizer and compiler)."""
    py38 = _python38("numpy", "torch", "PIL")
    if py38 is None:
        pytest.skip("no Python 3.8 with numpy, torch and Pillow here (set NASOPT_PYTHON38 to one)")
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "x.npy", x.numpy())
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the bundle was built with seed 0
        ref = build_model(ARCH).eval()
    with torch.no_grad():
        np.save(tmp_path / "ref.npy", ref(x).numpy())
    code = (
        "import numpy as np, torch; from model_def import load_network; "
        "net = load_network('weights.safetensors'); "
        f"out = net(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).detach().numpy(); "
        f"print(float(np.abs(out - np.load({str(tmp_path / 'ref.npy')!r})).max()))"
    )
    r = subprocess.run([py38, "-c", code], cwd=work, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) < 1e-5
    arch_json = tmp_path / "arch.json"
    arch_json.write_text("{}")
    env = {
        **os.environ,
        "PYTHONPATH": str(FAKES),
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_NNDCT_LOG": str(tmp_path / "nndct.log"),
    }
    r = subprocess.run(
        [py38, "quantize_compile.py", "--arch-json", str(arch_json)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "export_xmodel" in (tmp_path / "nndct.log").read_text()


# ---- the board runner, with a fake VART -----------------------------------------------------------------
def _run_board(
    work: Path,
    *args: str,
    seconds: float = 0.002,
    batch: int = 1,
    n_dpu: int = 1,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    manifest = json.loads((work / "manifest.json").read_text())
    (work / "compiled").mkdir(exist_ok=True)
    (work / "compiled" / f"{manifest['net_name']}.xmodel").write_text(str(n_dpu))
    env = {
        **os.environ,
        "PYTHONPATH": str(FAKES),
        "FAKE_VART_SECONDS": str(seconds),
        "FAKE_VART_BATCH": str(batch),
        "FAKE_VART_LOG": str(work / "vart.log"),
    }
    return subprocess.run(
        [python, str(work / "run_board.py"), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_board_runner_end_to_end(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    out = tmp_path / "results.json"
    r = _run_board(work, "--jobs", "5", "--repeats", "4", "--warmup", "1", "--out", str(out), seconds=0.004)
    assert r.returncode == 0, r.stderr
    raw = json.loads(out.read_text())
    assert raw["format"] == "nasopt-measurements"
    lat, thr = import_results(out)
    # latency: 1 thread, 4 samples of 5 jobs of >= 4 ms each -> >= 4 ms per batch
    assert lat.target == "latency_zcu102" and lat.unit == "ms" and lat.arch == ARCH
    assert lat.protocol.threads == 1 and lat.protocol.passes == 5 and lat.protocol.batch == 1
    assert lat.protocol.precision == "int8" and lat.protocol.backend == "vart"
    assert len(lat.samples) == 4 and min(lat.samples) >= 4.0
    # throughput: 5 threads, each with its own runner; images/s over all of them
    assert thr.target == "throughput_zcu102" and thr.unit == "img/s" and thr.protocol.threads == 5
    assert thr.protocol.passes == 5 * 5 and max(thr.samples) <= 5 / 0.004
    jobs = [int(v) for v in (work / "vart.log").read_text().split()]
    assert jobs == [1 + 4 * 5] * 6  # 1 latency runner + 5 throughput runners, warm-up + samples each
    for m in (lat, thr):
        missing = [k for k in REQUIRED_ENVIRONMENT if k not in m.environment]
        assert not missing and m.environment["runtime"] == "VART 3.5-fake"
        assert m.environment["dpu"] == "DPUCZDX8G_ISA1_B4096"
    # the runner's own statistics equal nasopt's recomputation from the raw samples
    for d, m in zip(raw["measurements"], (lat, thr), strict=True):
        assert d["mean"] == pytest.approx(m.mean) and d["std"] == pytest.approx(m.std)
        assert d["n"] == m.n and d["median"] == pytest.approx(m.median)


def test_board_runner_on_python_38(bundle: Path, tmp_path: Path) -> None:
    """The board images' Python: the runner runs under a real 3.8 (with numpy) where one is installed."""
    py38 = _python38("numpy")
    if py38 is None:
        pytest.skip("no Python 3.8 with numpy here (set NASOPT_PYTHON38 to one)")
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    r = _run_board(work, "--jobs", "2", "--repeats", "2", "--warmup", "0", python=py38)
    assert r.returncode == 0, r.stderr
    lat, thr = import_results(work / "results_zcu102.json")
    assert lat.environment["python"].startswith("3.8.") and thr.protocol.threads == 5


def test_board_runner_reads_the_batch_of_the_dpu(tmp_path: Path) -> None:
    b = write_bundle(SMALLEST, tmp_path / "v", "vck190", resolution=64)
    args = ("--metric", "throughput", "--jobs", "3", "--repeats", "2", "--warmup", "0")
    r = _run_board(b.path, *args, batch=6)
    assert r.returncode == 0, r.stderr
    (thr,) = import_results(b.file("results_vck190.json"))
    assert thr.device == "vck190" and thr.protocol.batch == 6 and thr.protocol.threads == 6
    assert thr.protocol.passes == 18 and max(thr.samples) <= 6 * 6 / 0.002


def test_board_runner_errors_are_one_line(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    r = subprocess.run(
        [sys.executable, str(work / "run_board.py")], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "run quantize_compile.py" in r.stderr
    r = _run_board(work, "--repeats", "1", "--jobs", "1", n_dpu=2)
    assert r.returncode == 2 and "2 DPU subgraphs" in r.stderr and r.stderr.count("\n") == 1
    r = _run_board(work, "--jobs", "0")
    assert r.returncode == 2 and "--jobs must be >= 1" in r.stderr


# ---- bad input -----------------------------------------------------------------------------------------
def test_bad_board_and_calibration_folder_are_one_line(tmp_path: Path, imagenet: Path) -> None:
    with pytest.raises(FpgaBundleError, match=r"unknown FPGA board 'zcu104'; choose one of zcu102 \(DPUCZ"):
        write_bundle(SMALLEST, tmp_path / "a", "zcu104")
    with pytest.raises(CalibrationError, match=r"calibration folder .* does not exist"):
        write_bundle(SMALLEST, tmp_path / "a", "zcu102", calibration_dir=tmp_path / "missing")
    (tmp_path / "empty" / "n0").mkdir(parents=True)
    with pytest.raises(CalibrationError, match="holds no images"):
        write_bundle(SMALLEST, tmp_path / "a", calibration_dir=tmp_path / "empty")
    for err in (FpgaBundleError, CalibrationError):
        assert issubclass(err, NasoptError)
    assert not (tmp_path / "a").exists()
    assert set(BOARDS) == {"zcu102", "vck190"}
    # more images asked than there are: all of them, in a stable order
    every = select_images(imagenet, 100)
    assert every == select_images(imagenet, 100) and len(every) == 12


def test_import_results_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    cases = {
        "missing": None,
        "{not json": "not valid JSON",
        "[]": "holds no measurements",
        '{"measurements": [{"arch": "x"}]}': "measurement 0 lacks device",
        '{"format": "other", "measurements": [{}]}': "format 'other'",
    }
    for text, message in cases.items():
        if text == "missing":
            target, message = tmp_path / "nope.json", "cannot read measurement results"
        else:
            bad.write_text(text)
            target = bad
        with pytest.raises(MeasurementError, match=message) as info:
            import_results(target)
        assert "\n" not in str(info.value)
