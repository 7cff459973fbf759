"""End-to-end search speed: runner + optimizer + benchmark, deterministic mode, acc_a100.

Prints wall seconds for 10,000 evaluations of rs, re and nsga2 (target <= 10 s each) and 1,500 of reinforce
(target <= 60 s) with the optimizers' ``nasopt search`` config (batch sizes included), writing
checkpoints into a temporary run directory as a real run does. Also prints the runner's own share: the same
loop with a trivial optimizer and the synthetic oracle.

    python experiments/perf/search_speed.py                    # the surrogate (auto)
    python experiments/perf/search_speed.py --bench synthetic --evals 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _optimizer_config(name: str) -> dict[str, Any]:
    from hydra import compose, initialize_config_module

    from experiments.config_schema import CONFIG_MODULE, register_configs
    from experiments.run_spec import config_container

    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = config_container(compose(config_name="search", overrides=[f"optimizer={name}"]))
    out: dict[str, Any] = cfg["optimizer"]
    return out


def _bench(kind: str) -> tuple[Any, str]:
    from benchmark import make_benchmark

    name = "surrogate" if kind == "auto" else kind
    return make_benchmark(name), name


def _time_run(
    name: Any, bench: Any, evals: int, batch_size: int | None, params: dict[str, Any]
) -> tuple[float, Any]:
    from nasopt.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(
            "acc_a100",
            name,
            bench,
            evals,
            Path(tmp) / "run",
            seed=0,
            batch_size=batch_size,
            optimizer_params=params,
            progress=False,
        )
        t = time.perf_counter()
        result = runner.run()
        return time.perf_counter() - t, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", choices=("auto", "synthetic", "surrogate"), default="auto")
    ap.add_argument("--evals", type=int, default=10_000, help="evaluations for rs, re, nsga2")
    ap.add_argument("--reinforce-evals", type=int, default=1_500)
    ap.add_argument("--optimizers", default="rs,re,nsga2,reinforce")
    args = ap.parse_args(argv)

    from optimizers import optimizer_class
    from optimizers.base import Optimizer

    bench, kind = _bench(args.bench)
    print(f"benchmark: {kind} ({getattr(bench, 'digest', '?')}); problem acc_a100; deterministic mode")
    print(f"{'optimizer':<10} {'evals':>7} {'batch':>6} {'seconds':>9} {'us/eval':>9} {'opt s':>8}  target")

    class _Null(Optimizer):
        """Proposes random architectures and learns nothing: measures runner + oracle only."""

        name = "null"

        def ask(self, n: int) -> Any:
            from benchmark import space

            return space.sample(n, self.rng)

        def tell(self, X: Any, F: Any, feasible: Any = None) -> None:
            return None

        def state(self) -> dict[str, Any]:
            return {"rng": self._rng_state()}

        def load_state(self, state: dict[str, Any]) -> None:
            self._set_rng_state(dict(state["rng"]))

    for batch in (1, 100):
        secs, res = _time_run(_Null, bench, args.evals, batch, {})
        print(
            f"{'(runner)':<10} {res.n_evals:>7} {batch:>6} {secs:>9.2f} {1e6 * secs / res.n_evals:>9.1f} "
            f"{res.summary['optimizer_time_s']:>8.2f}  runner + oracle only"
        )
    for name in [s.strip() for s in args.optimizers.split(",") if s.strip()]:
        try:
            optimizer_class(name)
        except (ImportError, AttributeError) as exc:
            print(f"{name:<10} skipped: {exc}")
            continue
        ocfg = _optimizer_config(name)
        evals = args.reinforce_evals if name == "reinforce" else args.evals
        target = 60.0 if name == "reinforce" else 10.0
        secs, res = _time_run(name, bench, evals, ocfg.get("batch_size"), dict(ocfg.get("params") or {}))
        ok = "ok" if secs <= target * evals / (1500 if name == "reinforce" else 10_000) else "SLOW"
        print(
            f"{name:<10} {res.n_evals:>7} {res.summary['batch_size']:>6} {secs:>9.2f} "
            f"{1e6 * secs / res.n_evals:>9.1f} {res.summary['optimizer_time_s']:>8.2f}  <= {target:.0f} s "
            f"per {1500 if name == 'reinforce' else 10_000} evals: {ok}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
