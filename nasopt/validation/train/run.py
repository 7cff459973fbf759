"""``train(arch, scheme, data, out_dir)``: one architecture trained with one scheme and seed into one
directory, resumable exactly.

The directory ``<out_dir>/<run id>`` (run id = ``a<arch id>-<scheme>-<scheme fingerprint>-s<seed>``) holds::

    config.json                 the architecture, every scheme setting, the data, the seed
    log.csv                     one row per epoch: loss, top-1/5, lr, resolution, img/s, times
    checkpoints/step*.rank*.pt  the last two checkpoints of every rank (every epoch and every N steps)
    weights.safetensors         the final weights (the EMA weights where the scheme keeps an EMA)
    result_<N>.json             the result as an Accel-NASBench record (benchmark.dataset.read_records)

Running the same call again resumes from the newest checkpoint; a directory holding a result is refused
unless ``overwrite=True``. SIGTERM/SIGINT checkpoint at the next step and raise :class:`TrainingStopped`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark import geometry, space
from benchmark._io import atomic_write_text
from benchmark.errors import ConfigurationError, NasoptError
from benchmark.macs import macs_params
from nasopt.signals import StopFlag
from nasopt.validation.model import ArchNet, build_model, save_weights
from nasopt.validation.train import checkpoints as ckpt
from nasopt.validation.train import dist as D
from nasopt.validation.train import xla
from nasopt.validation.train.data import (
    Augment,
    DataConfig,
    TrainBatches,
    make_source,
    read_splits,
    resolve_root,
    subset,
)
from nasopt.validation.train.loop import Meter, evaluate, train_one_epoch
from nasopt.validation.train.schemes import TrainScheme, get_scheme

CONFIG_FILE = "config.json"
LOG_FILE = "log.csv"
WEIGHTS_FILE = "weights.safetensors"
CHECKPOINT_DIR = "checkpoints"
LOG_COLUMNS = (
    "epoch",
    "resolution",
    "lr",
    "train_loss",
    "train_top1",
    "train_top5",
    "val_loss",
    "val_top1",
    "val_top5",
    "images",
    "img_per_s",
    "epoch_time_s",
    "train_time_s",
)
FORMAT = 1


class RunExistsError(NasoptError, FileExistsError):
    """The output directory already holds a finished result or another run."""


class TrainingStopped(Exception):
    """Training stopped on a signal after writing a checkpoint; the same call resumes it."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: the run directory, the record written and the per-epoch log rows."""

    run_dir: Path
    record: dict[str, Any]
    history: list[dict[str, float]]

    @property
    def record_path(self) -> Path:
        return self.run_dir / record_file(self.record["nasopt"]["run_id"])


def genes_of(arch: Any) -> np.ndarray:
    """``(28,)`` genes of an architecture (string, dict, genes or a reference name such as
    ``efficientnet_b0``)."""
    if isinstance(arch, str) and arch.strip().lower().replace("-", "_") in space.REFERENCES:
        return space.reference(arch.strip())
    return space.parse(arch)


def run_id(
    genes: np.ndarray,
    scheme: TrainScheme,
    seed: int,
    skeleton: geometry.Skeleton = geometry.MNASNET,
    train_fraction: float = 1.0,
) -> str:
    """``a<arch id>-<scheme name>-<8 hex fingerprint>-s<seed>``; another skeleton than the dataset's adds
    ``-k<8 hex of its settings>`` and a share of the training set below 1 adds ``-f<fraction>`` (``-f0.25``)
    before the seed, so runs that differ in either never share a directory."""
    sk = "" if skeleton == geometry.MNASNET else f"-k{skeleton.digest()[:8]}"
    frac = "" if float(train_fraction) >= 1.0 else f"-f{float(train_fraction):.6g}"
    return f"a{int(space.arch_id(genes)[0])}-{scheme.name}-{scheme.fingerprint()}{sk}{frac}-s{seed}"


