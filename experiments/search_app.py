"""``nasopt search``: the Hydra app that runs searches (single runs and sweeps).

::

    nasopt search                                   # acc_a100, nsga2, 1500 evaluations, seed 0, surrogate
    nasopt search optimizer=re problem=acc_zcu102_latency seed=3 budget.max_evals=500
    nasopt search experiment=smoke                  # ~60 evaluations on the synthetic oracle
    nasopt search 'problem.constraints=["latency_zcu102 <= 4"]' problem.name=my_problem
    nasopt search -m optimizer=rs,re,nsga2,reinforce problem=acc_a100,acc_zcu102 seed='range(5)'
    nasopt search <same overrides> hydra.run.dir=<run dir>   # resume (or just report) that run

Config groups (``conf/``, package ``nasopt.conf``): ``benchmark`` (surrogate, synthetic), ``problem`` (named
problems of :mod:`nasopt.problems`), ``optimizer`` (rs, re, nsga2, reinforce, bo), ``budget`` (default,
smoke, sim_time), ``experiment`` (paper_biobjective, smoke); schema in :mod:`experiments.config_schema`.

Each run writes its own directory (Hydra's output dir; in a sweep ``<sweep
dir>/<problem>/<optimizer>/seed<k>``) in the run-directory format of :mod:`nasopt.runner`. Sweeps run in
parallel through Hydra's joblib launcher (``hydra.launcher.n_jobs``, default 2). A failing job writes
``error.txt`` into its directory and does not stop the others; the sweep then exits with status 1 and lists
the failures. Re-running a sweep with the same ``hydra.sweep.dir`` skips finished runs and resumes
unfinished ones. Bad overrides (unknown optimizer or problem, unknown target, impossible constraint,
misspelt key, wrong type) are reported in one line with exit status 2 before anything runs.
"""

from __future__ import annotations

import itertools
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from benchmark._io import atomic_write_text
from experiments.config_schema import register_configs
from nasopt.budget import Budget, BudgetError
from nasopt.checkpoint import CheckpointError
from nasopt.problems import ProblemError, problem_from_config
from nasopt.results import ERROR_FILE, RunResult
from nasopt.runner import ConfigurationError, RunDirError, Runner, check_optimizer_params

CONFIG_MODULE = "nasopt.conf"
CONFIG_NAME = "search"
#: groups whose options are YAML files under conf/<group>/
GROUPS = ("benchmark", "problem", "optimizer", "budget", "experiment")
#: exit status of the last main() call's jobs (set by the task function / the sweep callback)
_STATUS: dict[str, int] = {"code": 0}


def _user_errors() -> tuple[type[BaseException], ...]:
    from benchmark.targets import UnknownTargetError
    from optimizers import UnknownOptimizerError

    return (
        ProblemError,
        BudgetError,
        ConfigurationError,
        RunDirError,
        CheckpointError,
        UnknownOptimizerError,
        UnknownTargetError,
        ImportError,
    )


def one_line(exc: BaseException) -> str:
    """An exception (and its cause) as one line: first message lines plus the config key if named."""

    def first(e: BaseException) -> str:
        text = str(e).strip()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        msg = lines[0] if lines else type(e).__name__
        keys = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("full_key:")]
        if keys and keys[0] and keys[0] not in msg:
            msg += f" (key: {keys[0]})"
        return msg

    msg = first(exc)
    cause = exc.__cause__
    if cause is not None:
        extra = first(cause)
        if extra not in msg:
            msg = f"{msg.rstrip('.')}: {extra}"
    if "is not in struct" in msg:
        msg += "; new keys need a leading '+', e.g. +optimizer.params.name=value"
    return msg


