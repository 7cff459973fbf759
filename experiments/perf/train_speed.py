"""Training throughput: the data loader's img/s against the model's training img/s (smoke scheme by default).
Prints numbers, asserts nothing.

Run (from the repository root)::

    python experiments/perf/train_speed.py                      # Fashion-MNIST ImageFolder built in a temp dir
    python experiments/perf/train_speed.py --root DIR --workers 2 --steps 40 --threads 1
    python experiments/perf/train_speed.py --backend pil,ffcv,dali        # each data backend that is installed
    python experiments/perf/train_speed.py --scheme proxified --arch efficientnet_b0 --device cuda --steps 300 \
        --batch 256 --synthetic                                 # GPU: model img/s on synthetic 160 px batches

The loader is timed alone (decode + RandomResizedCrop + flip into uint8 batches, as training reads them;
``--backend`` pil/torchvision/ffcv/dali, the ffcv .beton files written from the folder first, and FFCV's
per-epoch compilation of its decoder timed apart from its img/s); the model on batches already in memory (forward, backward, SGD step; fp16 autocast and channels_last on GPU as the
scheme says). Target (issue 12): loader img/s >= 3x model img/s on CPU for the smoke scheme.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from nasopt.validation.model import build_model
from nasopt.validation.train.data import Augment, DataConfig, make_source, read_splits
from nasopt.validation.train.loop import train_one_epoch
from nasopt.validation.train.run import genes_of, make_optimizer
from nasopt.validation.train.schemes import get_scheme

SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--root", default=None, help="ImageNet-layout folder (default: Fashion-MNIST in a temp dir)"
    )
    ap.add_argument("--scheme", default="smoke")
    ap.add_argument("--arch", default=SMALL)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=None, help="batch per step (default: the scheme's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--synthetic", action="store_true", help="model only, on random batches (no loader)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--backend", default="pil", help="data backends to time, comma-separated (pil,torchvision,ffcv,dali)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = get_scheme(args.scheme)
    batch = args.batch or s.batch_size
    res = s.min_res
    dev = torch.device(args.device)
    print(
        f"scheme {s.name}, batch {batch}, {res} px, device {dev}, threads {args.threads}, workers {args.workers}"
    )

    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    n_classes = 10
    if not args.synthetic:
        tmp = None
        root = Path(args.root) if args.root else None
        if root is None:
            from nasopt.validation.train.prepare import fashion_mnist_folder

            tmp = tempfile.TemporaryDirectory()
            root = fashion_mnist_folder(tmp.name, size=32, train_per_class=200, val_per_class=1)
        for backend in args.backend.split(","):
            data_root = root
            if backend == "ffcv":
                from nasopt.validation.train.ffcv_data import write_ffcv

                tw = time.perf_counter()
                data_root = write_ffcv(root, Path(tmp.name if tmp else tempfile.mkdtemp()) / "beton")
                print(f"ffcv: wrote the .beton files in {time.perf_counter() - tw:.1f} s")
            classes, samples, val = read_splits(data_root, backend)
            n_classes = len(classes)
            dc = DataConfig(root=str(data_root), backend=backend, workers=args.workers)
            src = make_source(dc, data_root, classes, samples, val, Augment(True, s.rrc_scale, s.hflip), seed=0,
                              device=dev)
            steps = min(args.steps, len(samples) // batch)
            got: list[tuple[torch.Tensor, torch.Tensor]] = []
            t0 = time.perf_counter()
            t1 = t0
            for x, y in src.train(0, res, batch):
                if not got:
                    t1 = time.perf_counter()  # the first batch: pipeline start-up (FFCV: JIT compilation)
                got.append((x, y))
                if len(got) == steps:
                    break
            dt = time.perf_counter() - t1
            rate = (steps - 1) * batch / dt if steps > 1 and dt > 0 else float("nan")
            print(f"loader {backend:>11}: {rate:8.0f} img/s  ({steps - 1} batches after the first in {dt:.2f} s; "
                  f"first batch {t1 - t0:.2f} s)")
            batches = batches or got
    else:
        g = torch.Generator().manual_seed(0)
        n_classes = 1000
        batches = [
            (
                torch.randint(0, 256, (batch, 3, res, res), dtype=torch.uint8, generator=g),
                torch.randint(0, n_classes, (batch,), generator=g),
            )
        ] * args.steps
    torch.manual_seed(0)
    model = build_model(
        genes_of(args.arch),
        n_classes,
        activation=s.activation,
        gate=s.gate,
        drop_path_rate=s.drop_path_rate,
        dropout=s.dropout,
        device=dev,
    )
    channels_last = s.channels_last and dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = make_optimizer(model, s)
    net: nn.Module = torch.compile(model) if args.compile else model  # type: ignore[assignment]
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and s.precision == "fp16")
    crit = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    warm = max(1, min(5, len(batches) // 4))

    def run(bs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        train_one_epoch(
            net,
            bs,
            opt,
            crit,
            lambda i: s.peak_lr * 0.1,
            device=dev,
            precision=s.precision,
            scaler=scaler,
            channels_last=channels_last,
        )
        if dev.type == "cuda":
            torch.cuda.synchronize()

    run(batches[:warm])
    t0 = time.perf_counter()
    run(batches[warm:])
    dt = time.perf_counter() - t0
    n = (len(batches) - warm) * batch
    print(
        f"model:  {n / dt:8.0f} img/s  ({len(batches) - warm} steps in {dt:.2f} s, after {warm} warm-up steps)"
    )


if __name__ == "__main__":
    main()
