"""The miniature benchmark, for real: Fashion-MNIST (RGB, 32 px, 10 classes x 400 train / x 300 val), the
MnasNet space in a 0.25-width skeleton, >= 200 architectures trained with a cheap proxy on this CPU and
measured for batch-1 single-thread latency (onnxruntime), packed by ``nasopt benchmark build``; then the
surrogates' held-out fit, load time and query speed, and a search on it.

    python experiments/checks/build_study.py build  [--out /work/study/bench2] [--n 200] [--shard i/k]  # long
    python experiments/checks/build_study.py report [--out /work/study/bench2]             # minutes

``build`` is resumable (run the same command again after a kill). The proxy: ``--proxy-file`` (the proxy
search's result, experiments/checks/proxy_study.py) when it exists at the start, else the fixed cheap proxy
below (``FIXED_PROXY``); which one was used is printed and stored in the build's spec. The data:
``--source``'s training images and the first ``--val-per-class`` of its validation images per class (links
under ``/work/study/bench_data``). ``report`` prints the numbers and writes them to ``OUT/study.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the proxy search's data (fm32c: 10 x 400 training, 10 x 500 validation images; see proxy_study.py)
SOURCE = "/work/study/fm32c"
VAL_PER_CLASS = 300
PROXY_FILE = "/work/study/proxy2_found.json"
#: the fixed cheap proxy (smoke-like SGD): 2 epochs at 24 px on 40 % of the training images, batch 32 (50
#: steps); 1 epoch at 16 px learnt nothing (every network at chance, 10 %)
FIXED_PROXY: dict[str, Any] = {
    "name": "fm_proxy",
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.4,
    "lr_peak_epoch": 0.5,
    "min_res": 24,
    "max_res": 24,
    "val_res": 24,
    "checkpoint_every_steps": 20,
}
FIXED_FRACTION = 0.4


def data_dir(source: str, val_per_class: int) -> Path:
    """The build's data folder: links to ``source``'s ``train/`` and its first validation images."""
    return Path("/work/study/bench_data") / f"{Path(source).name}_val{val_per_class}"


def prepare_data(source: str, val_per_class: int) -> Path:
    """:func:`data_dir`, made: ``train/`` linked, the first ``val_per_class`` validation images of each class."""
    root = data_dir(source, val_per_class)
    if not (root / "train").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "train").symlink_to(Path(source) / "train")
    for cls in sorted(p.name for p in (Path(source) / "val").iterdir()):
        d = root / "val" / cls
        d.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(source) / "val" / cls).iterdir())[:val_per_class]:
            if not (d / f.name).exists():
                (d / f.name).symlink_to(f)
    return root


def spec_overrides(n: int, data: Path, proxy: str = "auto", proxy_file: str = PROXY_FILE) -> list[str]:
    """The study's spec as ``key=value`` overrides (what ``nasopt benchmark build`` takes)."""
    fixed = "{" + ", ".join(f"{k}: {v}" for k, v in FIXED_PROXY.items()) + "}"
    over = [
        "name=fm32_mini",
        f"data={data}",
        "dataset=fashion-mnist-rgb32",
        "skeleton=0.25",
        "scheme=smoke",
        "resolution=32",
        f"n_architectures={n}",
        "sampling=uniform",
        "threads=1",
        # in this process: on this loaded CPU a submitit job spent minutes starting Python and importing torch,
        # far more than the training itself (the engine is an execution setting: the build stays the same)
        "engine=local",
        "devices=[{name: cpu, backend: onnxruntime, metric: latency, batch: 1, threads: 1, warmup: 10, "
        "repeats: 20, passes: 10}]",
        f"proxy={fixed}",
        f"train_fraction={FIXED_FRACTION}",
    ]
    if proxy == "file" or (proxy == "auto" and Path(proxy_file).is_file()):
        over.append(f"proxy_file={proxy_file}")
    return over


def cmd_build(args: argparse.Namespace) -> int:
    from nasopt.benchmark_build import build_benchmark, load_spec

    data = prepare_data(args.source, args.val_per_class)
    shard = [f"shard={args.shard}"] if args.shard else []
    spec = load_spec(None, [*spec_overrides(args.n, data, args.proxy, args.proxy_file), *shard])
    print(
        f"proxy: {'the proxy search result ' + str(spec.proxy_file) if spec.proxy_file else 'the fixed cheap proxy'}: "
        f"{json.dumps(spec.train_scheme().to_dict())}, train_fraction {spec.effective_train_fraction()}",
        flush=True,
    )
    res = build_benchmark(spec, args.out)
    print(
        json.dumps(
            {
                "finished": res.finished,
                "archive": str(res.archive),
                "seconds": res.seconds,
                "trained_now": res.trained_now,
                "failed": res.failed,
            },
            indent=1,
        )
    )
    return 0 if res.finished or (spec.shard and not res.failed) else 1


def _fit_table(bench: Any) -> dict[str, dict[str, float]]:
    return {
        t: {k: float(v) for k, v in q.items() if isinstance(v, (int, float))}
        for t, q in bench.fit_quality.items()
    }


