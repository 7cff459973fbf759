"""Optimizer overhead: microseconds of ``ask`` + ``tell`` per evaluation on the synthetic oracle.

Run: ``python experiments/perf/optimizer_overhead.py [--evals 10000] [--batches 1,10,100]``
(``--optimizers rs,re,nsga2``, ``--problems acc,acc_a100,acc_a100_zcu102`` select subsets).

Only the optimizer's own calls are timed, as wall-clock and as process CPU time (the CPU column is the
one to trust on a shared machine); the oracle's wall time is printed separately for reference. The whole
run loop (optimizer + benchmark) should stay below 10 s per 10,000 evaluations.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.synthetic import SyntheticBenchmark
from optimizers import make_optimizer
from optimizers.base import ProblemInfo

PROBLEMS: dict[str, ProblemInfo] = {
    "acc": ProblemInfo("acc", ("accuracy",), (True,), (-70.0,), (-45.0,), (1.1,)),
    "acc_a100": ProblemInfo(
        "acc_a100", ("accuracy", "throughput_a100"), (True, True), (-70.0, -2000.0), (-45.0, 0.0), (1.1, 1.1)
    ),
    "acc_a100_zcu102": ProblemInfo(
        "acc_a100_zcu102",
        ("accuracy", "throughput_a100", "latency_zcu102"),
        (True, True, False),
        (-70.0, -2000.0, 0.0),
        (-45.0, 0.0, 25.0),
        (1.1, 1.1, 1.1),
    ),
}


def objectives(bench: SyntheticBenchmark, problem: ProblemInfo, X: IntArray) -> FloatArray:
    """Internal minimisation values ``(n, m)``."""
    preds = bench.query(X, list(problem.objectives))
    cols = [
        -preds[t].value if mx else preds[t].value
        for t, mx in zip(problem.objectives, problem.maximize, strict=True)
    ]
    return np.stack(cols, axis=1)


def measure(name: str, problem: ProblemInfo, n_evals: int, batch: int, seed: int = 0) -> dict[str, float]:
    """Seconds in the optimizer (wall and CPU) and in the oracle (wall) for ``n_evals`` evaluations."""
    bench = SyntheticBenchmark()
    opt = make_optimizer(name, problem, np.random.default_rng(seed))
    warm = make_optimizer(name, problem, np.random.default_rng(seed + 1))  # imports, lazy set-up
    warm.tell(*_told(warm.ask(2), bench, problem))
    wall = cpu = oracle = 0.0
    done = 0
    while done < n_evals:
        n = min(batch, n_evals - done)
        w0, c0 = time.perf_counter(), time.process_time()
        X = opt.ask(n)
        w1, c1 = time.perf_counter(), time.process_time()
        X, F, fe = _told(X, bench, problem)
        w2, c2 = time.perf_counter(), time.process_time()
        opt.tell(X, F, fe)
        w3, c3 = time.perf_counter(), time.process_time()
        wall += (w1 - w0) + (w3 - w2)
        cpu += (c1 - c0) + (c3 - c2)
        oracle += w2 - w1
        done += n
    return {"wall": wall, "cpu": cpu, "oracle": oracle}


def _told(
    X: IntArray, bench: SyntheticBenchmark, problem: ProblemInfo
) -> tuple[IntArray, FloatArray, BoolArray]:
    return X, objectives(bench, problem, X), np.ones(X.shape[0], dtype=bool)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=10_000)
    parser.add_argument("--batches", default="1,10,100")
    parser.add_argument("--optimizers", default="rs,re,nsga2")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    header = ("optimizer", "problem", "batch", "us/eval wall", "us/eval cpu", "oracle us/eval", "loop s")
    print(f"{header[0]:<10}{header[1]:<17}{header[2]:>6}" + "".join(f"{h:>16}" for h in header[3:]))
    for name in args.optimizers.split(","):
        for pname in args.problems.split(","):
            for batch in batches:
                t = measure(name, PROBLEMS[pname], args.evals, batch)
                per = {k: 1e6 * v / args.evals for k, v in t.items()}
                print(
                    f"{name:<10}{pname:<17}{batch:>6}{per['wall']:>16.1f}{per['cpu']:>16.1f}"
                    f"{per['oracle']:>16.1f}{t['wall'] + t['oracle']:>16.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
