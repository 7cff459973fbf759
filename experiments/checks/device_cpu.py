"""This machine's CPU as a user device, for real: ``nasopt device add`` with n = 50, the learning curve of the
device surrogate (Kendall tau and MAPE on held-out measured architectures vs n for random choice, the covering
design and active learning), the repeat-measurement noise and the tau cap it implies, a search on accuracy vs
latency_<cpu>, and the front's architectures measured against their predictions.

    python experiments/checks/device_cpu.py OUT_DIR [--resolution 224] [--threads 1] [--held-out 200] ...

Every measurement is appended to ``OUT_DIR/measurements.jsonl`` as it is taken, so an interrupted run continues
(nothing is measured twice); the numbers go to ``OUT_DIR/device_cpu.json`` and a table is printed. Strategies on
the learning curve: (a) random = the first n of a random pool; (b) covering = the covering design of
``nasopt device add`` (12 architectures) filled up with the random pool; (c) active = the same 12, then the
ensemble's picks from the random pool (pool-based: the same measurements, chosen differently); and the
device's own ``add`` records (covering + active learning on fresh random candidates) for n <= its budget.
Needs the dataset for the accuracy surrogate (``NASOPT_DATASET``).
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
from scipy.stats import kendalltau, spearmanr

from benchmark import devices as store
from benchmark import space
from benchmark.noise import noise_ceiling
from nasopt.validation import devices as dv


def _load(path: Path) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:  # a line cut by an interruption
                continue
            out.setdefault((d["set"], d["arch"]), []).append(float(d["mean"]))
    return out


def _measure_set(
    name: str,
    X: np.ndarray,
    reps: int,
    backend: Any,
    log: Path,
    done: dict[tuple[str, str], list[float]],
    until: float | None = None,
    max_spread: float = dv.MAX_SPREAD,
) -> np.ndarray:
    """The first measurement of each architecture ``(k,)`` (more of them, up to ``reps``, for the noise),
    each taken as ``nasopt device add`` takes it (:func:`~nasopt.validation.devices.measure_quiet`); stops
    early (``k < n``) once ``time.time()`` passes ``until``."""
    vals = []
    with open(log, "a") as fh:
        for i, s in enumerate(space.to_strings(X)):
            have = done.setdefault((name, s), [])
            if until is not None and time.time() > until and len(have) < reps:
                print(f"  {name}: stopped at {i}/{len(X)} (--measure-until)", file=sys.stderr, flush=True)
                break
            while len(have) < reps:
                m, spreads = dv.measure_quiet(backend, space.from_string(s), max_spread=max_spread)
                have.append(m.mean)
                rec = {"set": name, "arch": s, "mean": m.mean, "std": m.std, "t": time.time()}
                fh.write(json.dumps({**rec, "spreads": spreads, "load": os.getloadavg()[0]}) + "\n")
                fh.flush()
            if (i + 1) % 25 == 0:
                print(f"  {name}: {i + 1}/{len(X)}", file=sys.stderr, flush=True)
            vals.append(have[0])
    return np.array(vals)


def _score(model: Any, target: str, H: np.ndarray, yH: np.ndarray) -> dict[str, float]:
    mean, std = model.predict(H, (target,))[target]
    return {
        "tau": float(kendalltau(mean, yH)[0]),
        "spearman": float(spearmanr(mean, yH)[0]),
        "mape": float(np.mean(np.abs(mean - yH) / yH)),
        "within_10pct": float(np.mean(np.abs(mean - yH) <= 0.1 * yH)),  # nn-Meter's accuracy measure
        "within_1std": float(np.mean(np.abs(mean - yH) <= std)),
    }


def _active_from_pool(
    X0: np.ndarray,
    y0: np.ndarray,
    P: np.ndarray,
    yP: np.ndarray,
    n_max: int,
    target: str,
    ns: list[int],
    H: np.ndarray,
    yH: np.ndarray,
) -> dict[int, dict[str, float]]:
    X, y = X0.copy(), y0.copy()
    left = np.ones(len(P), bool)
    out: dict[int, dict[str, float]] = {}
    while True:
        model = dv.fit_device_surrogate(X, y, target)
        if len(X) in ns:
            out[len(X)] = _score(model, target, H, yH)
        if len(X) >= n_max or not left.any():
            break
        step = min(dv.AL_BATCH, n_max - len(X), *(n - len(X) for n in ns if n > len(X)))
        idx = np.flatnonzero(left)
        picks = idx[dv.choose_next(model, target, P[idx], step)]
        left[picks] = False
        X, y = np.concatenate([X, P[picks]]), np.concatenate([y, yP[picks]])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", default="this_cpu_1t")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--threads", default="1", help="a count, or all (every core; e.g. --name this_cpu_all)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--budget", type=int, default=50, help="n of the real nasopt device add")
    ap.add_argument("--held-out", type=int, default=200)
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--noise-archs", type=int, default=10)
    ap.add_argument("--noise-reps", type=int, default=3)
    ap.add_argument("--ns", default="10,20,50,100,200")
    ap.add_argument("--search-evals", type=int, default=1000)
    ap.add_argument("--front", type=int, default=10, help="front architectures measured after the search")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument(
        "--max-spread",
        type=float,
        default=dv.MAX_SPREAD,
        help="take a measurement again when its samples spread more (0: never, as before 2026-12-01)",
    )
    ap.add_argument("--measure-until", help="HH:MM (local time): stop measuring the pool then, keep its n")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    log = a.out / "measurements.jsonl"
    done = _load(log)
    result: dict[str, Any] = {"settings": vars(a) | {"out": str(a.out)}, "uptime_start": _uptime()}
    settings = {
        "threads": "all" if a.threads.strip().lower() in ("all", "0") else int(a.threads),
        "resolution": a.resolution,
        "warmup": a.warmup,
        "repeats": a.repeats,
        "passes": a.passes,
    }
    t0 = time.perf_counter()
    # 1. the device itself, as a user adds it
    res = dv.add_device(a.name, "cpu", budget=a.budget, verbose=True, max_spread=a.max_spread, **settings)
    result["device_add"] = {
        "n": res.n_total,
        "n_now": res.n_measured_now,
        "seconds": res.seconds,
        "wall_s": time.perf_counter() - t0,
        "fit": res.fit,
    }
    dev = store.read_device(a.name)
    target = dev.target
    result["environment"] = dev.info.get("environment", {})
    Xd, yd, _ = store.read_device_records(dev.records_dir, target)
    backend = dv.make_device_backend("cpu", "latency", a.name, settings)
    # 2. held-out and pool (random), 3. repeats for noise
    H = space.sample(a.held_out, np.random.default_rng(101))
    P = space.sample(a.pool, np.random.default_rng(202))
    t1 = time.perf_counter()
    yH = _measure_set("held_out", H, 1, backend, log, done, max_spread=a.max_spread)
    noise_X = H[: a.noise_archs]
    _measure_set("held_out", noise_X, a.noise_reps, backend, log, done, max_spread=a.max_spread)
    until = None
    if a.measure_until:
        hh, mm = (int(v) for v in a.measure_until.split(":"))
        now = time.localtime()
        until = time.mktime((*now[:3], hh, mm, 0, *now[6:]))
    yP = _measure_set("pool", P, 1, backend, log, done, until, max_spread=a.max_spread)
    P = P[: len(yP)]
    result["measure_s"] = time.perf_counter() - t1
    reps = np.array([done[("held_out", s)][: a.noise_reps] for s in space.to_strings(noise_X)])
    logs = np.log(reps)
    sigma = float(np.sqrt(np.sum((logs - logs.mean(axis=1, keepdims=True)) ** 2) / (logs.size - len(logs))))
    cap = noise_ceiling(yH, sigma, np.random.default_rng(0), relative=True, n_draws=50)
    result["noise"] = {
        "n_archs": len(reps),
        "repeats": a.noise_reps,
        "sigma_relative": sigma,
        "tau_cap": cap["kendall_tau"],
        "r2_cap": cap["r2"],
    }
    # 4. learning curves
    ns = [int(n) for n in a.ns.split(",")]
    cover_X, cover_y = Xd[:12], yd[:12]
    curves: dict[str, dict[int, dict[str, float]]] = {
        "random": {},
        "covering": {},
        "active": {},
        "device_add": {},
    }
    for n in ns:
        if n <= len(P):
            curves["random"][n] = _score(dv.fit_device_surrogate(P[:n], yP[:n], target), target, H, yH)
        if 12 <= n <= len(P) + 12:
            Xc = np.concatenate([cover_X, P[: n - 12]])
            yc = np.concatenate([cover_y, yP[: n - 12]])
            curves["covering"][n] = _score(dv.fit_device_surrogate(Xc, yc, target), target, H, yH)
        if n <= len(Xd):
            curves["device_add"][n] = _score(dv.fit_device_surrogate(Xd[:n], yd[:n], target), target, H, yH)
    curves["active"] = _active_from_pool(
        cover_X, cover_y, P, yP, min(max(ns), len(P) + 12), target, [n for n in ns if n >= 12], H, yH
    )
    if 10 in ns:  # below the 12 of the covering design: its first 10
        curves["covering"][10] = _score(
            dv.fit_device_surrogate(cover_X[:10], cover_y[:10], target), target, H, yH
        )
    result["curves"] = {k: {str(n): v for n, v in sorted(c.items())} for k, c in curves.items()}
    # the device's final surrogate on the held-out set
    result["device_surrogate_held_out"] = _score(store.device_surrogate(target), target, H, yH)
    # 5. search and the front measured
    if not a.skip_search:
        result["search"] = _search_and_front(a, target, backend)
    result["uptime_end"] = _uptime()
    result["total_s"] = time.perf_counter() - t0
    (a.out / "device_cpu.json").write_text(json.dumps(result, indent=1, default=float))
    _print(result, ns)
    return 0


def _search_and_front(a: argparse.Namespace, target: str, backend: Any) -> dict[str, Any]:
    import nasopt
    from nasopt.problems import make_problem, pareto_indices

    problem = make_problem(f"acc_{a.name}", ["accuracy", target])
    run = nasopt.search(problem, "nsga2", budget=a.search_evals, seed=0, run_dir=a.out / "search")
    t = run.trials
    vals = t[["mean_accuracy", f"mean_{target}"]].to_numpy()
    front = pareto_indices(problem, vals)
    order = front[np.argsort(vals[front, 1])]
    pick = order[np.unique(np.linspace(0, len(order) - 1, min(a.front, len(order))).round().astype(int))]
    archs = [space.to_string(space.parse(s)) for s in t["arch"].to_numpy()[pick]] if "arch" in t else []
    cmp = dv.predicted_vs_measured(
        a.name, archs, measure_backend=backend, verbose=True, max_spread=a.max_spread
    )
    return {
        "evals": a.search_evals,
        "front_size": len(front),
        "front": [
            {"arch": s, "accuracy": float(vals[i, 0]), target: float(vals[i, 1])}
            for s, i in zip(archs, pick, strict=True)
        ],
        "predicted_vs_measured": cmp,
    }


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return str(os.getloadavg())


def _print(r: dict[str, Any], ns: list[int]) -> None:
    print(
        f"\nthis CPU: {r['environment'].get('cpu')}, {r['environment'].get('runtime')}, threads {r['environment'].get('threads')}"
    )
    print(f"load: start [{r['uptime_start']}]  end [{r['uptime_end']}]")
    d = r["device_add"]
    print(
        f"device add n={d['n']}: {d['wall_s']:.0f} s wall (measuring {d['seconds']['measure']:.0f} s, fitting {d['seconds']['fit']:.0f} s); out-of-fold tau {d['fit']['kendall_tau']:.3f}"
    )
    nz = r["noise"]
    print(
        f"repeat noise: sigma {100 * nz['sigma_relative']:.2f} % ({nz['n_archs']} archs x {nz['repeats']}); tau cap {nz['tau_cap']:.3f}"
    )
    print(f"\n{'n':>5} " + " ".join(f"{k:>22}" for k in r["curves"]))
    print(f"{'':>5} " + " ".join(f"{'tau/MAPE%/in10%':>22}" for _ in r["curves"]))
    for n in ns:
        cells = []
        for c in r["curves"].values():
            v = c.get(str(n))
            cells.append(f"{v['tau']:.3f}/{100 * v['mape']:4.1f}/{v['within_10pct']:.2f}" if v else "-")
        print(f"{n:>5} " + " ".join(f"{c:>22}" for c in cells))
    h = r["device_surrogate_held_out"]
    print(
        f"device surrogate (n={d['n']}) on held-out: tau {h['tau']:.3f}, MAPE {100 * h['mape']:.1f} %, within 1 std {h['within_1std']:.2f}, Spearman {h['spearman']:.3f}, within +-10 % {h['within_10pct']:.2f}"
    )
    if "search" in r:
        s = r["search"]
        c = s["predicted_vs_measured"]
        print(
            f"search: {s['evals']} evals, front of {s['front_size']}; {c['n']} front archs measured: tau {c['kendall_tau']:.3f}, MAPE {100 * c['mape']:.1f} %, within 1 std {c['within_1std']:.2f}"
        )
        for row in c["rows"]:
            print(
                f"  {row['arch']}  predicted {row['predicted']:.3f} ± {row['std']:.3f}  measured {row['measured']:.3f} ms"
            )


if __name__ == "__main__":
    raise SystemExit(main())
