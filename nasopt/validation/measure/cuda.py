"""The GPU backend, following Accel-NASBench's GPU protocol.

fp16 autocast, channels-last memory, ``cudnn.benchmark`` on, the input already on the device; CUDA events
around the forward passes only (no data loading or transfer), warm-up passes, then timed repeats;
throughput = images / total time. The dataset's config measured at 256 px with batch 128 (the defaults
here, recorded in every measurement's protocol); ``resolution=224`` is the other common choice.

Optional, and recorded in the protocol so they are never mixed up with the dataset's numbers:
``compile="default"|"reduce-overhead"|"max-autotune"`` (``torch.compile``; ``reduce-overhead`` uses CUDA
graphs) and a batch sweep (:func:`nasopt.validation.measure.best_batch`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, ClassVar

from benchmark.errors import ConfigurationError, plain
from nasopt.validation.measure.base import MeasurementBackend
from nasopt.validation.measure.stats import Timer

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
#: substrings of a GPU's name -> the dataset's device name
_DATASET_DEVICES = (("a100", "a100"), ("3090", "3090"))


class CudaTimer(Timer):
    """Times passes with CUDA events on the current stream (device time of the forward passes only)."""

    def time(self, step: Callable[[], None], passes: int) -> float:
        import torch

        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(passes):
            step()
        end.record()
        end.synchronize()
        return max(start.elapsed_time(end) / 1000.0, 1e-12)


class CudaBackend(MeasurementBackend):
    """Inference on one CUDA GPU with the dataset's protocol (``device_index`` picks the GPU)."""

    name: ClassVar[str] = "cuda"
    runtime: ClassVar[str] = "torch with CUDA and an NVIDIA GPU"
    precisions: ClassVar[tuple[str, ...]] = ("fp16", "bf16", "fp32")
    default_precision: ClassVar[str] = "fp16"
    default_batch: ClassVar[dict[str, int]] = {"throughput": 128, "latency": 1}
    default_resolution: ClassVar[int] = 256
    default_warmup: ClassVar[int] = 20
    default_repeats: ClassVar[int] = 30
    default_passes: ClassVar[dict[str, int]] = {"throughput": 10, "latency": 20}

    def __init__(
        self,
        *,
        device_index: int = 0,
        channels_last: bool = True,
        cudnn_benchmark: bool = True,
        compile: str = "none",
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        if compile not in COMPILE_MODES:
            raise ConfigurationError(
                f"compile must be one of {', '.join(COMPILE_MODES)}, got {plain(compile)}"
            )
        if isinstance(device_index, bool) or not isinstance(device_index, int) or device_index < 0:
            raise ConfigurationError(f"device_index must be an integer >= 0, got {plain(device_index)}")
        self.device_index = device_index
        self.channels_last = bool(channels_last)
        self.cudnn_benchmark = bool(cudnn_benchmark)
        self.compile = compile
        self._saved_benchmark: bool | None = None

    @classmethod
    def availability(cls) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "torch not installed: pip install 'nasopt[validation]'"
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            return (
                f"no CUDA device visible (torch {torch.__version__}, {build}); "
                "run on a machine with an NVIDIA GPU"
            )
        return None

    def _device(self) -> Any:
        import torch

        return torch.device("cuda", self.device_index)

    def default_device_name(self) -> str:
        import torch

        gpu = torch.cuda.get_device_name(self._device()).lower()
        for key, name in _DATASET_DEVICES:
            if key in gpu:
                return name
        return gpu.replace("nvidia", "").strip().replace(" ", "-") or "cuda"

    def options(self) -> dict[str, Any]:
        return {
            "autocast": self.precision != "fp32",
            "channels_last": self.channels_last,
            "cudnn_benchmark": self.cudnn_benchmark,
            "compile": self.compile,
            "timing": "cuda-events",
        }

    def timer(self) -> Timer:
        return CudaTimer(self.clock)

    def prepare(self, model: Any) -> Callable[[], None]:
        import torch

        device = self._device()
        torch.cuda.set_device(device)
        self._saved_benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model = model.eval().to(device=device, memory_format=fmt)
        if self.compile != "none":
            model = torch.compile(model, mode=None if self.compile == "default" else self.compile)
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(self.batch, 3, self.resolution, self.resolution, generator=g, device=device)
        x = x.contiguous(memory_format=fmt)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)

        def step() -> None:
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None),
            ):
                model(x)

        return step

    def environment(self) -> dict[str, Any]:
        import torch

        device = self._device()
        props = torch.cuda.get_device_properties(device)
        return {
            "device": torch.cuda.get_device_name(device),
            "compute_capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "driver": _driver_version(),
            "runtime": f"torch {torch.__version__}",
        }

    def release(self) -> None:
        if self._saved_benchmark is not None:
            import torch

            torch.backends.cudnn.benchmark = self._saved_benchmark
            torch.cuda.empty_cache()
            self._saved_benchmark = None


def _driver_version() -> str | None:
    """The NVIDIA driver version through NVML when it is importable (``nvidia-ml-py``), else None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed or no NVML: the runtime version above still identifies the stack
        return None
