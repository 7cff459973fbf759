"""The GPU check of the measurement stage, as one prepared script for a lent GPU machine.

It measures EfficientNet-B0 and ``--n`` dataset architectures (spread over the records' A100 throughput range)
with the dataset's GPU protocol (:class:`nasopt.validation.measure.cuda.CudaBackend`: fp16 autocast,
channels-last, cudnn.benchmark, CUDA events around the forward passes, batch 128) at 224 and 256 px, and
prints img/s per architecture and the Kendall tau of the measured ranking against the records' A100 and RTX
3090 columns (absolute values differ on another GPU; the ranking is what transfers). With ``--compile`` it
also measures ``torch.compile`` (reported separately, never mixed with the dataset protocol). Results go to
``--out`` as Accel-NASBench records + provenance, and a JSON summary.

Run on the GPU machine, from the repository root (``NASOPT_DATASET`` pointing at the data)::

    python experiments/checks/gpu_measure.py --n 20 --out "$OUT/gpu"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from benchmark import space
from benchmark.dataset import load_dataset


def _pick(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` record architectures spread evenly over the A100 throughput quantiles (+ their records' values)."""
    ds = load_dataset()
    y = ds.labels["throughput_a100"]
    ok = np.flatnonzero(np.isfinite(y) & np.isfinite(ds.labels["throughput_3090"]))
    order = ok[np.argsort(y[ok])]
    rows = order[np.linspace(0, len(order) - 1, n).round().astype(int)]
    return ds.X[rows], {t: ds.labels[t][rows] for t in ("throughput_a100", "throughput_3090")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[224, 256])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (reported separately)")
    ap.add_argument("--out", type=Path, default=Path("gpu_measure"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from nasopt.validation.measure.cuda import CudaBackend
    from nasopt.validation.records import write_measurements

    X, truth = _pick(args.n, args.seed)
    archs = [space.reference("efficientnet_b0"), *X]
    summary: dict[str, object] = {"n": len(X), "batch": args.batch}
    t_start = time.perf_counter()
    for res in args.resolutions:
        modes = ["none", "default"] if args.compile else ["none"]
        for mode in modes:
            backend = CudaBackend(
                metric="throughput", batch=args.batch, resolution=res, repeats=args.repeats, compile=mode
            )
            ms = []
            for i, x in enumerate(archs):
                m = backend.measure(x)
                ms.append(m)
                print(
                    f"{res}px compile={mode} [{i + 1}/{len(archs)}] {m.arch}: {m.mean:9.1f} img/s "
                    f"± {100 * m.relative_std:.2f} %",
                    flush=True,
                )
            measured = np.array([m.mean for m in ms[1:]])
            key = f"{res}px" + ("" if mode == "none" else f"_compile_{mode}")
            summary[key] = {
                "efficientnet_b0_img_s": ms[0].mean,
                "median_img_s": float(np.median(measured)),
                "tau_vs_a100": float(kendalltau(measured, truth["throughput_a100"])[0]),
                "tau_vs_3090": float(kendalltau(measured, truth["throughput_3090"])[0]),
                "median_rel_std": float(np.median([m.relative_std for m in ms])),
                "device": ms[0].environment.get("device"),
            }
            print(json.dumps({key: summary[key]}, indent=1), flush=True)
            if mode == "none":
                write_measurements(args.out / key, ms)
    summary["wall_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
