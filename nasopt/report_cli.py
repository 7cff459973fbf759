"""``nasopt report DIR [DIR ...]``: compare runs (single runs or Hydra multirun sweeps) in a report."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from benchmark.errors import NasoptError
from nasopt.report import DEFAULT_CHECKPOINTS, ContextSource, build_report, dataset_context


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers of evaluations like 50,100,300, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"checkpoints must be positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt report",
        description="Compare NAS runs: Markdown report, CSV tables and PNG figures. Every directory below "
        "the "
        "given ones that holds trials.parquet plus config.yaml or summary.json is a run.",
    )
    ap.add_argument("dirs", nargs="+", type=Path, help="run directories or directories containing runs")
    ap.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: ./report)")
    ap.add_argument(
        "--checkpoints",
        type=_int_list,
        default=list(DEFAULT_CHECKPOINTS),
        help="evaluation counts to tabulate (default: %(default)s; the end of each run is always added)",
    )
    ap.add_argument(
        "--reference-fronts",
        action="store_true",
        help="use cached reference fronts (nasopt fronts) matching the runs' benchmark digest "
        "(adds HV ratio and IGD+)",
    )
    ap.add_argument("--cache-dir", type=Path, default=None, help="cache directory of the reference fronts")
    ap.add_argument(
        "--dataset",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="draw the dataset's measured points (and EfficientNet-B0) behind the fronts; without PATH the "
        "data is found like 'nasopt bench' finds it (NASOPT_DATASET, the cache), without downloading",
    )
    ap.add_argument(
        "--label-keys",
        default="",
        help="comma-separated config keys forming the optimizer label, "
        "e.g. optimizer.name,optimizer.params.pop_size",
    )
    ap.add_argument("--confidence", type=float, default=0.95, help="level of the t-intervals (default 0.95)")
    ap.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)")
    ap.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return ap


def _dataset_context(path: str) -> ContextSource | None:
    from benchmark.dataset import load_dataset

    try:
        ds = load_dataset(path or None, download=False)
    except Exception as exc:  # a missing or unreadable dataset must not stop the report
        print(f"nasopt report: --dataset ignored: {exc}", file=sys.stderr)
        return None
    return dataset_context(ds)


_MISSING = object()


def _unknown_label_keys(dirs: Sequence[Path], keys: Sequence[str]) -> list[str]:
    """The ``--label-keys`` that no run below ``dirs`` has in its config.yaml (or summary.json) -- a typo
    would otherwise label every run with a ``?`` or a wrong value."""
    from nasopt.rundir import config_get, find_runs, read_config, read_summary

    runs = [(read_config(d), read_summary(d)) for d in find_runs(dirs)]
    if not runs:
        return []  # build_report names the missing runs

    def known(k: str, config: dict[str, object], summary: dict[str, object]) -> bool:
        if config_get(config, k, _MISSING) is not _MISSING:
            return True
        head, _, rest = k.partition(".")
        return head in summary and rest in ("", "name")  # e.g. "seed", "optimizer.name" from summary.json

    return [k for k in keys if not any(known(k, c, s) for c, s in runs)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nasopt report``; returns the exit code (0 ok, 2 bad arguments or no runs, 1 other errors)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if not 0.0 < args.confidence < 1.0:
        print(f"nasopt report: --confidence must be in (0, 1), got {args.confidence}", file=sys.stderr)
        return 2
    if not 0.0 < args.alpha < 1.0:
        print(f"nasopt report: --alpha must be in (0, 1), got {args.alpha}", file=sys.stderr)
        return 2
    if args.dataset and not Path(args.dataset).exists():
        print(
            f"nasopt report: --dataset {args.dataset} does not exist; give the dataset archive or directory, "
            "or --dataset without a path to find it like 'nasopt bench' does",
            file=sys.stderr,
        )
        return 2
    label_keys = [k for k in args.label_keys.replace(" ", "").split(",") if k]
    try:
        unknown = _unknown_label_keys(args.dirs, label_keys) if label_keys else []
    except NasoptError as exc:
        print(f"nasopt report: {exc}", file=sys.stderr)
        return 1
    if unknown:
        print(
            f"nasopt report: --label-keys {','.join(unknown)}: no run's config.yaml has "
            f"{'this key' if len(unknown) == 1 else 'these keys'}; use dotted config keys like "
            "optimizer.name,optimizer.params.population_size",
            file=sys.stderr,
        )
        return 2
    context = _dataset_context(args.dataset) if args.dataset is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = build_report(
                args.dirs,
                args.out,
                checkpoints=args.checkpoints,
                reference_fronts=args.reference_fronts,
                context=context,
                label_keys=label_keys,
                cache=args.cache_dir,
                confidence=args.confidence,
                alpha=args.alpha,
                figures=not args.no_figures,
            )
    except FileNotFoundError as exc:
        print(f"nasopt report: {exc}", file=sys.stderr)
        return 2
    except (NasoptError, LookupError, ValueError) as exc:
        print(f"nasopt report: {exc}", file=sys.stderr)
        return 1
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"report: {res.markdown}")
    print(
        f"  {len(res.runs)} runs, {res.runs['problem'].nunique()} problem(s); tables in {res.out / 'tables'}"
        + (f", {len(res.figures)} figures in {res.out / 'figures'}" if res.figures else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
