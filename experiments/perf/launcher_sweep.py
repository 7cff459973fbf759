"""The same sweep on joblib, submitit's local executor and a local Ray cluster: identical trial tables, and
the launchers' overhead per job. Prints; asserts nothing (exit 1 if a table differs).

    python experiments/perf/launcher_sweep.py OUT_DIR [--seeds 5] [--evals 20] [--n-jobs 2] [--launchers joblib,submitit_local,ray]

The sweep: rs, re x 5 problems x ``--seeds`` seeds (50 jobs by default), ``experiment=smoke`` (the synthetic
oracle) with ``--evals`` evaluations each, ``hydra.launcher.n_jobs`` at once. For each launcher: the sweep's wall
seconds, and its overhead per job = (wall x n_jobs - the runs' own wall seconds) / jobs, i.e. what a job costs
beyond its search (process or task start, Hydra's job set-up, the oracle's construction; Ray's and submitit's
start-up spread over the jobs). For Ray also the round trip of an empty task on a local cluster
(``nasopt.engines.Engine``), which is the engine's own share.
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


def sweep(launcher: str, out: Path, seeds: int, evals: int, n_jobs: int) -> float:
    args = [
        sys.executable,
        "-m",
        "experiments.cli",
        "search",
        "-m",
        "experiment=smoke",
        f"optimizer={','.join(OPTIMIZERS)}",
        f"problem={','.join(PROBLEMS)}",
        f"seed=range({seeds})",
        f"budget.max_evals={evals}",
        "print_summary=false",
        f"hydra/launcher={launcher}",
        f"hydra.launcher.n_jobs={n_jobs}",
        f"hydra.sweep.dir={out}",
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
    a = p.parse_args()
    if a.round_trip_only:
        start, per_task = ray_round_trip()
        print(f"ray local cluster: start {start:.1f} s, empty-task round trip {per_task * 1000:.1f} ms")
        return 0
    launchers = a.launchers.split(",")
    if launchers[0] != "joblib":
        launchers.insert(0, "joblib")
    n_jobs = len(PROBLEMS) * len(OPTIMIZERS) * a.seeds
    print(
        f"{n_jobs} jobs ({len(OPTIMIZERS)} optimizers x {len(PROBLEMS)} problems x {a.seeds} seeds), "
        f"{a.evals} evaluations each, n_jobs={a.n_jobs}"
    )
    print(f"{'launcher':<16}{'sweep s':>9}{'runs s':>9}{'overhead/job s':>16}  tables vs joblib")
    failed = 0
    for launcher in launchers:
        out = a.out / launcher
        wall = sweep(launcher, out, a.seeds, a.evals, a.n_jobs)
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
