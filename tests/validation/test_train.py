"""The training pipeline (nasopt.validation.train): schemes and their schedules, data layout and
augmentation, the run directory and its record, the CLI -- on real images (Debian's Fashion-MNIST)."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from benchmark import geometry, space  # noqa: E402
from benchmark.dataset import read_records  # noqa: E402
from benchmark.errors import ConfigurationError  # noqa: E402
from benchmark.macs import macs_params  # noqa: E402
from nasopt.validation.model import count_parameters, load_weights  # noqa: E402
from nasopt.validation.train import (  # noqa: E402
    FULL,
    PROXIFIED,
    SMOKE,
    DataLayoutError,
    RunExistsError,
    get_scheme,
    read_log,
    train,
    train_one_epoch,
)
from nasopt.validation.train import checkpoints as ckpt  # noqa: E402
from nasopt.validation.train.data import (  # noqa: E402
    Augment,
    ImageFolder,
    TrainBatches,
    resolve_root,
    scan_split,
    subset,
)
from nasopt.validation.train.prepare import val_to_folders  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------- schemes


def test_proxified_is_the_datasets_recipe() -> None:
    s = PROXIFIED
    assert (s.epochs, s.batch_size, s.optimizer, s.momentum, s.weight_decay) == (16, 2048, "sgd", 0.9, 1e-4)
    assert not s.decay_bn_and_bias and s.label_smoothing == 0.1
    assert s.peak_lr == pytest.approx(0.425) and s.lr_peak_epoch == 2.0 and s.schedule == "triangular"
    assert get_scheme("proxified", batch_size=512).peak_lr == pytest.approx(0.425 / 4)  # linear scaling
    assert (s.precision, s.channels_last, s.drop_path_rate, s.dropout) == ("fp16", True, 0.2, 0.2)
    assert s.rrc_scale == (0.08, 1.0) and s.hflip
    assert (s.val_res, s.val_crop, s.top1_best_of_last) == (256, 0.875, 3)
    assert [s.resolution_at(e) for e in range(16)] == [160] * 12 + [192] * 4


def test_full_scheme_settings() -> None:
    s = FULL
    assert (s.optimizer, s.rmsprop_eps, s.weight_decay, s.epochs) == ("rmsprop_tf", 1e-3, 1e-5, 450)
    assert s.peak_lr == pytest.approx(0.024 * 2048 / 256)
    assert (s.decay_rate, s.decay_epochs, s.ema_decay, s.randaugment) == (
        0.97,
        2.4,
        0.9999,
        "rand-m9-mstd0.5",
    )
    assert (s.random_erasing, s.activation) == (0.2, "silu")
    steps = 100
    assert s.lr_at(0, 0, steps) == pytest.approx(s.warmup_lr)
    assert s.lr_at(2, 50, steps) < s.lr_at(4, 0, steps)  # warm-up rises
    assert s.lr_at(5, 0, steps) == pytest.approx(s.peak_lr * 0.97**2)  # 5 / 2.4 -> two decays
    assert s.lr_at(100, 0, steps) == pytest.approx(s.peak_lr * 0.97 ** math.floor(100 / 2.4))


def test_triangular_lr_is_set_every_step() -> None:
    s = get_scheme("proxified", epochs=4, lr_peak_epoch=1.0, batch_size=256)
    n = 10
    lrs = [s.lr_at(e, i, n) for e in range(4) for i in range(n)]
    peak = s.peak_lr
    assert lrs[0] == pytest.approx(1e-4 * peak)  # from ~0
    assert lrs[n - 1] == pytest.approx(peak) and lrs[n] == pytest.approx(peak)  # epoch 1 starts at the peak
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # 0 at the end
    up, down = np.diff(lrs[:n]), np.diff(lrs[n:])
    assert (
        (up > 0).all() and (down[down != 0] < 0).all() and np.count_nonzero(down) == len(down) - 2
    )  # epoch ends repeat
    # the loop applies it before each step
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batches = [(torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 1]))] * n
    seen: list[float] = []
    train_one_epoch(
        model,
        batches,
        opt,
        torch.nn.CrossEntropyLoss(),
        lambda i: s.lr_at(1, i, n),
        device=torch.device("cpu"),
        after_step=lambda step, m: bool(seen.append(opt.param_groups[0]["lr"])),
    )
    assert seen == pytest.approx([s.lr_at(1, i, n) for i in range(n)])


def test_resolution_ramp_rounds_to_the_step() -> None:
    s = get_scheme("proxified", epochs=8, min_res=32, max_res=64, ramp_start=2, ramp_end=5, res_step=16)
    assert [s.resolution_at(e) for e in range(8)] == [32, 32, 32, 48, 48, 64, 64, 64]


def test_scheme_fingerprint_and_bad_settings() -> None:
    assert SMOKE.fingerprint() != get_scheme("smoke", epochs=5).fingerprint()
    assert SMOKE.fingerprint() == get_scheme("smoke").fingerprint()
    for bad in ({"epochz": 3}, {"epochs": 0}, {"optimizer": "adam"}, {"max_res": 8}, {"rrc_scale": (0.5, 2)}):
        with pytest.raises(ConfigurationError) as info:
            get_scheme("smoke", **bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="unknown training scheme"):
        get_scheme("fast")


# ---------------------------------------------------------------------------------------------- data


def test_layout_errors_name_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NASOPT_IMAGENET", raising=False)
    with pytest.raises(DataLayoutError, match="NASOPT_IMAGENET"):
        resolve_root(None)
    monkeypatch.setenv("NASOPT_IMAGENET", str(tmp_path))
    assert resolve_root(None) == tmp_path
    with pytest.raises(DataLayoutError) as info:
        scan_split(tmp_path, "train")
    assert str(tmp_path / "train") in str(info.value) and "train/<class>/*.JPEG" in str(info.value)
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"x")
    with pytest.raises(DataLayoutError, match="val-to-folders"):
        scan_split(tmp_path, "val")
    (tmp_path / "train" / "n01").mkdir(parents=True)
    with pytest.raises(DataLayoutError) as info:
        scan_split(tmp_path, "train")
    assert str(tmp_path / "train" / "n01") in str(info.value) and "\n" not in str(info.value)


def test_train_fraction_is_stratified(fashion_folder: Path) -> None:
    classes, samples = scan_split(fashion_folder, "train")
    part = subset(samples, 0.25, seed=1)
    counts = np.bincount([lab for _, lab in part], minlength=len(classes))
    assert len(classes) == 10 and (counts == 25).all()
    assert part == subset(samples, 0.25, seed=1) and part != subset(samples, 0.25, seed=2)
    with pytest.raises(ConfigurationError, match="train_fraction"):
        subset(samples, 0.0, 0)


def test_batches_are_the_same_for_any_number_of_ranks(fashion_folder: Path) -> None:
    classes, samples = scan_split(fashion_folder, "train")
    one = list(TrainBatches(len(samples), 40, seed=3, epoch=1, resolution=32))
    two = [
        list(TrainBatches(len(samples), 40, seed=3, epoch=1, resolution=32, rank=r, world=2))
        for r in range(2)
    ]
    assert len(one) == 25
    for b in range(len(one)):
        assert sorted(one[b]) == sorted(two[0][b] + two[1][b])
    assert list(TrainBatches(len(samples), 40, 3, 1, 32, start=7)) == one[7:]  # resume position
    assert one != list(TrainBatches(len(samples), 40, seed=3, epoch=2, resolution=32))
    ds = ImageFolder(samples, classes, Augment(True, (0.08, 1.0)))
    x1, _ = ds[one[0][0]]
    x2, _ = ds[one[0][0]]
    assert x1.shape == (32, 32, 3) and x1.dtype == np.uint8 and (x1 == x2).all()  # seeded per sample
    state = random.getstate()
    ds[one[0][1]]
    assert random.getstate() == state  # augmentation never touches the global RNGs


@pytest.mark.skipif(
    not _has("torchvision"), reason="torchvision not installed (torch==2.14.1 torchvision==0.29.1)"
)
def test_torchvision_backend_matches_pil(fashion_folder: Path) -> None:
    classes, samples = scan_split(fashion_folder, "val")
    pil = ImageFolder(samples, classes, Augment(False, val_crop=0.875))
    tv = ImageFolder(samples, classes, Augment(False, val_crop=0.875), backend="torchvision")
    a, b = pil[(5, 0, 32)][0].astype(float), tv[(5, 0, 32)][0].astype(float)
    assert a.shape == b.shape == (32, 32, 3) and np.abs(a - b).mean() < 12


def test_val_to_folders_three_ground_truth_formats(tmp_path: Path) -> None:
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 5)]
    wnids = ["n01440764", "n01443537", "n01440764", "n01484850"]
    formats = {
        "pairs": "\n".join(f"{n} {w}" for n, w in zip(names, wnids, strict=True)),
        "kaggle": "ImageId,PredictionString\n"
        + "\n".join(f"{n[:-5]},{w} 1 2 3 4" for n, w in zip(names, wnids, strict=True)),
        "devkit": "\n".join(["1", "2", "1", "3"]),
    }
    (tmp_path / "synsets.txt").write_text("n01440764\nn01443537\nn01484850\n")
    for fmt, text in formats.items():
        val = tmp_path / fmt / "val"
        val.mkdir(parents=True)
        for n in names:
            (val / n).write_bytes(b"jpeg")
        gt = tmp_path / f"{fmt}.txt"
        gt.write_text(text)
        synsets = tmp_path / "synsets.txt" if fmt == "devkit" else None
        assert val_to_folders(val, gt, synsets) == 4
        assert sorted(p.name for p in val.iterdir()) == ["n01440764", "n01443537", "n01484850"]
        assert sorted(p.name for p in (val / "n01440764").iterdir()) == [names[0], names[2]]
    bad = tmp_path / "bad" / "val"
    bad.mkdir(parents=True)
    for n in names:
        (bad / n).write_bytes(b"jpeg")
    gt = tmp_path / "short.txt"
    gt.write_text(f"{names[0]} n01440764\n")
    with pytest.raises(DataLayoutError, match="no label for 3"):
        val_to_folders(bad, gt)
    assert len(list(bad.iterdir())) == 4  # nothing moved


# ------------------------------------------------------------------------------------------ training


def test_smoke_scheme_learns_well_above_chance(fashion_folder: Path, tmp_path: Path) -> None:
    result = train(SMALL, "smoke", fashion_folder, tmp_path, device="cpu")
    top1 = result.record["metrics"]["val_top1"]
    assert top1 > 30.0, f"smoke scheme reached {top1:.1f} % (chance: 10 %)"
    log = read_log(result.run_dir)
    assert [r["epoch"] for r in log] == [0, 1, 2, 3] and log[-1]["train_loss"] < log[0]["train_loss"]
    assert all(r["img_per_s"] > 0 and r["resolution"] == 32 for r in log)


def test_proxified_schedules_at_reduced_size(fashion_folder: Path, tmp_path: Path) -> None:
    s = get_scheme(
        "proxified",
        epochs=4,
        batch_size=100,
        min_res=16,
        max_res=32,
        ramp_start=1,
        ramp_end=3,
        res_step=16,
        val_res=32,
        lr_peak_epoch=1.0,
        checkpoint_every_steps=1000,
    )
    result = train(SMALL, s, {"root": str(fashion_folder), "train_fraction": 0.5}, tmp_path, device="cpu")
    log = read_log(result.run_dir)
    assert [r["resolution"] for r in log] == [16, 16, 32, 32]
    steps = 5  # 500 images / 100
    assert [r["lr"] for r in log] == pytest.approx([s.lr_at(e, steps - 1, steps) for e in range(4)])
    assert log[0]["lr"] == pytest.approx(s.peak_lr) and log[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert all(r["images"] == 500 for r in log)
    best = max(log[-3:], key=lambda r: r["val_top1"])
    assert result.record["metrics"]["val_top1"] == pytest.approx(best["val_top1"])  # best of the last 3


def test_run_directory_and_record_read_back(fashion_folder: Path, tmp_path: Path) -> None:
    s = get_scheme("smoke", epochs=1)
    runs = [train(SMALL, s, fashion_folder, tmp_path, seed=k, device="cpu") for k in (0, 1)]
    r = runs[0]
    assert (
        r.run_dir.parent == tmp_path
        and r.run_dir.name.startswith("a0-smoke-")
        and r.run_dir.name.endswith("-s0")
    )
    names = {p.name for p in r.run_dir.iterdir()}
    assert {"config.json", "log.csv", "weights.safetensors", "checkpoints", r.record_path.name} <= names
    cfg = json.loads((r.run_dir / "config.json").read_text())
    assert cfg["scheme"]["epochs"] == 1 and cfg["seed"] == 0 and cfg["arch"] == SMALL
    ds = read_records(r.run_dir)
    genes = space.parse(SMALL)
    assert len(ds.names) == 1 and (ds.X[0] == genes).all()
    assert ds.labels["accuracy"][0] == pytest.approx(r.record["metrics"]["val_top1"])
    assert ds.labels["train_time"][0] == pytest.approx(r.record["metrics"]["train_time"])
    macs, params = macs_params(genes)
    assert ds.macs[0] == pytest.approx(macs[0]) and ds.params[0] == pytest.approx(params[0])
    assert math.isnan(ds.labels["throughput_a100"][0])  # platform_perf: {}
    assert len(read_records(tmp_path).names) == 2  # a folder of runs (two seeds) is one dataset
    model = load_weights(r.run_dir / "weights.safetensors")
    assert model.arch_string == SMALL and model.config.num_classes == 10
    for p in (r.run_dir / "checkpoints").iterdir():
        state = torch.load(p, weights_only=True)  # plain data only
        assert state["run_id"] == r.run_dir.name and "rng" in state
    # never silently overwritten
    before = r.record_path.read_bytes()
    with pytest.raises(RunExistsError, match="overwrite"):
        train(SMALL, s, fashion_folder, tmp_path, device="cpu")
    assert r.record_path.read_bytes() == before
    runs[1].record_path.unlink()  # an unfinished run: resumed only with its own settings
    with pytest.raises(RunExistsError, match="data differ"):
        train(SMALL, s, {"root": str(fashion_folder), "val_batch": 7}, tmp_path, seed=1, device="cpu")
    # a share of the training set is part of the run id: such a run never meets the full one's directory
    from nasopt.validation.train.run import run_id

    half = run_id(genes, s, 1, train_fraction=0.5)
    assert half.endswith("-f0.5-s1") and half != runs[1].run_dir.name
    assert run_id(genes, s, 1, train_fraction=1.0) == runs[1].run_dir.name
    again = train(SMALL, s, fashion_folder, tmp_path, device="cpu", overwrite=True)
    assert again.record["metrics"]["val_top1"] == pytest.approx(r.record["metrics"]["val_top1"])


def test_a_narrow_skeleton_trains_and_is_part_of_the_run(fashion_folder: Path, tmp_path: Path) -> None:
    """A quarter-width network (a reduced skeleton for a small dataset): its own run id, its skeleton in the
    config, the record's model_info counted for the network that was trained, weights that rebuild it."""
    s = get_scheme("smoke", epochs=2)
    narrow = geometry.MNASNET.scaled(0.25)
    r = train(SMALL, s, fashion_folder, tmp_path, device="cpu", skeleton=0.25)
    assert f"-k{narrow.digest()[:8]}-s0" in r.run_dir.name
    cfg = json.loads((r.run_dir / "config.json").read_text())
    assert geometry.Skeleton.from_dict(cfg["skeleton"]) == narrow
    macs, params = macs_params(space.parse(SMALL), skeleton=narrow, resolution=s.val_res, num_classes=10)
    assert r.record["model_info"] == pytest.approx({"macs": macs[0], "params": params[0]})
    assert r.record["nasopt"]["model_info_at"] == {"resolution": s.val_res, "num_classes": 10}
    model = load_weights(r.run_dir / "weights.safetensors")
    assert model.config.skeleton == narrow and count_parameters(model) == int(params[0] * 1e6 + 0.5)
    assert r.record["metrics"]["val_top1"] > 10.0  # it learned something in two CPU epochs
    with pytest.raises(ConfigurationError, match="skeleton must be"):
        train(SMALL, s, fashion_folder, tmp_path, device="cpu", skeleton="narrow")


