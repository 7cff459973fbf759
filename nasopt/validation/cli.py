"""``nasopt model info|export`` and ``nasopt measure [import]``: build, export and measure architectures."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from benchmark import space
from benchmark.errors import NasoptError

EXAMPLE = "e1k3l1+ e6k3l2+ e6k5l2+ e6k3l3+ e6k5l3+ e6k5l4+ e6k3l1+"


def _add_arch(p: argparse.ArgumentParser, many: bool) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", help=f"compact string, e.g. '{EXAMPLE}', or a reference name (efficientnet_b0)")
    if many:
        g.add_argument(
            "--archs",
            help="file: a JSON list of compact strings or upstream dicts, or one compact string per line",
        )


def _model_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nasopt model", description="Build and export search-space networks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="layers, parameters and MACs of the built network")
    _add_arch(p, many=False)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("export", help="write the network as ONNX, TorchScript or a torch.export program")
    _add_arch(p, many=False)
    p.add_argument("--format", choices=["onnx", "torchscript", "export"], default="onnx")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--resolution", type=int, default=224, help="example input resolution (default 224)")
    p.add_argument("--weights", help="safetensors weights (from training) instead of a fresh initialisation")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    return ap


def _parse_one(text: str) -> Any:
    if not text.strip():
        raise space.InvalidArchitectureError(f"--arch is empty; give 7 blocks like '{EXAMPLE}'")
    key = text.strip().lower().replace("-", "_")
    return space.reference(key) if key in space.REFERENCES else space.from_string(text)


def _read_archs(path: str) -> list[Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise space.InvalidArchitectureError(
            f"--archs {path}: cannot read it ({exc.strerror or exc})"
        ) from exc
    try:
        data = json.loads(text)
    except ValueError:
        data = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not isinstance(data, list):
        raise space.InvalidArchitectureError(
            f"--archs {path}: expected a JSON list or one architecture per line"
        )
    if not data:
        raise space.InvalidArchitectureError(f"--archs {path} holds no architecture")
    return [_parse_one(a) if isinstance(a, str) else space.parse(a) for a in data]


def _cmd_info(args: argparse.Namespace) -> int:
    from benchmark import geometry, macs
    from nasopt.validation.model import build_model, count_parameters

    genes = _parse_one(args.arch)
    model = build_model(genes, device="meta")
    m, p = macs.count_macs_params(genes)
    plan = geometry.layer_plan(genes)
    info: dict[str, Any] = {
        "arch": model.arch_string,
        "params": count_parameters(model),
        "params_analytic": int(p[0]),
        "macs_224": int(m[0]),
        "layers": len(plan),
        "plan": [
            {
                "block": s.block,
                "c_in": s.c_in,
                "c_out": s.c_out,
                "e": s.expansion,
                "k": s.kernel,
                "stride": s.stride,
                "se": s.se,
                "residual": s.residual,
            }
            for s in plan
        ],
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(info["arch"])
    print(f"  parameters  {count_parameters(model) / 1e6:10.6f} M")
    print(f"  MACs @224   {int(m[0]) / 1e6:10.6f} M")
    print(f"  MBConv layers {len(plan)}")
    for s in plan:
        print(
            f"    block {s.block}: {s.c_in:>3} -> {s.c_out:>3}  e{s.expansion} k{s.kernel} s{s.stride}"
            f"{' SE' if s.se else ''}{' +res' if s.residual else ''}"
        )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nasopt.validation.model import build_model, export_model, load_weights

    out = Path(args.out)
    if out.exists() and not args.force:
        raise NasoptError(f"{out} exists; choose another --out or pass --force to replace it")
    if args.weights:
        model = load_weights(args.weights)
        if args.arch and space.to_string(_parse_one(args.arch)) != model.arch_string:
            raise NasoptError(
                f"--weights {args.weights} hold {model.arch_string!r}, not --arch {args.arch!r}"
            )
    else:
        model = build_model(_parse_one(args.arch), args.num_classes)
    export_model(model, out, args.format, resolution=args.resolution)
    print(f"wrote {out} ({args.format}, {out.stat().st_size / 1e6:.1f} MB, {model.arch_string})")
    return 0


def model_main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt model``; returns the exit code."""
    args = _model_parser().parse_args(argv)
    try:
        return {"info": _cmd_info, "export": _cmd_export}[args.cmd](args)
    except NasoptError as exc:
        print(f"nasopt model {args.cmd}: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------- measure


def _measure_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt measure",
        description="Measure architectures on a device backend (nasopt measure import RESULTS reads results "
        "measured elsewhere, e.g. on an FPGA board)",
    )
    _add_arch(ap, many=True)
    ap.add_argument("--backend", default="cpu", help="onnxruntime (= cpu), torch-cpu, cuda (= gpu), tpu")
    ap.add_argument("--metric", choices=["latency", "throughput"], default="latency")
    for name, kind, what in (
        ("batch", int, "images per forward pass (default: the backend's)"),
        ("resolution", int, "input resolution (default: the backend's)"),
        ("threads", int, "host threads (CPU backends; default all)"),
        ("warmup", int, "untimed passes first"),
        ("repeats", int, "timed samples"),
        ("passes", int, "forward passes timed together per sample"),
    ):
        ap.add_argument(f"--{name}", type=kind, help=what)
    ap.add_argument("--precision", help="fp32, fp16, bf16 (what the backend supports)")
    ap.add_argument(
        "--batch-sweep",
        help="throughput at each of these batch sizes (comma-separated), e.g. 32,64,128,256: the best is "
        "reported beside every one (each keeps its own protocol)",
    )
    ap.add_argument("--device-name", help="the record's device name, e.g. a100 (default: the backend's)")
    ap.add_argument("--out", help="directory to write Accel-NASBench records into (appended, never replaced)")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    return ap


