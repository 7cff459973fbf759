"""``nasopt fronts``: compute (or reuse) the cached reference Pareto fronts of named problems.

    nasopt fronts                                # every named problem, surrogate benchmark
    nasopt fronts --problems acc_a100,acc_zcu102_latency --force
    nasopt fronts --benchmark synthetic          # the analytic test oracle (fast; not Accel-NASBench)

A front is the non-dominated set of the union of: the Pareto sets of long optimizer runs
(``nasopt.runner.search``: ``--optimizers`` x ``--optimizer-seeds`` runs of ``--optimizer-evals``
evaluations),
the Pareto sets of any existing runs given with ``--runs`` on the same benchmark, a random sample and a Pareto
local search on the oracle (see :mod:`nasopt.fronts`). It is cached per problem and benchmark digest in
``<cache>/fronts/`` with its provenance and recomputed whenever the benchmark (or its dataset) changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import IntArray
from benchmark.errors import NasoptError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt fronts",
        description="Compute reference Pareto fronts of named problems and cache them with their provenance.",
    )
    ap.add_argument("--problems", default="all", help="comma-separated problem names, or 'all' (default)")
    ap.add_argument(
        "--benchmark",
        choices=("surrogate", "synthetic"),
        default="surrogate",
        help="surrogate: the Accel-NASBench surrogate (benchmark.load_benchmark); synthetic: the analytic "
        "test oracle",
    )
    ap.add_argument("--cache-dir", type=Path, default=None, help="cache directory (default: the user cache)")
    ap.add_argument("--force", action="store_true", help="recompute even if a matching front is cached")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random sample (default 0)")
    ap.add_argument(
        "--n-random", type=int, default=20_000, help="uniform random architectures (default 20000)"
    )
    ap.add_argument(
        "--max-evals",
        type=int,
        default=400_000,
        help="evaluation budget of the local search (default 400000)",
    )
    ap.add_argument("--optimizers", default="nsga2,re", help="optimizers for the long runs ('' for none)")
    ap.add_argument(
        "--optimizer-evals", type=int, default=3000, help="evaluations per long run (default 3000)"
    )
    ap.add_argument("--optimizer-seeds", type=int, default=2, help="long runs per optimizer (default 2)")
    ap.add_argument("--runs", nargs="*", type=Path, default=[], help="existing run directories to include")
    ap.add_argument(
        "--objectives",
        help="a custom problem's objectives, comma-separated (e.g. accuracy,latency_my_cpu for a user "
        "device); --problems then names it (one name, as the runs' problem.name)",
    )
    ap.add_argument(
        "--constraint",
        action="append",
        default=[],
        help="a custom problem's constraint, e.g. 'latency_my_cpu <= 5' (repeatable; with --objectives)",
    )
    ap.add_argument("--list", action="store_true", help="only list the cached fronts and exit")
    return ap


def _dataset_digest(oracle: Any) -> str | None:
    for attr in ("dataset_digest", "dataset_sha256"):
        value = getattr(oracle, attr, None)
        if isinstance(value, str) and value:
            return value
    ds = getattr(oracle, "dataset", None)
    value = getattr(ds, "sha256", None)
    return value if isinstance(value, str) and value else None


def _pareto_archs(summary: dict[str, Any]) -> IntArray:
    archs = [str(p["arch"]) for p in summary.get("pareto_set", []) if "arch" in p]
    return space.from_strings(archs) if archs else np.zeros((0, space.N_GENES), dtype=np.int64)


def _runs_seeds(dirs: Sequence[Path], problem: str, digest: str) -> tuple[list[IntArray], int]:
    from nasopt.rundir import find_runs, read_summary

    out: list[IntArray] = []
    if not dirs:
        return out, 0
    for d in find_runs(dirs):
        summary = read_summary(d)
        if summary.get("problem") == problem and summary.get("benchmark_digest") == digest:
            out.append(_pareto_archs(summary))
    return out, len(out)


def _list(cache: Path | None) -> int:
    from nasopt.fronts import FRONTS_SUBDIR, cache_dir

    root = (cache if cache is not None else cache_dir()) / FRONTS_SUBDIR
    files = sorted(root.glob("*.json")) if root.is_dir() else []
    if not files:
        print(f"no cached fronts in {root}")
        return 0
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        prov = data.get("provenance", {})
        print(
            f"{data.get('problem')}: {len(data.get('points', []))} points, benchmark "
            f"{prov.get('benchmark_digest')}, dataset {prov.get('dataset_digest')}, "
            f"created {prov.get('created')}"
            f"  ({f})"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nasopt fronts``; returns the exit code (0 ok, 2 bad arguments, 1 failures)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.list:
        return _list(args.cache_dir)
    from nasopt import fronts
    from nasopt.problems import PROBLEMS, Problem, ProblemError, get_problem, make_problem

    names = (
        list(PROBLEMS)
        if args.problems.strip() in ("", "all")
        else [p for p in args.problems.replace(" ", "").split(",") if p]
    )
    custom: dict[str, Problem] = {}
    if args.objectives is not None:
        if len(names) != 1 or args.problems.strip() in ("", "all"):
            print(
                "nasopt fronts: --objectives defines one custom problem; name it with --problems NAME "
                "(the runs' problem.name)",
                file=sys.stderr,
            )
            return 2
        try:
            objectives = [o for o in args.objectives.replace(" ", "").split(",") if o]
            custom[names[0]] = make_problem(names[0], objectives, list(args.constraint))
        except ProblemError as exc:
            print(f"nasopt fronts: {exc}", file=sys.stderr)
            return 2
    elif args.constraint:
        print("nasopt fronts: --constraint needs --objectives (a custom problem)", file=sys.stderr)
        return 2
    unknown = [n for n in names if n not in PROBLEMS and n not in custom]
    if unknown:
        print(
            f"nasopt fronts: unknown problem(s) {unknown}; named problems: {', '.join(PROBLEMS)} "
            "(a custom one: --problems NAME --objectives a,b)",
            file=sys.stderr,
        )
        return 2
    for flag in ("n_random", "max_evals", "optimizer_evals", "optimizer_seeds"):
        if getattr(args, flag) < 0:
            print(f"nasopt fronts: --{flag.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    try:
        from benchmark import make_benchmark

        oracle = make_benchmark(args.benchmark)
    except Exception as exc:  # the surrogate may be missing: say how to get it
        print(
            f"nasopt fronts: cannot load the {args.benchmark} benchmark: {exc}\n"
            "(for the analytic test oracle: nasopt fronts --benchmark synthetic)",
            file=sys.stderr,
        )
        return 1
    oracle_digest = str(oracle.digest)
    data_digest = _dataset_digest(oracle)
    optimizers = [o for o in args.optimizers.replace(" ", "").split(",") if o]
    failures = 0
    for name in names:
        problem = custom[name] if name in custom else get_problem(name)
        info = problem.info
        try:  # user-device targets: the front belongs to their surrogates too
            digest = fronts.front_digest(oracle_digest, info)
        except NasoptError as exc:
            print(f"{name}: failed: {exc}", file=sys.stderr)
            failures += 1
            continue
        if not args.force:
            cached = fronts.load_reference_front(
                name, digest, dataset_digest=data_digest, cache=args.cache_dir
            )
            if cached is not None:
                print(
                    f"{name}: up to date ({len(cached.values)} points, benchmark {digest}) "
                    f"{fronts.front_path(name, digest, args.cache_dir)}"
                )
                continue
        t0 = time.perf_counter()
        seeds: list[IntArray] = []
        sources: list[str] = []
        if optimizers and args.optimizer_evals > 0:
            from nasopt.runner import search

            for opt in optimizers:
                for s in range(args.optimizer_seeds):
                    try:
                        res = search(
                            problem, opt, budget=args.optimizer_evals, seed=s, bench=oracle, progress=False
                        )
                    except Exception as exc:  # an optimizer with a missing optional dependency, say
                        print(f"{name}: optimizer {opt} seed {s} skipped: {exc}", file=sys.stderr)
                        continue
                    seeds.append(_pareto_archs(res.summary))
                    sources.append(f"{opt} seed {s} ({args.optimizer_evals} evals)")
        run_seeds, n_runs = _runs_seeds(args.runs, name, digest)
        seeds += run_seeds
        if n_runs:
            sources.append(f"{n_runs} existing run(s)")
        try:
            front, _ = fronts.ensure_reference_front(
                info,
                fronts.problem_evaluator(problem, oracle),
                benchmark_digest=digest,
                dataset_digest=data_digest,
                cache=args.cache_dir,
                force=True,
                seed=args.seed,
                seeds=seeds,
                seed_sources=sources,
                n_random=args.n_random,
                max_evals=args.max_evals,
            )
        except Exception as exc:
            print(f"{name}: failed: {exc}", file=sys.stderr)
            failures += 1
            continue
        hv = fronts.front_hypervolume(front, info)
        print(
            f"{name}: {len(front.values)} points, HV {hv:.4f}, "
            f"{front.provenance['n_evaluated']} architectures "
            f"evaluated in {time.perf_counter() - t0:.1f} s -> "
            f"{fronts.front_path(name, digest, args.cache_dir)}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
