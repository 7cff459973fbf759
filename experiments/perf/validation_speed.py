"""Validation stage speed: building networks, and CPU latency of many architectures. Prints; asserts nothing.

Run (from the repository root)::

    python experiments/perf/validation_speed.py build   [--n 1000]          # build_model: real init and meta
    python experiments/perf/validation_speed.py latency [--n 100] [--threads 1] [--repeats 30]
    python experiments/perf/validation_speed.py spread  [--n 5] [--times 5]  # repeat-measurement spread

``build`` times ``build_model`` with its initialisation (on the CPU) and structure-only (``device="meta"``).
``latency`` measures onnxruntime batch-1 latency at 224 px of ``--n`` random architectures (plus
EfficientNet-B0) with the backend's protocol, and prints the total time, its split into ONNX export, session
creation and timing, and the distribution of the per-architecture relative std (std / mean of the kept
samples). ``spread`` measures the same architectures ``--times`` times each, interleaved, and prints the
spread of their means (what a re-measurement moves a number by, as ``benchmark.noise`` does for the dataset).
Numbers from a busy machine are slower and noisier; say how busy it was (``uptime``) when you quote them.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from benchmark import space


def _archs(n: int, seed: int) -> list[np.ndarray]:
    X = space.sample(n, np.random.default_rng(seed))
    return [space.reference("efficientnet_b0"), *X[: max(n - 1, 0)]]


def build(args: argparse.Namespace) -> None:
    import torch

    from nasopt.validation.model import build_model

    torch.set_num_threads(args.threads)
    X = space.sample(args.n, np.random.default_rng(args.seed))
    for device in ("meta", "cpu"):
        t = time.perf_counter()
        for x in X:
            build_model(x, device=device)
        dt = time.perf_counter() - t
        print(
            f"build_model(device={device!r}): {args.n} architectures in {dt:.2f} s "
            f"({1000 * dt / args.n:.1f} ms each)"
        )


def _latency_backend(args: argparse.Namespace) -> Any:
    """The onnxruntime batch-1 latency backend at 224 px with the script's settings."""
    from nasopt.validation.measure.cpu import OnnxRuntimeBackend

    return OnnxRuntimeBackend(
        metric="latency",
        batch=1,
        resolution=224,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        passes=args.passes,
    )


def latency(args: argparse.Namespace) -> None:
    from nasopt.validation.model import build_model
    from nasopt.validation.model.export import onnx_bytes

    backend = _latency_backend(args)
    t_export = t_measure = 0.0
    rel, means = [], []
    start = time.perf_counter()
    for i, x in enumerate(_archs(args.n, args.seed)):
        model = build_model(x).eval()
        t0 = time.perf_counter()
        onnx_bytes(model)  # timed separately: measure() exports again inside prepare()
        t1 = time.perf_counter()
        m = backend.measure(model)
        t2 = time.perf_counter()
        t_export += t1 - t0
        t_measure += t2 - t1
        rel.append(m.relative_std)
        means.append(m.mean)
        if i % 10 == 0:
            print(
                f"  [{i + 1}/{args.n}] {m.mean:7.2f} ms ± {100 * m.relative_std:.1f} % "
                f"({m.n_rejected} outliers)"
            )
    total = time.perf_counter() - start
    r = np.array(rel) * 100
    print(
        f"onnxruntime latency, batch 1, 224 px, {args.threads} thread(s), {args.repeats} repeats x "
        f"{args.passes} passes, warm-up {args.warmup}: {args.n} architectures in {total:.1f} s"
    )
    print(
        f"  export (measured once more outside measure(), so subtract it once): {t_export:.1f} s; "
        f"measure() incl. its own export and session: {t_measure:.1f} s"
    )
    print(f"  latency range {min(means):.2f} .. {max(means):.2f} ms")
    print(
        f"  relative std per architecture: median {np.median(r):.2f} %, 90th pct {np.percentile(r, 90):.2f} %, "
        f"max {r.max():.2f} %; share <= 2 %: {np.mean(r <= 2):.0%}"
    )


def spread(args: argparse.Namespace) -> None:
    from nasopt.validation.model import build_model

    backend = _latency_backend(args)
    models = [build_model(x).eval() for x in _archs(args.n, args.seed)]
    means = np.zeros((args.times, len(models)))
    for t in range(args.times):  # interleaved, so slow drifts of the machine show up as spread
        for j, model in enumerate(models):
            means[t, j] = backend.measure(model).mean
    rel = means.std(axis=0, ddof=1) / means.mean(axis=0) * 100
    for j in range(len(models)):
        print(f"  arch {j}: mean {means[:, j].mean():7.2f} ms, re-measurement spread {rel[j]:.2f} %")
    print(
        f"re-measurement spread ({args.times} times each): median {np.median(rel):.2f} %, max {rel.max():.2f} %"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["build", "latency", "spread"])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--times", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.n = args.n or {"build": 1000, "latency": 100, "spread": 5}[args.mode]
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    {"build": build, "latency": latency, "spread": spread}[args.mode](args)


if __name__ == "__main__":
    main()
