"""Issue 16's verdict from a comparison report: at each budget and problem, nasopt's best optimizer against
every peer (Holm-corrected rank-sum tests over the peers of that problem and budget).

    nasopt search -m experiment=peers_comparison
    nasopt report multirun/peers_comparison --checkpoints 100,300,1500,5000 --out report/peers --no-figures
    python experiments/checks/peers_verdict.py report/peers/tables/runs.csv [--budgets 100,300,1500,5000]

A run that stopped before a budget (e.g. a BO run of 300 evaluations in a 1,500 column) counts with its
hypervolume at its end, marked ``>=``: a run's hypervolume never falls as evaluations are added (its
archive only grows) and the first evaluations of a longer run are the shorter run (no optimizer here knows
its budget), so that value is a lower bound of what the run would reach; a win with lower bounds is a win.
Runs of the same problem, optimizer and seed in several directories (a 300- and a 1,500-evaluation BO
run) count once, as the longest: the shorter one is its prefix. Prints a Markdown table; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from nasopt.stats import holm, rank_sum

#: nasopt's own optimizers; every other optimizer in the report is a peer
NASOPT = ("bo", "bo_nsga2", "nsga2", "re", "rs", "reinforce", "auto")


def values_at(runs: pd.DataFrame, budget: int) -> tuple[np.ndarray, bool]:
    """HV of each run at ``budget`` evaluations ``(n,)``, and whether any is a lower bound (the run's end)."""
    col = f"hv_{budget}"
    have = runs[col].to_numpy(dtype=float) if col in runs else np.full(len(runs), np.nan)
    short = np.isnan(have) & (runs["n_evals"].to_numpy() < budget)
    out = np.where(short, runs["hv_end"].to_numpy(dtype=float), have)
    return out[np.isfinite(out)], bool(short.any())


def verdict(runs: pd.DataFrame, budgets: list[int], alpha: float) -> pd.DataFrame:
    rows = []
    for problem, prob_runs in runs.groupby("problem"):
        for b in budgets:
            groups = {str(name): values_at(g, b) for name, g in prob_runs.groupby("optimizer")}
            groups = {k: v for k, v in groups.items() if v[0].size}
            own = {k: v for k, v in groups.items() if k in NASOPT}
            peers = {k: v for k, v in groups.items() if k not in NASOPT}
            # a budget only the fast optimizers reach (their longer runs) is left out unless a peer reached it
            reached = {k: v for k, v in peers.items() if not v[1]}
            if not own or not reached:
                continue
            best = max(own, key=lambda k: np.median(own[k][0]))
            a, bound = own[best]
            tests = {k: rank_sum(a, v[0]) for k, v in peers.items()}
            p = holm(np.array([t.p for t in tests.values()]))
            peer_best = max(peers, key=lambda k: np.median(peers[k][0]))
            ahead = all(np.median(a) > np.median(v[0]) for v in peers.values())
            rows.append(
                {
                    "problem": str(problem),
                    "budget": b,
                    "nasopt best": f"{best} {'>=' if bound else ''}{np.median(a):.3f} (n={a.size})",
                    "best peer": f"{peer_best} {np.median(peers[peer_best][0]):.3f} (n={peers[peer_best][0].size})",
                    "max p (Holm) over peers": float(np.max(p)),
                    "verdict": (
                        "ahead of every peer, significant" if ahead and np.max(p) < alpha
                        else "ahead of every peer (not all significant)" if ahead
                        else "behind a peer"
                    ),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_csv")
    ap.add_argument("--budgets", default="100,300,1500,5000")
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args(argv)
    runs = pd.read_csv(args.runs_csv)
    runs = runs.sort_values("n_evals").drop_duplicates(["problem", "optimizer", "seed"], keep="last")
    table = verdict(runs, [int(b) for b in args.budgets.split(",")], args.alpha)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        cells = [f"{v:.2g}" if isinstance(v, float) else str(v) for v in r]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