def _import_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt measure import",
        description="Turn a results JSON (e.g. the FPGA board runner's) into records",
    )
    ap.add_argument("results", nargs="+", help="results JSON files")
    ap.add_argument("--out", required=True, help="directory of Accel-NASBench records (appended)")
    return ap


def _read_results(path: str) -> list[Any]:
    """A board runner's results (FPGA bundle format) or a list of measurements (``nasopt measure --json``)."""
    from nasopt.validation.measure.fpga import import_results
    from nasopt.validation.records import read_measurements_json

    try:
        return import_results(path)
    except NasoptError:
        return read_measurements_json(path)


def _cmd_import(argv: list[str]) -> int:
    from nasopt.validation.records import write_measurements

    args = _import_parser().parse_args(argv)
    try:
        ms = [m for path in args.results for m in _read_results(path)]
        paths = write_measurements(args.out, ms)
    except NasoptError as exc:
        print(f"nasopt measure import: error: {exc}", file=sys.stderr)
        return 2
    print(f"imported {len(ms)} measurement(s) of {len(paths)} architecture(s) into {args.out}")
    return 0


def _bundle_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt measure bundle",
        description="Write a Vitis AI deploy bundle (float model, calibration list, quantize+compile script "
        "for the Vitis AI docker, VART board runner) for a ZCU102 or VCK190; the board runner's results.json "
        "comes back with: nasopt measure import results.json --out DIR",
    )
    ap.add_argument("--arch", required=True, help=f"compact string, e.g. '{EXAMPLE}', or efficientnet_b0")
    ap.add_argument("--board", default="zcu102", help="zcu102 (DPUCZDX8G_ISA1_B4096) or vck190 (DPUCVDX8G)")
    ap.add_argument("--out", required=True, help="the bundle directory (created)")
    ap.add_argument("--calibration", help="ImageNet-layout folder to take ~150 calibration images from")
    ap.add_argument("--n-calibration", type=int, default=150)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--weights", help="trained safetensors weights (default: a fresh initialisation)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")
    return ap


def _cmd_bundle(argv: list[str]) -> int:
    from nasopt.validation.measure.fpga import write_bundle
    from nasopt.validation.model import load_weights

    args = _bundle_parser().parse_args(argv)
    try:
        model: Any = load_weights(args.weights) if args.weights else _parse_one(args.arch)
        bundle = write_bundle(
            model,
            args.out,
            args.board,
            calibration_dir=args.calibration,
            n_calibration=args.n_calibration,
            resolution=args.resolution,
            overwrite=args.overwrite,
        )
    except NasoptError as exc:
        print(f"nasopt measure bundle: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote the {args.board} bundle to {bundle.path}; see its README.md")
    return 0


