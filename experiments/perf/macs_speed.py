"""Throughput of the analytic MACs/params counter: prints architectures per second for a large batch.

Run: ``python experiments/perf/macs_speed.py [--n 100000] [--repeats 5] [--seed 0]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmark import space
from benchmark.macs import macs_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="batch size (architectures)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be >= 1")

    X = space.sample(args.n, np.random.default_rng(args.seed))
    macs_params(X[:10])  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        macs, params = macs_params(X)
        times.append(time.perf_counter() - t0)
    best, median = min(times), float(np.median(times))
    print(f"batch {args.n} architectures, {args.repeats} repeats")
    print(f"best   {best * 1e3:9.2f} ms  -> {args.n / best:14,.0f} architectures/s")
    print(f"median {median * 1e3:9.2f} ms  -> {args.n / median:14,.0f} architectures/s")
    print(f"MACs   min/median/max {macs.min():.1f} / {np.median(macs):.1f} / {macs.max():.1f} M")
    print(f"params min/median/max {params.min():.3f} / {np.median(params):.3f} / {params.max():.3f} M")


if __name__ == "__main__":
    main()
