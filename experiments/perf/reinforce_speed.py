"""REINFORCE speed: milliseconds per ask(n) + tell step, and a 1,500-evaluation run through the runner.

Run: ``python experiments/perf/reinforce_speed.py [--threads 1] [--batches 1,6,32,128] [--evals 1500]``

Part 1 times only the optimizer's calls (``ask(n)`` then ``tell``) on the synthetic oracle, as wall-clock and
process CPU time per step and per evaluation. Part 2 runs ``nasopt.runner.search`` (in memory, batch 1, the
paper's one architecture per policy step) for ``--evals`` evaluations end to end; the target is <= 60 s for
1,500 on the 2-core development machine.

``--threads N`` calls ``torch.set_num_threads(N)`` first (library code never does). The controller's
tensors are tiny, so on a shared machine one thread is much faster than torch's default of one per core:
every multi-threaded op waits for a thread the OS has descheduled. The load average is printed for context.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from benchmark._typing import FloatArray, IntArray
from benchmark.synthetic import SyntheticBenchmark
from optimizers.base import ProblemInfo
from optimizers.reinforce import Reinforce

PROBLEM = ProblemInfo(
    "acc_a100", ("accuracy", "throughput_a100"), (True, True), (-70.0, -32000.0), (-50.0, -4000.0), (1.0, 1.0)
)


def objectives(bench: SyntheticBenchmark, X: IntArray) -> FloatArray:
    """Internal minimisation values ``(n, 2)`` of ``X`` on the synthetic oracle."""
    pred = bench.query(X, ["accuracy", "throughput_a100"])
    return np.stack([-pred["accuracy"].mean, -pred["throughput_a100"].mean], axis=1)


def step_times(batch: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """Median wall and mean CPU seconds of one ``ask(batch)`` + ``tell`` step (after 5 warm-up steps)."""
    bench = SyntheticBenchmark()
    opt = Reinforce(PROBLEM, np.random.default_rng(seed))
    walls: list[float] = []
    cpu = 0.0
    for i in range(steps + 5):
        w0, c0 = time.perf_counter(), time.process_time()
        X = opt.ask(batch)
        w1, c1 = time.perf_counter(), time.process_time()
        F = objectives(bench, X)
        w2, c2 = time.perf_counter(), time.process_time()
        opt.tell(X, F)
        w3, c3 = time.perf_counter(), time.process_time()
        if i >= 5:
            walls.append((w1 - w0) + (w3 - w2))
            cpu += (c1 - c0) + (c3 - c2)
    return float(np.median(walls)), cpu / steps


def runner_seconds(problem: str, n_evals: int, seed: int = 0) -> float:
    """Wall seconds of a whole in-memory runner search with REINFORCE at batch size 1."""
    from nasopt.runner import search

    t0 = time.perf_counter()
    result = search(
        problem,
        "reinforce",
        budget=n_evals,
        seed=seed,
        bench=SyntheticBenchmark(),
        batch_size=1,
        progress=False,
    )
    elapsed = time.perf_counter() - t0
    assert len(result.trials) == n_evals, len(result.trials)
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) first")
    parser.add_argument("--batches", default="1,6,32,128", help="comma-separated ask sizes")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per batch size")
    parser.add_argument("--evals", type=int, default=1500, help="evaluations of the runner search")
    parser.add_argument("--problems", default="acc,acc_a100", help="runner problems (nasopt.problems)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
        f"load average {os.getloadavg()}"
    )

    print(f"\n{'batch':>6} {'ms/step wall':>13} {'ms/step CPU':>12} {'ms/eval wall':>13}")
    for b in (int(x) for x in args.batches.split(",")):
        steps = max(10, args.steps // max(1, b // 8))
        wall, cpu = step_times(b, steps)
        print(f"{b:>6} {wall * 1e3:>13.2f} {cpu * 1e3:>12.2f} {wall * 1e3 / b:>13.3f}")

    print(f"\nrunner: {args.evals} evaluations, batch 1 (target <= 60 s)")
    for name in args.problems.split(","):
        print(f"  {name:<12} {runner_seconds(name, args.evals):7.1f} s")


if __name__ == "__main__":
    main()
