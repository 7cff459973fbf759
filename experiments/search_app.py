"""``nasopt search``: the Hydra app that runs searches (single runs and sweeps).

::

    nasopt search                                   # acc_a100, auto (bo), 1500 evaluations, seed 0, surrogate
    nasopt search optimizer=re problem=acc_zcu102_latency seed=3 budget.max_evals=500
    nasopt search experiment=smoke                  # ~60 evaluations on the synthetic oracle
    nasopt search 'problem.constraints=["latency_zcu102 <= 4"]' problem.name=my_problem
    nasopt search -m optimizer=rs,re,nsga2,reinforce problem=acc_a100,acc_zcu102 seed='range(5)'
    nasopt search <same overrides> hydra.run.dir=<run dir>   # resume (or just report) that run

Config groups: ``benchmark`` (surrogate, synthetic), ``problem`` (the named problems of
:mod:`nasopt.problems`) and ``optimizer`` (rs, re, nsga2, reinforce, bo) are generated from the registries;
``budget`` (default, smoke, sim_time) and ``experiment`` (paper_biobjective, smoke) are YAML under ``conf/``
(package ``nasopt.conf``); see :mod:`experiments.config_schema`. A config is validated by
:func:`experiments.run_spec.build_run_spec`.

Each run writes its own directory (Hydra's output dir; in a sweep ``<sweep
dir>/<problem>/<optimizer>/seed<k>``) in nasopt's run-directory format. Sweeps run in
parallel through Hydra's joblib launcher (``hydra.launcher.n_jobs``, default 2). A failing job writes
``error.txt`` into its directory and does not stop the others; the sweep then exits with status 1 and lists
the failures. Re-running a sweep with the same ``hydra.sweep.dir`` skips finished runs and resumes
unfinished ones. A sweep's workers end with its main process, even after ``kill -9``
(:mod:`experiments.sweep_guard`); a job finding its run directory held by such a leftover worker (or by
another job of its sweep) waits for it, one held by another live command is skipped, not failed.
A run directory holding an earlier run that cannot be resumed (its checkpoint is missing, or it is another
run) is refused in one line; ``overwrite=true`` deletes its results and starts afresh. The
run directory's lock is taken before anything is written there (Hydra's ``.hydra/`` files are written by
the task, ``hydra.output_subdir=null``), so a process refused by the lock changes nothing.
Bad overrides (unknown optimizer or problem, unknown target, impossible constraint, misspelt key, wrong
type) and a read-only run directory are reported in one line with exit status 2 before anything runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from benchmark._io import atomic_write_text
from benchmark.errors import ConfigurationError, NasoptError
from experiments import sweep_guard
from experiments.config_schema import CONFIG_MODULE, CONFIG_NAME, GROUPS, group_options, register_configs
from experiments.run_spec import build_run_spec, run_spec
from nasopt.rundir import (
    ERROR_FILE,
    HYDRA_DIR,
    LOCK_FILE,
    Run,
    RunDirBusyError,
    RunDirError,
    RunDirWriteError,
    existing_results,
    lock_holder,
    locked,
    writing,
)
from nasopt.runner import Runner

#: exit status of a job or a command: a bad config (a NasoptError), a failed sweep job, a stop by signal
EXIT_BAD_CONFIG = 2
EXIT_FAILED = 1
EXIT_STOPPED = 130


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
    if isinstance(cause, OSError) and cause.strerror and cause.strerror in msg:
        cause = None  # (a RunDirWriteError already says it, with the file)
    if cause is not None:
        extra = first(cause)
        if extra not in msg:
            msg = f"{msg.rstrip('.')}: {extra}"
    if "is not in struct" in msg:
        msg += "; new keys need a leading '+', e.g. +optimizer.params.name=value"
    return msg


def run_from_config(
    cfg: DictConfig | Mapping[str, Any], run_dir: str | Path | None, **runner_kwargs: Any
) -> Run:
    """Validate a composed config and run it in ``run_dir`` (None: in memory)."""
    return run_spec(build_run_spec(cfg), run_dir, **runner_kwargs)


# ------------------------------------------------------------------------------------------------------
# Hydra task and the exit-status callback
# ------------------------------------------------------------------------------------------------------
def _write_error(run_dir: Path, text: str) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ERROR_FILE, text)
    except OSError:
        pass


def _limit_torch_threads(threads: int | None) -> None:
    """Apply an optimizer's ``torch_threads`` declaration (REINFORCE: 1; its tiny ops only wait on each
    other's threads on small machines). The app owns the process, so it may set this; library code never
    does. torch stays optional: without it there is nothing to set."""
    if threads is None:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _save_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra writes to ``<run dir>/.hydra`` (config, hydra, overrides), written by the task under the
    run directory's lock: :func:`main` turns Hydra's own writing off (``hydra.output_subdir=null``), so a
    process refused by the lock leaves the running run's files alone."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hc = HydraConfig.get()
    if hc.output_subdir is not None:  # the user asked Hydra for its own subdir: Hydra wrote it
        return
    out = run_dir / HYDRA_DIR
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(out / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hc})))
    atomic_write_text(out / "overrides.yaml", OmegaConf.to_yaml(hc.overrides.task))


def task(cfg: DictConfig) -> int:
    """One Hydra job: run (or resume, or report) the search in the job's output directory.

    The run directory's lock is taken before anything is written there; a stale ``error.txt`` goes when
    the job starts and again when it ends well (a refused process may have written one meanwhile). In a
    sweep, a job in a worker process starts the watchdog that ends it with the sweep
    (:mod:`experiments.sweep_guard`), and a run directory locked by a worker of a killed sweep or of this
    sweep is waited for; one locked by another live command is skipped ("still running in process PID"),
    not failed.

    Returns the job's exit status: 0 done (or skipped), 2 bad config or run directory (a one-line
    :class:`~benchmark.errors.NasoptError`), 1 failed (sweeps only; a single run re-raises), 130 stopped.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    where = f" [{run_dir}]" if multirun else ""
    sweep = sweep_guard.sweep_pid() if multirun else None
    if sweep is not None and sweep != os.getpid():
        sweep_guard.guard_job(sweep)  # (ends this worker at once if its sweep is gone already)
    try:
        with writing(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        with locked(
            run_dir,
            owner=None if sweep is None else {"sweep_pid": sweep},
            wait=_SweepWait(run_dir, sweep) if multirun else None,
        ):
            # a directory holding an earlier run gets this invocation's .hydra/ only once the runner accepted
            # it (resumed, reported or overwrote), never when it was refused
            early = not existing_results(run_dir)
            if early:
                with writing(run_dir):
                    _save_hydra_files(run_dir, cfg)
            (run_dir / ERROR_FILE).unlink(missing_ok=True)
            code, accepted = _task(cfg, run_dir, multirun)
            if accepted and not early:
                with writing(run_dir):
                    _save_hydra_files(run_dir, cfg)
            if code == 0:
                (run_dir / ERROR_FILE).unlink(missing_ok=True)
                if not multirun:
                    print(f"nasopt search: done; results in {run_dir}", flush=True)
            return code
    except RunDirWriteError as exc:  # a full disk or a read-only directory before or after the run itself
        _write_error(run_dir, one_line(exc) + "\n")
        print(f"nasopt search: error{where}: {one_line(exc)}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG
    except RunDirBusyError as exc:
        kind = sweep_guard.holder_kind(exc.holder, sweep)
        if multirun and kind != "orphan":  # another live command runs it: not a failure of this run
            pid = "?" if exc.holder is None else exc.holder.get("pid")
            print(
                f"nasopt search: skipped{where}: still running in process {pid} (another nasopt command); "
                "not failed: run the sweep again once that has ended",
                file=sys.stderr,
                flush=True,
            )
            return 0
        msg = one_line(exc)
        if kind == "orphan" and exc.holder is not None:
            msg = (
                f"run directory {run_dir} is held by process {exc.holder['pid']}, a worker of a killed sweep "
                f"(PID {exc.holder.get('sweep_pid')}) that did not stop within "
                f"{sweep_guard.ORPHAN_WAIT_S:g} s; end it (kill {exc.holder['pid']}) and run the sweep again"
            )
        if multirun:  # the sweep's failure list is made of error.txt files
            _write_error(run_dir, msg + "\n")
        print(f"nasopt search: error{where}: {msg}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG


class _SweepWait:
    """The lock's ``wait`` policy of a sweep job: wait for a worker of a killed sweep (at most
    :data:`~experiments.sweep_guard.ORPHAN_WAIT_S` seconds) or of this sweep (until it is done); refuse
    at once for anything else."""

    def __init__(self, run_dir: Path, sweep: int | None) -> None:
        self.run_dir, self.sweep = run_dir, sweep
        self.deadline: float | None = None
        self.said = False

    def __call__(self, refusal: RunDirBusyError) -> bool:
        kind = sweep_guard.holder_kind(refusal.holder, self.sweep)
        if kind == "other":
            return False
        if kind == "orphan":
            now = time.monotonic()
            self.deadline = self.deadline or now + sweep_guard.ORPHAN_WAIT_S
            if now > self.deadline:
                return False
        if not self.said:
            assert refusal.holder is not None
            whose = "a killed sweep" if kind == "orphan" else "this sweep"
            print(
                f"nasopt search: waiting [{self.run_dir}]: process {refusal.holder['pid']}, a worker of "
                f"{whose}, still holds it",
                file=sys.stderr,
                flush=True,
            )
            self.said = True
        return True


def _announce(run_dir: Path, choice: str | None = None) -> Callable[[Runner], None]:
    """The runner's ``on_start`` of a single run: one line on stdout naming the run directory and how it
    starts (``resumed from evaluation 120 of 300``), with ``optimizer=auto``'s choice; the run's end names it
    again."""

    def on_start(runner: Runner) -> None:
        n, budget = runner.resumed_from, runner.budget
        of = f" of {budget.max_evals}" if budget.max_evals is not None else ""
        if budget.max_sim_time_s is not None and n:
            of += f" (simulated time {runner.counters.sim_time_s:,.0f} of {budget.max_sim_time_s:,.0f} s)"
        what = {
            "resumed": f"resumed from evaluation {n}{of}",
            "from_trials": f"continues from its {n} trials{of} with a fresh optimizer (from_trials)",
            "finished": f"finished earlier ({n} evaluations); reporting it",
        }.get(str(runner.start), "new run")
        picked = f" (optimizer: {choice})" if choice else ""
        print(f"nasopt search: run directory {run_dir}: {what}{picked}", flush=True)

    return on_start


def _task(cfg: DictConfig, run_dir: Path, multirun: bool) -> tuple[int, bool]:
    """Run the job; its exit status and whether the run directory accepted it (not a RunDirError)."""
    where = f" [{run_dir}]" if multirun else ""
    try:
        spec = build_run_spec(cfg, run_dir)
        _limit_torch_threads(spec.torch_threads)
        start = {} if multirun else {"on_start": _announce(run_dir, spec.choice)}
        result = run_spec(spec, run_dir, **start)
    except NasoptError as exc:
        msg = one_line(exc)
        refused = isinstance(exc, RunDirError)
        if multirun or not refused:  # a refused single run leaves the directory as it was
            _write_error(run_dir, msg + "\n")
        print(f"nasopt search: error{where}: {msg}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG, not refused
    except Exception as exc:
        _write_error(run_dir, traceback.format_exc())
        if not multirun:
            _save_hydra_files(run_dir, cfg)
            raise
        print(
            f"nasopt search: job failed [{run_dir}]: {one_line(exc)} (traceback in {run_dir / ERROR_FILE})",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILED, True
    if result.interrupted:
        drop = " (without overwrite=true)" if spec.overwrite else ""
        print(
            f"nasopt search: stopped by {result.interrupted}; resume with: nasopt search <same overrides>"
            f"{drop} hydra.run.dir={run_dir}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_STOPPED, True
    return 0, True


class ExitStatus(Callback):
    """Hydra callback that ends the command with the run's exit status.

    A single run exits with its task's return value. After a sweep it lists the failed jobs (their
    ``error.txt``, written since the sweep started) and exits with status 1 if there are any. Hydra drops task
    return values, so the status leaves as ``SystemExit``, which :func:`main` turns into its return value.
    """

    def __init__(self) -> None:
        self._t0 = time.time()

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        job_return = kwargs.get("job_return")
        if job_return is not None and job_return.status == JobStatus.COMPLETED:
            code = job_return.return_value
            if isinstance(code, int) and code != 0:
                raise SystemExit(code)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._t0 = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        failed = sorted(
            p for p in sweep_dir.rglob(ERROR_FILE) if p.is_file() and p.stat().st_mtime >= self._t0 - 1.0
        )
        running = [(p.parent, h) for p in sorted(sweep_dir.rglob(LOCK_FILE)) if (h := lock_holder(p.parent))]
        if not failed and not running:
            print(f"nasopt search: sweep done, results in {sweep_dir}", file=sys.stderr)
            return
        if running:
            print(
                f"nasopt search: {len(running)} run(s) of the sweep are still running in other processes "
                "(not failed; run the sweep again once they have ended):",
                file=sys.stderr,
            )
            for d, holder in running:
                print(f"  {d}: process {holder.get('pid', '?')}", file=sys.stderr)
        if failed:
            print(f"nasopt search: {len(failed)} job(s) of the sweep failed:", file=sys.stderr)
        for p in failed:
            first = p.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            print(f"  {p.parent}: {first[-1] if first else '?'}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED)


# ------------------------------------------------------------------------------------------------------
# pre-flight validation of overrides (one-line errors before Hydra launches anything)
# ------------------------------------------------------------------------------------------------------
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
        options = group_options(group)
        for v in values:
            if v not in options and not (group == "experiment" and v in ("null", "None")):
                raise ConfigurationError(f"unknown {group} {v!r}; available: {', '.join(options)}")


def preflight(overrides: Sequence[str]) -> None:
    """Compose and validate the config(s) of ``overrides``; raise with a one-line message if one is bad."""
    from hydra import compose, initialize_config_module

    register_configs()
    _check_choices(overrides)
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for ovs in itertools.islice(_expand(overrides), 200):
            build_run_spec(compose(config_name=CONFIG_NAME, overrides=list(ovs)))


# ------------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------------
def _hydra_flags() -> argparse.ArgumentParser:
    """The flags of Hydra's command line that decide whether to pre-flight (the rest go to Hydra as given)."""
    p = argparse.ArgumentParser(prog="nasopt search", add_help=False, allow_abbrev=False, exit_on_error=False)
    p.add_argument("overrides", nargs="*")
    for flags in (("-h", "--help"), ("--hydra-help",), ("--version",), ("--resolve",), ("-r", "--run")):
        p.add_argument(*flags, action="store_true")
    p.add_argument("-m", "--multirun", action="store_true")
    p.add_argument("-sc", "--shell-completion", action="store_true")
    for flags in (("-c", "--cfg"), ("-p", "--package"), ("--experimental-rerun",)):
        p.add_argument(*flags)
    for flags in (("-cp", "--config-path"), ("-cn", "--config-name"), ("-cd", "--config-dir")):
        p.add_argument(*flags)
    p.add_argument("-i", "--info", nargs="?", const="all")
    return p


def _overrides_to_check(args: Sequence[str]) -> list[str] | None:
    """The overrides to pre-flight, or None when the command only shows information (``--help``, ``--cfg``,
    ``--info``, ...), uses another config (``--config-name`` ...) or has flags that Hydra itself reports."""
    try:
        parsed, unknown = _hydra_flags().parse_known_intermixed_args(list(args))
    except argparse.ArgumentError:
        return None
    informational = (
        parsed.help
        or parsed.hydra_help
        or parsed.version
        or parsed.cfg
        or parsed.info
        or parsed.shell_completion
        or parsed.experimental_rerun
    )
    custom = parsed.config_name or parsed.config_dir or parsed.config_path
    if informational or custom or unknown:
        return None
    return list(parsed.overrides)


@contextmanager
def _argv(args: Sequence[str]) -> Iterator[None]:
    """``sys.argv`` for the duration: ``hydra.main`` reads its command line only from there."""
    saved = sys.argv
    sys.argv = ["nasopt search", *args]
    try:
        yield
    finally:
        sys.argv = saved


@contextmanager
def _sweep_env() -> Iterator[None]:
    """Name this process as the sweep's main process for the duration (:func:`sweep_guard.sweep_env`,
    inherited by the joblib workers): their watchdog and the run directories' lock records use it."""
    names = sweep_guard.sweep_env(os.getpid())
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else EXIT_FAILED


def _unwritable_output_dir(args: Sequence[str], overrides: Sequence[str]) -> str | None:
    """One line when the run (or sweep) directory cannot be written, checked before Hydra writes there (its
    log file handler would fail with "Unable to configure handler 'file'"); None when it can or cannot tell.
    """
    multirun = any(a in ("-m", "--multirun") for a in args)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key]
    if given and "${" in given[-1]:
        return None
    target = Path(given[-1]) if given else Path.cwd()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if os.access(existing, os.W_OK):
        return None
    return (
        f"{'sweep' if multirun else 'run'} directory {target} is read-only (no write permission on "
        f"{existing}); choose another {key}=<dir>"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``nasopt search [overrides]``; exit status: 0 ok, 1 failed job(s), 2 bad config, 130 stopped."""
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    register_configs()
    overrides = _overrides_to_check(args)
    if overrides is not None:
        try:
            preflight(overrides)
        except Exception as exc:  # nothing has run: any failure to compose or validate is the config's
            print(f"nasopt search: error: {one_line(exc)}", file=sys.stderr, flush=True)
            return EXIT_BAD_CONFIG
        unwritable = _unwritable_output_dir(args, overrides)
        if unwritable is not None:
            print(f"nasopt search: error: {unwritable}", file=sys.stderr, flush=True)
            return EXIT_BAD_CONFIG
        if not any(a.split("=", 1)[0].lstrip("+") == "hydra.output_subdir" for a in overrides):
            args.append("hydra.output_subdir=null")  # the task writes .hydra/ itself, under the lock
    app = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base="1.3")(task)
    with _argv(args), _sweep_env():
        try:
            app()
        except SystemExit as exc:
            return _exit_code(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
