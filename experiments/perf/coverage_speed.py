"""Overhead of saying when a prediction extrapolates, next to the query itself.

    python experiments/perf/coverage_speed.py [--dataset PATH] [--cache-dir DIR] [--split all|default]
                                              [--sizes 1000 10000] [--repeats 5]

Per batch size: the batched query (accuracy + A100 throughput), the range test of both predictions
(:meth:`benchmark.coverage.TrainingCoverage.extrapolated`), and the distance to the nearest training
architecture (:meth:`~benchmark.coverage.TrainingCoverage.distance`). Prints a table; it asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmark import space
from benchmark.oracle import load_benchmark


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset")
    ap.add_argument("--cache-dir")
    ap.add_argument("--split", default="all", choices=["all", "default", "random"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bench = load_benchmark(args.dataset, cache_dir=args.cache_dir, split=args.split, download=False)
    cov = bench.coverage
    assert cov is not None
    targets = ["accuracy", "throughput_a100"]
    print(f"training architectures: {len(cov.genes)}")
    print(f"{'n':>7} {'query ms':>9} {'range test ms':>14} {'distance ms':>12} {'range/query':>12}")
    for n in args.sizes:
        X = space.sample(n, np.random.default_rng(n))
        bench.query(X[:10], targets)  # build the fused engine once
        cov.distance(X[:10])  # and the distance tables
        preds = bench.query(X, targets)

        def query(X: np.ndarray = X) -> object:
            return bench.query(X, targets)

        def range_test(p: dict[str, Any] = preds) -> object:
            return [cov.extrapolated(t, v.mean, v.std) for t, v in p.items()]

        def distance(X: np.ndarray = X) -> object:
            return cov.distance(X)

        q = _median_ms(query, args.repeats)
        r = _median_ms(range_test, args.repeats)
        d = _median_ms(distance, args.repeats)
        print(f"{n:>7} {q:>9.2f} {r:>14.3f} {d:>12.1f} {r / q:>11.1%}")


if __name__ == "__main__":
    main()