def cmd_report(args: argparse.Namespace) -> int:
    from scipy.stats import kendalltau

    from benchmark import built, load_benchmark, space
    from nasopt.benchmark_build.build import finished_build, pack_partial

    out = Path(args.out)
    done = finished_build(out)
    archive = out / done["archive"] if done is not None else pack_partial(out)  # partial: the records so far
    info = built.read_info(archive)
    assert info is not None
    meta = info.meta
    cache = out / "cache"
    result: dict[str, Any] = {
        "archive": str(archive),
        "partial": bool(meta.get("partial")),
        "counts": meta["counts"],
        "train_scheme": meta["train_scheme"],
        "train_fraction": meta["train_fraction"],
        "proxy_file": meta["spec"].get("proxy_file"),
    }

    def step(name: str) -> None:
        print(f"[build_study] {name} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        (out / "study.json").write_text(json.dumps(result, indent=1))

    # held-out fit: out of fold (every record predicted by the ensemble member that held it out for early
    # stopping), from the fit the searches use; --cv adds a 5-fold cross-validation (15 more fits)
    step("fitting the surrogates")
    t0 = time.perf_counter()
    full = load_benchmark(archive, cache_dir=cache, verbose=False)
    result["fit_s"] = time.perf_counter() - t0
    result["out_of_fold"] = {
        t: {k: float(v) for k, v in q.items() if isinstance(v, (int, float))}
        for t, q in full.model.meta.get("oof_quality", {}).items()
    }
    from benchmark.dataset import read_records
    from benchmark.surrogate import SurrogateConfig, fit_surrogate

    assert full.built is not None
    data = read_records(archive, targets=full.built.extra_targets)
    X, n = data.X, len(data)
    if args.cv:
        step("5-fold cross-validation")
        folds = np.random.default_rng(0).permutation(n) % 5
        cv: dict[str, dict[str, float]] = {}
        for t in full.targets:
            y = np.asarray(data.labels[t])
            pred = np.full(n, np.nan)
            for f in range(5):
                tr, te = folds != f, folds == f
                m = fit_surrogate(
                    X[tr],
                    {t: y[tr]},
                    SurrogateConfig.from_json({**full.model.config.to_json(), "targets": [t], "seed": f}),
                )
                pred[te] = m.predict(X[te], (t,))[t][0]
            ok = np.isfinite(y) & np.isfinite(pred)
            ss = float(np.sum((y[ok] - pred[ok]) ** 2))
            r2 = 1.0 - ss / float(np.sum((y[ok] - y[ok].mean()) ** 2))
            cv[t] = {"r2": r2, "kendall_tau": float(kendalltau(y[ok], pred[ok])[0]), "n": int(ok.sum())}
        result["cv5"] = cv
    # load time from the cache and query speed, against the built-in benchmark
    step("speed")
    perf = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "perf" / "built_benchmark_speed.py"),
            "--archive",
            str(archive),
            "--cache-dir",
            str(cache),
            "--json",
            "--sizes",
            "1000,10000",
            *([] if args.fresh else ["--no-fresh"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    result["speed"] = (
        json.loads(perf.stdout) if perf.returncode == 0 else {"error": perf.stderr.strip()[-500:]}
    )
    # a search on it: NSGA-II on accuracy vs latency_cpu, 500 evaluations
    step("search")
    run = out / "search_nsga2"
    cmd = [
        sys.executable,
        "-m",
        "experiments.cli",
        "search",
        f"benchmark.params.dataset={archive}",
        f"benchmark.params.cache_dir={cache}",
        "problem.name=fm_acc_cpu",
        "problem.objectives=[accuracy,latency_cpu]",
        "optimizer=nsga2",
        "budget.max_evals=500",
        "seed=0",
        f"hydra.run.dir={run}",
        "overwrite=true",
    ]
    t0 = time.perf_counter()
    s = subprocess.run(cmd, capture_output=True, text=True, check=False)
    result["search"] = {
        "cmd": " ".join(cmd),
        "rc": s.returncode,
        "seconds": time.perf_counter() - t0,
        "tail": (s.stdout + s.stderr).strip().splitlines()[-6:],
    }
    summ = run / "summary.json"
    if summ.is_file():
        result["search"]["summary"] = {
            k: v
            for k, v in json.loads(summ.read_text()).items()
            if k in ("n_evals", "hypervolume", "front_size", "best", "extrapolated_evaluations")
        }
    # the measured top of the data against the search's front (what the search found, on measured data)
    acc = np.asarray(data.labels["accuracy"])
    lat = np.asarray(data.labels["latency_cpu"])
    ok = np.isfinite(lat)
    result["data_summary"] = {
        "accuracy": [float(np.nanmin(acc)), float(np.nanmedian(acc)), float(np.nanmax(acc))],
        "latency_cpu_ms": [float(lat[ok].min()), float(np.median(lat[ok])), float(lat[ok].max())],
        "train_time_s": [
            float(np.nanmin(data.labels["train_time"])),
            float(np.nanmedian(data.labels["train_time"])),
            float(np.nanmax(data.labels["train_time"])),
        ],
        "tau_accuracy_vs_macs": float(kendalltau(acc, data.macs)[0]),
        "tau_latency_vs_macs": float(kendalltau(lat[ok], data.macs[ok])[0]),
        "best_measured": space.to_string(X[int(np.nanargmax(acc))]),
    }
    (out / "study.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", choices=["build", "report"])
    ap.add_argument("--out", default="/work/study/bench2")
    ap.add_argument("--source", default=SOURCE, help="image folder (train/, val/) the build trains on")
    ap.add_argument("--val-per-class", type=int, default=VAL_PER_CLASS)
    ap.add_argument("--proxy-file", default=PROXY_FILE, help="the proxy search's result (proxy_study.py)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--cv", action="store_true", help="report: add a 5-fold cross-validation (15 more fits)")
    ap.add_argument("--fresh", action="store_true", help="report: time a cache load in a fresh process too")
    ap.add_argument(
        "--proxy",
        choices=["auto", "fixed", "file"],
        default="auto",
        help="auto: PROXY_FILE if it exists, else the fixed proxy (a resumed build keeps the one it started with)",
    )
    ap.add_argument(
        "--shard", help="i/k: build every k-th architecture from the i-th (run k of these at once)"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return cmd_build(args) if args.phase == "build" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