def as_skeleton(skeleton: geometry.Skeleton | Mapping[str, Any] | float | None) -> geometry.Skeleton:
    """A :class:`~benchmark.geometry.Skeleton` from itself, its dict, a width multiplier of the dataset's
    skeleton (``0.25``) or None (the dataset's)."""
    if skeleton is None:
        return geometry.MNASNET
    if isinstance(skeleton, geometry.Skeleton):
        return skeleton
    if isinstance(skeleton, Mapping):
        return geometry.Skeleton.from_dict(skeleton)
    if isinstance(skeleton, (int, float)) and not isinstance(skeleton, bool):
        return geometry.MNASNET.scaled(float(skeleton))
    raise ConfigurationError(
        f"skeleton must be a width multiplier, a mapping of skeleton settings or null, got {skeleton!r}"
    )


def record_file(rid: str) -> str:
    """``result_<N>.json`` with ``N`` from the run id (unique per architecture x scheme x seed, so a
    folder of runs reads as one dataset)."""
    import hashlib

    return f"result_{int(hashlib.sha256(rid.encode()).hexdigest()[:12], 16)}.json"


def _needs_timm(s: TrainScheme) -> bool:
    return (
        s.optimizer == "rmsprop_tf" or s.ema_decay is not None or bool(s.randaugment) or s.random_erasing > 0
    )


def _param_groups(model: ArchNet, s: TrainScheme) -> list[dict[str, Any]]:
    no_decay = set() if s.decay_bn_and_bias else set(model.no_weight_decay_names())
    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if n not in no_decay], "weight_decay": s.weight_decay},
        {"params": [p for n, p in named if n in no_decay], "weight_decay": 0.0},
    ]


def make_optimizer(model: ArchNet, s: TrainScheme) -> torch.optim.Optimizer:
    """SGD (Nesterov off, as the dataset) or timm's RMSprop-TF; weight decay off on BN and bias unless
    ``decay_bn_and_bias``."""
    groups = _param_groups(model, s)
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.peak_lr, momentum=s.momentum)
    from nasopt.validation.train.timm_parts import rmsprop_tf

    opt: torch.optim.Optimizer = rmsprop_tf(
        groups, s.peak_lr, alpha=s.rmsprop_alpha, eps=s.rmsprop_eps, momentum=s.momentum
    )
    return opt


def _seed_everything(seed: int, rank: int, device: torch.device) -> None:
    s = seed * 1000 + rank  # per-rank streams for dropout / drop path (data is seeded per sample)
    torch.manual_seed(s)
    if device.type == "xla":
        xla.set_rng_state(s)
    random.seed(s)
    np.random.seed(s % 2**32)  # noqa: NPY002  (the legacy global stream, which user code may draw from)


def _log_text(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: row[k] for k in LOG_COLUMNS})
    return buf.getvalue()


