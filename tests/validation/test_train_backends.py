"""The optional training-data backends (data.backend=ffcv | dali) on real images (Debian's Fashion-MNIST):
the FFCV writer, the scheduled resolution, labels, per-rank sharding, exact resume, train_fraction, a smoke
training that learns, and one-line errors. Each backend's tests skip when its package is missing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from benchmark.errors import ConfigurationError  # noqa: E402
from nasopt.signals import StopFlag  # noqa: E402
from nasopt.validation.train import DataLayoutError, TrainingStopped, get_scheme, read_log, train  # noqa: E402
from nasopt.validation.train.data import (  # noqa: E402
    Augment,
    DataConfig,
    DataSource,
    TrainBatches,
    make_source,
    read_splits,
    scan_split,
    subset,
)

REPO = Path(__file__).resolve().parents[2]
SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"
HAS_FFCV = importlib.util.find_spec("ffcv") is not None
HAS_DALI = importlib.util.find_spec("nvidia") is not None and bool(importlib.util.find_spec("nvidia.dali"))
needs_ffcv = pytest.mark.skipif(not HAS_FFCV, reason='FFCV not installed (pip install -e ".[train-ffcv]")')
needs_dali = pytest.mark.skipif(not HAS_DALI, reason='DALI not installed (pip install -e ".[train-dali]")')
AUG = Augment(True, (0.35, 1.0), True, 1.0)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fashion_beton(fashion_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train.beton`` / ``val.beton`` / ``ffcv.json`` of the Fashion-MNIST folder (10 x 100 + 10 x 30)."""
    if not HAS_FFCV:
        pytest.skip("FFCV not installed")
    from nasopt.validation.train.ffcv_data import write_ffcv

    return write_ffcv(fashion_folder, tmp_path_factory.mktemp("beton"))


def _source(
    backend: str, root: Path, fraction: float = 1.0, rank: int = 0, world: int = 1, workers: int = 0
) -> tuple[DataSource, list[tuple[str, int]], list[tuple[str, int]]]:
    dc = DataConfig(root=str(root), backend=backend, workers=workers, train_fraction=fraction)
    classes, tr, va = read_splits(root, backend)
    tr = subset(tr, fraction, 0)
    return make_source(dc, root, classes, tr, va, AUG, seed=0, rank=rank, world=world), tr, va


def _epoch(
    src: DataSource, epoch: int, res: int, batch: int = 50, start: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in src.train(epoch, res, batch, start)]


BACKENDS = [pytest.param("ffcv", marks=needs_ffcv), pytest.param("dali", marks=needs_dali)]


@pytest.fixture(params=BACKENDS)
def backend_root(request: pytest.FixtureRequest, fashion_folder: Path) -> tuple[str, Path]:
    if request.param == "ffcv":
        return "ffcv", request.getfixturevalue("fashion_beton")
    return "dali", fashion_folder


# ---------------------------------------------------------------------------------------------- writer


@needs_ffcv
def test_ffcv_writer_round_trip(fashion_folder: Path, fashion_beton: Path, tmp_path: Path) -> None:
    from ffcv.reader import Reader
    from PIL import Image

    classes, samples = scan_split(fashion_folder, "train")
    got_classes, rows = read_splits(fashion_beton, "ffcv")[:2]
    assert got_classes == classes and len(rows) == len(samples) == 1000
    assert [lab for _, lab in rows] == [lab for _, lab in samples]  # same order, same labels
    index = json.loads((fashion_beton / "ffcv.json").read_text())
    field = {"max_resolution": 400, "jpeg_quality": 90, "write_mode": "jpg", "compress_probability": 0.5}
    assert index["field"] == field
    assert (index["n_train"], index["n_val"]) == (1000, 300)
    # the longer side is shrunk to 400, smaller images are kept; every image stored as JPEG (mode 0)
    for c in ("a", "b"):
        for split in ("train", "val"):
            (tmp_path / "src" / split / c).mkdir(parents=True)
    Image.new("RGB", (600, 300), (200, 10, 10)).save(tmp_path / "src" / "train" / "a" / "big.JPEG")
    Image.new("RGB", (120, 90), (10, 200, 10)).save(tmp_path / "src" / "train" / "b" / "small.JPEG")
    for c in ("a", "b"):
        Image.new("RGB", (50, 50)).save(tmp_path / "src" / "val" / c / "v.JPEG")
    from nasopt.validation.train.ffcv_data import write_ffcv

    out = write_ffcv(tmp_path / "src", tmp_path / "out")
    meta = Reader(str(out / "train.beton")).metadata["f0"]
    assert [(int(m["width"]), int(m["height"])) for m in meta] == [(400, 200), (120, 90)]
    assert set(meta["mode"].tolist()) == {0}


