"""CPU backends: onnxruntime (the deployment runtime; fixed threads, spinning off) and eager PyTorch.

Thread spinning is turned off in onnxruntime: spinning worker threads keep cores busy between runs and slow
every process beside them (and each other's measurements). Denormal numbers are flushed to zero in both, so a
randomly initialised network is timed like a trained one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any, ClassVar

from nasopt.validation.measure.base import MeasurementBackend


def _all_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class OnnxRuntimeBackend(MeasurementBackend):
    """The network exported to ONNX and run by onnxruntime's CPU execution provider.

    ``threads`` is onnxruntime's intra-op thread count (default: all cores this process may use); inter-op
    parallelism is off (sequential execution), graph optimisations are all on.
    """

    name: ClassVar[str] = "onnxruntime"
    runtime: ClassVar[str] = "onnxruntime (pip install onnxruntime onnx)"

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._session: Any = None

    @classmethod
    def availability(cls) -> str | None:
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        return f"{', '.join(missing)} not installed: pip install {' '.join(missing)}" if missing else None

    def default_device_name(self) -> str:
        return "cpu"

    def options(self) -> dict[str, Any]:
        return {
            "runtime": "onnxruntime",
            "provider": "CPUExecutionProvider",
            "spinning": False,
            "graph_optimization": "all",
        }

    def effective_threads(self) -> int:
        return self.threads or _all_threads()

    def session(self, onnx_model: bytes) -> Any:
        """An onnxruntime session on ``onnx_model`` with this backend's thread settings."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.effective_threads()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        so.log_severity_level = 3
        return ort.InferenceSession(onnx_model, so, providers=["CPUExecutionProvider"])

    def graph(self, model: Any) -> bytes:
        """The ONNX graph to run for ``model``: its export (a subclass may run another, e.g. quantized)."""
        from nasopt.validation.model.export import onnx_bytes

        return onnx_bytes(model, self.resolution)

    def prepare(self, model: Any) -> Callable[[], None]:
        import numpy as np

        from nasopt.validation.model.export import INPUT_NAME

        self._session = self.session(self.graph(model))
        x = np.random.default_rng(0).standard_normal((self.batch, 3, self.resolution, self.resolution))
        feeds = {INPUT_NAME: x.astype(np.float32)}
        session = self._session

        def step() -> None:
            session.run(None, feeds)

        return step

    def environment(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "device": "cpu",
            "runtime": f"onnxruntime {ort.__version__}",
            "threads": self.effective_threads(),
            "providers": ["CPUExecutionProvider"],
        }

    def release(self) -> None:
        self._session = None


class TorchCPUBackend(MeasurementBackend):
    """Eager PyTorch on the CPU under ``torch.inference_mode`` (``threads``: torch's intra-op threads,
    restored
    afterwards; default all cores); optionally channels-last."""

    name: ClassVar[str] = "torch-cpu"
    runtime: ClassVar[str] = "torch (pip install 'nasopt[validation]')"

    def __init__(self, *, channels_last: bool = False, **settings: Any) -> None:
        super().__init__(**settings)
        self.channels_last = bool(channels_last)
        self._saved: tuple[int, bool] | None = None

    @classmethod
    def availability(cls) -> str | None:
        return (
            None
            if importlib.util.find_spec("torch")
            else "torch not installed: pip install 'nasopt[validation]'"
        )

    def default_device_name(self) -> str:
        return "cpu"

    def effective_threads(self) -> int:
        return self.threads or _all_threads()

    def options(self) -> dict[str, Any]:
        return {"runtime": "torch-eager", "channels_last": self.channels_last}

    def prepare(self, model: Any) -> Callable[[], None]:
        import torch

        self._saved = (torch.get_num_threads(), False)
        torch.set_num_threads(self.effective_threads())
        self._saved = (self._saved[0], torch.set_flush_denormal(True))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model = model.eval().to(memory_format=fmt)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch, 3, self.resolution, self.resolution, generator=g).to(memory_format=fmt)

        def step() -> None:
            with torch.inference_mode():
                model(x)

        return step

    def environment(self) -> dict[str, Any]:
        import torch

        return {
            "device": "cpu",
            "runtime": f"torch {torch.__version__} (eager)",
            "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
        }

    def release(self) -> None:
        if self._saved is not None:
            import torch

            torch.set_num_threads(self._saved[0])
            torch.set_flush_denormal(False)
            self._saved = None
