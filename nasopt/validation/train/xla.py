"""Training on TPUs through torch_xla: everything of the training pipeline that touches torch_xla.

The pipeline is the same on every device; on an XLA device (``device="xla"``) it differs in five places,
all here:

- the device is ``torch_xla.device()`` and a multi-process run joins torch_xla's ``"xla"`` process group
  (``init_method="xla://"``: the ranks come from torchrun's or the TPU VM's environment);
- tensors are lazy: every optimizer step (and every evaluation batch) ends with :func:`sync`
  (``torch_xla.sync()``, ``xm.mark_step()`` on releases before 2.4), which cuts the graph and dispatches it —
  without it the graph of a whole epoch would be traced before anything runs;
- the training precision: TPUs compute in bfloat16, so ``fp16`` and ``bf16`` both autocast to bfloat16
  (:func:`autocast_dtype`); no GradScaler (bfloat16 has float32's range);
- the XLA random generator (dropout, drop path) is a seed of its own, saved and restored with the other RNG
  states (:func:`rng_state`), and checkpoints hold CPU copies of the device tensors (:func:`to_cpu`), so a
  checkpoint loads anywhere.

Batches are copied to the device with ``.to(device)`` as on the other devices (not through torch_xla's
``MpDeviceLoader``, whose background threads would outlive an epoch stopped by a signal); on a TPU VM the host
side is the same multi-worker DataLoader.

torch_xla is optional (``pip install "torch_xla[tpu]"`` with the matching torch on a TPU VM); without it
``device="xla"`` is refused in one line. With ``PJRT_DEVICE=CPU`` the same code runs on torch_xla's CPU
client, which is how it is tested on a machine without a TPU (``experiments/checks/tpu_train.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch

from benchmark.errors import ConfigurationError

_INSTALL = (
    "install torch_xla for the installed torch (pip install 'torch_xla[tpu]' on a TPU VM; "
    "PJRT_DEVICE=CPU runs it on the CPU for testing)"
)


def is_xla(device: torch.device | str) -> bool:
    """Whether ``device`` is an XLA device (``"xla"``, ``"xla:0"``, ``torch.device("xla", 0)``)."""
    if isinstance(device, torch.device):
        return device.type == "xla"
    return str(device).startswith("xla")


def require() -> Any:
    """The ``torch_xla`` module, or a one-line :class:`ConfigurationError` naming the install."""
    if importlib.util.find_spec("torch_xla") is None:
        raise ConfigurationError(f"device=xla needs torch_xla, which is not installed: {_INSTALL}")
    try:
        return importlib.import_module("torch_xla")
    except Exception as exc:  # a torch_xla built for another torch fails at import
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigurationError(
            f"torch_xla does not import ({type(exc).__name__}: {first}); {_INSTALL}"
        ) from exc


def _xm() -> Any:
    require()
    return importlib.import_module("torch_xla.core.xla_model")


def device() -> torch.device:
    """This process's XLA device (one TPU core per process)."""
    txla = require()
    dev = txla.device() if hasattr(txla, "device") else _xm().xla_device()
    return torch.device(dev)


def init_process_group(rank: int, world: int) -> None:
    """Join torch_xla's collective backend (the ``"xla"`` process group) as ``rank`` of ``world``."""
    import torch.distributed as dist

    require()
    importlib.import_module("torch_xla.distributed.xla_backend")  # registers the "xla" backend
    dist.init_process_group("xla", init_method="xla://", rank=rank, world_size=world)


def sync() -> None:
    """Cut the lazy graph traced so far and dispatch it (one call per optimizer step)."""
    txla = require()
    if hasattr(txla, "sync"):
        txla.sync()
    else:
        _xm().mark_step()


def wait() -> None:
    """Block until the device has finished everything dispatched (before reading a clock)."""
    _xm().wait_device_ops()


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype on a TPU: bfloat16 for ``fp16`` and ``bf16`` (TPUs have no fast float16),
    None (no autocast) for ``fp32``."""
    return torch.bfloat16 if precision in ("fp16", "bf16") else None


def rng_state() -> int:
    """The XLA generator's state (a 64-bit seed)."""
    return int(_xm().get_rng_state())


def set_rng_state(seed: int) -> None:
    """Restore (or seed) the XLA generator."""
    _xm().set_rng_state(int(seed))


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU (dicts, lists and tuples walked), for a checkpoint that
    loads without torch_xla and with ``weights_only=True``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj
