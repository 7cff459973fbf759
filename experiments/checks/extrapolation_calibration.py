"""Does widening the std where the surrogate extrapolates improve its calibration at the edge of the data?

    python experiments/checks/extrapolation_calibration.py [--dataset PATH] [--cache-dir DIR]
                                                           [--targets ...] [--tail 0.1]

Calibration = share of held-out absolute errors within one predicted std (a normal error: 68.3 %). Two rules
are tried, both leaving predictions whose mean lies inside the target's measured training range unchanged:

- excess: ``std' = sqrt(std^2 + excess^2)``, ``excess`` = how far the predicted mean lies outside the range
  (:func:`benchmark.coverage.excess`);
- x k: ``std' = k * std`` where the mean lies outside the range, one ``k`` for every target, tuned on data
  the score does not use.

Two held-out tests on the upstream default split (its test part is held out of the dev data):

A. fit on the train split (all targets), score on the val split: all val records, the val records at the
   edge (the ``--tail`` lowest and highest true values of the target), and the val records farthest from the
   training architectures (the ``--tail`` largest gene distances, :meth:`TrainingCoverage.distance`).
B. an extrapolation test: per target, fit on the train records inside that target's ``--tail`` ..
   1 - ``--tail`` quantiles only; tune ``k`` on the train records left out (its tails), and score on the val
   records outside those quantiles (the model's range): held out from both the fit and the tuning.

Prints the tables; it asserts nothing. Takes a few minutes (B fits one model per target).
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

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


#: share of a normal error within one std
_NORMAL = 0.6827


def _cal(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    ok = np.isfinite(y)
    return float(np.mean(np.abs(y[ok] - mean[ok]) <= std[ok])) if ok.any() else float("nan")


def _widened(cov: TrainingCoverage, t: str, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The excess rule."""
    return np.sqrt(std**2 + cov.excess(t, mean) ** 2)


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
    print(
        f"A. fit on train ({len(split.train)}), scored on val ({len(split.val)}); calibration before -> after"
    )
    print(f"   val distance to nearest train architecture (genes): {np.bincount(dist).tolist()} (counts 0..)")
    head = (
        f"{'target':<18} {'all val':>15} {'edge val':>15} {'far val':>15} {'flagged':>8} {'mean outside':>12}"
    )
    print(head)
    for t in args.targets:
        y = data.labels[t][split.val]
        m, s = preds[t].mean, preds[t].std
        w = _widened(cov, t, m, s)
        edge = _tails(y, args.tail)
        cells = [
            f"{_cal(y[r], m[r], s[r]):6.1%} -> {_cal(y[r], m[r], w[r]):5.1%}"
            for r in (slice(None), edge, far)
        ]
        flagged = int(cov.extrapolated(t, m, s).sum())
        outside = int((cov.excess(t, m) > 0).sum())
        print(f"{t:<18} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {flagged:>8} {outside:>12}")
    if args.skip_b:
        return
    _extrapolation_test(data, split, args.targets, args.tail)


def _extrapolation_test(data: Any, split: Any, targets: list[str], tail: float) -> None:
    """Test B (see the module docstring)."""
    print(
        f"\nB. per target: fit on the train records inside its {tail:.0%}..{1 - tail:.0%} quantiles; tune k on the "
        "left-out train tails, score on the val tails (held out from the fit and the tuning)"
    )
    train = split.train
    parts: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}
    n_fit = {}
    for t in targets:
        y_train = data.labels[t][train]
        lo, hi = np.nanquantile(y_train, [tail, 1 - tail])
        inside = np.isfinite(y_train) & (y_train >= lo) & (y_train <= hi)
        fit_rows = train[inside]
        n_fit[t] = len(fit_rows)
        model = fit_surrogate(
            data.X[fit_rows], {t: data.labels[t][fit_rows]}, SurrogateConfig(targets=(t,), split="default")
        )
        assert model.coverage is not None
        y_val = data.labels[t][split.val]
        sets = {
            "tune": train[np.isfinite(y_train) & ~inside],
            "test": split.val[np.isfinite(y_val) & ((y_val < lo) | (y_val > hi))],
        }
        parts[t] = {}
        for name, rows in sets.items():
            m, s = model.predict(data.X[rows], (t,))[t]
            parts[t][name] = (data.labels[t][rows], m, s, model.coverage.excess(t, m))
    ks = np.round(np.arange(1.0, 4.01, 0.1), 2)

    def deviation(name: str, k: float) -> float:
        return float(
            np.mean(
                [
                    abs(_cal(y, m, np.where(e > 0, k * s, s)) - _NORMAL)
                    for y, m, s, e in (parts[t][name] for t in targets)
                ]
            )
        )

    k = float(ks[int(np.argmin([deviation("tune", k) for k in ks]))])
    print(f"   k (x std where the mean is outside the range) tuned on the train tails: {k:g}")
    print(
        f"{'target':<18} {'n fit':>6} {'n tune':>6} {'n test':>6} {'outside':>8} "
        f"{'test: none':>10} {'excess':>7} {f'x{k:g}':>7}"
    )
    for t in targets:
        y, m, s, e = parts[t]["test"]
        print(
            f"{t:<18} {n_fit[t]:>6} {len(parts[t]['tune'][0]):>6} {len(y):>6} {np.mean(e > 0):>8.0%} "
            f"{_cal(y, m, s):>10.1%} {_cal(y, m, np.sqrt(s**2 + e**2)):>7.1%} "
            f"{_cal(y, m, np.where(e > 0, k * s, s)):>7.1%}",
            flush=True,
        )
    print(
        f"   mean |calibration - 68.3 %| on the test tails: none {deviation('test', 1.0):.1%}, x{k:g} "
        f"{deviation('test', k):.1%}"
    )


if __name__ == "__main__":
    main()
