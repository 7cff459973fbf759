"""``nasopt benchmark build | info``.

::

    nasopt benchmark build [SPEC.yaml] [key=value ...] [--out DIR] [--overwrite]
    nasopt benchmark build data=/data/fm32 skeleton=0.25 n_architectures=200 proxy.epochs=2 \\
        'devices=[{name: cpu, backend: onnxruntime, threads: 1}]' --out runs/benchmarks/fm32
    nasopt benchmark info ARCHIVE_OR_BUILD_DIR [--json]
    nasopt benchmark pack BUILD_DIR             # an unfinished build's records so far: <name>.partial.tar.gz

Overrides use the ``nasopt search`` syntax (OmegaConf dot-lists) on the settings of
:class:`nasopt.benchmark_build.BenchmarkSpec`. Running the same build again continues it (nothing finished is
redone); a finished build is reported, not rebuilt (``--overwrite`` starts over). Exit status: 0 built,
1 unfinished (failed jobs: run it again), 2 bad input (one line), 130 stopped by a signal (run it again).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from benchmark.errors import NasoptError


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nasopt benchmark", description="Build a benchmark of your own")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("build", help="sample, train, measure, write records and the archive (resumable)")
    p.add_argument("settings", nargs="*", help="SPEC.yaml and/or key=value overrides")
    p.add_argument("--out", help="build directory (default runs/benchmarks/<name>)")
    p.add_argument("--overwrite", action="store_true", help="remove a previous build there and start over")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--print-spec", action="store_true", help="print the resolved spec and its digest, build nothing"
    )
    p = sub.add_parser("pack", help="pack an unfinished build's records so far into <name>.partial.tar.gz")
    p.add_argument("out", help="the build directory")
    p = sub.add_parser("info", help="what a built archive holds: spec, targets, counts")
    p.add_argument("archive", help="the .tar.gz (or its build directory)")
    p.add_argument("--json", action="store_true")
    return ap


def _split(settings: list[str]) -> tuple[str | None, list[str]]:
    files = [s for s in settings if "=" not in s]
    if len(files) > 1:
        raise NasoptError(f"give at most one spec file, got {', '.join(files)}")
    return (files[0] if files else None), [s for s in settings if "=" in s]


def _cmd_build(args: argparse.Namespace) -> int:
    from nasopt.benchmark_build import build_benchmark, load_spec

    spec = load_spec(*_split(args.settings))
    if args.print_spec:
        print(
            json.dumps(
                {"digest": spec.digest(), "spec": spec.to_dict(), "identity": spec.identity()}, indent=1
            )
        )
        return 0
    res = build_benchmark(spec, args.out, overwrite=args.overwrite, verbose=not args.quiet)
    if res.finished:
        what = (
            "already built"
            if res.already_built
            else (f"built ({res.trained_now} trained, {res.measured_now} measured now)")
        )
        print(f"{res.archive}: {what}; {res.n_records} records")
        return 0
    print(
        f"{res.out_dir}: unfinished, {res.n_records} records; {len(res.failed)} job(s) failed: run the same "
        f"command again to retry them",
        file=sys.stderr,
    )
    return 1


def _cmd_pack(args: argparse.Namespace) -> int:
    from nasopt.benchmark_build.build import pack_partial

    path = pack_partial(args.out)
    print(f"{path}: the records so far (a built archive marked partial)")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from benchmark import built

    path = built.redirect(Path(args.archive))
    info = built.read_info(path) if path.is_file() else None
    if info is None:
        raise built.BuiltBenchmarkError(
            f"{args.archive} is not a built benchmark (no {built.META_NAME} first in a .tar.gz); build one "
            f"with: "
            f"nasopt benchmark build"
        )
    m = info.meta
    if args.json:
        print(json.dumps(m, indent=1, sort_keys=True))
        return 0
    print(
        f"{info.name}: {m['dataset']}, {info.num_classes} classes, {info.resolution} px, "
        f"spec {m['spec_digest']}"
    )
    print(f"  archive    {path}")
    print(
        f"  skeleton   stem {info.skeleton.stem_channels}, stages {list(info.skeleton.out_channels)}, "
        f"head {info.skeleton.head_channels}"
    )
    print(
        f"  training   scheme {m['train_scheme']['name']} ({m['train_scheme']['epochs']} epochs), "
        f"train fraction "
        f"{m['train_fraction']}"
    )
    part = " PARTIAL: an unfinished build's records so far" if m.get("partial") else ""
    print(f"  records    {m['counts']['records']} ({m['counts']['architectures']} architectures){part}")
    for t in info.targets:
        box = info.boxes.get(t.name)
        print(
            f"  target     {t.name:<20} {t.unit:<6} {'max' if t.maximize else 'min'}"
            + (f"  box {box[0]:g}..{box[1]:g}" if box else "")
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt benchmark``; returns the exit code."""
    args = _parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "build": _cmd_build,
        "pack": _cmd_pack,
        "info": _cmd_info,
    }

    from nasopt.benchmark_build.build import BuildStopped

    try:
        return handlers[args.cmd](args)
    except NasoptError as exc:
        print(f"nasopt benchmark {args.cmd}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (BuildStopped, KeyboardInterrupt) as exc:
        why = f" ({' '.join(str(exc).split())})" if str(exc) else ""
        print(
            f"nasopt benchmark {args.cmd}: stopped{why}; run the same command again to continue (nothing "
            f"finished is redone)",
            file=sys.stderr,
        )
        return 130
