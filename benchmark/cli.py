"""``nasopt bench fit | query | evaluate | info | cache list | cache prune``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import devices, space
from benchmark.errors import NasoptError
from benchmark.metrics import fit_quality, format_quality_table
from benchmark.noise import estimate_noise, noise_caps
from benchmark.targets import TARGET_NAMES, TARGETS, check_targets, get_target

if TYPE_CHECKING:
    from benchmark.surrogate import CacheEntry


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        help="archive (.tar.gz) or directory of result_*.json (default: NASOPT_DATASET, cache, download)",
    )
    _cache_dir(p)
    p.add_argument("--backend", choices=["xgboost", "lightgbm"], default="xgboost")
    p.add_argument("--members", type=int, default=5, help="ensemble size (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-download", action="store_true", help="never download the upstream archive")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nasopt bench", description="The Accel-NASBench surrogate oracle")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fit", help="fit (or load) the surrogates and print the fit-quality table")
    _common(p)
    p.add_argument(
        "--split",
        choices=["all", "default", "random"],
        default="all",
        help="train on all records (quality: out-of-fold) or a split's train part (quality: its val part)",
    )
    p.add_argument("--refit", action="store_true", help="ignore the cache")
    p.add_argument(
        "--extra",
        help="your own records (archive or directory of result_*.json, e.g. from nasopt measure/validate) "
        "added to the training rows; prints the held-out fit with and without them",
    )
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "query",
        help="predictions with std, MACs and params, and whether each extrapolates past the measured data",
    )
    _common(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--arch", help="compact string, e.g. 'e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k3l1+'"
    )
    g.add_argument("--archs", help="JSON file: a list of upstream architecture dicts")
    p.add_argument(
        "--targets", nargs="+", help=f"subset of: {' '.join(TARGET_NAMES)} (or a user device's target)"
    )
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("evaluate", help="fit on training records and score against measured results")
    _common(p)
    p.add_argument("--test", required=True, help="measured results: .tar.gz or directory of result_*.json")
    p.add_argument(
        "--train",
        help="training records (default: the configured dataset); records of the test architectures are "
        "always left out of training",
    )
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("info", help="dataset statistics, space size, cache location, versions")
    _common(p)
    p = sub.add_parser("cache", help="list or prune the cached surrogates")
    csub = p.add_subparsers(dest="cache_cmd", required=True)
    c = csub.add_parser(
        "list", help="every cached surrogate: key, dataset, split, targets, size, created, last used"
    )
    _cache_dir(c)
    c.add_argument("--json", action="store_true")
    c = csub.add_parser(
        "prune",
        help="remove cached surrogates (dry run unless --yes) and temporary folders left by killed fits",
        description="Entries go with --all, or when they pass every criterion given (--older-than, --keep); "
        "with no criterion only the temporary folders of killed fits go. Nothing is removed without --yes.",
    )
    _cache_dir(c)
    c.add_argument("--older-than", type=float, metavar="DAYS", help="entries last used more than DAYS ago")
    c.add_argument("--keep", type=int, metavar="N", help="keep the N most recently used entries")
    c.add_argument("--all", action="store_true", help="every entry")
    c.add_argument("--yes", action="store_true", help="remove them (default: only say what would go)")
    return ap


def _cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir", help="where fitted surrogates are cached (default: <user cache>/surrogates)"
    )


def _load(args: argparse.Namespace, **over: Any) -> Any:
    from benchmark.oracle import load_benchmark

    return load_benchmark(
        over.pop("dataset", args.dataset),
        cache_dir=args.cache_dir,
        download=not args.no_download,
        backend=args.backend,
        n_members=args.members,
        seed=args.seed,
        **over,
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    extra = {"extra": args.extra} if args.extra else {}
    bench = _load(args, split=args.split, refit=args.refit, **extra)
    took = time.perf_counter() - t0
    if args.extra:
        return _fit_with_extra(args, bench, took)
    if args.json:
        print(
            json.dumps(
                {
                    "quality": bench.fit_quality,
                    "noise": bench.noise,
                    "scored_on": bench.model.meta.get("quality_scored_on"),
                    "cache": str(bench.cache_path),
                    "seconds": took,
                },
                indent=2,
            )
        )
        return 0
    title = f"fit quality ({bench.model.meta.get('quality_scored_on')})"
    print(format_quality_table(bench.fit_quality, title, caps=bench.noise))
    print(f"\nsurrogate {bench.digest} at {bench.cache_path} ({took:.2f} s)")
    return 0


def _fit_with_extra(args: argparse.Namespace, bench: Any, took: float) -> int:
    """The held-out fit with the extra records beside the fit without them (same split, same scoring rows)."""
    base = _load(args, split=args.split)
    info = bench.model.meta.get("split", {}).get("extra", {})
    if args.json:
        print(
            json.dumps(
                {
                    "with_extra": bench.fit_quality,
                    "without": base.fit_quality,
                    "extra": info,
                    "scored_on": bench.model.meta.get("quality_scored_on"),
                    "cache": str(bench.cache_path),
                    "seconds": took,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"extra records: {info.get('n_records', 0)} added from {info.get('source')}"
        + (
            f", {info['n_left_out_scored']} left out (their architectures are scored)"
            if info.get("n_left_out_scored")
            else ""
        )
    )
    print(f"held-out fit ({bench.model.meta.get('quality_scored_on')}), without -> with the extra records:")
    print(f"  {'target':<18} {'R2':>17} {'Kendall tau':>17} {'MAE':>21}")
    for t, q in bench.fit_quality.items():
        b = base.fit_quality.get(t, {})
        print(
            f"  {t:<18} {b.get('r2', float('nan')):7.4f} -> {q['r2']:7.4f} "
            f"{b.get('kendall_tau', float('nan')):7.4f} -> {q['kendall_tau']:7.4f} "
            f"{b.get('mae', float('nan')):9.4g} -> {q['mae']:9.4g}"
        )
    if args.split == "all":
        print(
            "  (out-of-fold on all records, the extra ones included: use --split default to score both fits "
            "on the same held-out records)"
        )
    print(f"\nsurrogate {bench.digest} at {bench.cache_path} ({took:.2f} s)")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    if args.archs:
        try:
            archs = json.loads(Path(args.archs).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"nasopt bench query: cannot read --archs {args.archs}: {exc}") from exc
        if not isinstance(archs, list):
            raise SystemExit(f"nasopt bench query: {args.archs} must hold a JSON list of architecture dicts")
        if not archs:
            raise space.InvalidArchitectureError(
                f"--archs {args.archs} holds an empty list; give at least one architecture dict"
            )
        X = space.from_dicts(archs)
    elif args.arch is not None:  # an empty --arch "" is an error, not EfficientNet-B0
        if not args.arch.strip():
            raise space.InvalidArchitectureError(
                "--arch is empty; give 7 blocks like "
                "'e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k3l1+' (or leave --arch out to query "
                "EfficientNet-B0)"
            )
        X = space.from_strings([args.arch])
    else:
        X = space.reference("efficientnet_b0")[None, :]
    targets = check_targets(args.targets) if args.targets else None
    bench = _load(args)
    preds = bench.query(X, targets)
    macs, params = bench.macs_params(X)
    cov = bench.coverage
    distance = cov.distance(X) if cov is not None else None
    # per target, the coverage of the fit that predicts it: the built-in fit's, or a user device's own
    # surrogate's (its measured range and measured architectures, benchmark.devices.coverage)
    covs: dict[str, Any] = {}
    device_distance: dict[str, Any] = {}
    for t in preds:
        if cov is not None and t in cov.ranges:
            covs[t] = cov
        elif t in devices.user_targets_in([t]):
            dcov = devices.coverage(t)
            if dcov is not None and t in dcov.ranges:
                covs[t] = dcov
                device_distance[t] = dcov.distance(X)
    flags = {t: c.extrapolated(t, preds[t].mean, preds[t].std) for t, c in covs.items()}
    rows = []
    for i, s in enumerate(space.to_strings(X)):
        row: dict[str, Any] = {"arch": s, "macs_m": float(macs[i]), "params_m": float(params[i])}
        if distance is not None:
            row["distance_to_data"] = int(distance[i])
        for t, p in preds.items():
            row[t] = {"mean": float(p.mean[i]), "std": float(p.std[i]), "unit": get_target(t).unit}
            if t in flags:
                row[t]["extrapolated"] = bool(flags[t][i])
                row[t]["measured_range"] = list(covs[t].ranges[t])
            if t in device_distance:  # genes to the nearest architecture measured on the user device
                row[t]["distance_to_data"] = int(device_distance[t][i])
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(row["arch"])
        print(f"  {'MACs':<18} {row['macs_m']:12.3f} M")
        print(f"  {'params':<18} {row['params_m']:12.4f} M")
        for t in preds:
            line = f"  {t:<18} {row[t]['mean']:12.4f} ± {row[t]['std']:.4f} {row[t]['unit']}"
            if row[t].get("extrapolated"):
                lo, hi = row[t]["measured_range"]
                line += f"  EXTRAPOLATED (measured range {lo:.4f} to {hi:.4f})"
            if "distance_to_data" in row[t]:
                d = row[t]["distance_to_data"]
                line += f"  (nearest measured on the device {d} gene{'s' if d != 1 else ''} away)"
            print(line)
        if "distance_to_data" in row:
            d = row["distance_to_data"]
            print(f"  {'nearest measured':<18} {d:12d} gene{'s' if d != 1 else ''} away")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark.dataset import read_records

    test = read_records(args.test)
    # never score on training data: records of the test architectures are left out of the training rows
    bench = _load(args, dataset=args.train or args.dataset, exclude=test.X)
    excluded = bench.model.meta.get("excluded")
    n_train = bench.model.meta.get("n_train")
    if excluded:
        note = (
            f"left {excluded['n_records']} training records ({excluded['n_architectures']} architectures) of "
            f"the test set out of training; trained on {n_train} records"
        )
    else:
        note = f"no test architecture is in the training data; trained on {n_train} records"
    preds = bench.query(test.X)
    result = {t: fit_quality(test.labels[t], p.mean, p.std) for t, p in preds.items()}
    if args.json:
        keys = ("r2", "kendall_tau", "spearman", "mae", "rmse", "n")
        print(
            json.dumps(
                {t: {k: (int(q[k]) if k == "n" else q[k]) for k in keys} for t, q in result.items()}, indent=2
            )
        )
        print(f"nasopt bench evaluate: {note}", file=sys.stderr)
        return 0
    caps = noise_caps(bench.noise, test.labels)
    title = f"surrogate {bench.digest} vs {len(test)} measured records in {args.test}"
    print(format_quality_table(result, title, caps=caps))
    print(f"\n{note}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from benchmark.dataset import load_dataset
    from benchmark.oracle import surrogate_cache_root
    from benchmark.sources import cache_dir

    data = load_dataset(args.dataset, download=not args.no_download)
    print(
        f"search space: {space.SPACE_SIZE:,} architectures "
        f"({space.N_BLOCKS} MBConv blocks; {space.N_GENES} genes)"
    )
    print(f"dataset: {len(data)} records from {data.source}\n  sha256 {data.sha256}")
    print(f"  skipped records: {data.n_skipped}")
    for t in TARGET_NAMES:
        y = data.labels[t]
        ok = np.isfinite(y)
        print(
            f"  {t:<18} n={int(ok.sum()):>5} missing={int((~ok).sum()):>3}  min={np.nanmin(y):10.3f} "
            f"median={np.nanmedian(y):10.3f} max={np.nanmax(y):10.3f} {TARGETS[t].unit}"
        )
    print("repeat measurements (same architecture in several records): spread of one measurement")
    for t, est in estimate_noise(data.X, dict(data.labels)).items():
        scale = 100.0 if est.relative else 1.0
        unit = TARGETS[t].unit
        sym = " % of value" if est.relative else (" points" if unit == "%" else f" {unit}")
        print(
            f"  {t:<18} {est.n_groups:>4} repeated  sigma {est.sigma_rms * scale:8.3f}{sym} (rms)  "
            f"{est.sigma_robust * scale:8.3f}{sym} (robust)"
        )
    root = surrogate_cache_root(args.cache_dir)
    print(f"cache: {cache_dir()}\nsurrogates: {root}")
    if root.is_dir():
        for d in sorted(root.iterdir()):
            meta = d / "meta.json"
            if d.name.startswith(".") or not d.is_dir():
                continue
            try:
                m = json.loads(meta.read_text())
                if not isinstance(m, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                print(f"  {d.name}: unreadable meta.json ({type(exc).__name__}); refitted on next use")
                continue
            cfg: dict[str, Any] = m["config"] if isinstance(m.get("config"), dict) else {}
            print(
                f"  {d.name}: {cfg.get('backend')} members={cfg.get('n_members')} "
                f"versions={m.get('versions')} fitted {m.get('created')}"
            )
    _print_user_devices()
    return 0


def _size(n: int) -> str:
    """Bytes as "12.3 MB" (one decimal, powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def _entry_line(e: CacheEntry) -> list[str]:
    sha = e.dataset_sha256[:16] if e.dataset_sha256 != "unknown" else e.dataset_sha256
    targets = (
        f"all {len(TARGET_NAMES)}"
        if set(e.targets) == set(TARGET_NAMES)
        else (",".join(e.targets) or "unknown")
    )
    return [
        e.key,
        e.dataset,
        sha,
        e.split,
        targets,
        _size(e.size_bytes),
        e.created,
        _when(e.last_used) + (f"  [{e.problem}; refitted on next use]" if e.problem else ""),
    ]


def _print_entries(entries: list[CacheEntry]) -> None:
    header = ["key", "dataset", "sha256", "split", "targets", "size", "created", "last used"]
    rows = [header, *[_entry_line(e) for e in entries]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _cmd_cache(args: argparse.Namespace) -> int:
    from benchmark.oracle import leftover_temporaries, list_cache, prune_cache, surrogate_cache_root

    root = surrogate_cache_root(args.cache_dir)
    if args.cache_cmd == "list":
        entries = list_cache(args.cache_dir)
        temps = leftover_temporaries(args.cache_dir)
        if args.json:
            print(
                json.dumps(
                    {
                        "root": str(root),
                        "entries": [e.to_json() for e in entries],
                        "leftover_temporaries": [str(d) for d in temps],
                    },
                    indent=2,
                )
            )
            return 0
        total = sum(e.size_bytes for e in entries)
        print(f"{len(entries)} cached surrogate(s) in {root} ({_size(total)})")
        if entries:
            _print_entries(entries)
        if temps:
            print(
                f"{len(temps)} temporary folder(s) left by killed fits: {', '.join(d.name for d in temps)} "
                "(nasopt bench cache prune --yes removes them)"
            )
        return 0
    res = prune_cache(
        args.cache_dir,
        older_than_days=args.older_than,
        keep=args.keep,
        everything=args.all,
        dry_run=not args.yes,
    )
    verb = "would remove" if res.dry_run else "removed"
    if res.entries:
        print(f"{verb} {len(res.entries)} cached surrogate(s):")
        _print_entries(res.entries)
    for d in res.temporaries:
        print(f"{verb} {d.name} (a temporary folder left by a killed fit)")
    if args.older_than is None and args.keep is None and not args.all:
        print("no --older-than, --keep or --all given: only temporary folders of killed fits are pruned")
    print(
        f"{verb} {len(res.entries)} entr{'y' if len(res.entries) == 1 else 'ies'} and "
        f"{len(res.temporaries)} temporary folder(s), {_size(res.freed_bytes)}; {len(res.kept)} "
        f"entr{'y' if len(res.kept) == 1 else 'ies'} kept in {root}"
        + (
            "; run again with --yes to remove them"
            if res.dry_run and (res.entries or res.temporaries)
            else ""
        )
    )
    return 0


def _print_user_devices() -> None:
    """The user devices (``nasopt device add``): target, measurements, fit and stored box."""
    names = devices.device_names()
    print(f"user devices: {devices.devices_root()} ({len(names)})")
    for n in names:
        try:
            dev = devices.read_device(n)
        except devices.DeviceError as exc:
            print(f"  {n}: {exc}")
            continue
        q = dev.info.get("fit", {})
        box = dev.normalization
        print(
            f"  {dev.target:<24} {dev.info.get('backend')} n={q.get('n_train', 0)} "
            f"oof tau={q.get('kendall_tau', float('nan')):.3f} "
            f"box={'-' if box is None else f'{box[0]:g}..{box[1]:g}'} {devices.UNITS[dev.metric]}"
            f"{'' if dev.fitted else ' (not fitted yet)'}"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt bench``; returns the exit code."""
    args = _parser().parse_args(argv)
    handlers = {
        "fit": _cmd_fit,
        "query": _cmd_query,
        "evaluate": _cmd_evaluate,
        "info": _cmd_info,
        "cache": _cmd_cache,
    }
    try:
        return handlers[args.cmd](args)
    except NasoptError as exc:
        print(f"nasopt bench {args.cmd}: error: {exc}", file=sys.stderr)
        return 2