def test_ffcv_bad_layout_and_missing_package_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fashion_folder: Path
) -> None:
    prepare = [sys.executable, "-m", "nasopt.validation.train.prepare", "ffcv"]
    cmd = [*prepare, str(tmp_path / "none"), str(tmp_path / "o")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and str(tmp_path / "none" / "train") in p.stderr
    if HAS_FFCV:  # a folder without .beton files, used as data.backend=ffcv
        with pytest.raises(DataLayoutError) as info:
            read_splits(fashion_folder, "ffcv")
        msg = str(info.value)
        assert str(fashion_folder / "ffcv.json") in msg and "prepare ffcv" in msg and "\n" not in msg
    monkeypatch.setitem(sys.modules, "ffcv", None)  # as if not installed
    with pytest.raises(ConfigurationError) as info2:
        read_splits(tmp_path, "ffcv")
    assert "train-ffcv" in str(info2.value) and "\n" not in str(info2.value)


def test_dali_missing_package_and_bad_layout_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if HAS_DALI:
        with pytest.raises(DataLayoutError) as info:
            train(SMALL, "smoke", {"root": str(tmp_path), "backend": "dali"}, tmp_path / "runs", device="cpu")
        assert str(tmp_path / "train") in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(ConfigurationError) as info2:
        read_splits(tmp_path, "dali")
    assert "train-dali" in str(info2.value) and "\n" not in str(info2.value)


def test_backend_setting_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="ffcv, dali"):
        DataConfig(backend="turbo")


# ---------------------------------------------------------------------------------------------- loaders


def test_scheduled_resolution_and_labels(backend_root: tuple[str, Path], fashion_folder: Path) -> None:
    backend, root = backend_root
    src, tr, va = _source(backend, root)
    scheme = get_scheme("proxified", min_res=16, max_res=32, ramp_start=1, ramp_end=2, res_step=16)
    for epoch in (0, 2):
        res = scheme.resolution_at(epoch)
        batches = _epoch(src, epoch, res)
        order = list(TrainBatches(len(tr), 50, 0, epoch, res))
        assert len(batches) == 20 and res == (16 if epoch == 0 else 32)
        for (x, y), keys in zip(batches, order, strict=True):
            assert x.shape == (50, 3, res, res) and x.dtype == torch.uint8 and x.is_contiguous()
            assert y.dtype == torch.int64 and y.tolist() == [tr[i][1] for i, _, _ in keys]  # the sampler's
        assert all(x.float().std() > 0 for x, _ in batches)  # real images, not blank buffers
    val = [(x.clone(), y.clone()) for x, y in src.val(24, 64)]
    assert [x.shape[0] for x, _ in val] == [64, 64, 64, 64, 44] and val[0][0].shape[1:] == (3, 24, 24)
    assert torch.cat([y for _, y in val]).tolist() == [lab for _, lab in va]


def test_two_ranks_partition_every_batch(backend_root: tuple[str, Path]) -> None:
    backend, root = backend_root
    one = _epoch(_source(backend, root)[0], 1, 32)
    ranks = [_epoch(_source(backend, root, rank=r, world=2)[0], 1, 32) for r in (0, 1)]
    for b, (_, y) in enumerate(one):
        (x0, y0), (x1, y1) = ranks[0][b], ranks[1][b]
        assert x0.shape[0] == x1.shape[0] == 25
        assert sorted(y0.tolist() + y1.tolist()) == sorted(y.tolist())
    val = [[y for _, y in _source(backend, root, rank=r, world=2)[0].val(32, 64)] for r in (0, 1)]
    n0, n1 = (sum(len(t) for t in v) for v in val)
    assert n0 + n1 == 300 and n0 == n1
    if backend == "ffcv":  # augmentation seeded per image: the two ranks' images are the one process's
        for b, (x, _) in enumerate(one):
            both = torch.cat([ranks[0][b][0], ranks[1][b][0]])
            key = lambda t: t.flatten(1).sum(1).sort().values  # noqa: E731
            assert torch.equal(key(both), key(x))