def measure_main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt measure``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["import"]:
        return _cmd_import(argv[1:])
    if argv[:1] == ["bundle"]:
        return _cmd_bundle(argv[1:])
    args = _measure_parser().parse_args(argv)
    from nasopt.validation.measure import make_backend
    from nasopt.validation.records import write_measurements

    settings = {
        k: getattr(args, k)
        for k in ("batch", "resolution", "threads", "warmup", "repeats", "passes", "precision", "device_name")
        if getattr(args, k) is not None
    }
    done: list[Any] = []
    swept: list[Any] = []  # the other batch sizes of a sweep: printed with --json, not written as records
    try:
        archs = [_parse_one(args.arch)] if args.arch is not None else _read_archs(args.archs)
        backend = make_backend(args.backend, metric=args.metric, **settings)
        backend.check_available()
        sweep = [int(b) for b in args.batch_sweep.split(",") if b] if args.batch_sweep else []
        if sweep and args.metric != "throughput":
            raise NasoptError("--batch-sweep measures throughput; add --metric throughput")
        for i, genes in enumerate(archs):
            if sweep:
                from nasopt.validation.measure import best_batch

                opts = {k: v for k, v in settings.items() if k != "batch"}
                m, every = best_batch(genes, args.backend, sweep, **opts)
                swept += [x for x in every if x is not m]
                print(
                    "  batch sweep: "
                    + ", ".join(f"{x.protocol.batch}: {x.mean:.4g}" for x in every)
                    + f" img/s; best batch {m.protocol.batch}",
                    file=sys.stderr,
                )
            else:
                m = backend.measure(genes)
            done.append(m)
            print(
                f"[{i + 1}/{len(archs)}] {m.arch}  {m.target} {m.mean:.4g} ± {m.std:.2g} {m.unit}"
                f" (n={m.n}{f', {m.n_rejected} outliers' if m.n_rejected else ''})",
                file=sys.stderr,
            )
    except NasoptError as exc:
        print(f"nasopt measure: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nasopt measure: interrupted after {len(done)} architecture(s)", file=sys.stderr)
        return 130
    finally:
        if args.out and done:  # what was measured is kept, even after an error or Ctrl-C
            paths = write_measurements(args.out, done)
            print(f"wrote {len(paths)} record(s) to {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps([m.to_dict() for m in done + swept], indent=1))
    return 0


# ---------------------------------------------------------------------------------------------- validate


def _validate_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="nasopt validate",
        description="From search runs to measured (and trained) candidates and a predicted-vs-measured "
        "report. Re-running the same command continues: finished jobs are never redone.",
    )
    ap.add_argument("runs", nargs="*", help="search run directories (or sweep roots); omit to continue --out")
    ap.add_argument(
        "--out",
        required=True,
        help="the validation directory (created; continued when it holds the same plan)",
    )
    ap.add_argument(
        "--select", default="pareto", help="pareto (spread along the pooled front), knee, top-k, all"
    )
    ap.add_argument("--n", type=int, default=10, help="candidates to keep (pareto, top-k)")
    ap.add_argument("--target", help="top-k: the objective to rank by (default the first)")
    ap.add_argument("--references", default="efficientnet_b0", help="comma-separated reference architectures")
    ap.add_argument("--measure", default="", help="comma-separated backends, e.g. cpu,cuda (empty: none)")
    ap.add_argument("--metric", default="latency", help="latency or throughput (or both: latency,throughput)")
    ap.add_argument(
        "--measure-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend setting, e.g. threads=1, resolution=224, repeats=20 (repeatable)",
    )
    ap.add_argument(
        "--train", metavar="SCHEME", help="train every candidate with this scheme (smoke, proxified)"
    )
    ap.add_argument(
        "--train-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="training setting, e.g. data=/path/to/imagefolder, epochs=2 (repeatable)",
    )
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="MEASURED=PREDICTED",
        help="pair a measured quantity with a predicted target, e.g. latency_cpu=latency_zcu102",
    )
    ap.add_argument(
        "--launcher",
        default="local",
        choices=["local", "submitit-local", "slurm", "ray"],
        help="where jobs run (default: this process); see nasopt.engines",
    )
    ap.add_argument(
        "--launcher-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="engine setting, e.g. partition=gpu, timeout_min=240, gpus_per_node=1, address=auto",
    )
    ap.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    ap.add_argument("--overwrite", action="store_true", help="replace another validation in --out")
    ap.add_argument("--no-figures", action="store_true")
    return ap


