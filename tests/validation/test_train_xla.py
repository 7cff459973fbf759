"""Training on an XLA device (TPU): the parts that run without torch_xla here, and the real thing on
torch_xla's CPU client where torch_xla is installed (``PJRT_DEVICE=CPU``; run this file with that
interpreter: ``experiments/checks/tpu_train.py`` says how)."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from benchmark.errors import ConfigurationError  # noqa: E402
from nasopt.signals import StopFlag  # noqa: E402
from nasopt.validation.model import load_weights  # noqa: E402
from nasopt.validation.train import checkpoints as ckpt  # noqa: E402
from nasopt.validation.train import get_scheme, read_log, train, xla  # noqa: E402
from nasopt.validation.train.run import TrainingStopped  # noqa: E402

HAVE_XLA = importlib.util.find_spec("torch_xla") is not None
SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"


def test_xla_device_names() -> None:
    assert xla.is_xla("xla") and xla.is_xla("xla:0") and not xla.is_xla("cpu") and not xla.is_xla("cuda:1")
    assert xla.autocast_dtype("fp16") is torch.bfloat16 and xla.autocast_dtype("bf16") is torch.bfloat16
    assert xla.autocast_dtype("fp32") is None


def test_checkpoint_state_is_moved_to_the_cpu() -> None:
    state = {"model": {"w": torch.ones(2)}, "history": [{"a": 1.0}], "pair": (torch.zeros(1), 3)}
    out = xla.to_cpu(state)
    assert out["model"]["w"].device.type == "cpu" and out["history"] == [{"a": 1.0}]
    assert isinstance(out["pair"], tuple) and out["pair"][1] == 3


@pytest.mark.skipif(HAVE_XLA, reason="torch_xla is installed")
def test_xla_without_torch_xla_is_one_line(fashion_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        train(SMALL, get_scheme("smoke", epochs=1), fashion_folder, tmp_path, device="xla")
    msg = str(info.value)
    assert "device=xla needs torch_xla" in msg and "PJRT_DEVICE=CPU" in msg and "\n" not in msg
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


@pytest.mark.skipif(not HAVE_XLA, reason="torch_xla not installed (a TPU VM, or a side venv with torch_xla)")
def test_training_on_xla_learns_checkpoints_and_resumes(
    fashion_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On torch_xla (its CPU client here): the smoke scheme learns, checkpoints are CPU tensors with the XLA
    RNG state, and a run stopped after its first epoch resumes to the same result as one never stopped."""
    monkeypatch.setenv("PJRT_DEVICE", os.environ.get("PJRT_DEVICE", "CPU"))
    s = get_scheme("smoke", epochs=3, precision="bf16")
    whole = train(SMALL, s, fashion_folder, tmp_path / "whole", device="xla")
    top1 = whole.record["metrics"]["val_top1"]
    assert top1 > 25.0, f"smoke on XLA reached {top1:.1f} % (chance 10 %)"
    log = read_log(whole.run_dir)
    assert [r["epoch"] for r in log] == [0, 1, 2] and all(math.isfinite(r["train_loss"]) for r in log)
    (last,) = ckpt.steps_of(whole.run_dir / "checkpoints", 0)[-1:]
    state = ckpt.load(ckpt.path_for(whole.run_dir / "checkpoints", last, 0), "xla")
    assert all(t.device.type == "cpu" for t in state["model"].values()) and "xla" in state["rng"]

    # the same run stopped after 7 steps (a checkpoint), then the same command again: it resumes
    part = tmp_path / "part"
    with pytest.raises(TrainingStopped):
        train(SMALL, s, fashion_folder, part, device="xla", stop=StopAfterSteps(7), handle_signals=False)
    resumed = train(SMALL, s, fashion_folder, part, device="xla")
    assert [r["epoch"] for r in read_log(resumed.run_dir)] == [0, 1, 2]
    a = load_weights(whole.run_dir / "weights.safetensors").state_dict()
    b = load_weights(resumed.run_dir / "weights.safetensors").state_dict()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    print(f"XLA resume: largest weight difference to the uninterrupted run {worst:.3g}")
    assert worst == 0.0
    assert resumed.record["metrics"]["val_top1"] == top1


class StopAfterSteps(StopFlag):
    """Asks to stop at the ``n``-th time the run checks (once per step on one process)."""

    def __init__(self, n: int) -> None:
        self._left = n
        super().__init__()

    @property  # type: ignore[override]
    def reason(self) -> str | None:
        self._left -= 1
        return "request" if self._left < 0 else None

    @reason.setter
    def reason(self, value: str | None) -> None:
        pass
