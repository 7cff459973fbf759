"""The same sweep on joblib, submitit's local executor and a local Ray cluster: identical trial tables, and
the launchers' overhead per job. Prints; asserts nothing (exit 1 if a table differs).

    python experiments/perf/launcher_sweep.py OUT_DIR [--seeds 5] [--evals 20] [--n-jobs 2] [--launchers joblib,submitit_local,ray]

The sweep: rs, re x 5 problems x ``--seeds`` seeds (50 jobs by default), ``experiment=smoke`` (the synthetic
oracle) with ``--evals`` evaluations each, ``hydra.launcher.n_jobs`` at once. For each launcher: the sweep's wall
seconds, and its overhead per job = (wall x n_jobs - the runs' own wall seconds) / jobs, i.e. what a job costs
beyond its search (process or task start, Hydra's job set-up, the oracle's construction; Ray's and submitit's
start-up spread over the jobs). For Ray also the round trip of an empty task on a local cluster
(``nasopt.engines.Engine``), which is the engine's own share. ``--ray-address`` runs the Ray sweep on a
running cluster (``ray start --head``), i.e. without the ~10-15 s of starting one (on 2 loaded cores).

Where a Ray job's time goes beyond its search (profiled in the worker, load 12 on 2 cores): Hydra composing the
job's config (``load_sweep_config``, ~0.35 s), Hydra's ``run_job`` and the task's set-up (~0.3 s), and once
per sweep the cluster's start (10-15 s), each worker's imports (2-4 s) and the shutdown (~1.5 s). On Ray the
jobs' configs are composed in the driver while a local cluster starts (those not reached by then, in the
workers), the sweep's context (Hydra context, config, task, singleton state) goes to each worker once
(``Engine.share``), not with every job, and the driver is woken by the first job to end (``ray.wait``) instead
of polling. Measured on 2 cores shared with other jobs (50 jobs, n_jobs=2, default arguments): before, 2.78 s
per job (sweep 84.2 s, load 20.5; joblib 2.99 s in the same run); after, 2.38 s (sweep 69.8 s, load 19.8;
joblib 3.24 s). On a running cluster (``--ray-address``, no start; before the config composition moved):
2.25 s before, 1.79-2.06 s after (load 16-18).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
PROBLEMS = ("acc_a100", "acc_3090", "acc_zcu102_latency", "acc_vck190_latency", "acc_tpuv3")
OPTIMIZERS = ("rs", "re")


def sweep(launcher: str, out: Path, seeds: int, evals: int, n_jobs: int, extra: tuple[str, ...] = ()) -> float:
    args = [
        sys.executable, "-m", "experiments.cli", "search", "-m", "experiment=smoke",
        f"optimizer={','.join(OPTIMIZERS)}", f"problem={','.join(PROBLEMS)}", f"seed=range({seeds})",
        f"budget.max_evals={evals}", "print_summary=false", f"hydra/launcher={launcher}",
        f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={out}", *extra,
    ]
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
        raise SystemExit(f"{launcher}: the sweep exited {proc.returncode}")
    return wall


def runs(out: Path) -> dict[str, Path]:
    return {str(p.parent.relative_to(out)): p.parent for p in sorted(out.rglob("trials.parquet"))}


def compare(ref: Path, other: Path) -> tuple[int, int]:
    from nasopt.rundir import read_run

    a, b = runs(ref), runs(other)
    bad = 0
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            print(f"  missing run {key} in {'joblib' if key not in a else other.name}")
            bad += 1
            continue
        try:
            pd.testing.assert_frame_equal(
                read_run(a[key]).comparable_trials(), read_run(b[key]).comparable_trials(), check_exact=True
            )
        except AssertionError as exc:
            print(f"  TABLE DIFFERS {key}: {str(exc)[:200]}")
            bad += 1
    return len(a), bad


def own_seconds(out: Path) -> float:
    return sum(json.loads((d / "summary.json").read_text())["wall_time_s"] for d in runs(out).values())


def _noop(i: int) -> int:
    return i


def ray_round_trip(n: int = 50) -> tuple[float, float]:
    """Seconds to start a one-CPU local cluster, and the mean round trip of an empty task on it."""
    from nasopt.engines import Engine

    t = time.perf_counter()
    with Engine("ray", num_cpus=1) as eng:
        start = time.perf_counter() - t
        eng.submit(_noop, 0).result()  # the first task starts a worker
        t = time.perf_counter()
        for i in range(n):
            eng.submit(_noop, i).result()
        per_task = (time.perf_counter() - t) / n
    return start, per_task


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--launchers", default="joblib,submitit_local,ray")
    p.add_argument("--round-trip-only", action="store_true", help="only Ray's empty-task round trip")
    p.add_argument("--ray-address", default=None,
                   help="the Ray launcher joins this running cluster (hydra.launcher.address) instead of starting "
                        "a local one for the sweep: the overhead without the cluster's start")
    a = p.parse_args()
    if a.round_trip_only:
        start, per_task = ray_round_trip()
        print(f"ray local cluster: start {start:.1f} s, empty-task round trip {per_task * 1000:.1f} ms")
        return 0
    launchers = a.launchers.split(",")
    if launchers[0] != "joblib":
        launchers.insert(0, "joblib")
    n_jobs = len(PROBLEMS) * len(OPTIMIZERS) * a.seeds
    print(f"{n_jobs} jobs ({len(OPTIMIZERS)} optimizers x {len(PROBLEMS)} problems x {a.seeds} seeds), "
          f"{a.evals} evaluations each, n_jobs={a.n_jobs}")
    print(f"{'launcher':<16}{'sweep s':>9}{'runs s':>9}{'overhead/job s':>16}  tables vs joblib")
    failed = 0
    for launcher in launchers:
        out = a.out / launcher
        extra = (f"hydra.launcher.address={a.ray_address}",) if launcher == "ray" and a.ray_address else ()
        wall = sweep(launcher, out, a.seeds, a.evals, a.n_jobs, extra)
        own = own_seconds(out)
        overhead = (wall * a.n_jobs - own) / n_jobs
        if launcher == "joblib":
            verdict = "(reference)"
        else:
            n, bad = compare(a.out / "joblib", out)
            failed += bad
            verdict = f"{n - bad}/{n} identical"
        print(f"{launcher:<16}{wall:>9.1f}{own:>9.1f}{overhead:>16.2f}  {verdict}", flush=True)
    if "ray" in launchers:
        start, per_task = ray_round_trip()
        print(f"ray local cluster: start {start:.1f} s, empty-task round trip {per_task * 1000:.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