def test_rng_state_round_trip() -> None:
    dev = torch.device("cpu")
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    saved = ckpt.rng_state(dev)
    a = (torch.rand(3), random.random(), np.random.rand())
    ckpt.set_rng_state(saved, dev)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


@pytest.mark.skipif(_has("timm"), reason="timm is installed: the full scheme runs")
def test_full_scheme_without_timm_is_one_line(fashion_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        train(SMALL, "full", fashion_folder, tmp_path, device="cpu")
    assert "timm" in str(info.value) and "train-full" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not _has("timm"), reason="timm not installed (pip install 'nasopt[train-full]')")
def test_full_scheme_runs_with_timm(fashion_folder: Path, tmp_path: Path) -> None:
    s = get_scheme(
        "full",
        epochs=2,
        batch_size=50,
        min_res=32,
        max_res=32,
        val_res=32,
        warmup_epochs=1.0,
        ema_decay=0.9,
        checkpoint_every_steps=1000,
    )
    result = train(SMALL, s, {"root": str(fashion_folder), "train_fraction": 0.5}, tmp_path, device="cpu")
    assert len(result.history) == 2 and all(np.isfinite(r["train_loss"]) for r in result.history)
    state = torch.load(next((result.run_dir / "checkpoints").iterdir()), weights_only=True)
    assert state["ema"] and state["optimizer"]["state"]


