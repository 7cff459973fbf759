"""Bayesian optimisation overhead and model choice: prints numbers, asserts nothing.

Run (from the repository root)::

    python experiments/perf/bo_speed.py                 # per-iteration breakdown at 500 observations, q = 8
    python experiments/perf/bo_speed.py --run 300       # + a whole 300-evaluation run (synthetic oracle)
    python experiments/perf/bo_speed.py --encodings     # held-out GP quality per encoding (+ feasibility GP)

``--threads`` sets ``torch.set_num_threads`` (default 2, the machine's cores; on a machine shared with
other busy processes 1 thread is several times faster, because two BLAS threads then wait for each other).
``--problem`` picks the problem (default ``acc_a100``; ``acc_a100_zcu102_latency`` for three objectives).
Times are wall seconds and process CPU seconds; compare CPU seconds across machines with other load.

Iteration mode: ``--n-obs`` observations (half uniform random, half one-/two-gene mutants of the
random points' Pareto set, so the front is as crowded as in a real run) are told, then ``--iters``
``ask(q)``/``tell`` rounds are timed: fit (GP hyper-parameters; the first round fits from BoTorch's
defaults, the later ones warm-start), candidate generation, acquisition (construction, screening of
the pool, local search, sequential greedy batch).

Encodings mode: Kendall tau and mean predictive log-likelihood (per point, targets standardised by the
test-set spread) of a GP fitted on ``n`` training architectures and tested on 1,000 others, for each
encoding of :mod:`optimizers.bo.models`, on the synthetic oracle and on the Accel-NASBench records
(``--dataset`` archive; skipped if not found); and, for the ``+-1`` feasibility GP of the
``acc_constrained_a100`` constraints, held-out AUC and Brier score with and without the noise floor.

The numbers measured with this script, and what they decided, are in ``optimizers/bo/README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from botorch.models import SingleTaskGP

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.synthetic import SyntheticBenchmark
from optimizers.base import ProblemInfo
from optimizers.bo import BayesianOptimization
from optimizers.indicators import pareto_rank

DEFAULT_DATASET = (
    Path(__file__).resolve().parents[2].parent / "shared" / "accel-nasbench" / "anb_dataset_dev.tar.gz"
)


def problem_info(name: str) -> ProblemInfo:
    """The named problem's :class:`ProblemInfo` (from :mod:`nasopt.problems`)."""
    from nasopt.problems import get_problem

    return get_problem(name).info


def objectives(bench: Any, info: ProblemInfo, X: IntArray) -> FloatArray:
    """Internal minimisation values ``(n, m)`` from an oracle."""
    preds = bench.query(X, list(info.objectives))
    cols = [
        -preds[t].value if mx else preds[t].value
        for t, mx in zip(info.objectives, info.maximize, strict=True)
    ]
    return np.stack(cols, axis=1).astype(np.float64)