# ------------------------------------------------------------------------------------------------------
# building a run from a composed config
# ------------------------------------------------------------------------------------------------------
def config_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The composed config as plain, resolved Python (Enums as their names, no ``hydra`` node)."""
    if isinstance(cfg, DictConfig):
        out = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    else:
        out = dict(cfg)
    assert isinstance(out, dict)
    out.pop("hydra", None)
    return {str(k): v for k, v in out.items()}


def make_benchmark(bcfg: Mapping[str, Any]) -> Any:
    """The oracle named by a ``benchmark`` config: ``synthetic`` or ``surrogate`` (``load_benchmark``)."""
    name = str(bcfg.get("name"))
    params = dict(bcfg.get("params") or {})
    if name == "synthetic":
        from benchmark.synthetic import SyntheticBenchmark

        check_optimizer_params("synthetic benchmark", _as_factory(SyntheticBenchmark), params)
        return SyntheticBenchmark(**params)
    if name == "surrogate":
        from nasopt.runner import load_default_benchmark

        return load_default_benchmark(**params)
    raise ConfigurationError(f"unknown benchmark {name!r}; available: surrogate, synthetic")


def _as_factory(cls: Callable[..., Any]) -> Callable[..., Any]:
    # check_optimizer_params skips the first two parameters (problem, rng): add two placeholders
    def factory(_a: Any, _b: Any, **kw: Any) -> Any:
        return cls(**kw)

    import inspect

    sig = inspect.signature(cls)
    params = [
        inspect.Parameter("_a", inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter("_b", inspect.Parameter.POSITIONAL_ONLY),
        *sig.parameters.values(),
    ]
    factory.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return factory


def validate_config(c: Mapping[str, Any]) -> None:
    """Check a composed config without running anything (problem, budget, optimizer parameters, batch)."""
    problem_from_config(c["problem"])
    Budget.parse(c["budget"])
    ocfg = c["optimizer"]
    from optimizers import optimizer_class

    check_optimizer_params(
        str(ocfg["name"]), optimizer_class(str(ocfg["name"])), dict(ocfg.get("params") or {})
    )
    bs = ocfg.get("batch_size")
    if bs is not None and (not isinstance(bs, int) or bs < 1):
        raise ConfigurationError(f"optimizer.batch_size must be a positive integer or null, got {bs!r}")
    bname = str(c["benchmark"]["name"])
    if bname not in ("surrogate", "synthetic"):
        raise ConfigurationError(f"unknown benchmark {bname!r}; available: surrogate, synthetic")
    if bname == "surrogate":
        import benchmark

        if not hasattr(benchmark, "load_benchmark"):
            from nasopt.runner import load_default_benchmark

            load_default_benchmark()  # raises the explanatory ConfigurationError
    if bname == "synthetic":
        from benchmark.synthetic import SyntheticBenchmark

        bparams = dict(c["benchmark"].get("params") or {})
        check_optimizer_params("synthetic benchmark", _as_factory(SyntheticBenchmark), bparams)


def run_from_config(
    cfg: DictConfig | Mapping[str, Any], run_dir: str | Path | None, **runner_kwargs: Any
) -> RunResult:
    """Build the problem, benchmark and runner from a composed config and run it in ``run_dir``."""
    c = config_container(cfg)
    validate_config(c)
    problem = problem_from_config(c["problem"])
    ckpt = c.get("checkpoint") or {}
    runner = Runner(
        problem,
        str(c["optimizer"]["name"]),
        make_benchmark(c["benchmark"]),
        Budget.parse(c["budget"]),
        run_dir,
        seed=int(c["seed"]),
        batch_size=c["optimizer"].get("batch_size"),
        optimizer_params=dict(c["optimizer"].get("params") or {}),
        checkpoint_every=ckpt.get("every_evals", 500),
        checkpoint_every_s=ckpt.get("every_s", 60.0),
        progress=c.get("progress"),
        print_summary=bool(c.get("print_summary", True)),
        config=c,
        **runner_kwargs,
    )
    return runner.run()


# ------------------------------------------------------------------------------------------------------
# Hydra task and sweep callback
# ------------------------------------------------------------------------------------------------------
def _write_error(run_dir: Path, text: str) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ERROR_FILE, text)
    except OSError:
        pass


def _limit_torch_threads(optimizer: str) -> None:
    """One torch thread for REINFORCE: its tiny ops only wait on each other's threads on small machines
    (measured: 1,500 evaluations in 12 s with one thread, 95-120 s with two under load). The app owns the
    process, so it may set this; library code never does."""
    if optimizer == "reinforce":
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(1)


def task(cfg: DictConfig) -> int:
    """One Hydra job: run (or resume, or report) the search in the job's output directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    _limit_torch_threads(str(cfg.optimizer.name))
    multirun = hc.mode == RunMode.MULTIRUN
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        result = run_from_config(cfg, run_dir)
    except _user_errors() as exc:
        msg = one_line(exc)
        _write_error(run_dir, msg + "\n")
        where = f" [{run_dir}]" if multirun else ""
        print(f"nasopt search: error{where}: {msg}", file=sys.stderr, flush=True)
        _STATUS["code"] = 2
        return 2
    except Exception as exc:
        _write_error(run_dir, traceback.format_exc())
        if not multirun:
            raise
        print(
            f"nasopt search: job failed [{run_dir}]: {one_line(exc)} (traceback in {run_dir / ERROR_FILE})",
            file=sys.stderr,
            flush=True,
        )
        _STATUS["code"] = 1
        return 1
    if result.interrupted:
        print(
            f"nasopt search: stopped by {result.interrupted}; resume with: nasopt search <same overrides> "
            f"hydra.run.dir={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        _STATUS["code"] = 130
        return 130
    return 0


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class SweepReport(_HydraCallback):
    """Hydra callback: after a sweep, list failed jobs (their ``error.txt``) and set exit status 1."""

    def __init__(self) -> None:
        self._t0 = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._t0 = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed = sorted(
            p for p in sweep_dir.rglob(ERROR_FILE) if p.is_file() and p.stat().st_mtime >= self._t0 - 1.0
        )
        if failed:
            print(f"nasopt search: {len(failed)} job(s) of the sweep failed:", file=sys.stderr)
            for p in failed:
                first = p.read_text(encoding="utf-8", errors="replace").strip().splitlines()
                print(f"  {p.parent}: {first[-1] if first else '?'}", file=sys.stderr)
            _STATUS["code"] = max(_STATUS["code"], 1)
        else:
            print(f"nasopt search: sweep done, results in {sweep_dir}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------------
# pre-flight validation of overrides (one-line errors before Hydra launches anything)
# ------------------------------------------------------------------------------------------------------
def _group_options(group: str) -> list[str]:
    from importlib import resources

    root = resources.files(CONFIG_MODULE).joinpath(group)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _expand(overrides: Sequence[str]) -> list[list[str]]:
    """Override lists to validate: the first value of every sweep, then each other sweep value in turn."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    base: list[str] = []
    variants: list[tuple[int, list[str]]] = []
    for o in parsed:
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:
                continue  # sweeps we cannot expand here (glob, interval) are checked by Hydra itself
            if not values:
                continue
            prefix = {"ADD": "+", "FORCE_ADD": "++"}.get(o.type.name, "")
            line = [f"{prefix}{o.get_key_element()}={v}" for v in values]
            variants.append((len(base), line))
            base.append(line[0])
        else:
            base.append(str(o.input_line))
    out = [base]
    for pos, line in variants:
        for v in line[1:]:
            out.append([*base[:pos], v, *base[pos + 1 :]])
    return out


def _check_choices(overrides: Sequence[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for o in OverridesParser.create().parse_overrides(list(overrides)):
        group = o.key_or_group
        if group not in GROUPS or o.type.name == "DEL":
            continue
        try:
            values = (
                list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
            )
        except Exception:
            continue
        options = _group_options(group)
        for v in values:
            if v not in options and not (group == "experiment" and v in ("null", "None")):
                raise ConfigurationError(f"unknown {group} {v!r}; available: {', '.join(options)}")


def preflight(overrides: Sequence[str]) -> None:
    """Compose and validate the config(s) of ``overrides``; raise with a one-line message if one is bad."""
    from hydra import compose, initialize_config_module

    _check_choices(overrides)
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for ovs in itertools.islice(_expand(overrides), 200):
            cfg = compose(config_name=CONFIG_NAME, overrides=list(ovs))
            validate_config(config_container(cfg))


# ------------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------------
def _hydra_entry() -> None:
    import hydra

    wrapped = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base="1.3")(
        task
    )
    wrapped()


def main(argv: Sequence[str] | None = None) -> int:
    """``nasopt search [overrides]``; exit status: 0 ok, 1 failed job(s), 2 bad config, 130 stopped."""
    args = list(sys.argv[1:] if argv is None else argv)
    register_configs()
    _STATUS["code"] = 0
    from hydra._internal.utils import get_args_parser

    try:
        parsed = get_args_parser().parse_args(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    informational = parsed.help or parsed.hydra_help or parsed.cfg or parsed.info or parsed.shell_completion
    custom = parsed.config_name or parsed.config_dir or parsed.config_path
    if not informational and not custom:
        try:
            preflight(parsed.overrides)
        except Exception as exc:
            print(f"nasopt search: error: {one_line(exc)}", file=sys.stderr, flush=True)
            return 2
    saved = sys.argv
    sys.argv = ["nasopt search", *args]
    try:
        _hydra_entry()
        code = _STATUS["code"]
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return code


if __name__ == "__main__":
    raise SystemExit(main())