def _options(pairs: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise NasoptError(f"{what} {pair!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _executor(name: str, vdir: Path, options: dict[str, Any]) -> Any:
    """None (this process) or an engine of :mod:`nasopt.engines` (``submit`` -> handle with ``result()``)."""
    if name == "local":
        return None
    from nasopt.engines import Engine

    kind = {"submitit-local": "submitit_local"}.get(name, name)
    if kind != "ray":
        options = {"folder": str(vdir / "launcher" / "%j"), **options}
    return Engine(kind, **options)


def validate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt validate``; returns the exit code."""
    args = _validate_parser().parse_args(argv)
    from nasopt.validation.candidates import (
        attach_predictions,
        oracle_of,
        read_search_runs,
        select_candidates,
    )
    from nasopt.validation.plan import (
        PLAN_FILE,
        Plan,
        collect,
        locked_validation,
        make_jobs,
        open_plan,
        read_plan,
        run_plan,
    )
    from nasopt.validation.report import write_report

    vdir = Path(args.out)
    try:
        overrides = dict(_options(args.compare, "--compare"))
        if not args.runs:
            if not (vdir / PLAN_FILE).exists():
                raise NasoptError(
                    f"give the search run directories (or an existing validation --out); "
                    f"{vdir} holds no validation"
                )
            plan = read_plan(vdir)
        else:
            runs = read_search_runs(args.runs)
            refs = [r for r in args.references.split(",") if r.strip()]
            cands = select_candidates(runs, select=args.select, n=args.n, target=args.target, references=refs)
            cands = attach_predictions(cands, oracle_of(runs[0]))
            metrics = [m for m in args.metric.split(",") if m]
            opts = _options(args.measure_opt, "--measure-opt")
            measure = [
                {"backend": b, "metric": m, **opts} for b in args.measure.split(",") if b for m in metrics
            ]
            if measure:  # settings are checked before anything is written
                from nasopt.validation.measure import make_backend

                for m in measure:
                    s = dict(m)
                    backend = make_backend(s.pop("backend"), **s)
                    if args.launcher == "local":  # elsewhere the device is on the node the job runs on
                        backend.check_available()
            train = {"scheme": args.train, **_options(args.train_opt, "--train-opt")} if args.train else None
            jobs = make_jobs(cands, measure, train)
            if not jobs:
                raise NasoptError("nothing to do: give --measure BACKENDS and/or --train SCHEME")
            info = runs[0].info
            plan = Plan(
                tuple(cands),
                {k: getattr(info, k) for k in info.__dataclass_fields__},
                {"select": args.select, "n": args.n, "references": refs, "measure": measure, "train": train},
                jobs,
                tuple(str(r.path) for r in runs),
            )
        with locked_validation(vdir):
            plan = open_plan(vdir, plan, overwrite=args.overwrite)
            print(
                f"validation {vdir}: {len(plan.candidates)} candidates, {len(plan.jobs)} jobs",
                file=sys.stderr,
            )
            with contextlib.ExitStack() as stack:
                engine = _executor(args.launcher, vdir, _options(args.launcher_opt, "--launcher-opt"))
                if engine is not None:  # started here, shut down (a local Ray cluster) when the plan ends
                    engine = stack.enter_context(engine)
                progress = run_plan(vdir, plan, retry_failed=args.retry_failed, executor=engine)
            collected = collect(vdir, plan)
            report = write_report(vdir, plan, collected, overrides, figures=not args.no_figures)
    except NasoptError as exc:
        print(f"nasopt validate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"nasopt validate: interrupted; finished jobs are kept in {vdir}; "
            "run the same command to continue",
            file=sys.stderr,
        )
        return 130
    print(f"{progress.done} done, {progress.failed} failed, {progress.pending} pending; report: {report}")
    for err in progress.errors.values():
        print(f"  failed: {err}  (--retry-failed runs it again)")
    return 1 if progress.failed else 0
