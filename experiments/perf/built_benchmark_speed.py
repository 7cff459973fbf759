"""Speed of a built benchmark (``nasopt benchmark build``) against the built-in one: load from the cache and
batched queries.

    python experiments/perf/built_benchmark_speed.py --archive BUILT.tar.gz [--cache-dir DIR]
        [--builtin PATH] [--sizes 1000,100000] [--json]

Both are loaded once first (fitting where not cached; the built-in fit takes minutes), then timed: the load
from the cache in this process (median of 5) and in a fresh process (``python -c 'load_benchmark(...)'``,
which includes the imports), and batched queries of every target each has, over the same random
architectures (median of 5 per size). ``--builtin`` defaults to ``$NASOPT_DATASET``; without it only the
built benchmark is timed. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from benchmark import space
from benchmark.oracle import load_benchmark


def _median(fn: Any, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _fresh_process_load(dataset: str, cache_dir: str | None) -> float:
    code = (
        "import time; t=time.perf_counter(); from benchmark.oracle import load_benchmark; "
        f"load_benchmark({dataset!r}, cache_dir={cache_dir!r}, verbose=False); print(time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _time(dataset: str, cache_dir: str | None, sizes: list[int], fresh: bool = True) -> dict[str, Any]:
    bench = load_benchmark(dataset, cache_dir=cache_dir, verbose=False)  # fit once if needed
    res: dict[str, Any] = {
        "digest": bench.digest,
        "targets": list(bench.targets),
        "load_s": _median(lambda: load_benchmark(dataset, cache_dir=cache_dir, verbose=False)),
        "load_fresh_process_s": _fresh_process_load(dataset, cache_dir) if fresh else None,
        "query": {},
    }
    for n in sizes:
        X = space.sample(n, np.random.default_rng(n))
        t = _median(lambda X=X: bench.query(X))
        per_target = t / len(bench.targets)
        res["query"][str(n)] = {
            "seconds_all_targets": t,
            "archs_per_s_per_target": n / per_target,
        }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--cache-dir")
    ap.add_argument("--builtin", default=os.environ.get("NASOPT_DATASET"))
    ap.add_argument("--builtin-cache-dir")
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--no-fresh", action="store_true", help="skip the fresh-process load (imports dominate it)"
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    fresh = not args.no_fresh
    out = {"built": _time(args.archive, args.cache_dir, sizes, fresh)}
    if args.builtin:
        out["builtin"] = _time(args.builtin, args.builtin_cache_dir, sizes, fresh)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for kind, r in out.items():
        print(f"{kind:<8} {r['digest']}  targets {len(r['targets'])}")
        fresh_s = r["load_fresh_process_s"]
        print(
            f"  load from cache: {r['load_s'] * 1000:.0f} ms in-process"
            + (f", {fresh_s:.2f} s in a fresh process (imports included)" if fresh_s is not None else "")
        )
        for n, q in r["query"].items():
            print(
                f"  query {int(n):>7,} archs x {len(r['targets'])} targets: {q['seconds_all_targets'] * 1000:.1f} ms "
                f"({q['archs_per_s_per_target'] / 1e6:.2f} M archs/s per target)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
