"""The TPU backend's own logic, on a fake torch_xla (the real one runs on a TPU VM): the dataset's protocol
(300 warm-up steps, samples of 50, batch by TPU generation), one sync per step, the device wait around each
sample, the record's device name, and the one-line "unavailable" messages."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

pytest.importorskip("torch")

import torch

from benchmark.errors import ConfigurationError
from nasopt.validation.measure import BackendUnavailableError, make_backend
from nasopt.validation.measure import tpu as tpu_mod
from nasopt.validation.measure.stats import FakeClock
from nasopt.validation.measure.tpu import TpuBackend, XlaTimer, parse_tpu_version
from nasopt.validation.testing import SMALLEST


class FakeXla:
    """A stand-in for torch_xla: the 'XLA device' is the CPU; sync and wait are recorded, and each sync
    (one dispatched step) advances a fake clock by a known time."""

    def __init__(self, step_seconds: float = 0.002, hardware: str = "TPU", version: int = 3) -> None:
        self.clock = FakeClock([step_seconds])
        self.events: list[str] = []
        root = types.ModuleType("torch_xla")
        root.__version__ = "2.9.0-fake"  # type: ignore[attr-defined]
        root.sync = self.sync  # type: ignore[attr-defined]
        core = types.ModuleType("torch_xla.core")
        xm = types.ModuleType("torch_xla.core.xla_model")
        xm.xla_device = lambda: torch.device("cpu")  # type: ignore[attr-defined]
        xm.mark_step = lambda: self.events.append("mark")  # type: ignore[attr-defined]
        xm.wait_device_ops = self.wait  # type: ignore[attr-defined]
        runtime = types.ModuleType("torch_xla.runtime")
        runtime.device_type = lambda: hardware  # type: ignore[attr-defined]
        internal = types.ModuleType("torch_xla._internal")
        tpu = types.ModuleType("torch_xla._internal.tpu")
        tpu.version = lambda: version  # type: ignore[attr-defined]
        internal.tpu = tpu  # type: ignore[attr-defined]
        root.core, core.xla_model = core, xm  # type: ignore[attr-defined]
        root.runtime, root._internal = runtime, internal  # type: ignore[attr-defined]
        self.modules = {
            "torch_xla": root,
            "torch_xla.core": core,
            "torch_xla.core.xla_model": xm,
            "torch_xla.runtime": runtime,
            "torch_xla._internal": internal,
            "torch_xla._internal.tpu": tpu,
        }

    def sync(self) -> None:
        self.events.append("sync")
        self.clock.tick()

    def wait(self) -> None:
        self.events.append("wait")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, mod in self.modules.items():
            monkeypatch.setitem(sys.modules, name, mod)
        monkeypatch.setattr(TpuBackend, "availability", classmethod(lambda cls: None))
        monkeypatch.delenv("TPU_ACCELERATOR_TYPE", raising=False)


def test_dataset_protocol_defaults() -> None:
    b = TpuBackend(metric="throughput", tpu_version="v2")
    assert (b.batch, b.precision, b.warmup, b.passes) == (64, "bf16", 300, 50)
    assert TpuBackend(metric="throughput", tpu_version=3).batch == 128
    assert TpuBackend(metric="throughput", tpu_version="v2", batch=8).batch == 8  # an explicit batch wins
    assert TpuBackend(metric="latency", tpu_version="v2").batch == 1
    assert TpuBackend(tpu_version="v3").default_device_name() == "tpuv3"


@pytest.mark.parametrize(
    ("value", "version"),
    [("v2", 2), ("tpuv3", 3), ("v3-8", 3), ("V4", 4), (3, 3), ("auto", None), (None, None)],
)
def test_tpu_version_spellings(value: Any, version: int | None) -> None:
    assert parse_tpu_version(value) == version


@pytest.mark.parametrize("bad", ["v1", "gpu", 1, True, 2.5])
def test_bad_tpu_version_is_one_line(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="tpu_version must be") as info:
        make_backend("tpu", tpu_version=bad)
    assert "\n" not in str(info.value)


def test_version_from_the_tpu_vm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPU_ACCELERATOR_TYPE", "v2-8")
    b = TpuBackend(metric="throughput")
    assert b.batch == 64 and b.default_device_name() == "tpuv2"


def test_measurement_on_a_fake_xla_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeXla(step_seconds=0.002, version=2)
    fake.install(monkeypatch)
    b = TpuBackend(metric="throughput", resolution=32, repeats=3, clock=fake.clock)
    assert b.batch == 128  # not known before the device is asked
    tiny = torch.nn.Conv2d(3, 2, 1)  # 450 bf16 passes of a real network would take seconds on the CPU
    tiny.arch_string = SMALLEST  # type: ignore[assignment]
    m = b.measure(tiny)
    # the batch follows the detected generation; 300 warm-up steps, then 3 samples of 50 steps
    assert m.device == "tpuv2" and m.target == "throughput_tpuv2"
    assert m.protocol.batch == 64 and m.protocol.warmup == 300 and m.protocol.passes == 50
    assert m.protocol.precision == "bf16" and dict(m.protocol.options)["tpu_version"] == 2
    # one sync after the transfers, one per step, one before each sample; the device is waited for before
    # each clock reading
    steps = fake.events.count("sync")
    assert steps == 1 + 300 + 3 * 50 + 3 and fake.events.count("wait") == 2 * 3
    assert fake.events[-1] == "wait"
    # each sample = 50 steps of 2 ms (the timer's leading sync happens before the clock is read)
    assert m.mean == pytest.approx(64 * 50 / (50 * 0.002)) and m.n == 3
    assert m.environment["runtime"].startswith("torch_xla 2.9.0-fake") and m.environment["cores"] == 1


def test_fp32_and_a_cpu_pjrt_client(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeXla(hardware="CPU")
    fake.install(monkeypatch)
    m = TpuBackend(
        metric="latency", precision="fp32", resolution=32, warmup=2, repeats=2, passes=3, clock=fake.clock
    ).measure(SMALLEST)
    assert m.device == "xla-cpu" and m.unit == "ms" and m.mean == pytest.approx(2.0)
    assert m.protocol.precision == "fp32"


def test_xla_timer_order() -> None:
    events: list[str] = []
    clock = FakeClock([1.0])
    timer = XlaTimer(clock, sync=lambda: events.append("sync"), wait=lambda: events.append("wait"))

    def step() -> None:
        events.append("step")
        clock.tick()

    assert timer.time(step, 2) == pytest.approx(2.0)
    assert events == ["sync", "wait", "step", "step", "wait"]


def test_unavailable_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = tpu_mod.importlib.util.find_spec
    monkeypatch.setattr(tpu_mod.importlib.util, "find_spec", lambda name: None)
    why = TpuBackend.availability()
    assert why is not None and "torch_xla not installed" in why and "\n" not in why
    with pytest.raises(BackendUnavailableError, match="backend 'tpu' is not available here: torch_xla"):
        TpuBackend().measure(SMALLEST)
    # installed, but no chip and no PJRT client chosen
    monkeypatch.setattr(tpu_mod.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(tpu_mod.glob, "glob", lambda pattern: [])
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    why = TpuBackend.availability()
    assert why is not None and "no TPU device found" in why and "PJRT_DEVICE=CPU" in why
    monkeypatch.setenv("PJRT_DEVICE", "CPU")
    assert TpuBackend.availability() is None
    monkeypatch.setattr(tpu_mod.importlib.util, "find_spec", real_find_spec)
