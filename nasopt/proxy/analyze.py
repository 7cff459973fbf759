"""Compare a cheap training proxy with a reference scheme from their results on the same architectures.

Given per scheme the top-1 accuracy of ``n`` architectures over one or more seeds (and training times), it
reports what decides whether the proxy can stand in for the reference when building a benchmark:

- **Kendall τ between schemes** (seed-mean against seed-mean), with a bootstrap interval over architectures;
- **seed-to-seed τ of each scheme** (every pair of seeds): the scheme's own noise, which caps any τ with it;
- **cost ratio**: total training time of the reference over the proxy (the paper reports ~5.6x);
- **top-k overlap**: the reference's ``k`` best architectures found among the proxy's ``k`` best.

Inputs: Accel-NASBench records of each scheme (repeats of an architecture are its seeds; ``metrics.val_top1``
and ``metrics.train_time``), or the paper's ablation CSVs (:data:`benchmark.sources.ABLATION_FILES`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import NasoptError

#: fewer architectures than this give a τ too uncertain to choose a proxy by
MIN_ARCHITECTURES = 10


class ProxyDataError(NasoptError, ValueError):
    """Results that cannot be compared (too few shared architectures, unreadable files)."""


@dataclass(frozen=True)
class SchemeResults:
    """One scheme's results: ``X`` ``(n, 28)`` architectures, ``top1`` ``(n, s)`` and ``train_time``
    ``(n, s)`` over ``s`` seeds (NaN where a seed is missing)."""

    name: str
    X: IntArray
    top1: FloatArray
    train_time: FloatArray

    @property
    def mean_top1(self) -> FloatArray:
        return np.nanmean(self.top1, axis=1)

    def aligned(self, ids: IntArray) -> SchemeResults:
        """The rows of the architectures ``ids`` (``space.arch_id``), in that order."""
        own = {int(i): r for r, i in enumerate(space.arch_id(self.X))}
        rows = np.array([own[int(i)] for i in ids])
        return SchemeResults(self.name, self.X[rows], self.top1[rows], self.train_time[rows])


def _group_seeds(name: str, X: IntArray, top1: FloatArray, times: FloatArray) -> SchemeResults:
    ids = space.arch_id(X)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    counts = np.bincount(inverse)
    s = int(counts.max())
    acc = np.full((len(uniq), s), np.nan)
    tt = np.full((len(uniq), s), np.nan)
    slot = np.zeros(len(uniq), dtype=np.int64)
    for r, g in enumerate(inverse):
        acc[g, slot[g]] = top1[r]
        tt[g, slot[g]] = times[r]
        slot[g] += 1
    return SchemeResults(name, X[first], acc, tt)


def read_scheme_records(path: str | os.PathLike[str], name: str | None = None) -> SchemeResults:
    """A scheme's results from Accel-NASBench records (repeats of an architecture are its seeds)."""
    from benchmark.dataset import read_records

    ds = read_records(path)
    ok = np.isfinite(ds.labels["accuracy"])
    if not ok.any():
        raise ProxyDataError(f"{path}: no record has metrics.val_top1 (trained results are needed)")
    return _group_seeds(
        name or Path(path).name, ds.X[ok], ds.labels["accuracy"][ok], ds.labels["train_time"][ok]
    )


def read_ablation_csv(paths: Sequence[str | os.PathLike[str]], name: str) -> SchemeResults:
    """One scheme from the paper's ablation CSV format, one file a seed (no header; columns: row, job id,
    model number, seed, top-1, top-5, MACs, params, train seconds, expansion, kernel, layers, SE x7 each)."""
    import pandas as pd

    X_all, acc, tt = [], [], []
    for p in paths:
        try:
            df = pd.read_csv(p, header=None)
        except (OSError, ValueError) as exc:
            raise ProxyDataError(f"{p}: unreadable ablation CSV ({type(exc).__name__}: {exc})") from exc
        if df.shape[1] != 9 + space.N_GENES:
            raise ProxyDataError(f"{p}: expected {9 + space.N_GENES} columns, got {df.shape[1]}")
        se = df.iloc[:, 30:37].astype(str).apply(lambda c: c.str.lower() == "true").to_numpy(dtype=np.int64)
        X = space.encode_values(
            df.iloc[:, 9:16].to_numpy(), df.iloc[:, 16:23].to_numpy(), df.iloc[:, 23:30].to_numpy(), se
        )
        X_all.append(X)
        acc.append(df.iloc[:, 4].to_numpy(dtype=float))
        tt.append(df.iloc[:, 8].to_numpy(dtype=float))
    return _group_seeds(name, np.concatenate(X_all), np.concatenate(acc), np.concatenate(tt))


