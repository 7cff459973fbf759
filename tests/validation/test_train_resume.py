"""Exact resume of training: a run killed with SIGKILL mid-epoch (a real process and a real signal), or
stopped by SIGTERM, and started again with the same command ends with weights bitwise identical to an
uninterrupted run (deterministic mode, CPU, one thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from nasopt.validation.train import checkpoints as ckpt  # noqa: E402
from nasopt.validation.train.run import read_log  # noqa: E402

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parents[1]
ARCH = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"
#: 2 epochs of 50 steps (1000 images / 20), a checkpoint every 7 steps: 7, 14, ... are mid-epoch
SCHEME = {"epochs": 2, "batch_size": 20, "checkpoint_every_steps": 7, "dropout": 0.2, "drop_path_rate": 0.2}


def _args(data: Path, out: Path) -> str:
    return json.dumps({"arch": ARCH, "data": str(data), "out": str(out), "scheme": SCHEME, "seed": 4})


def _start(data: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(TESTS / "train_child.py"), _args(data, out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(data: Path, out: Path) -> None:
    proc = _start(data, out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err


def _run_dir(out: Path) -> Path:
    (d,) = out.iterdir()
    return d


def _weights(out: Path) -> dict[str, Any]:
    return dict(safetensors_torch.load_file(str(_run_dir(out) / "weights.safetensors")))


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen[str], at_least: int) -> int:
    """Poll until a checkpoint of step >= ``at_least`` exists; its step."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if out.is_dir() and any(out.iterdir()):
            steps = ckpt.steps_of(_run_dir(out) / "checkpoints", 0)
            if steps and steps[-1] >= at_least:
                return steps[-1]
        assert proc.poll() is None, f"the child ended early: {proc.communicate()[1]}"
        time.sleep(0.01)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference(fashion_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    _finish(fashion_folder, out)
    return out


def _assert_same(out: Path, reference: Path) -> None:
    a, b = _weights(out), _weights(reference)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    cols = ("train_loss", "train_top1", "val_loss", "val_top1", "lr", "resolution")
    assert [[r[c] for c in cols] for r in read_log(_run_dir(out))] == [
        [r[c] for c in cols] for r in read_log(_run_dir(reference))
    ]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(
    fashion_folder: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    proc = _start(fashion_folder, out)
    step = _wait_for_checkpoint(out, proc, at_least=14)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert step % 50 != 0  # killed mid-epoch: the newest checkpoint is one of the every-N-steps ones
    assert not list((_run_dir(out)).glob("result_*.json"))
    _finish(fashion_folder, out)  # the same command resumes
    _assert_same(out, reference)


@pytest.mark.slow
def test_sigterm_checkpoints_exits_and_resumes_identically(
    fashion_folder: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "terminated"
    proc = _start(fashion_folder, out)
    _wait_for_checkpoint(out, proc, at_least=7)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err  # TrainingStopped, after a checkpoint
    assert "resume" in err
    steps = ckpt.steps_of(_run_dir(out) / "checkpoints", 0)
    state = ckpt.load(ckpt.path_for(_run_dir(out) / "checkpoints", steps[-1], 0))
    assert state["global_step"] == steps[-1] == state["epoch"] * 50 + state["step_in_epoch"]
    _finish(fashion_folder, out)
    _assert_same(out, reference)
