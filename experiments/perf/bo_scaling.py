"""BO on long runs: optimizer time and hypervolume along one run (the scaled mode of optimizers/bo).

Run (from the repository root)::

    python experiments/perf/bo_scaling.py --evals 1500                 # default settings
    python experiments/perf/bo_scaling.py --evals 800 --params '{"scale_above": 100000}'   # scaled mode off
    python experiments/perf/bo_scaling.py --problem acc_a100_zcu102_latency --evals 500 \\
        --params '{"scale_above": 200}' --branch '{"scaled_batch": "nehvi"}' '{"scaled_batch": "parego"}'

Prints, every ``--every`` evaluations, the cumulative optimizer wall and CPU seconds (ask + tell, the oracle
excluded), the slowest ask so far, the CPU seconds of the last ask and the quality of everything evaluated:
the hypervolume (fixed normalisation and reference point of the problem) of the feasible rows, or for one
objective the best feasible value (natural units). Constrained problems tell the oracle's feasibility.

``--branch`` compares settings at equal budget without repeating the common start: the run goes to
``scale_above`` observations once (every setting behaves identically up to there), then each JSON of
attribute overrides continues from its own copy of that optimizer (same generator state) to ``--evals``.

Synthetic oracle by default (``--oracle surrogate`` for the Accel-NASBench surrogate, found like the program
finds it). Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import numpy as np
import torch

from benchmark._typing import BoolArray, FloatArray, IntArray
from optimizers.bo import BayesianOptimization
from optimizers.indicators import hypervolume


class Tracker:
    """Optimizer time and everything evaluated along one run."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.wall = self.cpu = self.worst = self.last_cpu = 0.0
        self.F: list[FloatArray] = []
        self.fe: list[BoolArray] = []

    def copy(self, label: str) -> Tracker:
        out = copy.deepcopy(self)
        out.label = label
        return out


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
    p.add_argument("--branch", nargs="*", default=[], help="JSON attribute overrides compared from scale_above")
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

    def evaluate(X: IntArray) -> tuple[FloatArray, BoolArray]:
        preds = bench.query(X, list(problem.query_targets))
        cols = [-preds[t].value if mx else preds[t].value for t, mx in zip(info.objectives, info.maximize, strict=True)]
        fe = problem.feasible({k: v.value for k, v in preds.items()}, X.shape[0])
        return np.stack(cols, axis=1).astype(np.float64), np.asarray(fe, dtype=bool)

    def quality(t: Tracker) -> float:
        F, fe = np.concatenate(t.F), np.concatenate(t.fe)
        if not fe.any():
            return float("nan")
        if info.n_obj > 1:
            return float(hypervolume(info.normalize(F[fe]), info.ref_point))
        return float(-F[fe, 0].min() if info.maximize[0] else F[fe, 0].min())

    def step(opt: BayesianOptimization, t: Tracker, n: int) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        X = opt.ask(n)
        w1, c1 = time.perf_counter(), time.process_time()
        F, fe = evaluate(X)
        w2, c2 = time.perf_counter(), time.process_time()
        opt.tell(X, F, fe)
        w3, c3 = time.perf_counter(), time.process_time()
        t.wall += (w1 - w0) + (w3 - w2)
        t.cpu += (c1 - c0) + (c3 - c2)
        t.worst = max(t.worst, w1 - w0)
        t.last_cpu = c1 - c0
        t.F.append(F)
        t.fe.append(fe)

    def run_to(opt: BayesianOptimization, t: Tracker, done: int, stop: int, next_print: int) -> int:
        while done < stop:
            step(opt, t, min(args.q, stop - done))
            done = sum(f.shape[0] for f in t.F)
            if done >= next_print or done == args.evals:
                while next_print <= done:
                    next_print += args.every
                print(f"{t.label:>10} {done:>6} {t.wall:>10.1f} {t.cpu:>9.1f} {t.worst:>11.2f} {t.last_cpu:>12.2f} "
                      f"{quality(t):>8.4f}", flush=True)
        return next_print

    opt = BayesianOptimization(info, np.random.default_rng(args.seed), q=args.q, **json.loads(args.params))
    print(f"# {args.problem}, {args.evals} evaluations, q = {args.q}, threads = {args.threads}, seed {args.seed}, "
          f"params {args.params}, oracle {args.oracle}")
    print(f"{'run':>10} {'evals':>6} {'opt_wall_s':>10} {'opt_cpu_s':>9} {'worst_ask_s':>11} {'last_ask_cpu':>12} "
          f"{'quality':>8}")
    base = Tracker("common" if args.branch else "run")
    stop = min(args.evals, opt.scale_above) if args.branch else args.evals
    next_print = run_to(opt, base, 0, stop, args.every)
    for i, js in enumerate(args.branch):
        branch = copy.deepcopy(opt)
        for k, v in json.loads(js).items():
            setattr(branch, k, v)
        t = base.copy(f"branch{i}")
        print(f"# branch{i}: {js}")
        run_to(branch, t, stop, args.evals, next_print)


if __name__ == "__main__":
    main()
