"""Distributed training plumbing: the process group from torchrun's environment (or from a SLURM /
submitit job's, :func:`rendezvous`), sums across ranks and a synchronised BatchNorm that also works on CPU
(gloo) -- torch's ``SyncBatchNorm`` is GPU-only."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from nasopt.validation.train import xla


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` (1 = not distributed), its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009  (immutable)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


#: the ports :func:`rendezvous` derives from a job id: below Linux's ephemeral range (32768-60999)
PORT_BASE, PORT_SPAN = 10_000, 20_000


@dataclass(frozen=True)
class Rendezvous:
    """How one task of a multi-process job joins its process group: torchrun's variables."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    master_addr: str
    master_port: int

    def env(self) -> dict[str, str]:
        """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``:
        what :func:`setup` (and ``init_process_group``'s ``env://``) reads."""
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


def rendezvous(job_env: Any, environ: Mapping[str, str] | None = None, port: int | None = None) -> Rendezvous:
    """The rendezvous of a task of a submitit job (one task per GPU), from its ``submitit.JobEnvironment``.

    On SLURM that environment reads ``SLURM_PROCID`` (rank), ``SLURM_LOCALID``, ``SLURM_NTASKS`` (world),
    ``SLURM_JOB_NUM_NODES``, ``SLURM_JOB_NODELIST`` (``gpu[01-02]``: the master is its first host) and
    ``SLURM_JOB_ID``; submitit's local executor has the same on one node (master 127.0.0.1). Every task
    computes the same port without talking to the others: ``port``, else one derived from the job id and
    ``SLURM_RESTART_COUNT`` (``environ``, default ``os.environ``), so a requeued job meets on a fresh port.
    """
    env = os.environ if environ is None else environ
    world, nodes = int(job_env.num_tasks), max(1, int(job_env.num_nodes))
    if world % nodes:
        raise ValueError(f"{world} tasks on {nodes} nodes: every node needs the same number of tasks")
    hosts = list(job_env.hostnames)
    master = "127.0.0.1" if nodes == 1 else hosts[0]
    if port is None:
        key = f"{job_env.job_id}:{env.get('SLURM_RESTART_COUNT', '0')}"
        port = PORT_BASE + zlib.crc32(key.encode()) % PORT_SPAN
    return Rendezvous(
        int(job_env.global_rank), world, int(job_env.local_rank), world // nodes, master, int(port)
    )


def setup(device: str | None = None) -> Dist:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_*``):
    NCCL on GPU, gloo on CPU, torch_xla's ``xla`` backend on a TPU (``device="xla"``). Without
    ``WORLD_SIZE`` > 1 this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if xla.is_xla(device):
        dev = xla.device()
        if world > 1 and not dist.is_initialized():
            xla.init_process_group(rank, world)
        return Dist(rank, world, local, dev)
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local, dev)


def teardown(d: Dist) -> None:
    """Leave the process group (if this process joined one)."""
    if d.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """``t`` summed over ranks (a copy; the identity on one process). On XLA the sum is taken in float32
    (TPUs have no float64; image and hit counts stay exact below 2**24 per rank sum)."""
    out = t.clone()
    if d.distributed:
        if d.device.type == "xla":
            f32 = out.to(torch.float32)
            dist.all_reduce(f32, op=dist.ReduceOp.SUM)
            return f32.to(t.dtype)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_min(value: int, d: Dist) -> int:
    """The smallest ``value`` over ranks."""
    if not d.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def barrier(d: Dist) -> None:
    """Wait for every rank."""
    if d.distributed:
        dist.barrier()


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch (sums all-reduced with autograd),
    for any backend; running statistics are updated like ``nn.BatchNorm2d``'s (unbiased variance)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        n_local = torch.tensor([float(x.shape[0] * x.shape[2] * x.shape[3])], device=x.device)
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), n_local])
        stats = all_reduce(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1.0), alpha=m)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        inv = torch.rsqrt(var + self.eps)
        w = self.weight if self.weight is not None else torch.ones_like(mean)
        b = self.bias if self.bias is not None else torch.zeros_like(mean)
        scale = (w * inv).view(1, c, 1, 1)
        shift = (b - mean * w * inv).view(1, c, 1, 1)
        return (xf * scale + shift).to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers synchronised across ranks: torch's ``SyncBatchNorm`` on GPU, ours elsewhere.

    The parameters and buffers keep their names, so checkpoints and weights load either way."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in list(model.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = AllReduceBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
                device=device,
            )
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            sync_batchnorm(child, device)
    return model
