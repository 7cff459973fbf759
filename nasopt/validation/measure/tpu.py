"""The TPU backend (torch_xla), following Accel-NASBench's TPU protocol.

One TPU core, bf16, batch 64 on a TPUv2 and 128 on a TPUv3; the dataset sampled the rate every 50 steps after
step 300. Mapped onto the shared loop: ``warmup=300`` passes (XLA compiles the graph in the first ones), then
``repeats`` samples of ``passes=50`` steps each. Every step is one forward pass closed by
``torch_xla.sync()`` (``xm.mark_step()`` on older torch_xla), which cuts the lazy graph and dispatches it
while the output is alive; the :class:`XlaTimer` waits for the device (``xm.wait_device_ops()``) before it
reads the clock at both ends of a sample, so a sample is the device time of its 50 steps.

The TPU generation picks the default batch and the record's device name (``tpuv2`` -> ``throughput_tpuv2``):
``tpu_version="v2"|"v3"|...``, or detected on the TPU VM (``TPU_ACCELERATOR_TYPE``, else torch_xla). With
``PJRT_DEVICE=CPU`` the same code runs on torch_xla's CPU client (for testing; the device is named ``xla-cpu``
unless ``tpu_version`` is given).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
from collections.abc import Callable
from typing import Any, ClassVar

from benchmark.errors import ConfigurationError, plain
from nasopt.validation.measure.base import MeasurementBackend
from nasopt.validation.measure.stats import Clock, Timer

#: TPU generation -> the dataset's batch size for throughput (one core)
DATASET_BATCH = {2: 64, 3: 128}
#: the batch for generations the dataset did not measure
OTHER_BATCH = 128
#: where a TPU VM exposes its chips (v2-v4: /dev/accel*, v5e and later: VFIO groups)
_TPU_DEVICE_GLOBS = ("/dev/accel*", "/dev/vfio/[0-9]*")
_INSTALL = "pip install 'torch_xla[tpu]' (a torch_xla release matching the installed torch) on a TPU VM"


def parse_tpu_version(value: Any) -> int | None:
    """``"v3"``, ``"tpuv3"``, ``"v3-8"``, ``3`` -> 3; None / ``"auto"`` -> None (detect)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"(?:tpu)?\s*v?(\d+)[a-z]*(?:[-_]\d+)?", value.strip().lower())
        if m and int(m.group(1)) >= 2:
            return int(m.group(1))
    raise ConfigurationError(
        f"tpu_version must be 'v2', 'v3', ... (or 'auto' to detect it on the TPU VM), got {plain(value)}"
    )


def _version_from_env() -> int | None:
    """The TPU generation a TPU VM announces (``TPU_ACCELERATOR_TYPE=v3-8``), if any."""
    acc = os.environ.get("TPU_ACCELERATOR_TYPE", "")
    m = re.match(r"v(\d+)", acc.strip().lower())
    return int(m.group(1)) if m else None


def _xla_sync() -> Callable[[], None]:
    """``torch_xla.sync`` (torch_xla >= 2.5) or ``xm.mark_step``."""
    import torch_xla

    sync = getattr(torch_xla, "sync", None)
    if sync is not None:
        return sync
    import torch_xla.core.xla_model as xm

    return xm.mark_step


def _xla_wait() -> Callable[[], None]:
    """Block until every dispatched XLA computation has finished."""
    import torch_xla.core.xla_model as xm

    return xm.wait_device_ops


