"""Asynchronous vs synchronous evaluation in simulated time (``workers=k`` vs ``batch_size=k``): the pool's
simulated elapsed seconds for the same number of evaluations, and the hypervolume reached. Prints only.

    python experiments/perf/async_gain.py [--evals 400] [--workers 2,4,8,16] [--optimizers rs,re,nsga2] [--surrogate]

A synchronous batch of k on k workers takes as long as its slowest evaluation; the asynchronous pool starts the
next proposal as soon as any worker is free. The lower bound of any schedule is sum(cost) / k.
"""

from __future__ import annotations

import argparse
import time

from nasopt.runner import Runner


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--evals", type=int, default=400)
    p.add_argument("--workers", default="2,4,8,16")
    p.add_argument("--optimizers", default="rs,re,nsga2")
    p.add_argument("--problem", default="acc_a100")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--surrogate", action="store_true", help="the real surrogate (else the synthetic oracle)")
    a = p.parse_args()
    if a.surrogate:
        from benchmark import make_benchmark

        bench = make_benchmark("surrogate")
    else:
        from benchmark.synthetic import SyntheticBenchmark

        bench = SyntheticBenchmark()
    print(f"{a.problem}, {a.evals} evaluations, seed {a.seed}, {type(bench).__name__}; simulated hours")
    print(
        f"{'optimizer':<10}{'k':>4}{'sync':>10}{'async':>10}{'bound':>10}{'gain':>8}{'HV sync':>10}{'HV async':>10}"
    )
    for opt in a.optimizers.split(","):
        for k in (int(w) for w in a.workers.split(",")):
            t = time.perf_counter()
            common = dict(seed=a.seed, progress=False)
            s = Runner(a.problem, opt, bench, a.evals, None, batch_size=k, **common).run()
            r = Runner(a.problem, opt, bench, a.evals, None, workers=k, **common).run()
            sync_clock = float(s.trials.groupby("batch_index")["cost_s"].max().sum())
            async_clock = float(r.summary["sim_clock_s"])
            bound = float(r.trials["cost_s"].sum()) / k
            print(
                f"{opt:<10}{k:>4}{sync_clock / 3600:>10.2f}{async_clock / 3600:>10.2f}{bound / 3600:>10.2f}"
                f"{sync_clock / async_clock:>7.2f}x{s.summary['hypervolume']:>10.4f}"
                f"{r.summary['hypervolume']:>10.4f}   ({time.perf_counter() - t:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