def read_log(run_dir: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The per-epoch rows of ``log.csv`` as floats."""
    with open(Path(run_dir) / LOG_FILE, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _check_dir(run_dir: Path, config: dict[str, Any], overwrite: bool, d: D.Dist) -> None:
    results = sorted(run_dir.glob("result_*.json"))
    if results and not overwrite:
        raise RunExistsError(
            f"{run_dir}: holds a finished training result ({results[0].name}); pass overwrite=True "
            f"(CLI: overwrite=true) to train again, or choose another out_dir"
        )
    if overwrite:
        if d.is_main:
            for name in (CONFIG_FILE, LOG_FILE, WEIGHTS_FILE):
                (run_dir / name).unlink(missing_ok=True)
            for p in results:
                p.unlink()
            shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        D.barrier(d)
        return
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.is_file():
        old = json.loads(cfg_path.read_text())
        keys = ("arch", "scheme", "data", "seed")
        diff = [k for k in keys if old.get(k) != config.get(k)]
        if diff:
            raise RunExistsError(
                f"{run_dir}: holds a run with other settings ({', '.join(diff)} differ); resume it with its "
                f"own settings (see its {CONFIG_FILE}), choose another out_dir, or pass overwrite=True"
            )


def train(
    arch: Any,
    scheme: str | TrainScheme = "smoke",
    data: DataConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "runs/train",
    *,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    deterministic: bool = False,
    stop: StopFlag | None = None,
    handle_signals: bool = True,
    verbose: bool = False,
    skeleton: geometry.Skeleton | Mapping[str, Any] | float | None = None,
) -> TrainResult:
    """Train ``arch`` with ``scheme`` on the ImageNet-layout folder of ``data`` (a :class:`DataConfig`, its
    dict, or the root path; None = ``$NASOPT_IMAGENET``), into ``<out_dir>/<run id>``; resume if a
    checkpoint is there. Distributed when started by torchrun (every rank calls this).

    ``skeleton`` (see :func:`as_skeleton`) builds the architecture in another macro skeleton than the
    dataset's (e.g. ``0.25`` for a quarter-width network on a small dataset); it is part of the run id.
    """
    s = get_scheme(scheme)
    sk = as_skeleton(skeleton)
    if isinstance(data, DataConfig):
        dc = data
    elif isinstance(data, Mapping):
        dc = DataConfig(**data)
    else:
        dc = DataConfig(root=None if data is None else str(data))
    if _needs_timm(s):
        from nasopt.validation.train.timm_parts import require_timm

        require_timm(f"scheme {s.name!r}")
    genes = genes_of(arch)
    root = resolve_root(dc.root)
    classes, train_samples, val_samples = read_splits(root, dc.backend)
    train_samples = subset(train_samples, dc.train_fraction, seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)

    d = D.setup(device)
    try:
        return _train(
            genes,
            s,
            dc,
            root,
            classes,
            train_samples,
            val_samples,
            Path(out_dir),
            seed,
            d,
            overwrite,
            stop or StopFlag(),
            handle_signals,
            verbose,
            sk,
        )
    finally:
        D.teardown(d)


def _train(
    genes: np.ndarray,
    s: TrainScheme,
    dc: DataConfig,
    root: Path,
    classes: list[str],
    train_samples: list[tuple[str, int]],
    val_samples: list[tuple[str, int]],
    out_dir: Path,
    seed: int,
    d: D.Dist,
    overwrite: bool,
    stop: StopFlag,
    handle_signals: bool,
    verbose: bool,
    skeleton: geometry.Skeleton,
) -> TrainResult:
    rid = run_id(genes, s, seed, skeleton, dc.train_fraction)
    run_dir = out_dir / rid
    config = {
        "format": FORMAT,
        "run_id": rid,
        "arch": space.to_string(genes),
        "architecture": space.to_dicts(genes)[0],
        "scheme": s.to_dict(),
        "scheme_fingerprint": s.fingerprint(),
        "data": {
            **{k: v for k, v in dc.to_dict().items() if k != "workers"},  # how fast, not what
            "root": str(root),
            "n_train": len(train_samples),
            "n_val": len(val_samples),
            "n_classes": len(classes),
        },
        "seed": seed,
        **({} if skeleton == geometry.MNASNET else {"skeleton": skeleton.to_dict()}),
        "world_size": d.world,
        "device": d.device.type,
        "record": record_file(rid),
    }
    _check_dir(run_dir, config, overwrite, d)
    if d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    D.barrier(d)

    dev = d.device
    torch.manual_seed(seed)  # the same initial weights on every rank
    model = build_model(
        genes,
        len(classes),
        activation=s.activation,
        gate=s.gate,
        drop_path_rate=s.drop_path_rate,
        dropout=s.dropout,
        skeleton=skeleton,
        device="cpu" if dev.type == "xla" else dev,  # XLA: the CPU's initial weights, then copied
    )
    if dev.type == "xla":
        model = model.to(dev)
    if s.sync_bn and d.distributed:
        D.sync_batchnorm(model, dev)
    channels_last = s.channels_last and dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, s)
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and s.precision == "fp16")
    ema = None
    if s.ema_decay is not None:
        from nasopt.validation.train.timm_parts import model_ema

        ema = model_ema(model, s.ema_decay)
    erase = None
    if s.random_erasing > 0:
        from nasopt.validation.train.timm_parts import random_erasing

        erase = random_erasing(s.random_erasing, dev)
    criterion = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    _seed_everything(seed, d.rank, dev)

    steps_per_epoch = TrainBatches.steps_per_epoch(len(train_samples), s.batch_size)
    if steps_per_epoch < 1:
        raise ConfigurationError(
            f"the training set has {len(train_samples)} images, fewer than one batch "
            f"(scheme.batch_size={s.batch_size}); lower the batch or raise data.train_fraction"
        )
    epoch, step_in_epoch, global_step = 0, 0, 0
    history: list[dict[str, float]] = []
    meter = Meter()
    train_time = 0.0
    epoch_time = 0.0
    ck_dir = run_dir / CHECKPOINT_DIR
    # each rank reads only its own files (nodes need not share a filesystem): the newest step every rank
    # has is the smallest of their newest (each keeps two, and all write at the same steps)
    own = ckpt.steps_of(ck_dir, d.rank)
    start = D.all_min(own[-1] if own else -1, d)
    if start >= 0 and D.all_min(int(start in own), d) == 0:
        raise ckpt.CheckpointError(
            f"{ck_dir}: the ranks' checkpoints have no step in common (newest of all: {start}); resume with "
            f"the same number of processes, or pass overwrite=True"
        )
    if start >= 0:
        state = ckpt.load(ckpt.path_for(ck_dir, start, d.rank), dev)
        if state["world"] != d.world or state["run_id"] != rid:
            raise ckpt.CheckpointError(
                f"{ck_dir}: checkpoint of {state['world']} process(es) of run {state['run_id']}, not of this "
                f"run with {d.world}; resume with the same number of processes, or pass overwrite=True"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        history = [dict(r) for r in state["history"]]
        meter = Meter(**state["meter"])
        train_time, epoch_time = state["train_time"], state["epoch_time"]
        ckpt.set_rng_state(state["rng"], dev)
        if verbose and d.is_main:
            print(f"nasopt train: resuming {run_dir} at epoch {epoch} step {step_in_epoch}", flush=True)
    elif any(ck_dir.glob("step*.rank*.pt")):
        raise ckpt.CheckpointError(
            f"{ck_dir}: checkpoints of another number of ranks (this run has {d.world}); resume with the "
            f"same number of processes, or pass overwrite=True"
        )

    net: nn.Module = model
    if d.distributed:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            gradient_as_bucket_view=dev.type == "xla",  # torch_xla's recommendation for DDP
        )

    source = make_source(
        dc,
        root,
        classes,
        train_samples,
        val_samples,
        Augment(True, s.rrc_scale, s.hflip, s.val_crop, s.randaugment),
        seed=seed,
        rank=d.rank,
        world=d.world,
        device=dev,
    )

    def state_dict() -> dict[str, Any]:
        state = {
            "format": FORMAT,
            "run_id": rid,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": global_step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "ema": ema.state_dict() if ema is not None else {},
            "rng": ckpt.rng_state(dev),
            "history": history,
            "meter": meter.to_dict(),
            "train_time": train_time,
            "epoch_time": epoch_time,
            "rank": d.rank,
            "world": d.world,
        }
        return xla.to_cpu(state) if dev.type == "xla" else state

    def checkpoint() -> None:
        ckpt.save(state_dict(), ck_dir, global_step, d.rank)

    def stop_now() -> bool:
        flag = 1 if stop.reason is not None else 0
        if d.distributed:
            flag = -D.all_min(-flag, d)  # any rank stopping stops all (torchrun forwards the signal to all)
        return bool(flag)

    with stop.handling_signals(handle_signals):
        while epoch < s.epochs:
            res = s.resolution_at(epoch)
            batches = source.train(epoch, res, s.batch_size, step_in_epoch)
            t0 = time.perf_counter()
            ep = epoch

            def after_step(step: int, m: Meter) -> bool:
                nonlocal step_in_epoch, global_step, meter, train_time, epoch_time, t0
                step_in_epoch, global_step, meter = step, global_step + 1, m
                now = time.perf_counter()
                train_time += now - t0
                epoch_time += now - t0
                t0 = now
                # a signal is looked at every step on one process, every 10 steps across ranks (all agree)
                halt = stop_now() if not d.distributed or global_step % 10 == 0 else False
                if (global_step % s.checkpoint_every_steps == 0 and step < steps_per_epoch) or halt:
                    checkpoint()
                return halt

            meter, halted = train_one_epoch(
                net,
                batches,
                optimizer,
                criterion,
                functools.partial(s.lr_at, ep, steps_per_epoch=steps_per_epoch),
                device=dev,
                start_step=step_in_epoch,
                precision=s.precision,
                scaler=scaler,
                channels_last=channels_last,
                ema=ema,
                erase=erase,
                meter=meter,
                after_step=after_step,
            )
            if halted:
                raise TrainingStopped(
                    f"stopped by {stop.reason} at epoch {epoch} step {step_in_epoch} with a checkpoint in "
                    f"{ck_dir}; run the same command again to resume"
                )
            t0 = time.perf_counter()
            eval_model = ema.module if ema is not None else net
            tr = Meter.from_tensor(D.all_sum(meter.as_tensor().to(dev), d).cpu())
            if s.validates(epoch):
                val_meter = evaluate(
                    eval_model,
                    source.val(s.val_res, dc.val_batch),
                    eval_criterion,
                    device=dev,
                    precision=s.precision,
                    channels_last=channels_last,
                )
                va = Meter.from_tensor(D.all_sum(val_meter.as_tensor().to(dev), d).cpu())
            else:  # scheme.validate_last: not an epoch the record reads
                va = Meter()
            train_time += time.perf_counter() - t0
            epoch_time += time.perf_counter() - t0
            row = {
                "epoch": float(epoch),
                "resolution": float(res),
                "lr": s.lr_at(epoch, steps_per_epoch - 1, steps_per_epoch),
                "train_loss": tr.loss,
                "train_top1": tr.top1,
                "train_top5": tr.top5,
                "val_loss": va.loss,
                "val_top1": va.top1,
                "val_top5": va.top5,
                "images": tr.n,
                "img_per_s": tr.n / epoch_time if epoch_time > 0 else float("nan"),
                "epoch_time_s": epoch_time,
                "train_time_s": train_time,
            }
            history.append(row)
            if verbose and d.is_main:
                print("nasopt train: " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
            epoch, step_in_epoch, meter, epoch_time = epoch + 1, 0, Meter(), 0.0
            checkpoint()
            if d.is_main:
                atomic_write_text(run_dir / LOG_FILE, _log_text(history))
            if stop_now():
                raise TrainingStopped(
                    f"stopped by {stop.reason} after epoch {epoch - 1} with a checkpoint in {ck_dir}; run "
                    f"the "
                    f"same command again to resume"
                )

    record = make_record(genes, s, history, train_time, rid, seed, d.world, skeleton, len(classes))
    if d.is_main:
        final = ema.module if ema is not None else model
        save_weights(final, run_dir / WEIGHTS_FILE, extra={"run_id": rid, "scheme": s.name, "seed": seed})
        atomic_write_text(run_dir / LOG_FILE, _log_text(history))
        atomic_write_text(run_dir / record_file(rid), json.dumps(record, indent=2) + "\n")
    D.barrier(d)
    return TrainResult(run_dir, record, history)


def make_record(
    genes: np.ndarray,
    s: TrainScheme,
    history: list[dict[str, float]],
    train_time: float,
    rid: str,
    seed: int,
    world: int,
    skeleton: geometry.Skeleton = geometry.MNASNET,
    num_classes: int = geometry.NUM_CLASSES,
) -> dict[str, Any]:
    """The Accel-NASBench record of a finished run: top-1 = best of the last ``top1_best_of_last`` epochs
    (top-5 of that epoch), ``train_time`` in seconds, ``model_info`` (MACs/params in millions).

    ``model_info`` is counted as the dataset counts it (224 px, 1000 classes) for the dataset's skeleton,
    and for any other skeleton at the scheme's validation side and the run's class count (stated in
    ``nasopt.model_info_at``), i.e. the network that was actually trained.
    """
    last = history[-s.top1_best_of_last :]
    best = max(last, key=lambda r: r["val_top1"])
    if skeleton == geometry.MNASNET:
        at = {"resolution": geometry.INPUT_SIZE, "num_classes": geometry.NUM_CLASSES}
    else:
        at = {"resolution": s.val_res, "num_classes": int(num_classes)}
    macs, params = macs_params(genes, skeleton=skeleton, **at)
    return {
        "architecture": space.to_dicts(genes)[0],
        "metrics": {
            "val_top1": float(best["val_top1"]),
            "val_top5": float(best["val_top5"]),
            "train_time": float(train_time),
            "epochs": s.epochs,
        },
        "model_info": {"macs": float(macs[0]), "params": float(params[0])},
        "platform_perf": {},
        "nasopt": {
            "run_id": rid,
            "scheme": s.name,
            "scheme_fingerprint": s.fingerprint(),
            "seed": seed,
            "world_size": world,
            "best_epoch": int(best["epoch"]),
            "model_info_at": at,
            **({} if skeleton == geometry.MNASNET else {"skeleton": skeleton.to_dict()}),
            "finite": all(math.isfinite(r["val_top1"]) for r in history),
        },
    }