def realistic_history(
    bench: Any, info: ProblemInfo, n: int, rng: np.random.Generator
) -> tuple[IntArray, FloatArray]:
    """``n`` distinct architectures: half random, half mutants of the random half's best ranks."""
    X = space.unique(space.sample(n // 2, rng))[0]
    F = objectives(bench, info, X)
    while X.shape[0] < n:
        ranks = pareto_rank(info.normalize(F))
        parents = X[np.argsort(ranks, kind="stable")[:20]]
        kids = space.mutate(np.repeat(parents, 5, axis=0), rng, n_genes=int(rng.integers(1, 3)))
        kids = kids[~np.isin(space.arch_id(kids), space.arch_id(X))]
        kids = space.unique(kids)[0][: n - X.shape[0]]
        X = np.concatenate([X, kids])
        F = np.concatenate([F, objectives(bench, info, kids)])
    return X, F


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {"q": args.q, "max_history": args.max_history, **json.loads(args.params)}


def iterations(args: argparse.Namespace, bench: Any) -> None:
    info = problem_info(args.problem)
    rng = np.random.default_rng(args.seed)
    X, F = realistic_history(bench, info, args.n_obs, rng)
    opt = BayesianOptimization(info, np.random.default_rng(args.seed), **_params(args))
    opt.tell(X, F)
    print(
        f"# {args.problem}: {X.shape[0]} observations told, q = {args.q}, threads = {torch.get_num_threads()}"
    )
    print(
        f"{'iter':>4} {'n_train':>7} {'fit_s':>7} {'cand_s':>7} {'acq_s':>7} {'(greedy)':>8} {'total_s':>8} "
        f"{'cpu_s':>7} {'scored':>7}"
    )
    for it in range(args.iters):
        w0, c0 = time.perf_counter(), time.process_time()
        Xn = opt.ask(args.q)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        t = opt.last_times
        print(
            f"{it:>4} {t.n_train:>7} {t.fit:>7.2f} {t.candidates:>7.2f} {t.acquisition:>7.2f} {t.greedy:>8.2f} "
            f"{wall:>8.2f} {cpu:>7.2f} {t.n_scored:>7}",
            flush=True,
        )
        opt.tell(Xn, objectives(bench, info, Xn))


def whole_run(args: argparse.Namespace, bench: Any) -> None:
    info = problem_info(args.problem)
    opt = BayesianOptimization(info, np.random.default_rng(args.seed), **_params(args))
    done = 0
    w_all, c_all = time.perf_counter(), time.process_time()
    worst = 0.0
    while done < args.run:
        n = min(args.q, args.run - done)
        w0 = time.perf_counter()
        X = opt.ask(n)
        worst = max(worst, time.perf_counter() - w0)
        opt.tell(X, objectives(bench, info, X))
        done += n
    wall, cpu = time.perf_counter() - w_all, time.process_time() - c_all
    F = opt.state()["F"]
    from optimizers.indicators import hypervolume

    hv = hypervolume(info.normalize(F), info.ref_point) if info.n_obj > 1 else float("nan")
    print(
        f"# whole run: {args.run} evaluations of {args.problem}, q = {args.q}: {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"in the optimizer+oracle; slowest ask {worst:.2f} s; hypervolume {hv:.4f}"
    )


# --------------------------------------------------------------------------------------- model quality
def _dataset(path: Path) -> tuple[IntArray, dict[str, FloatArray]] | None:
    if not path.exists():
        return None
    from benchmark.dataset import read_records

    data = read_records(path)
    return np.asarray(data.X), {k: np.asarray(v) for k, v in data.labels.items()}


def _gp_quality(
    Xtr: IntArray, ytr: FloatArray, Xte: IntArray, yte: FloatArray, encoding: str
) -> tuple[float, float, float]:
    from scipy.stats import kendalltau

    from optimizers.bo.models import encode, fit_model_list

    t0 = time.perf_counter()
    model, _ = fit_model_list(encode(Xtr, encoding), [torch.from_numpy(ytr)[:, None]], encoding)
    fit_s = time.perf_counter() - t0
    with torch.no_grad():
        post = cast(SingleTaskGP, model.models[0]).posterior(encode(Xte, encoding), observation_noise=True)
        mu = post.mean.squeeze(-1).numpy()
        var = post.variance.squeeze(-1).numpy()
    s = yte.std()
    ll = float(np.mean(-0.5 * np.log(2 * np.pi * var / s**2) - 0.5 * (yte - mu) ** 2 / var))
    return float(kendalltau(mu, yte)[0]), ll, fit_s


def encodings(args: argparse.Namespace) -> None:
    from optimizers.bo.models import ENCODINGS

    sources: list[tuple[str, IntArray, dict[str, FloatArray]]] = []
    Xs = space.sample(args.n_train_max + 1000, np.random.default_rng(0))
    preds = SyntheticBenchmark().query(Xs, ["accuracy", "throughput_a100", "latency_zcu102"])
    sources.append(("synthetic", Xs, {k: v.mean for k, v in preds.items()}))
    real = _dataset(Path(args.dataset))
    if real is None:
        print(f"# records not found at {args.dataset}: real-data rows skipped (--dataset PATH)")
    else:
        sources.append(("records", real[0], real[1]))
    print(
        f"{'data':>9} {'n':>4} {'target':>16} {'scale':>5} {'encoding':>11} {'tau':>6} {'loglik':>7} {'fit_s':>6}"
    )
    for name, X, labels in sources:
        for n in args.n_train:
            for target in ("accuracy", "throughput_a100", "latency_zcu102"):
                y_all = labels[target]
                ok = np.flatnonzero(np.isfinite(y_all))
                perm = np.random.default_rng(1).permutation(ok)
                tr, te = perm[:n], perm[n : n + 1000]
                scales = ["lin"] if target == "accuracy" else ["lin", "log"]
                for scale in scales:
                    y = np.log(y_all) if scale == "log" else y_all
                    for enc in ENCODINGS:
                        if enc == "mixed" and n > 100 and not args.all:
                            continue  # 5x slower to fit than the others; --all includes it
                        tau, ll, fit_s = _gp_quality(X[tr], y[tr], X[te], y[te], enc)
                        print(
                            f"{name:>9} {n:>4} {target:>16} {scale:>5} {enc:>11} {tau:>6.3f} {ll:>7.3f} {fit_s:>6.1f}",
                            flush=True,
                        )
    if real is not None:
        feasibility(real[0], real[1], args.n_train)


def feasibility(X: IntArray, labels: dict[str, FloatArray], sizes: list[int]) -> None:
    """Held-out quality of the +-1 feasibility GP for acc_constrained_a100's constraints."""
    from scipy.stats import mannwhitneyu, norm

    from optimizers.bo.models import encode, fit_model_list
    from optimizers.bo.optimizer import FEASIBILITY_NOISE_FLOOR

    thr, lat = labels["throughput_a100"], labels["latency_zcu102"]
    ok = np.flatnonzero(np.isfinite(thr) & np.isfinite(lat))
    feas = (thr >= 10000) & (lat <= 5)
    print(
        f"# feasibility GP (throughput_a100 >= 10000 and latency_zcu102 <= 5; {feas[ok].mean():.0%} feasible)"
    )
    print(f"{'n':>4} {'noise_floor':>11} {'auc':>6} {'brier':>6}")
    for n in sizes:
        for floor in (None, FEASIBILITY_NOISE_FLOOR):
            aucs, briers = [], []
            for rep in range(3):
                perm = np.random.default_rng(rep).permutation(ok)
                tr, te = perm[:n], perm[n : n + 1000]
                y = torch.from_numpy(np.where(feas[tr], 1.0, -1.0))[:, None]
                model, _ = fit_model_list(encode(X[tr], "ordinal"), [y], "ordinal", noise_floor=floor)
                with torch.no_grad():
                    post = cast(SingleTaskGP, model.models[0]).posterior(encode(X[te], "ordinal"))
                mu, sd = post.mean[:, 0].numpy(), post.variance[:, 0].sqrt().numpy()
                pos, neg = mu[feas[te]], mu[~feas[te]]
                aucs.append(float(mannwhitneyu(pos, neg).statistic) / (pos.size * neg.size))  # ROC AUC
                briers.append(float(np.mean((norm.cdf(mu / sd) - feas[te]) ** 2)))
            print(f"{n:>4} {floor!s:>11} {np.mean(aucs):>6.3f} {np.mean(briers):>6.3f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problem", default="acc_a100")
    p.add_argument("--n-obs", type=int, default=500)
    p.add_argument("--q", type=int, default=8)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--max-history", type=int, default=600)
    p.add_argument("--params", default="{}", help="optimizer parameters as JSON, e.g. '{\"mc_samples\": 64}'")
    p.add_argument("--run", type=int, default=0, help="also time a whole run of this many evaluations")
    p.add_argument("--bench", choices=["synthetic", "surrogate"], default="synthetic")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encodings", action="store_true", help="compare encodings instead of timing")
    p.add_argument(
        "--all", action="store_true", help="with --encodings: include the slow mixed kernel everywhere"
    )
    p.add_argument("--n-train", type=lambda s: [int(v) for v in s.split(",")], default=[100, 300])
    p.add_argument("--dataset", default=str(DEFAULT_DATASET))
    args = p.parse_args(argv)
    args.n_train_max = max(args.n_train)
    torch.set_num_threads(args.threads)
    if args.encodings:
        encodings(args)
        return
    if args.bench == "surrogate":
        import benchmark

        bench: Any = benchmark.load_benchmark()
    else:
        bench = SyntheticBenchmark()
    iterations(args, bench)
    if args.run:
        whole_run(args, bench)


if __name__ == "__main__":
    main()