# ------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nasopt.validation.train.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--arch", SMALL, "scheme=fast"], "smoke, proxified, full"),
        (["--arch", SMALL, "data=nfs"], "folder, imagenet"),
        (["--arch", SMALL, "threads=0"], "threads"),
        (["--arch", SMALL, "scheme.epochz=2"], "epochz"),
        (["data.root=/nonexistent"], "--arch"),
        (["--arch", "e9k3l1+", "data=folder", "data.root=/nonexistent"], "architecture"),
        (["--arch", SMALL, "data=folder", "data.root=/nonexistent"], "/nonexistent/train"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasopt.validation.train.cli import main

    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


@pytest.mark.slow
def test_cli_trains_one_directory(fashion_folder: Path, tmp_path: Path) -> None:
    proc = _cli(
        "--arch",
        SMALL,
        "data=folder",
        f"data.root={fashion_folder}",
        "scheme.epochs=1",
        f"out_dir={tmp_path}",
        "device=cpu",
        "threads=1",
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    assert len(read_records(run_dir).names) == 1 and "val top-1" in proc.stdout


def test_checkpoint_of_another_world_size_is_refused(fashion_folder: Path, tmp_path: Path) -> None:
    s = get_scheme("smoke", epochs=1)
    r = train(SMALL, s, fashion_folder, tmp_path, device="cpu")
    r.record_path.unlink()  # unfinished again
    (last,) = ckpt.steps_of(r.run_dir / "checkpoints", 0)[-1:]
    path = ckpt.path_for(r.run_dir / "checkpoints", last, 0)
    state = ckpt.load(path)
    ckpt.save({**state, "world": 2}, r.run_dir / "checkpoints", last, 0)
    with pytest.raises(ckpt.CheckpointError, match="2 process") as info:
        train(SMALL, s, fashion_folder, tmp_path, device="cpu")
    assert "\n" not in str(info.value)
    path.write_bytes(b"truncated")
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        train(SMALL, s, fashion_folder, tmp_path, device="cpu")


def test_validate_last_skips_the_earlier_validation_passes(fashion_folder: Path, tmp_path: Path) -> None:
    """``validate_last=1``: only the last epoch is validated (the record's top-1 is that epoch's); earlier
    log rows have NaN val_*; a scheme without it keeps its fingerprint; too few validated epochs for the
    record is refused."""
    s = get_scheme("smoke", epochs=2, validate_last=1, top1_best_of_last=1)
    assert s.validates(1) and not s.validates(0)
    result = train(SMALL, s, fashion_folder, tmp_path, device="cpu")
    log = read_log(result.run_dir)
    assert math.isnan(log[0]["val_top1"]) and math.isfinite(log[1]["val_top1"])
    assert result.record["metrics"]["val_top1"] == pytest.approx(log[1]["val_top1"])
    assert "validate_last" not in get_scheme("smoke").to_dict()
    assert s.fingerprint() != get_scheme("smoke", epochs=2, top1_best_of_last=1).fingerprint()
    with pytest.raises(ConfigurationError, match="validate_last"):
        get_scheme("smoke", epochs=3, validate_last=1, top1_best_of_last=2)
