"""BO on long runs: optimizer time and hypervolume along one run (the scaled mode of optimizers/bo).

Run (from the repository root)::

    python experiments/perf/bo_scaling.py --evals 1500                 # default settings
    python experiments/perf/bo_scaling.py --evals 800 --params '{"scale_above": 100000}'   # scaled mode off

Prints, every ``--every`` evaluations, the cumulative optimizer wall and CPU seconds (ask + tell, the oracle
excluded), the slowest ask so far, the CPU seconds of the last ask and the hypervolume (fixed normalisation
and reference point of the problem) of everything evaluated. Synthetic oracle by default (``--oracle
surrogate`` for the Accel-NASBench surrogate, found like the program finds it). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from benchmark._typing import FloatArray, IntArray
from optimizers.bo import BayesianOptimization
from optimizers.indicators import hypervolume


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="acc_a100")
    p.add_argument("--evals", type=int, default=1500)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--q", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--oracle", choices=["synthetic", "surrogate"], default="synthetic")
    p.add_argument("--params", default="{}", help="JSON of BayesianOptimization keywords")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from nasopt.problems import get_problem

    problem = get_problem(args.problem)
    info = problem.info
    if args.oracle == "synthetic":
        from benchmark.synthetic import SyntheticBenchmark

        bench: Any = SyntheticBenchmark()
    else:
        from benchmark.oracle import load_benchmark

        bench = load_benchmark()

    def objectives(X: IntArray) -> FloatArray:
        preds = bench.query(X, list(info.objectives))
        cols = [
            -preds[t].value if mx else preds[t].value
            for t, mx in zip(info.objectives, info.maximize, strict=True)
        ]
        return np.stack(cols, axis=1).astype(np.float64)

    opt = BayesianOptimization(info, np.random.default_rng(args.seed), q=args.q, **json.loads(args.params))
    print(
        f"# {args.problem}, {args.evals} evaluations, q = {args.q}, threads = {args.threads}, params {args.params}"
    )
    print(
        f"{'evals':>6} {'opt_wall_s':>10} {'opt_cpu_s':>9} {'worst_ask_s':>11} {'last_ask_cpu':>12} {'hv':>7}"
    )
    done, wall, cpu, worst, last_cpu, next_print = 0, 0.0, 0.0, 0.0, 0.0, args.every
    Fs: list[FloatArray] = []
    while done < args.evals:
        n = min(args.q, args.evals - done)
        w0, c0 = time.perf_counter(), time.process_time()
        X = opt.ask(n)
        w1, c1 = time.perf_counter(), time.process_time()
        F = objectives(X)
        w2, c2 = time.perf_counter(), time.process_time()
        opt.tell(X, F)
        w3, c3 = time.perf_counter(), time.process_time()
        wall += (w1 - w0) + (w3 - w2)
        cpu += (c1 - c0) + (c3 - c2)
        worst = max(worst, w1 - w0)
        last_cpu = c1 - c0
        Fs.append(F)
        done += n
        if done >= next_print or done == args.evals:
            next_print += args.every
            allF = np.concatenate(Fs)
            hv = (
                hypervolume(info.normalize(allF), info.ref_point)
                if info.n_obj > 1
                else float(-allF[:, 0].min())
            )
            print(
                f"{done:>6} {wall:>10.1f} {cpu:>9.1f} {worst:>11.2f} {last_cpu:>12.2f} {hv:>7.4f}", flush=True
            )


if __name__ == "__main__":
    main()
