"""Does widening the std where the surrogate extrapolates improve its calibration at the edge of the data?

    python experiments/checks/extrapolation_calibration.py [--dataset PATH] [--cache-dir DIR]
                                                           [--targets ...] [--tail 0.1]

Calibration = share of held-out absolute errors within one predicted std (a normal error would give 68 %).
Widening rule tested: ``std' = sqrt(std^2 + excess^2)``, ``excess`` = how far the predicted mean lies outside
the target's measured training range (:func:`benchmark.coverage.excess`; 0 inside, so predictions inside the
range are unchanged). Two held-out tests, both on the upstream default split (the test part is held out):

A. fit on the train split (all targets), score on the val split: all val records, the val records at the
   edge (the ``--tail`` lowest and highest true values of the target), and the val records farthest from the
   training architectures (the ``--tail`` largest gene distances, :meth:`TrainingCoverage.distance`).
B. an extrapolation test: per target, fit on the train records inside that target's ``--tail`` .. 1 - ``--tail``
   quantiles only, and score on the records it left out (train and val tails: every one outside the range
   the model was fitted on), before and after widening.

Prints the tables; it asserts nothing. Takes a few minutes (B fits one model per target).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from benchmark.coverage import TrainingCoverage
from benchmark.dataset import read_records
from benchmark.oracle import load_benchmark
from benchmark.sources import resolve_dataset, resolve_split_dir
from benchmark.splits import SplitWarning, make_split
from benchmark.surrogate import SurrogateConfig, fit_surrogate

TARGETS = (
    "accuracy",
    "throughput_a100",
    "throughput_3090",
    "throughput_tpuv2",
    "throughput_tpuv3",
    "throughput_zcu102",
    "throughput_vck190",
    "latency_zcu102",
    "latency_vck190",
)


def _cal(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(np.mean(np.abs(y[ok] - mean[ok]) <= std[ok])) if ok.any() else float("nan")


def _widened(cov: TrainingCoverage, t: str, mean: np.ndarray, std: np.ndarray, c: float = 1.0) -> np.ndarray:
    return np.sqrt(std**2 + (c * cov.excess(t, mean)) ** 2)


def _tails(y: np.ndarray, tail: float) -> np.ndarray:
    lo, hi = np.nanquantile(y, [tail, 1 - tail])
    return np.isfinite(y) & ((y < lo) | (y > hi))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset")
    ap.add_argument("--cache-dir")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--tail", type=float, default=0.1)
    ap.add_argument("--skip-b", action="store_true", help="only test A (no extra fits)")
    ap.add_argument(
        "--scales", type=float, nargs="+", default=[0.25, 0.5], help="B also tries std' = sqrt(std^2 + (c excess)^2)"
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore", SplitWarning)
    data = read_records(resolve_dataset(args.dataset, download=False))
    split = make_split(data, "default", split_dir=resolve_split_dir(data.source))
    bench = load_benchmark(args.dataset, cache_dir=args.cache_dir, split="default", download=False)
    cov = bench.coverage
    assert cov is not None
    Xv = data.X[split.val]
    dist = cov.distance(Xv)
    far = dist >= np.quantile(dist, 1 - args.tail)
    preds = bench.query(Xv, args.targets)
    print(f"A. fit on train ({len(split.train)}), scored on val ({len(split.val)}); calibration before -> after")
    print(f"   val distance to nearest train architecture (genes): {np.bincount(dist).tolist()} (counts 0..)")
    head = f"{'target':<18} {'all val':>15} {'edge val':>15} {'far val':>15} {'flagged':>8} {'mean outside':>12}"
    print(head)
    for t in args.targets:
        y = data.labels[t][split.val]
        m, s = preds[t].mean, preds[t].std
        w = _widened(cov, t, m, s)
        edge = _tails(y, args.tail)
        cells = [f"{_cal(y[r], m[r], s[r]):6.1%} -> {_cal(y[r], m[r], w[r]):5.1%}" for r in (slice(None), edge, far)]
        flagged = int(cov.extrapolated(t, m, s).sum())
        outside = int((cov.excess(t, m) > 0).sum())
        print(f"{t:<18} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {flagged:>8} {outside:>12}")
    if args.skip_b:
        return
    print(
        f"\nB. fit on the train records inside the {args.tail:.0%}..{1 - args.tail:.0%} quantiles of the target, "
        "scored on the left-out tails (train + val); calibration before -> after"
    )
    print(f"{'target':<18} {'n fit':>6} {'n edge':>6} {'flagged':>8} {'mean outside':>12} {'calibration':>17} "
          f"{'median |err|/std':>18} " + " ".join(f"{f'c={c:g}':>7}" for c in args.scales))
    train = split.train
    for t in args.targets:
        y_train = data.labels[t][train]
        lo, hi = np.nanquantile(y_train, [args.tail, 1 - args.tail])
        inside = np.isfinite(y_train) & (y_train >= lo) & (y_train <= hi)
        fit_rows = train[inside]
        rows = np.concatenate([train[np.isfinite(y_train) & ~inside], split.val])
        y = data.labels[t][rows]
        edge = np.isfinite(y) & ((y < lo) | (y > hi))
        rows, y = rows[edge], y[edge]
        model = fit_surrogate(
            data.X[fit_rows], {t: data.labels[t][fit_rows]}, SurrogateConfig(targets=(t,), split="default")
        )
        assert model.coverage is not None
        m, s = model.predict(data.X[rows], (t,))[t]
        w = _widened(model.coverage, t, m, s)
        flagged = int(model.coverage.extrapolated(t, m, s).sum())
        outside = int((model.coverage.excess(t, m) > 0).sum())
        r_before = np.median(np.abs(y - m) / s)
        r_after = np.median(np.abs(y - m) / w)
        print(
            f"{t:<18} {len(fit_rows):>6} {len(rows):>6} {flagged:>8} {outside:>12} "
            f"{_cal(y, m, s):7.1%} -> {_cal(y, m, w):6.1%} {r_before:8.2f} -> {r_after:5.2f} "
            + " ".join(f"{_cal(y, m, _widened(model.coverage, t, m, s, c)):7.1%}" for c in args.scales),
            flush=True,
        )


if __name__ == "__main__":
    main()
