"""Same-seed sweep: run it with two versions of nasopt and compare the trial tables (refactoring check).

    python experiments/checks/same_seed_sweep.py run OUT_DIR        # rs, re, nsga2, reinforce, bo x 2 problems x 2 seeds
    python experiments/checks/same_seed_sweep.py compare DIR_A DIR_B

``compare`` prints one line per run and exits 1 if any trial table (wall-clock columns aside) or summary (times,
versions and the run-directory format version aside) differs. Uses the real surrogate (``NASOPT_DATASET``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

BUDGETS = {"rs": 300, "re": 200, "nsga2": 300, "reinforce": 150, "bo": 44}
PROBLEMS = ("acc_a100", "acc_zcu102_latency")
SEEDS = (0, 1)
WALL_CLOCK = {"wall_time_s", "optimizer_time_s"}
SUMMARY_SKIP = {"wall_time_s", "optimizer_time_s", "versions", "format_version"}


def run(out: Path) -> None:
    import nasopt

    for problem in PROBLEMS:
        for optimizer, budget in BUDGETS.items():
            for seed in SEEDS:
                r = nasopt.search(
                    problem,
                    optimizer,
                    budget=budget,
                    seed=seed,
                    run_dir=out / problem / optimizer / f"seed{seed}",
                )
                print(problem, optimizer, seed, r.summary["hypervolume"], flush=True)


def compare(a: Path, b: Path) -> int:
    n = bad = 0
    for ta in sorted(a.rglob("trials.parquet")):
        rel = ta.relative_to(a)
        n += 1
        da, db = pd.read_parquet(ta), pd.read_parquet(b / rel)
        ca = [c for c in da.columns if c not in WALL_CLOCK]
        if ca != [c for c in db.columns if c not in WALL_CLOCK]:
            print("COLUMNS DIFFER", rel.parent)
            bad += 1
            continue
        try:
            pd.testing.assert_frame_equal(da[ca], db[ca], check_exact=True)
        except AssertionError as exc:
            print("TABLE DIFFERS", rel.parent, str(exc)[:200])
            bad += 1
            continue
        sa = json.loads((ta.parent / "summary.json").read_text())
        sb = json.loads((b / rel.parent / "summary.json").read_text())
        diff = sorted(k for k in set(sa) | set(sb) if k not in SUMMARY_SKIP and sa.get(k) != sb.get(k))
        if diff:
            print("SUMMARY DIFFERS", rel.parent, diff)
            bad += 1
        else:
            print("identical", rel.parent, len(da), "rows, hv", sa["hypervolume"])
    print(f"{n} runs compared, {bad} differ")
    return 1 if bad or not n else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        run(Path(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