class XlaTimer(Timer):
    """Times ``passes`` steps on an XLA device: cut and drain the pending graph, read the clock, run the steps
    (each cuts its own graph), wait for the device, read the clock again.

    ``sync`` and ``wait`` default to torch_xla's; tests pass fakes."""

    def __init__(
        self,
        clock: Clock | None = None,
        sync: Callable[[], None] | None = None,
        wait: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(clock)
        self.sync = sync or _xla_sync()
        self.wait = wait or _xla_wait()

    def time(self, step: Callable[[], None], passes: int) -> float:
        self.sync()
        self.wait()
        t0 = self.clock()
        for _ in range(passes):
            step()
        self.wait()
        return max(self.clock() - t0, 1e-12)


class TpuBackend(MeasurementBackend):
    """Inference on one TPU core through torch_xla with the dataset's protocol (bf16; 300 warm-up steps;
    samples of 50 steps; batch 64 on v2, 128 on v3)."""

    name: ClassVar[str] = "tpu"
    runtime: ClassVar[str] = "torch_xla and a TPU (a TPU VM), or PJRT_DEVICE=CPU for testing"
    precisions: ClassVar[tuple[str, ...]] = ("bf16", "fp32")
    default_precision: ClassVar[str] = "bf16"
    default_batch: ClassVar[dict[str, int]] = {"throughput": DATASET_BATCH[3], "latency": 1}
    default_resolution: ClassVar[int] = 224
    default_warmup: ClassVar[int] = 300
    default_repeats: ClassVar[int] = 10
    default_passes: ClassVar[dict[str, int]] = {"throughput": 50, "latency": 50}

    def __init__(self, *, tpu_version: Any = None, **settings: Any) -> None:
        self.tpu_version = parse_tpu_version(tpu_version)
        self._auto_batch = settings.get("batch") is None
        if self._auto_batch and settings.get("metric", "latency") == "throughput":
            known = self.tpu_version or _version_from_env()
            if known is not None:
                settings["batch"] = DATASET_BATCH.get(known, OTHER_BATCH)
        super().__init__(**settings)
        self._device: Any = None
        self._resolved_version: int | None = None

    @classmethod
    def availability(cls) -> str | None:
        if importlib.util.find_spec("torch_xla") is None:
            return f"torch_xla not installed: {_INSTALL}"
        pjrt = os.environ.get("PJRT_DEVICE", "").strip().upper()
        if pjrt and pjrt != "TPU":
            return None  # the user chose another PJRT client (CPU for testing, CUDA): torch_xla runs on it
        if not any(glob.glob(g) for g in _TPU_DEVICE_GLOBS):
            return (
                "no TPU device found (/dev/accel*, /dev/vfio/*): run on a TPU VM, "
                "or set PJRT_DEVICE=CPU to run torch_xla on the CPU for testing"
            )
        return None

    # ---- the device ---------------------------------------------------------------------------------
    def _hardware(self) -> str:
        """The XLA device's hardware kind (``TPU``, ``CPU``, ``CUDA``)."""
        try:
            import torch_xla.runtime as xr

            return str(xr.device_type() or "TPU").upper()
        except Exception:  # older torch_xla: the PJRT setting says which client runs
            return os.environ.get("PJRT_DEVICE", "TPU").strip().upper() or "TPU"

    def detected_version(self) -> int | None:
        """The TPU generation: the setting, else the VM's announcement, else torch_xla's (None off TPU)."""
        if self.tpu_version is not None:
            return self.tpu_version
        env = _version_from_env()
        if env is not None:
            return env
        if self._hardware() != "TPU":
            return None
        try:
            from torch_xla._internal import tpu

            return int(tpu.version())
        except Exception:
            return None

    def default_device_name(self) -> str:
        version = self.detected_version()
        if version is not None:
            return f"tpuv{version}"
        return f"xla-{self._hardware().lower()}"

    def options(self) -> dict[str, Any]:
        return {
            "runtime": "torch_xla",
            "cores": 1,
            "bf16": self.precision == "bf16",
            "tpu_version": self._resolved_version or self.tpu_version,
            "timing": "sync-per-step+wait_device_ops",
        }

    def timer(self) -> Timer:
        return XlaTimer(self.clock)

    def prepare(self, model: Any) -> Callable[[], None]:
        import torch
        import torch_xla
        import torch_xla.core.xla_model as xm

        device = torch_xla.device() if hasattr(torch_xla, "device") else xm.xla_device()
        self._device = device
        self._resolved_version = version = self.detected_version()
        if self._auto_batch and self.metric == "throughput" and version is not None:
            self.batch = DATASET_BATCH.get(version, OTHER_BATCH)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        model = model.eval().to(device=device, dtype=dtype)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch, 3, self.resolution, self.resolution, generator=g)
        x = x.to(dtype=dtype).to(device)
        sync = _xla_sync()
        sync()  # the model's and the input's transfers: not part of the first step

        def step() -> None:
            with torch.no_grad():
                out = model(x)
                sync()  # dispatch the forward pass while its output is alive (else XLA computes nothing)
            del out

        return step

    def environment(self) -> dict[str, Any]:
        import torch
        import torch_xla

        env: dict[str, Any] = {
            "device": f"{self._hardware()} ({self.default_device_name()})",
            "runtime": f"torch_xla {torch_xla.__version__} (torch {torch.__version__})",
            "pjrt_device": os.environ.get("PJRT_DEVICE"),
            "accelerator_type": os.environ.get("TPU_ACCELERATOR_TYPE"),
            "cores": 1,
        }
        if self._device is not None:
            env["xla_device"] = str(self._device)
        return env

    def release(self) -> None:
        self._device = None
