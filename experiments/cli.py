"""The ``nasopt`` console command: ``nasopt bench|search|report|fronts ...``, dispatched to each command.

It lives in the top layer (``experiments``) because it reaches every layer below it: ``benchmark.cli``,
``experiments.search_app``, ``nasopt.report_cli``, ``nasopt.fronts_cli``, ``nasopt.validation.cli`` and
``nasopt.benchmark_build.cli``.
``python -m experiments.cli`` runs it too.
"""

from __future__ import annotations

import sys

USAGE = """usage: nasopt <command> [args]

commands:
  bench    the Accel-NASBench oracle: fit | query | evaluate | info
  search   run a search (Hydra app; overrides like optimizer=nsga2 problem=acc_a100, -m for sweeps)
  report   compare runs: nasopt report DIR [DIR ...]
  fronts   compute reference Pareto fronts for the named problems
  model    build and export a network: nasopt model info|export --arch ...
  measure  measure networks on a device: nasopt measure --arch ... --backend cpu|cuda|...
  train    train a network: nasopt train --arch ... scheme=smoke|proxified|full data.root=...
  validate from search runs to measured candidates and a predicted-vs-measured report
  device   your own device: nasopt device add|list|show|remove|export|import|check NAME ...
  proxy    training proxies: nasopt proxy analyze --reference R --proxy P (or --upstream);
           nasopt proxy search --out DIR --data DIR [--method bo|grid] [--budget B] [--max-cost C]
  benchmark build a benchmark of your own: nasopt benchmark build [SPEC.yaml] [key=value ...] | info ARCHIVE
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # a missing command is a usage error, like argparse's
        print(f"nasopt: missing command\n\n{USAGE}", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "bench":
        from benchmark.cli import main as bench_main

        return bench_main(rest)
    if command == "search":
        from experiments.search_app import main as search_main

        return search_main(rest)
    if command == "report":
        from nasopt.report_cli import main as report_main

        return report_main(rest)
    if command == "fronts":
        from nasopt.fronts_cli import main as fronts_main

        return fronts_main(rest)
    if command == "model":
        from nasopt.validation.cli import model_main

        return model_main(rest)
    if command == "measure":
        from nasopt.validation.cli import measure_main

        return measure_main(rest)
    if command == "train":
        from nasopt.validation.train.cli import main as train_main

        return train_main(rest)
    if command == "validate":
        from nasopt.validation.cli import validate_main

        return validate_main(rest)
    if command == "device":
        from nasopt.validation.devices import main as device_main

        return device_main(rest)
    if command == "proxy":
        from nasopt.proxy.analyze import dispatch

        return dispatch(rest)
    if command == "benchmark":
        from nasopt.benchmark_build.cli import main as benchmark_main

        return benchmark_main(rest)
    print(f"nasopt: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