def upstream_ablation(
    directory: str | os.PathLike[str] | None = None, *, download: bool = True
) -> tuple[SchemeResults, SchemeResults]:
    """The paper's ablation: (reference = "few-proxy", proxy = "proxified"), 3 seeds each."""
    from benchmark.sources import ABLATION_FILES, resolve_ablation_dir

    d = resolve_ablation_dir(directory, download=download)
    ref = read_ablation_csv(
        [d / n for n in ABLATION_FILES if n.startswith("fewproxy")], "few-proxy (reference)"
    )
    prox = read_ablation_csv([d / n for n in ABLATION_FILES if n.startswith("proxified")], "proxified")
    return ref, prox


@dataclass(frozen=True)
class ProxyAnalysis:
    """The comparison of a proxy with a reference on ``n`` shared architectures (see the module docstring)."""

    reference: str
    proxy: str
    n: int
    seeds_reference: int
    seeds_proxy: int
    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    spearman: float
    seed_tau_reference: tuple[float, ...]
    seed_tau_proxy: tuple[float, ...]
    cross_seed_tau: tuple[float, ...]
    hours_reference: float
    hours_proxy: float
    cost_ratio: float
    top_k: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top_k"] = {str(k): v for k, v in self.top_k.items()}
        return d


def _tau(a: FloatArray, b: FloatArray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(kendalltau(a[ok], b[ok])[0]) if ok.sum() >= 3 else float("nan")


def top_k_overlap(reference: FloatArray, proxy: FloatArray, k: int) -> float:
    """Share of the reference's ``k`` best (highest) that are among the proxy's ``k`` best."""
    top_ref = set(np.argsort(-reference)[:k].tolist())
    top_prox = set(np.argsort(-proxy)[:k].tolist())
    return len(top_ref & top_prox) / k


def analyze(
    reference: SchemeResults,
    proxy: SchemeResults,
    *,
    ks: Sequence[int] = (5, 10, 20),
    n_boot: int = 2000,
    seed: int = 0,
) -> ProxyAnalysis:
    """Compare ``proxy`` with ``reference`` on the architectures both trained."""
    ids = np.intersect1d(space.arch_id(reference.X), space.arch_id(proxy.X))
    if len(ids) < MIN_ARCHITECTURES:
        raise ProxyDataError(
            f"only {len(ids)} architectures were trained with both schemes ({reference.name}, {proxy.name}); "
            f"at least {MIN_ARCHITECTURES} are needed for a meaningful Kendall τ"
        )
    ref, prox = reference.aligned(ids), proxy.aligned(ids)
    a, b = ref.mean_top1, prox.mean_top1
    rng = np.random.default_rng(seed)
    boots = np.array([_tau(a[i], b[i]) for i in rng.integers(0, len(ids), (n_boot, len(ids)))])
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])

    def seed_pairs(r: SchemeResults) -> tuple[float, ...]:
        return tuple(
            _tau(r.top1[:, i], r.top1[:, j]) for i, j in itertools.combinations(range(r.top1.shape[1]), 2)
        )

    cross = tuple(
        _tau(ref.top1[:, i], prox.top1[:, j])
        for i in range(ref.top1.shape[1])
        for j in range(prox.top1.shape[1])
    )
    h_ref, h_prox = float(np.nansum(ref.train_time)) / 3600, float(np.nansum(prox.train_time)) / 3600
    return ProxyAnalysis(
        reference=reference.name,
        proxy=proxy.name,
        n=len(ids),
        seeds_reference=ref.top1.shape[1],
        seeds_proxy=prox.top1.shape[1],
        kendall_tau=_tau(a, b),
        kendall_tau_ci=(float(lo), float(hi)),
        spearman=float(spearmanr(a, b)[0]),
        seed_tau_reference=seed_pairs(ref),
        seed_tau_proxy=seed_pairs(prox),
        cross_seed_tau=cross,
        hours_reference=h_ref,
        hours_proxy=h_prox,
        cost_ratio=h_ref / h_prox if h_prox > 0 else float("nan"),
        top_k={k: top_k_overlap(a, b, k) for k in ks if k <= len(ids)},
    )


