"""``nasopt model info|export`` and ``nasopt measure [import]``: build, export and measure architectures."""

from __future__ import annotations

import argparse
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


def _cmd_import(argv: list[str]) -> int:
    from nasopt.validation.records import read_measurements_json, write_measurements

    args = _import_parser().parse_args(argv)
    try:
        ms = [m for path in args.results for m in read_measurements_json(path)]
        paths = write_measurements(args.out, ms)
    except NasoptError as exc:
        print(f"nasopt measure import: error: {exc}", file=sys.stderr)
        return 2
    print(f"imported {len(ms)} measurement(s) of {len(paths)} architecture(s) into {args.out}")
    return 0


def measure_main(argv: list[str] | None = None) -> int:
    """Entry point of ``nasopt measure``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["import"]:
        return _cmd_import(argv[1:])
    args = _measure_parser().parse_args(argv)
    from nasopt.validation.measure import make_backend
    from nasopt.validation.records import write_measurements

    settings = {
        k: getattr(args, k)
        for k in ("batch", "resolution", "threads", "warmup", "repeats", "passes", "precision", "device_name")
        if getattr(args, k) is not None
    }
    done = []
    try:
        archs = [_parse_one(args.arch)] if args.arch is not None else _read_archs(args.archs)
        backend = make_backend(args.backend, metric=args.metric, **settings)
        backend.check_available()
        for i, genes in enumerate(archs):
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
        print(json.dumps([m.to_dict() for m in done], indent=1))
    return 0
