"""Time ``nasopt report`` on a synthetic sweep: 4 optimizers x 31 seeds x 1,500 evaluations x 2 problems.

    python experiments/perf/report_speed.py [--seeds 31] [--evals 1500] [--keep DIR]

Generates random trial tables in the run-directory format (config.yaml, trials.parquet, summary.json in a
Hydra-multirun-like layout), then times :func:`nasopt.report.build_report` over them and prints seconds.
:func:`write_synthetic_sweep` is also what the report tests use to build small sweeps.

The synthetic values are drawn in the problem's normalised space around a fixed convex trade-off curve,
closer to it for "better" optimizers and later evaluations, then mapped to natural units; they say nothing
about real architectures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import space
from nasopt import rundir
from optimizers import indicators
from optimizers.base import ProblemInfo

#: optimizer name -> skill in [0, 1] (how fast its samples approach the trade-off curve)
DEFAULT_OPTIMIZERS: dict[str, float] = {"rs": 0.0, "re": 0.6, "nsga2": 0.8, "bo": 0.5}


def synthetic_objectives(
    info: ProblemInfo, n: int, skill: float, rng: np.random.Generator, tau: float = 300.0
) -> np.ndarray:
    """Normalised minimisation values ``(n, m)``: a fixed front plus a gap that shrinks with ``skill``
    and time."""
    m = info.n_obj
    progress = 1.0 - np.exp(-np.arange(n) / tau)
    closeness = skill * progress
    gap = 0.15 * (1.0 - closeness) + rng.exponential(0.3 * (1.0 - 0.8 * closeness) + 0.01)
    if m == 1:
        return np.minimum(0.05 + gap, 1.1)[:, None]
    w = rng.dirichlet(np.ones(m), size=n)  # position on the trade-off curve
    front = 0.05 + 0.9 * (1.0 - np.sqrt(w))  # convex, inside the [0, 1] box
    direction = rng.dirichlet(np.ones(m), size=n)
    # clip so that natural values stay physical (no negative throughput)
    return np.asarray(np.minimum(front + gap[:, None] * direction * m, 1.1), dtype=np.float64)


def write_synthetic_run(
    run_dir: Path,
    info: ProblemInfo,
    optimizer: str,
    seed: int,
    n_evals: int,
    skill: float,
    rng: np.random.Generator,
    *,
    infeasible_frac: float = 0.0,
    duplicate_frac: float = 0.03,
    finished: bool = True,
    digest: str = "synthetic-v1",
) -> Path:
    """Write one run directory in the contract format (config.yaml, trials.parquet, summary.json)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    F = synthetic_objectives(info, n_evals, skill, rng)
    X = space.sample(n_evals, rng)
    dup = np.zeros(n_evals, dtype=bool)
    if n_evals > 1 and duplicate_frac > 0:
        rows = np.flatnonzero(rng.random(n_evals) < duplicate_frac)
        rows = rows[rows > 0]
        src = (rng.random(rows.size) * rows).astype(np.int64)
        for r, s in zip(rows.tolist(), src.tolist(), strict=True):  # copy an earlier evaluation
            X[r], F[r] = X[s], F[s]
        ids = space.arch_id(X)
        _, first = np.unique(ids, return_index=True)
        dup[:] = True
        dup[first] = False
    natural = info.denormalize(F)
    # feasibility is a property of the architecture: derive it from its id (duplicates agree)
    feasible = (space.arch_id(X) % 1000) / 1000.0 >= infeasible_frac
    cost = rng.uniform(1500.0, 4000.0, n_evals)
    overhead = {"rs": 1e-5, "re": 1e-4, "nsga2": 5e-4, "bo": 0.05}.get(optimizer, 1e-3)
    opt_time = np.cumsum(rng.exponential(overhead, n_evals))
    wall = opt_time + np.cumsum(rng.exponential(2e-4, n_evals))
    table: dict[str, object] = {
        "eval_index": np.arange(n_evals, dtype=np.int64),
        "batch_index": (np.arange(n_evals) // 10).astype(np.int64),
        "arch": space.to_strings(X),
    }
    for j in range(space.N_GENES):
        table[rundir.gene_column(j)] = X[:, j].astype(np.int8)
    for i, t in enumerate(info.objectives):
        table[rundir.obs_column(t)] = natural[:, i]
        table[rundir.mean_column(t)] = natural[:, i]
    table.update(
        {
            "feasible": feasible,
            "duplicate": dup,
            "sim_time_s": np.cumsum(cost),
            "wall_time_s": wall,
            "optimizer_time_s": opt_time,
        }
    )
    df = pd.DataFrame(table)
    df.to_parquet(run_dir / rundir.TRIALS_FILE, index=False)
    Fn = np.where(feasible[:, None], F, np.nan)
    front_rows = np.flatnonzero(indicators.nondominated_mask(np.where(dup[:, None], np.nan, Fn)))
    best_acc = None
    if "accuracy" in info.objectives and feasible.any():
        best_acc = float(np.max(natural[feasible, info.objectives.index("accuracy")]))
    summary = {
        "problem": info.name,
        "optimizer": optimizer,
        "seed": seed,
        "n_evals": n_evals,
        "sim_time_s": float(np.sum(cost)),
        "wall_time_s": float(wall[-1]) if n_evals else 0.0,
        "hypervolume": indicators.hypervolume(Fn, np.asarray(info.ref_point)),
        "best_feasible_accuracy": best_acc,
        "pareto_set": [
            {
                "arch": df["arch"].iloc[r],
                "eval_index": int(r),
                **{t: float(natural[r, i]) for i, t in enumerate(info.objectives)},
            }
            for r in front_rows.tolist()
        ],
        "budget": {"max_evals": n_evals},
        "finished": finished,
        "versions": {},
        "benchmark_digest": digest,
    }
    rundir.write_summary(run_dir, summary)
    rundir.write_config(
        run_dir,
        {
            "problem": {"name": info.name},
            "optimizer": {"name": optimizer},
            "seed": seed,
            "budget": {"max_evals": n_evals},
        },
    )
    return run_dir


def write_synthetic_sweep(
    root: Path,
    infos: Sequence[ProblemInfo],
    optimizers: dict[str, float],
    seeds: Sequence[int],
    n_evals: int,
    *,
    base_seed: int = 0,
) -> list[Path]:
    """A Hydra-multirun-like sweep ``root/multirun/<problem>/<job>/`` over problems x optimizers x seeds."""
    out = []
    for p, info in enumerate(infos):
        job = 0
        for o, (name, skill) in enumerate(optimizers.items()):
            for seed in seeds:
                rng = np.random.default_rng([base_seed, p, o, int(seed)])
                out.append(
                    write_synthetic_run(
                        root / "multirun" / info.name / str(job), info, name, int(seed), n_evals, skill, rng
                    )
                )
                job += 1
    return out


def default_problems() -> list[ProblemInfo]:
    """The two problems the benchmark uses: ``acc_a100`` and ``acc_zcu102_latency`` from nasopt.problems."""
    from nasopt.problems import get_problem

    return [get_problem("acc_a100").info, get_problem("acc_zcu102_latency").info]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=31)
    ap.add_argument("--evals", type=int, default=1500)
    ap.add_argument("--keep", type=Path, default=None, help="write the sweep and report here (kept)")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args(argv)
    from nasopt.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        t0 = time.perf_counter()
        infos = default_problems()
        dirs = write_synthetic_sweep(root / "sweep", infos, DEFAULT_OPTIMIZERS, range(args.seeds), args.evals)
        t1 = time.perf_counter()
        res = build_report([root / "sweep"], root / "report", figures=not args.no_figures)
        t2 = time.perf_counter()
    print(f"generated {len(dirs)} runs x {args.evals} evaluations in {t1 - t0:.1f} s")
    print(f"report: {len(res.runs)} runs, {len(res.figures)} figures, {len(res.tables)} tables")
    print(f"report_seconds {t2 - t1:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
