"""Measure the compiled network on the board with VART and write nasopt's measurement JSON.

Written by nasopt into an FPGA deploy bundle; runs on the board image (Python 3 with VART's ``vart`` and
``xir`` modules and numpy; nasopt is not needed). After ``quantize_compile.py`` in the docker, copy the bundle
folder to the board and run::

    python3 run_board.py [--metric latency|throughput|both] [--threads N] [--jobs N] [--repeats N]
                         [--out FILE]

then read the result on the host with ``nasopt.validation.measure.fpga.import_results(FILE)``.

The dataset's protocol: latency = one thread with one DPU runner (batch 1 on the ZCU102's DPUCZDX8G, a batch
of 6 on the VCK190's DPUCVDX8G, fixed by the compiled DPU), reported as the time per batch in ms -- with
VART's asynchronous jobs that is the pipelined time per batch, not the latency of one image; throughput =
5 (ZCU102) / 6 (VCK190) threads, each with its own runner, images per second over all of them. Each sample
times ``jobs`` batches per thread (``execute_async`` + ``wait``) after a warm-up; inputs are int8 zeros
(the DPU's time does not depend on the values).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
FORMAT = "nasopt-measurements"
FORMAT_VERSION = 1
MAD_TO_SIGMA = 1.4826
OUTLIER_SIGMAS = 5.0


def fail(message: str) -> None:
    sys.stderr.write("error: %s\n" % message)
    sys.exit(2)


def read_manifest() -> dict:
    path = os.path.join(HERE, "manifest.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        fail("cannot read the bundle's manifest %s: %s" % (path, exc))
        raise


def dpu_subgraph(graph: Any) -> Any:
    """The one DPU subgraph of a compiled xmodel."""
    children = graph.get_root_subgraph().toposort_child_subgraph()
    dpu = [s for s in children if s.has_attr("device") and str(s.get_attr("device")).upper() == "DPU"]
    if len(dpu) != 1:
        fail(
            "the xmodel has %d DPU subgraphs (one expected): some layers run on the CPU between DPU parts; "
            "check the vai_c_xir log" % len(dpu)
        )
    return dpu[0]


def summarize(samples: list[float]) -> dict[str, Any]:
    """Mean/std over the samples within 5 robust sigmas (1.4826 MAD) of the median, as nasopt does."""
    xs = sorted(samples)

    def median(v: list[float]) -> float:
        v = sorted(v)
        m = len(v) // 2
        return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])

    med = median(xs)
    robust = MAD_TO_SIGMA * median([abs(x - med) for x in xs])
    kept = [x for x in samples if robust <= 0 or abs(x - med) <= OUTLIER_SIGMAS * robust]
    mean = sum(kept) / len(kept)
    std = (sum((x - mean) ** 2 for x in kept) / (len(kept) - 1)) ** 0.5 if len(kept) > 1 else 0.0
    return {
        "mean": mean,
        "std": std,
        "median": med,
        "robust_std": robust,
        "n": len(kept),
        "n_rejected": len(samples) - len(kept),
    }


class Worker:
    """One thread's DPU runner and its int8 buffers."""

    def __init__(self, subgraph: Any) -> None:
        import numpy as np
        import vart

        self.runner = vart.Runner.create_runner(subgraph, "run")
        self.inputs = [
            np.zeros(tuple(t.dims), dtype=np.int8, order="C") for t in self.runner.get_input_tensors()
        ]
        self.outputs = [
            np.zeros(tuple(t.dims), dtype=np.int8, order="C") for t in self.runner.get_output_tensors()
        ]
        self.error: Any = None

    @property
    def batch(self) -> int:
        return int(tuple(self.runner.get_input_tensors()[0].dims)[0])

    def run(self, jobs: int) -> None:
        try:
            for _ in range(jobs):
                job = self.runner.execute_async(self.inputs, self.outputs)
                self.runner.wait(job)
        except Exception as exc:  # reported by the main thread
            self.error = exc