def test_resume_mid_epoch_and_threads_are_bitwise_identical(backend_root: tuple[str, Path]) -> None:
    backend, root = backend_root
    src = _source(backend, root)[0]
    full = _epoch(src, 0, 32)
    other = _epoch(src, 1, 32)
    assert not torch.equal(full[0][0], other[0][0])  # another epoch, other draws
    resumed = _epoch(_source(backend, root)[0], 0, 32, start=7)  # a new process resuming at step 7
    assert len(resumed) == 13
    pairs = zip(full[7:], resumed, strict=True)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, _epoch(src, 0, 32), strict=True))  # repeatable
    threaded = _epoch(_source(backend, root, workers=2)[0], 0, 32)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full, threaded, strict=True))


def test_train_fraction(backend_root: tuple[str, Path]) -> None:
    backend, root = backend_root
    src, tr, _ = _source(backend, root, fraction=0.5)
    assert len(tr) == 500
    ys = torch.cat([y for _, y in _epoch(src, 0, 32)])
    assert len(ys) == 500 and (np.bincount(ys.numpy(), minlength=10) == 50).all()


def test_randaugment_is_refused(backend_root: tuple[str, Path]) -> None:
    backend, root = backend_root
    dc = DataConfig(root=str(root), backend=backend)
    classes, tr, va = read_splits(root, backend)
    with pytest.raises(ConfigurationError, match="randaugment"):
        make_source(dc, root, classes, tr, va, Augment(True, randaugment="rand-m9"), seed=0)


@pytest.mark.slow
def test_smoke_training_learns(backend_root: tuple[str, Path], tmp_path: Path) -> None:
    backend, root = backend_root
    s = get_scheme("smoke", epochs=3)
    result = train(SMALL, s, {"root": str(root), "backend": backend}, tmp_path, device="cpu")
    top1 = result.record["metrics"]["val_top1"]
    assert top1 > 30.0, f"{backend}: smoke scheme reached {top1:.1f} % (chance: 10 %)"
    log = read_log(result.run_dir)
    assert [r["images"] for r in log] == [1000] * 3 and log[-1]["train_loss"] < log[0]["train_loss"]
    cfg = json.loads((result.run_dir / "config.json").read_text())
    assert cfg["data"]["backend"] == backend and cfg["data"]["n_val"] == 300


class _StopAt(StopFlag):
    """A stop request that turns up at the ``reads``-th look (the training loop looks once per step)."""

    def __init__(self, reads: int) -> None:
        self._left = reads
        super().__init__()

    @property  # type: ignore[override]
    def reason(self) -> str | None:
        self._left -= 1
        return "test" if self._left < 0 else self._reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._reason = value


@pytest.mark.slow
def test_stopped_mid_epoch_and_resumed_is_bitwise_identical(
    backend_root: tuple[str, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    backend, root = backend_root
    s = get_scheme("smoke", epochs=2, checkpoint_every_steps=7)  # 20 steps an epoch
    data = {"root": str(root), "backend": backend}
    ref = train(SMALL, s, data, tmp_path / "ref", device="cpu")
    with pytest.raises(TrainingStopped, match="at epoch 1 step 7"):
        train(SMALL, s, data, tmp_path / "cut", device="cpu", stop=_StopAt(27), handle_signals=False)
    cut = train(SMALL, s, data, tmp_path / "cut", device="cpu")  # the same call resumes mid-epoch 1
    a, b = (load_file(str(r.run_dir / "weights.safetensors")) for r in (ref, cut))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cols = ("train_loss", "train_top1", "val_loss", "val_top1")
    assert [[r[c] for c in cols] for r in ref.history] == [[r[c] for c in cols] for r in cut.history]


def test_validation_crop_matches_the_folder_backend(
    backend_root: tuple[str, Path], fashion_folder: Path
) -> None:
    backend, root = backend_root
    aug = Augment(True, (0.35, 1.0), True, 0.875)  # the central 28 px of 32 px images
    images = {}
    for b, r in (("pil", fashion_folder), (backend, root)):
        classes, tr, va = read_splits(r, b)
        src = make_source(DataConfig(root=str(r), backend=b), r, classes, tr, va, aug, seed=0)
        images[b] = torch.cat([x for x, _ in src.val(28, 64)]).float()
    diff = (images[backend] - images["pil"]).abs().mean().item()
    shifted = (images["pil"][:, :, 1:] - images["pil"][:, :, :-1]).abs().mean().item()
    assert diff < 4.0 < shifted, (diff, shifted)  # FFCV: re-encoded at quality 90 (2.0 here); DALI: 0.0
