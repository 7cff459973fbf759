"""The miniature proxy study, for real on this CPU: a reference scheme on >= 30 architectures (a second seed
on each), then a proxy search by BO and by the paper's grid search at the same cost budget, and τ / cost of
what each found, with intervals.

    python experiments/checks/proxy_study.py reference   # train the reference (the long part; resumable)
    python experiments/checks/proxy_study.py search      # grid, then BO for each --bo-seeds
    python experiments/checks/proxy_study.py report      # print the numbers, write the found proxy's JSON
    python experiments/checks/proxy_study.py all

``--study`` picks one of :data:`STUDIES` (the data, the reference scheme, the proxy space and where it all
goes); options ``--workers 2 --threads 1 --budget 1.0 --max-cost 0.3 --archs 30 --bo-seeds 0,1,2``. Every
training run is a record under ``OUT/runs`` and every search step a file under ``OUT/<method>/`` (search
seeds after the first under ``OUT/seed<k>/``): a killed study run again continues and retrains nothing.
Data: Fashion-MNIST RGB (``python -m nasopt.validation.train.prepare fashion-mnist DIR --size S
--train-per-class N --val-per-class 500``; the validation images are its test split); networks: the
quarter-width skeleton (``MNASNET.scaled(0.25)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasopt.proxy.analyze import analyze, format_analysis, paired_tau_difference
from nasopt.proxy.search import (
    SearchResult,
    TrainingEvaluator,
    finished_steps,
    search,
    stratified_architectures,
)
from nasopt.proxy.space import ProxySpace
from nasopt.validation.train.schemes import SMOKE, TrainScheme


@dataclass(frozen=True)
class Study:
    """One miniature: the data folder, the reference scheme, the proxy space, the outputs, the a-priori
    cost's validation and per-step shares (:func:`nasopt.proxy.space.nominal_cost`) and the proxies' seed
    (None: the reference's first)."""

    data: str
    reference: TrainScheme
    space: ProxySpace
    out: str
    found: str
    val_share: float
    step_share: float
    proxy_seed: int | None = None


_BASE = SMOKE.with_overrides(
    {
        "name": "ref",
        "batch_size": 100,
        "lr": 0.3,
        "lr_batch": 256,
        "res_step": 8,
        "rrc_scale": (0.5, 1.0),
        "top1_best_of_last": 1,
        "validate_last": 1,
        "checkpoint_every_steps": 1000,
    }
)
STUDIES = {
    # study 2 (measured): 6 epochs of 4000 training images at 32 px, batch 100, SGD peak lr 0.3 x 100/256 at
    # epoch 1, validated once on 5000 images. Its seed-to-seed τ is 0.17: too noisy to choose proxies by.
    "fm32c": Study(
        data="/work/study/fm32c",
        reference=_BASE.with_overrides(
            {"epochs": 6, "lr_peak_epoch": 1.0, "min_res": 32, "max_res": 32, "val_res": 32}
        ),
        space=ProxySpace(
            epochs=(1, 2, 3, 4),
            min_res=(16, 24, 32),
            max_res=(24, 32),
            ramp=(0.5, 1.0),
            train_fraction=(0.25, 0.5, 1.0),
            batch_size=(50, 100, 200),
            lr_peak=(0.1, 0.25, 0.4),
        ),
        out="/work/study/proxy2",
        found="/work/study/proxy2_found.json",
        # one validation pass: 5000 images, forward only (~1/3 of a training image each), against 4000
        # training images per reference epoch
        val_share=0.4,
        step_share=0.6,
    ),
    # the next one (not yet run): all 60000 training images, 2 epochs at 24 px (1200 steps), validated once
    # on 5000; proxies (their own seed) down to a tenth of the data, 16 px, 1 epoch, batch 400
    "fm24full": Study(
        data="/work/study/fm24full",
        reference=_BASE.with_overrides(
            {"epochs": 2, "lr_peak_epoch": 0.5, "min_res": 24, "max_res": 24, "val_res": 24}
        ),
        space=ProxySpace(
            epochs=(1, 2),
            min_res=(16, 24),
            max_res=(16, 24),
            ramp=(0.5, 1.0),
            train_fraction=(0.1, 0.25, 0.5, 1.0),
            batch_size=(100, 200, 400),
            lr_peak=(0.1, 0.25, 0.4),
        ),
        out="/work/study/proxy3",
        found="/work/study/proxy3_found.json",
        val_share=5000 / 3 / 60000,
        step_share=0.2,
        proxy_seed=2,
    ),
}
SEED = 0


def evaluator(args: argparse.Namespace) -> TrainingEvaluator:
    from nasopt.validation.train.run import as_skeleton

    archs = stratified_architectures(
        args.archs, SEED, skeleton=as_skeleton(0.25), resolution=32, num_classes=10
    )
    st = STUDIES[args.study]
    return TrainingEvaluator(
        st.reference,
        args.data,
        archs,
        args.out,
        reference_seeds={0: args.archs, 1: args.second_seed},
        proxy_seed=st.proxy_seed,
        skeleton=0.25,
        threads=args.threads,
        workers=args.workers,
        val_share=st.val_share,
        step_share=st.step_share,
    )


def search_dir(args: argparse.Namespace, seed: int) -> Path:
    """Where a search with ``seed`` keeps its steps: seed 0 in OUT, others in OUT/seed<k> (all share the
    training runs under OUT/runs)."""
    return Path(args.out) if seed == SEED else Path(args.out) / f"seed{seed}"


def run_search(
    args: argparse.Namespace, method: str, seed: int = SEED, max_steps: int | None = None
) -> SearchResult:
    return search(
        evaluator(args),
        STUDIES[args.study].space,
        search_dir(args, seed),
        method=method,
        budget=args.budget,
        max_cost=args.max_cost,
        seed=seed,
        max_steps=max_steps,
    )


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Print the study's numbers from the state on disk (trains nothing new) and write proxy_found.json."""
    ev = evaluator(args)
    ref = ev.reference()
    out: dict[str, Any] = {"reference": STUDIES[args.study].reference.to_dict(), "n_archs": len(ev.archs)}
    seed_tau = analyze(ref, ref, n_boot=10).seed_tau_reference
    n2 = int(np.isfinite(ref.top1[:, -1]).sum())
    print(
        f"reference: {len(ev.archs)} architectures ({n2} with 2 seeds); top-1 of the seed means "
        f"{np.nanmin(ref.mean_top1):.1f}-{np.nanmax(ref.mean_top1):.1f} % (mean {np.nanmean(ref.mean_top1):.1f}); "
        f"{np.nanmean(ref.train_time):.0f} s per run; seed-to-seed τ {seed_tau[0]:.3f} (on the {n2})"
    )
    out["seed_tau_reference"] = list(seed_tau)
    out["reference_s_per_run"] = float(np.nanmean(ref.train_time))
    runs: list[tuple[str, int, SearchResult]] = [
        ("grid", SEED, run_search(args, "grid", SEED, finished_steps(search_dir(args, SEED), "grid")))
    ]
    runs += [
        ("bo", k, run_search(args, "bo", k, finished_steps(search_dir(args, k), "bo")))
        for k in args.bo_seeds
        if finished_steps(search_dir(args, k), "bo")
    ]
    for m, k, r in runs:
        print(f"\n{m} (search seed {k}): {len(r.steps)} proxies, spent {r.spent:.3f} reference-cost units")
        for st in r.steps:
            print(
                f"  {st.index:2d} τ {st.tau:6.3f} [{st.tau_ci[0]:.3f}, {st.tau_ci[1]:.3f}]  cost {st.cost_fraction:.3f} "
                f"(a priori {st.nominal_cost:.3f}) {'ok  ' if st.feasible else 'OVER'} {json.dumps(st.settings.to_dict())}"
            )
        out[f"{m}_seed{k}"] = r.to_dict()
    grid = runs[0][2]
    g_best = grid.best
    budget = grid.spent
    out["grid_spent"] = budget
    if g_best is None:
        print("\ngrid found no proxy within the cost bound")
    else:
        g_res = ev.evaluate(g_best.settings)
        print(
            f"\ngrid's best after {budget:.3f} reference-cost units: {json.dumps(g_best.settings.to_dict())}"
        )
        g_analysis = analyze(ref, g_res)
        print("    " + format_analysis(g_analysis).replace("\n", "\n    "))
        out["grid_best"] = {**g_best.to_dict(), "analysis": g_analysis.to_dict()}
        rows = []
        for _, k, r in runs[1:]:
            row: dict[str, Any] = {"seed": k, "spent": r.spent}
            for label, cost in (("equal", budget), ("half", budget / 2)):
                b_best = r.best_within(cost)
                if b_best is None:
                    print(f"  BO seed {k} within {cost:.3f}: no feasible proxy")
                    row[label] = None
                    continue
                d = paired_tau_difference(ref, ev.evaluate(b_best.settings), g_res)
                print(
                    f"  BO seed {k} within {label} cost ({cost:.3f}): τ {b_best.tau:.3f} "
                    f"[{b_best.tau_ci[0]:.3f}, {b_best.tau_ci[1]:.3f}] at cost {b_best.cost_fraction:.3f}; "
                    f"τ(BO) - τ(grid) {d[0]:+.3f} (95 % paired bootstrap {d[1]:+.3f} to {d[2]:+.3f})"
                )
                row[label] = {**b_best.to_dict(), "tau_minus_grid": list(d)}
            reach = row["first_reaching_grid_best"] = r.first_reaching(g_best.tau)
            print(
                f"  BO seed {k} first reached the grid's best τ {g_best.tau:.3f} after "
                + (
                    f"{reach:.3f} reference-cost units ({reach / budget:.2f} of the grid's)"
                    if reach is not None
                    else "-- never"
                )
            )
            rows.append(row)
        out["bo_vs_grid"] = rows
    found_from = [r.best for _, _, r in runs if r.best is not None]  # the best of everything trained
    chosen = max(found_from, key=lambda st: st.tau) if found_from else None
    if chosen is not None:
        found = {
            "scheme": chosen.settings.scheme(STUDIES[args.study].reference).to_dict(),
            "train_fraction": chosen.settings.train_fraction,
            "tau": chosen.tau,
            "tau_ci": list(chosen.tau_ci),
            "cost_ratio": 1.0 / chosen.cost_fraction,
            "cost_fraction": chosen.cost_fraction,
            "settings": chosen.settings.to_dict(),
            "skeleton": 0.25,
            "data": str(args.data),
            "reference": STUDIES[args.study].reference.to_dict(),
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
    ap.add_argument("--study", choices=sorted(STUDIES), default="fm32c")
    ap.add_argument("--data", help="default: the study's")
    ap.add_argument("--out", help="default: the study's")
    ap.add_argument("--found", help="where the found proxy's JSON goes; default: the study's")
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--second-seed", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--max-cost", type=float, default=0.3)
    ap.add_argument(
        "--bo-seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1, 2], help="e.g. 0,1,2"
    )
    args = ap.parse_args(argv)
    st = STUDIES[args.study]
    args.data = args.data or st.data
    args.out = args.out or st.out
    args.found = args.found or st.found
    t0 = time.time()
    if args.phase in ("reference", "all"):
        ref = evaluator(args).reference()
        print(f"reference done: {np.isfinite(ref.top1).sum()} runs, {time.time() - t0:.0f} s", flush=True)
    todo = [("grid", SEED)] + [("bo", k) for k in args.bo_seeds]
    for m, k in todo:
        if args.phase in (m, "search", "all"):
            r = run_search(args, m, k)
            print(
                f"{m} seed {k} done: {len(r.steps)} steps, spent {r.spent:.2f}, {time.time() - t0:.0f} s",
                flush=True,
            )
    if args.phase in ("report", "all"):
        report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
