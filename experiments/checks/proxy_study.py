"""The miniature proxy study, for real on this CPU: a reference scheme on >= 30 architectures (a second seed
on some), then a proxy search by BO and by the paper's grid search at the same cost budget, and τ / cost of
what each found, with intervals.

    python experiments/checks/proxy_study.py reference   # train the reference (the long part; resumable)
    python experiments/checks/proxy_study.py search      # grid, then BO (each charged its own cost)
    python experiments/checks/proxy_study.py report      # print the numbers, write proxy_found.json
    python experiments/checks/proxy_study.py all

Options: ``--data /work/study/fm32 --out /work/study/proxy --workers 2 --threads 1 --budget 1.0
--max-cost 0.3 --archs 30 --second-seed 10``. Every training run is a record under ``OUT/runs`` and every
search step a file under ``OUT/<method>/``: a killed study run again continues and retrains nothing.
Data: Fashion-MNIST RGB 32 px, 10 classes x 200 train / 100 val (``python -m
nasopt.validation.train.prepare fashion-mnist DIR --size 32 --train-per-class 200 --val-per-class 100``);
networks: the quarter-width skeleton (``MNASNET.scaled(0.25)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from nasopt.proxy.analyze import analyze, format_analysis, paired_tau_difference
from nasopt.proxy.search import SearchResult, TrainingEvaluator, search, stratified_architectures
from nasopt.proxy.space import ProxySpace
from nasopt.validation.train.schemes import SMOKE

#: the reference: 4 epochs of the 2000 training images at 32 px, batch 100, SGD peak lr 0.3125
REFERENCE = SMOKE.with_overrides(
    {
        "name": "ref",
        "epochs": 4,
        "batch_size": 100,
        "lr": 0.8,
        "lr_batch": 256,
        "lr_peak_epoch": 1.0,
        "min_res": 32,
        "max_res": 32,
        "val_res": 32,
        "res_step": 8,
        "top1_best_of_last": 1,
        "checkpoint_every_steps": 1000,
    }
)
SPACE = ProxySpace(
    epochs=(1, 2, 3),
    min_res=(16, 24, 32),
    max_res=(24, 32),
    ramp=(0.5, 1.0),
    train_fraction=(0.25, 0.5, 1.0),
    batch_size=(50, 100, 200),
    lr_peak=(0.1, 0.25, 0.4),
)
SEED = 0


def evaluator(args: argparse.Namespace) -> TrainingEvaluator:
    from nasopt.validation.train.run import as_skeleton

    archs = stratified_architectures(
        args.archs, SEED, skeleton=as_skeleton(0.25), resolution=32, num_classes=10
    )
    return TrainingEvaluator(
        REFERENCE,
        args.data,
        archs,
        args.out,
        reference_seeds={0: args.archs, 1: args.second_seed},
        skeleton=0.25,
        threads=args.threads,
        workers=args.workers,
        val_share=0.15,
        step_share=0.6,
    )


def run_search(args: argparse.Namespace, method: str) -> SearchResult:
    return search(
        evaluator(args), SPACE, args.out, method=method, budget=args.budget, max_cost=args.max_cost, seed=SEED
    )


def _done_steps(out: str, method: str) -> int:
    n = 0
    for path in sorted((Path(out) / method).glob("step_*.json")):
        if json.loads(path.read_text()).get("status") != "done":
            break
        n += 1
    return n


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Print the study's numbers from the state on disk (trains nothing new) and write proxy_found.json."""
    ev = evaluator(args)
    ref = ev.reference()
    out: dict[str, Any] = {"reference": REFERENCE.to_dict(), "n_archs": len(ev.archs)}
    seed_tau = analyze(ref, ref, n_boot=10).seed_tau_reference
    n2 = int(np.isfinite(ref.top1[:, -1]).sum())
    print(
        f"reference: {len(ev.archs)} architectures ({n2} with 2 seeds); top-1 of the seed means "
        f"{np.nanmin(ref.mean_top1):.1f}-{np.nanmax(ref.mean_top1):.1f} % (mean {np.nanmean(ref.mean_top1):.1f}); "
        f"{np.nanmean(ref.train_time):.0f} s per run; seed-to-seed τ {seed_tau[0]:.3f} (on the {n2})"
    )
    out["seed_tau_reference"] = list(seed_tau)
    out["reference_s_per_run"] = float(np.nanmean(ref.train_time))
    results = {
        m: search(
            ev,
            SPACE,
            args.out,
            method=m,
            budget=args.budget,
            max_cost=args.max_cost,
            seed=SEED,
            max_steps=_done_steps(args.out, m),
        )
        for m in ("grid", "bo")
    }
    for m, r in results.items():
        print(f"\n{m}: {len(r.steps)} proxies, spent {r.spent:.3f} reference-cost units")
        for st in r.steps:
            print(
                f"  {st.index:2d} τ {st.tau:6.3f} [{st.tau_ci[0]:.3f}, {st.tau_ci[1]:.3f}]  cost {st.cost_fraction:.3f} "
                f"(a priori {st.nominal_cost:.3f}) {'ok  ' if st.feasible else 'OVER'} {json.dumps(st.settings.to_dict())}"
            )
        out[m] = r.to_dict()
    common = min(r.spent for r in results.values())
    print(f"\nat equal search cost ({common:.3f} reference-cost units, the smaller of the two spent):")
    best = {m: r.best_within(common) for m, r in results.items()}
    out["equal_cost"] = common
    for m, b in best.items():
        if b is None:
            print(f"  {m}: no proxy within the cost bound")
            continue
        prox = ev.evaluate(b.settings)
        a = analyze(ref, prox)
        print(f"  {m} best: {json.dumps(b.settings.to_dict())}")
        print("    " + format_analysis(a).replace("\n", "\n    "))
        out[f"{m}_best_equal_cost"] = {**b.to_dict(), "analysis": a.to_dict()}
    if best["grid"] is not None and best["bo"] is not None:
        d = paired_tau_difference(ref, ev.evaluate(best["bo"].settings), ev.evaluate(best["grid"].settings))
        print(
            f"  τ(BO) - τ(grid) = {d[0]:+.3f} (95 % paired bootstrap over architectures {d[1]:+.3f} to {d[2]:+.3f})"
        )
        out["tau_difference_bo_minus_grid"] = list(d)
        half = results["bo"].best_within(common / 2)
        print(
            f"  BO within half that cost ({common / 2:.3f}): "
            + (f"τ {half.tau:.3f}" if half else "no feasible proxy")
            + f"; grid's best τ {best['grid'].tau:.3f}"
        )
    found_from = [r.best for r in results.values() if r.best is not None]  # the best of everything trained
    chosen = max(found_from, key=lambda st: st.tau) if found_from else None
    if chosen is not None:
        found = {
            "scheme": chosen.settings.scheme(REFERENCE).to_dict(),
            "train_fraction": chosen.settings.train_fraction,
            "tau": chosen.tau,
            "tau_ci": list(chosen.tau_ci),
            "cost_ratio": 1.0 / chosen.cost_fraction,
            "cost_fraction": chosen.cost_fraction,
            "settings": chosen.settings.to_dict(),
            "skeleton": 0.25,
            "data": str(args.data),
            "reference": REFERENCE.to_dict(),
            "seed_tau_reference": list(seed_tau),
            "provisional": False,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        Path(args.found).write_text(json.dumps(found, indent=1) + "\n")
        print(f"\nwrote {args.found}")
    (Path(args.out) / "study.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("phase", choices=["reference", "search", "grid", "bo", "report", "all"])
    ap.add_argument("--data", default="/work/study/fm32")
    ap.add_argument("--out", default="/work/study/proxy")
    ap.add_argument("--found", default="/work/study/proxy_found.json")
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--second-seed", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--max-cost", type=float, default=0.3)
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.phase in ("reference", "all"):
        ref = evaluator(args).reference()
        print(f"reference done: {np.isfinite(ref.top1).sum()} runs, {time.time() - t0:.0f} s", flush=True)
    for m in ("grid", "bo"):
        if args.phase in (m, "search", "all"):
            r = run_search(args, m)
            print(
                f"{m} done: {len(r.steps)} steps, spent {r.spent:.2f}, {time.time() - t0:.0f} s", flush=True
            )
    if args.phase in ("report", "all"):
        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
