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


def _torchrun(data: Path, out: Path) -> subprocess.Popen[str]:
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
        f"data.root={data}",
        "data.train_fraction=0.5",
        f"out_dir={out}",
        "device=cpu",
        "deterministic=true",
        "verbose=false",
        "scheme.epochs=2",
        "scheme.batch_size=10",
        "scheme.checkpoint_every_steps=7",
    ]
    # its own session: the kill below reaches torchrun and both workers, as a node failure would
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux /proc)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.extend(int(t) for t in (task / "children").read_text().split())
    return out


@pytest.mark.slow
def test_two_process_sigkill_and_resume_is_bitwise_identical(fashion_folder: Path, tmp_path: Path) -> None:
    import signal
    import time

    from nasopt.validation.train import checkpoints as ckpt

    ref = _torchrun(fashion_folder, tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.communicate()[1][-3000:]
    proc = _torchrun(fashion_folder, tmp_path / "killed")
    deadline = time.monotonic() + 300
    seen: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        dirs = list((tmp_path / "killed").glob("*/checkpoints"))
        if dirs:
            seen = sorted(set(ckpt.steps_of(dirs[0], 0)) & set(ckpt.steps_of(dirs[0], 1)))
            if seen and seen[-1] >= 7:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    workers = _children(proc.pid)
    assert len(workers) == 2
    for pid in [*workers, proc.pid]:  # every process of the job, as a node failure would
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(0.5)
    assert not list((tmp_path / "killed").glob("*/result_*.json")), "killed too late"
    assert seen[-1] % 50 != 0  # mid-epoch (50 steps per epoch)
    again = _torchrun(fashion_folder, tmp_path / "killed")
    assert again.wait(timeout=600) == 0, again.communicate()[1][-3000:]
    (a_dir,) = (tmp_path / "ref").iterdir()
    (b_dir,) = (tmp_path / "killed").iterdir()
    a, b = _weights(a_dir), _weights(b_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_log(a_dir) == [
        {
            **r,
            "img_per_s": a_r["img_per_s"],
            "epoch_time_s": a_r["epoch_time_s"],
            "train_time_s": a_r["train_time_s"],
        }
        for r, a_r in zip(read_log(b_dir), read_log(a_dir), strict=True)
    ]