def paired_tau_difference(
    reference: SchemeResults, a: SchemeResults, b: SchemeResults, *, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """``τ(a, reference) - τ(b, reference)`` with a 95 % paired bootstrap interval over the architectures
    all three share (the same resample for both τ): whether proxy ``a`` really ranks better than ``b``."""
    ids = np.intersect1d(np.intersect1d(space.arch_id(reference.X), space.arch_id(a.X)), space.arch_id(b.X))
    if len(ids) < MIN_ARCHITECTURES:
        raise ProxyDataError(
            f"only {len(ids)} architectures were trained with all three schemes; at least "
            f"{MIN_ARCHITECTURES} "
            f"are needed for a meaningful Kendall τ"
        )
    r, x, y = (s.aligned(ids).mean_top1 for s in (reference, a, b))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ids), (n_boot, len(ids)))
    diffs = np.array([_tau(r[i], x[i]) - _tau(r[i], y[i]) for i in idx])
    lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
    return _tau(r, x) - _tau(r, y), float(lo), float(hi)


def format_analysis(r: ProxyAnalysis) -> str:
    """The analysis as a few lines of text."""

    def span(v: Sequence[float]) -> str:
        v = [x for x in v if np.isfinite(x)]
        return (
            "–"
            if not v
            else (f"{v[0]:.3f}" if len(v) == 1 else f"{np.mean(v):.3f} ({min(v):.3f}–{max(v):.3f})")
        )

    lines = [
        f"proxy {r.proxy!r} against reference {r.reference!r}: {r.n} architectures "
        f"({r.seeds_proxy} and {r.seeds_reference} seeds)",
        f"  Kendall τ of the seed means     {r.kendall_tau:.3f}  (95 % bootstrap {r.kendall_tau_ci[0]:.3f}–"
        f"{r.kendall_tau_ci[1]:.3f}); Spearman {r.spearman:.3f}",
        f"  seed-to-seed τ, reference       {span(r.seed_tau_reference)}",
        f"  seed-to-seed τ, proxy           {span(r.seed_tau_proxy)}",
        f"  τ of single runs across schemes {span(r.cross_seed_tau)}",
        f"  training time                   {r.hours_reference:.1f} h reference, {r.hours_proxy:.1f} h "
        f"proxy: {r.cost_ratio:.2f}x cheaper",
    ]
    lines += [f"  {f'top-{k} overlap':<32}{100 * v:.0f} %" for k, v in r.top_k.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``nasopt proxy analyze``: compare two schemes' results; returns the exit code."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(
        prog="nasopt proxy analyze",
        description="Compare a training proxy with a reference scheme (Kendall τ, "
        "seed-to-seed τ, cost ratio, top-k overlap)",
    )
    ap.add_argument(
        "--reference", help="records of the reference scheme (archive or directory of result_*.json)"
    )
    ap.add_argument("--proxy", help="records of the proxy scheme")
    ap.add_argument(
        "--upstream",
        action="store_true",
        help="the Accel-NASBench paper's ablation (few-proxy vs proxified; downloaded once, "
        "checksum-verified, into the cache)",
    )
    ap.add_argument(
        "--upstream-dir", help="a directory holding the six ablation CSVs (instead of a download)"
    )
    ap.add_argument("--k", type=int, nargs="+", default=[5, 10, 20], help="top-k overlaps to report")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.upstream or args.upstream_dir:
            ref, prox = upstream_ablation(args.upstream_dir)
        elif args.reference and args.proxy:
            ref, prox = read_scheme_records(args.reference), read_scheme_records(args.proxy)
        else:
            raise ProxyDataError("give --reference RECORDS and --proxy RECORDS, or --upstream")
        result = analyze(ref, prox, ks=args.k)
    except NasoptError as exc:
        print(f"nasopt proxy analyze: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_analysis(result))
    return 0


def dispatch(argv: Sequence[str]) -> int:
    """``nasopt proxy <subcommand>``."""
    import sys

    args = list(argv)
    if args[:1] == ["analyze"]:
        return main(args[1:])
    if args[:1] == ["search"]:
        from nasopt.proxy.search import main as search_main

        return search_main(args[1:])
    print(
        "usage: nasopt proxy analyze [--reference R --proxy P | --upstream] [--json]\n"
        "       nasopt proxy search --out DIR (--data DIR | --synthetic) [--method bo|grid] [--budget B] "
        "[--max-cost C]",
        file=sys.stderr,
    )
    return 2


__all__ = [
    "ProxyAnalysis",
    "SchemeResults",
    "analyze",
    "paired_tau_difference",
    "read_ablation_csv",
    "read_scheme_records",
    "upstream_ablation",
]
