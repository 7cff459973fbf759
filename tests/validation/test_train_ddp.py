"""Two-process gloo DDP (started by torchrun through the CLI) equals one process on the same global batch,
within float tolerance (over a few steps: this small network at init amplifies a 1e-7 relative
perturbation of its weights to 1e-2 in 5 SGD steps, in one process too): the same images per global
batch, BN statistics synchronised across ranks (scheme.sync_bn), gradients averaged, metrics summed from
counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from nasopt.validation.train import get_scheme, read_log, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARCH = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"
OVERRIDES = {
    "epochs": 2,
    "batch_size": 40,
    "lr": 0.02,
    "sync_bn": True,
    "dropout": 0.0,
    "drop_path_rate": 0.0,
}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(safetensors_torch.load_file(str(run_dir / "weights.safetensors")))


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(fashion_folder: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    one = train(
        ARCH,
        get_scheme("smoke", **OVERRIDES),
        {"root": str(fashion_folder), "train_fraction": 0.08},
        tmp_path / "one",
        device="cpu",
        deterministic=True,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "nasopt.validation.train.cli",
        "--arch",
        ARCH,
        "data=folder",
        f"data.root={fashion_folder}",
        "data.train_fraction=0.08",
        f"out_dir={tmp_path / 'two'}",
        "device=cpu",
        "deterministic=true",
        *(f"scheme.{k}={str(v).lower()}" for k, v in OVERRIDES.items()),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (two_dir,) = (tmp_path / "two").iterdir()
    assert two_dir.name == one.run_dir.name  # same run id: the world size is not part of it
    assert {p.name for p in (two_dir / "checkpoints").iterdir()} >= {
        "step000000004.rank0.pt",
        "step000000004.rank1.pt",
    }
    a, b = _weights(one.run_dir), _weights(two_dir)
    rel = {
        k: float((a[k].double() - b[k].double()).abs().max() / a[k].double().abs().max().clamp_min(1e-2))
        for k in a
        if a[k].is_floating_point()
    }
    worst = max(rel, key=rel.__getitem__)
    assert rel[worst] < 1e-4, f"largest relative difference {rel[worst]:.2e} ({worst})"
    la, lb = read_log(one.run_dir), read_log(two_dir)
    for ra, rb in zip(la, lb, strict=True):
        assert ra["images"] == rb["images"] == 80  # counts summed over ranks
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
        assert ra["val_loss"] == pytest.approx(rb["val_loss"], rel=1e-3)
        assert abs(ra["val_top1"] - rb["val_top1"]) <= 100 / 300 + 1e-9  # at most one image flips