def timed(workers: list[Worker], jobs: int) -> float:
    """Seconds for every worker to run ``jobs`` batches, all threads at once."""
    threads = [threading.Thread(target=w.run, args=(jobs,)) for w in workers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    errors = [w.error for w in workers if w.error is not None]
    if errors:
        fail("a DPU job failed: %r" % (errors[0],))
    return max(seconds, 1e-12)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "processor")) and ":" in line:
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    out = {}
    for name in ("numpy", "vart", "xir"):
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except ImportError:
            pass
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def environment(manifest: dict, subgraph: Any, xmodel: str, threads: int, batch: int) -> dict[str, Any]:
    dpu_attrs = {}
    for key in ("dpu_fingerprint", "dpu_name", "device"):
        if subgraph.has_attr(key):
            dpu_attrs[key] = str(subgraph.get_attr(key))
    return {
        "device": "%s (%s)" % (manifest["board"], manifest["dpu"]),
        "runtime": "VART %s" % versions().get("vart", "unknown"),
        "board": manifest["board"],
        "dpu": manifest["dpu"],
        "dpu_subgraph": dpu_attrs,
        "xmodel": os.path.basename(xmodel),
        "xmodel_sha256": sha256(xmodel),
        "threads": threads,
        "batch": batch,
        "resolution": manifest["resolution"],
        "precision": "int8",
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": versions(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def measure(
    manifest: dict,
    subgraph: Any,
    xmodel: str,
    metric: str,
    threads: int,
    warmup: int,
    repeats: int,
    jobs: int,
) -> dict[str, Any]:
    """One measurement in nasopt's Measurement layout."""
    workers = [Worker(subgraph) for _ in range(threads)]
    batch = workers[0].batch
    if warmup:
        timed(workers, warmup)
    seconds = [timed(workers, jobs) for _ in range(repeats)]
    passes = threads * jobs  # batches per sample, over all threads
    if metric == "throughput":
        samples = [batch * passes / s for s in seconds]
    else:
        samples = [1000.0 * s / passes for s in seconds]
    out = {"arch": manifest["arch"], "device": manifest["board"], "metric": metric}
    out["unit"] = "img/s" if metric == "throughput" else "ms"
    out.update(summarize(samples))
    out["samples"] = samples
    out["protocol"] = {
        "backend": "vart",
        "metric": metric,
        "batch": batch,
        "resolution": manifest["resolution"],
        "precision": "int8",
        "warmup": warmup,
        "repeats": repeats,
        "passes": passes,
        "threads": threads,
        "options": {
            "runtime": "vart",
            "dpu": manifest["dpu"],
            "jobs_per_thread": jobs,
            "latency": "pipelined time per batch" if metric == "latency" else None,
        },
    }
    out["environment"] = environment(manifest, subgraph, xmodel, threads, batch)
    return out


def write_json(path: str, data: Any) -> None:
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def parse_args(manifest: dict, argv: Any) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Measure the bundle's compiled network on %s." % manifest["board"]
    )
    ap.add_argument("--xmodel", default=os.path.join(HERE, "compiled", manifest["net_name"] + ".xmodel"))
    ap.add_argument("--metric", choices=("latency", "throughput", "both"), default="both")
    ap.add_argument("--threads", type=int, default=manifest["throughput_threads"], help="throughput threads")
    ap.add_argument("--latency-threads", type=int, default=manifest["latency_threads"])
    ap.add_argument("--jobs", type=int, default=100, help="batches per thread in each timed sample")
    ap.add_argument("--warmup", type=int, default=20, help="batches per thread before timing")
    ap.add_argument("--repeats", type=int, default=10, help="timed samples")
    ap.add_argument("--out", default=os.path.join(HERE, "results_%s.json" % manifest["board"]))
    args = ap.parse_args(argv)
    for name in ("threads", "latency_threads", "jobs", "repeats"):
        if getattr(args, name) < 1:
            fail("--%s must be >= 1, got %d" % (name.replace("_", "-"), getattr(args, name)))
    if args.warmup < 0:
        fail("--warmup must be >= 0, got %d" % args.warmup)
    return args


def main(argv: Any = None) -> int:
    manifest = read_manifest()
    args = parse_args(manifest, argv)
    if not os.path.isfile(args.xmodel):
        fail(
            "compiled model %s not found: run quantize_compile.py in the Vitis AI docker first" % args.xmodel
        )
    try:
        import vart  # noqa: F401
        import xir
    except ImportError as exc:
        fail("VART's Python modules are missing (%s): run on the board image with VART installed" % exc)
        raise
    subgraph = dpu_subgraph(xir.Graph.deserialize(args.xmodel))
    plan: list[tuple[str, int]] = []
    if args.metric in ("latency", "both"):
        plan.append(("latency", args.latency_threads))
    if args.metric in ("throughput", "both"):
        plan.append(("throughput", args.threads))
    results = []
    for metric, threads in plan:
        m = measure(manifest, subgraph, args.xmodel, metric, threads, args.warmup, args.repeats, args.jobs)
        print(
            "%s %s: %.4g %s (std %.3g, %d threads, batch %d)"
            % (manifest["board"], metric, m["mean"], m["unit"], m["std"], threads, m["protocol"]["batch"])
        )
        results.append(m)
    write_json(args.out, {"format": FORMAT, "format_version": FORMAT_VERSION, "measurements": results})
    print("wrote " + args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
