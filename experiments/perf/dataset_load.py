"""Time to load the Accel-NASBench records: prints wall-clock and process CPU seconds per stage.

Run: ``python experiments/perf/dataset_load.py [--dataset PATH] [--repeats 5]`` (the data is found like the
program finds it; never downloads). The CPU column is the one to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from benchmark import dataset as ds_mod
from benchmark.sources import resolve_dataset
from benchmark.splits import make_split


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``fn()`` over ``repeats`` runs."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default=None, help="archive or directory (default: resolved)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    path = resolve_dataset(args.dataset, download=False)
    print(f"data: {path}")
    stages: list[tuple[str, Callable[[], object]]]
    if Path(path).is_file():
        entries, _ = ds_mod._read_archive(Path(path))

        def parse_json() -> None:
            for _, _, raw in entries:
                json.loads(raw)

        stages = [
            ("read archive (gunzip + tar)", lambda: ds_mod._read_archive(Path(path))),
            ("json.loads only", parse_json),
        ]
    else:
        stages = [("read directory", lambda: ds_mod._read_directory(Path(path)))]
    data = ds_mod.read_records(path)
    stages += [
        ("read_records (everything)", lambda: ds_mod.read_records(path)),
        ("make_split random", lambda: make_split(data, "random", seed=0)),
    ]
    print(f"records: {len(data)}  (best of {args.repeats})")
    print(f"{'stage':32s} {'wall s':>8s} {'cpu s':>8s}")
    for name, fn in stages:
        wall, cpu = _timed(fn, args.repeats)
        print(f"{name:32s} {wall:8.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()
