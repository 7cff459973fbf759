"""The search loop: ask -> evaluate one batch -> tell, with budget, constraints, records and resume.

::

    from benchmark.synthetic import SyntheticBenchmark
    run = Runner("acc_a100", "nsga2", SyntheticBenchmark(), Budget(max_evals=1500), "runs/demo", seed=0)
    result = run.run()                       # nasopt.rundir.Run: trials (DataFrame), summary (dict)
    result = nasopt.search(problem="acc_a100", optimizer="re", budget=500, seed=1, bench=SyntheticBenchmark())

Seeds: the single integer ``seed`` goes through ``np.random.SeedSequence(seed).spawn(2)``: child 0 seeds the
optimizer's generator, child 1 the benchmark-noise generator (used only in noisy mode). Nothing global.

Evaluation (:class:`nasopt.evaluation.Evaluator`): one batched oracle query and one cost call per batch.
The optimizer sees the observed values (ensemble mean, or a noisy draw in noisy mode) in internal
minimisation units and the feasibility judged on the ensemble mean; the trial table records both.

Budget (see :mod:`nasopt.budget`): evaluations and/or simulated training time, whichever ends first;
re-proposed duplicates are evaluated again and count fully (evaluation and simulated time) with
``duplicate=True`` (a fresh draw in noisy mode).

Run directory: see :mod:`nasopt.rundir`. Checkpoints are written after a batch when ``checkpoint_every``
evaluations or ``checkpoint_every_s`` seconds passed since the last one, at the end, and on SIGINT/SIGTERM
(the run stops cleanly after the current batch; a second signal acts immediately). Running the same run
directory again resumes from the last checkpoint (optimizer via ``load_state``, noise generator, trial
table, budget counters) and ends with the same trial table as an uninterrupted run (wall-clock columns
aside); a finished run is only reported, not redone. A run directory is locked while a process runs it,
and refuses a different configuration (problem, optimizer and its parameters, seed, batch size, budget,
benchmark digest). A directory holding results of an earlier run (``trials.parquet``, ``summary.json``, a
``config.yaml`` of another run, checkpoint files) but no complete checkpoint is never started over: the
runner refuses in one line naming what is there; ``overwrite=True`` deletes those results and starts
afresh.

The parts: :class:`~nasopt.evaluation.Evaluator` (evaluate), :class:`~nasopt.trial_log.TrialLog` (the
table), :class:`~nasopt.incumbents.Incumbents` (front, HV, best accuracy),
:class:`~nasopt.resume.Checkpointer` (state, fingerprint, restore), :class:`~nasopt.signals.StopFlag`
(signals), :class:`ProgressBar` and ``on_batch`` (callbacks); :meth:`Runner._loop` drives them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import devices as user_devices
from benchmark import space
from benchmark._io import package_versions
from benchmark.api import Oracle, measured_ranges
from benchmark.errors import ConfigurationError, keyword_defaults
from nasopt.async_eval import PendingPool
from nasopt.auto import AUTO
from nasopt.auto import resolve as resolve_auto
from nasopt.budget import Budget
from nasopt.evaluation import Evaluation, Evaluator
from nasopt.incumbents import ACCURACY, Incumbents
from nasopt.problems import Problem, get_problem
from nasopt.progress import ProgressBar
from nasopt.resume import CheckpointCadence, Checkpointer, Counters, restore_rng, run_state
from nasopt.run_summary import extrapolated_counts, format_summary
from nasopt.rundir import (
    CONFIG_FILE,
    FORMAT_KEY,
    FORMAT_VERSION,
    SUMMARY_FILE,
    TRIALS_FILE,
    Run,
    RunDirError,
    RunFormatError,
    check_fresh_start,
    clear_results,
    config_get,
    genes,
    json_plain,
    locked,
    mean_column,
    obs_column,
    publish_trials,
    read_config,
    read_summary,
    trial_columns,
    write_config,
    write_summary,
    writing,
)
from nasopt.signals import StopFlag
from nasopt.trial_log import TrialLog
from optimizers import OPTIMIZERS, check_optimizer_params, make_optimizer, optimizer_class
from optimizers.base import Optimizer

OptimizerFactory = Callable[..., Optimizer]


def default_batch_size(opt: Optimizer) -> int:
    """Runner batch size when none is given: the optimizer's ``preferred_batch_size`` (None = 1)."""
    return opt.preferred_batch_size or 1


class Runner:
    """Runs one search; see the module docstring.

    Args:
        problem: a :class:`~nasopt.problems.Problem` or a named problem.
        optimizer: a registry name (``"rs"``, ``"re"``, ``"nsga2"``, ``"reinforce"``, ``"bo"``) or a factory
            ``f(problem_info, rng, **optimizer_params) -> Optimizer`` (e.g. an Optimizer subclass).
        bench: the oracle (``benchmark.api.Oracle``).
        budget: a :class:`~nasopt.budget.Budget`, an int (evaluations) or a mapping.
        run_dir: where results and checkpoints go; None keeps everything in memory (no resume).
        seed: the run's only seed.
        batch_size: architectures per ask/evaluate/tell; None = :func:`default_batch_size`.
        optimizer_params: keyword arguments of the optimizer.
        checkpoint_every: checkpoint after a batch once this many evaluations passed since the last one
            (0 or 1 = after every batch; None = only by time, at the end and on signals).
        checkpoint_every_s: ... or once this many wall seconds passed (None = not by time).
        progress: tqdm progress bar: True, False, or None (only on a terminal).
        print_summary: print the readable summary at the end.
        config: the config to store as ``config.yaml`` (default: :meth:`default_config`).
        on_batch: called with the runner after every evaluated batch (tests use it to slow a run down).
        on_start: called with the runner once it knows how it starts (:attr:`start`, :attr:`resumed_from`),
            before the first batch (the app prints "resumed from evaluation 120 of 300" with it).
        handle_signals: catch SIGINT/SIGTERM to stop cleanly (only possible in the main thread).
        overwrite: delete the results of an earlier run in ``run_dir`` and start afresh. Without it a
            directory holding an earlier run is resumed (same run, complete checkpoint) or refused.
        from_trials: where ``run_dir`` holds a ``trials.parquet`` but no complete checkpoint (the optimizer
            state is lost), continue from those trials with a fresh optimizer told all of them (not an exact
            resume: the optimizer's and the noise generator's states differ from an uninterrupted run).
        workers: evaluate asynchronously with this many simulated workers (:mod:`nasopt.async_eval`): each
            finished evaluation is told alone and its worker gets the next proposal at once, in simulated
            time (each evaluation takes the benchmark's ``cost``); ``batch_size`` is then unused. None: the
            synchronous batch loop. The summary adds ``workers`` and ``sim_clock_s`` (the pool's simulated
            elapsed seconds; ``sim_time_s`` stays the summed training seconds that the budget counts).
    """

    def __init__(
        self,
        problem: Problem | str,
        optimizer: str | OptimizerFactory,
        bench: Oracle,
        budget: Budget | int | Mapping[str, Any],
        run_dir: str | Path | None = None,
        *,
        seed: int = 0,
        batch_size: int | None = None,
        optimizer_params: Mapping[str, Any] | None = None,
        checkpoint_every: int | None = 500,
        checkpoint_every_s: float | None = 60.0,
        progress: bool | None = None,
        print_summary: bool = False,
        config: Mapping[str, Any] | None = None,
        on_batch: Callable[[Runner], None] | None = None,
        on_start: Callable[[Runner], None] | None = None,
        handle_signals: bool = True,
        overwrite: bool = False,
        from_trials: bool = False,
        workers: int | None = None,
    ) -> None:
        self.problem = get_problem(problem)
        self.optimizer_spec = optimizer
        self.optimizer_name = (
            optimizer
            if isinstance(optimizer, str)
            else str(getattr(optimizer, "name", None) or getattr(optimizer, "__name__", "custom"))
        )
        self.optimizer_params = dict(optimizer_params or {})
        self.bench = bench
        self.budget = Budget.parse(budget)
        self.run_dir = None if run_dir is None else Path(run_dir)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        if batch_size is not None and (
            isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1
        ):
            raise ConfigurationError(
                f"batch_size must be a positive integer (or null for the default), got {batch_size!r}"
            )
        if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
            raise ConfigurationError(
                f"workers must be a positive integer (or null for synchronous batches), got {workers!r}"
            )
        self.workers = None if workers is None else int(workers)
        self.pool: PendingPool | None = None
        self.requested_batch_size = None if batch_size is None else int(batch_size)
        self.batch_size = self.requested_batch_size or 0
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_s = checkpoint_every_s
        self.progress = progress
        self.print_summary = print_summary
        self.config = None if config is None else json_plain(dict(config))
        self.on_batch = on_batch
        self.on_start = on_start
        self.handle_signals = handle_signals
        self.overwrite = bool(overwrite)
        self.from_trials = bool(from_trials)
        # run state (set up by run())
        self.optimizer: Optimizer | None = None
        self.noise_rng: np.random.Generator | None = None
        self.counters = Counters()
        self.trials = TrialLog(self.problem)
        self.incumbents = Incumbents(self.problem.info)
        self.stop = StopFlag()
        self._seen: set[int] = set()
        #: how the run started: "fresh", "resumed" (from a checkpoint), "from_trials" or "finished" (only
        #: reported); None before :meth:`run`
        self.start: str | None = None
        #: evaluations already done when the run started (restored from the checkpoint or the trials)
        self.resumed_from = 0
        self._t0 = 0.0
        self._ran = False

    # -- identity ----------------------------------------------------------------------------------------
    @property
    def n_evals(self) -> int:
        return self.counters.n_evals

    @property
    def wall_time_s(self) -> float:
        return self.counters.wall_offset_s + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    def _digest(self) -> str:
        """The oracle's digest, extended by the surrogate of every user-device target the problem uses
        (:func:`benchmark.devices.qualified_digest`; unchanged for built-in targets)."""
        return user_devices.qualified_digest(
            str(getattr(self.bench, "digest", "unknown")), self.problem.query_targets
        )

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this run; a run directory refuses to continue under a different one."""
        fp = {
            "problem": self.problem.spec(),
            "optimizer": {"name": self.optimizer_name, "params": self.optimizer_params},
            "seed": self.seed,
            "batch_size": self.batch_size,
            "budget": self.budget.to_dict(),
            "benchmark_digest": self._digest(),
        }
        if self.workers is not None:  # an asynchronous run (synchronous fingerprints stay as they were)
            fp["workers"] = self.workers
        return json_plain(fp)

    def default_config(self) -> dict[str, Any]:
        """The config stored when none was given: what the runner was given."""
        config = json_plain(
            {
                "problem": {**self.problem.spec(), "description": self.problem.description},
                "optimizer": {
                    "name": self.optimizer_name,
                    "batch_size": self.requested_batch_size,
                    "params": self.optimizer_params,
                },
                "budget": self.budget.to_dict(),
                "benchmark": {"name": type(self.bench).__name__, "digest": self._digest()},
                "seed": self.seed,
                "checkpoint": {"every_evals": self.checkpoint_every, "every_s": self.checkpoint_every_s},
            }
        )
        if self.workers is not None:
            config["workers"] = self.workers
        return config

    def request_stop(self, reason: str = "request") -> None:
        """Stop cleanly after the current batch (as SIGINT would)."""
        self.stop.request(reason)

    # -- setup -------------------------------------------------------------------------------------------
    def _make_optimizer(self) -> Optimizer:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(2)[0])
        spec = self.optimizer_spec
        check_optimizer_params(spec, self.optimizer_params, label=self.optimizer_name)
        if isinstance(spec, str):
            try:
                return make_optimizer(spec, self.problem.info, rng, **self.optimizer_params)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"optimizer {spec!r}: {exc}") from exc
        return spec(self.problem.info, rng, **self.optimizer_params)

    def _resolved_params(self, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` of optimizer ``name`` with its constructor's defaults filled in: two runs whose
        optimizers were built with the same settings compare equal whether a setting was given or left to
        its default (an optimizer that is neither this run's nor registered keeps its params as saved)."""
        if name == self.optimizer_name:
            spec = self.optimizer_spec
            cls = optimizer_class(spec) if isinstance(spec, str) else spec
        elif name in OPTIMIZERS:
            cls = optimizer_class(name)
        else:
            return dict(json_plain(dict(params)))
        return dict(json_plain({**keyword_defaults(cls, skip=2), **params}))

    def _fresh(self) -> None:
        self.optimizer = self._make_optimizer()
        self.noise_rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(2)[1])
        self.batch_size = self.requested_batch_size or default_batch_size(self.optimizer)
        if self.workers is not None:
            self.pool = PendingPool(self.workers)

    def _restore(self, state: Mapping[str, Any], trials: Any, need_optimizer: bool) -> None:
        self.batch_size = int(state["fingerprint"]["batch_size"])
        self.counters = Counters.from_state(state)
        self.noise_rng = restore_rng(state)
        self.trials = TrialLog(self.problem, trials)
        self.incumbents = Incumbents.from_table(self.trials.table(), self.problem.info)
        self._seen = self.trials.seen_ids()
        if self.workers is not None:
            self.pool = PendingPool.from_state(state["async"])
        if need_optimizer:
            self.optimizer = self._make_optimizer()
            self.optimizer.load_state(state["optimizer"])

    def _continue_from_trials(self) -> None:
        """A fresh optimizer told every trial of ``trials.parquet`` (batch by batch), counters and
        incumbents from the table, a noise generator of its own stream (``SeedSequence(seed)`` child 2)."""
        assert self.run_dir is not None
        path = self.run_dir / TRIALS_FILE
        earlier = read_summary(self.run_dir).get("problem") or config_get(
            read_config(self.run_dir), "problem.name"
        )
        if earlier is not None and earlier != self.problem.name:
            raise RunDirError(f"{path} holds trials of problem {earlier!r}, not {self.problem.name!r}")
        columns = trial_columns(self.problem.objectives, self.problem.constraint_targets)
        try:
            table = pd.read_parquet(path)
        except Exception as exc:
            raise RunFormatError(f"{path}: not a readable parquet table ({exc})") from exc
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise RunFormatError(f"{path}: missing column(s) {missing} for problem {self.problem.name!r}")
        table = table[columns].sort_values("eval_index", kind="stable").reset_index(drop=True)
        self._fresh()
        self.noise_rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(3)[2])
        X = genes(table)
        F = self.problem.to_internal(table[[obs_column(t) for t in self.problem.objectives]].to_numpy(float))
        feasible = table["feasible"].to_numpy(bool)
        C = (
            np.stack([table[mean_column(c.target)].to_numpy(float) for c in self.problem.constraints], axis=1)
            if self.problem.constraints
            else None
        )
        batches = table["batch_index"].to_numpy()
        for b in np.unique(batches):
            rows = batches == b
            self._tell(X[rows], F[rows], feasible[rows], None if C is None else C[rows])
        last = table.iloc[-1] if len(table) else None
        self.counters = Counters(
            n_evals=len(table),
            batch_index=int(batches.max()) + 1 if len(table) else 0,
            sim_time_s=0.0 if last is None else float(last["sim_time_s"]),
            optimizer_time_s=self.counters.optimizer_time_s
            + (0.0 if last is None else float(last["optimizer_time_s"])),
            wall_offset_s=0.0 if last is None else float(last["wall_time_s"]),
        )
        self.trials = TrialLog(self.problem, table)
        self.incumbents = Incumbents.from_table(self.trials.table(), self.problem.info)
        self._seen = self.trials.seen_ids()
        if self.pool is not None:
            self.pool.started = len(table)

    # -- summary and checkpoints ---------------------------------------------------------------------------
    def summary(self, finished: bool) -> dict[str, Any]:
        """The ``summary.json`` content for the current state."""
        c, inc, p = self.counters, self.incumbents, self.problem
        extras: dict[str, Any] = {}
        if self.pool is not None:
            extras = {"workers": self.pool.workers, "sim_clock_s": self.pool.clock_s}
        return json_plain(
            {
                "problem": p.name,
                "optimizer": self.optimizer_name,
                "seed": self.seed,
                "n_evals": c.n_evals,
                "sim_time_s": c.sim_time_s,
                "wall_time_s": self.wall_time_s,
                "optimizer_time_s": c.optimizer_time_s,
                "hypervolume": inc.hypervolume,
                "best_feasible_accuracy": inc.best_accuracy,
                "pareto_set": inc.pareto_set(self.trials.table(), p.query_targets),
                "budget": {
                    **self.budget.to_dict(),
                    "used_evals": c.n_evals,
                    "used_sim_time_s": c.sim_time_s,
                    "exhausted_by": c.exhausted_by,
                },
                "finished": finished,
                "interrupted": self.stop.reason,
                "versions": dict(package_versions()),
                "benchmark_digest": self._digest(),
                # extras (not required by the format)
                "objectives": list(p.objectives),
                "maximize": list(p.maximize),
                "constraints": [str(con) for con in p.constraints],
                "eval_mode": p.eval_mode,
                "ideal": list(p.info.ideal),
                "nadir": list(p.info.nadir),
                "ref_point": list(p.info.ref_point),
                "batch_size": self.batch_size,
                "n_batches": c.batch_index,
                "n_feasible": inc.n_feasible,
                "n_duplicates": inc.n_duplicates,
                # per target: evaluations predicted outside the oracle's measured range by more than their std
                "extrapolated_evaluations": extrapolated_counts(
                    self.trials.table(),
                    p.query_targets,
                    {**measured_ranges(self.bench), **user_devices.measured_ranges(p.query_targets)},
                ),
                FORMAT_KEY: FORMAT_VERSION,
                **extras,
            }
        )

    def _checkpoint(self, finished: bool) -> dict[str, Any]:
        summary = self.summary(finished)
        if self.run_dir is not None:
            assert self.noise_rng is not None
            state = run_state(
                self.fingerprint(),
                self.counters,
                self.wall_time_s,
                finished,
                self.stop.reason,
                self.noise_rng,
                None if self.optimizer is None else self.optimizer.state(),
                None if self.pool is None else {"async": self.pool.state()},
            )
            Checkpointer(self.run_dir).save(state, self.trials.table(), summary)
        return summary

    # -- running -------------------------------------------------------------------------------------------
    def run(self) -> Run:
        """Run (or resume, or just report) the search; returns its :class:`~nasopt.rundir.Run`.

        A Runner runs once; to continue a stopped run, make a new Runner on the same run directory.
        """
        if self._ran:
            raise RuntimeError("a Runner runs once; make a new Runner (same run_dir) to resume or report")
        self._ran = True
        if self.run_dir is None:
            with self.stop.handling_signals(self.handle_signals):
                return self._run()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.run_dir), self.stop.handling_signals(self.handle_signals):
            return self._run()

    def _run(self) -> Run:
        if self.run_dir is not None:
            if self.overwrite:
                clear_results(self.run_dir)
            loaded = Checkpointer(self.run_dir).load(
                self.fingerprint(), bool(self.requested_batch_size), self._resolved_params
            )
            if loaded is not None:
                state, trials = loaded
                if not (self.run_dir / CONFIG_FILE).is_file():  # deleted: the run's own config comes back
                    with writing(self.run_dir):
                        write_config(self.run_dir, self.config or self.default_config())
                self._restore(state, trials, need_optimizer=not state.get("finished"))
                if state.get("finished"):
                    self._started("finished")
                    return self._report_finished()
                self._started("resumed")
            else:
                config = self.config or self.default_config()
                if self.from_trials and (self.run_dir / TRIALS_FILE).is_file():
                    self._continue_from_trials()
                    kind = "from_trials"
                else:
                    check_fresh_start(self.run_dir, config)  # never silently over an earlier run's results
                    self._fresh()
                    kind = "fresh"
                with writing(self.run_dir):
                    write_config(self.run_dir, config)
                self._started(kind)
        else:
            self._fresh()
            self._started("fresh")
        self._loop()
        return self._result(self._checkpoint(finished=self.counters.exhausted_by is not None))

    def _started(self, kind: str) -> None:
        self.start, self.resumed_from = kind, self.counters.n_evals
        if self.on_start is not None:
            self.on_start(self)

    def _report_finished(self) -> Run:
        """A finished run started again: report what is there (rewrite summary/trials only if missing)."""
        assert self.run_dir is not None
        summary = read_summary(self.run_dir)
        if not (self.run_dir / SUMMARY_FILE).is_file():
            summary = self.summary(finished=True)
            write_summary(self.run_dir, summary)
        if not (self.run_dir / TRIALS_FILE).is_file():
            publish_trials(self.run_dir)
        return self._result(summary)

    def _result(self, summary: dict[str, Any]) -> Run:
        result = Run(
            path=self.run_dir,
            problem=self.problem.name,
            optimizer=self.optimizer_name,
            seed=self.seed,
            label=self.optimizer_name,
            trials=self.trials.table().reset_index(drop=True),
            info=self.problem.info,
            summary=summary,
            config=self.config or self.default_config(),
            interrupted=self.stop.reason,
        )
        if self.print_summary:
            print(format_summary(summary), flush=True)
        return result

    def _ask(self, n: int) -> np.ndarray:
        assert self.optimizer is not None
        t = time.perf_counter()
        proposed = self.optimizer.ask(n)
        self.counters.optimizer_time_s += time.perf_counter() - t
        X = space.as_batch(proposed)
        if not 1 <= X.shape[0] <= n:
            raise RuntimeError(
                f"optimizer {self.optimizer_name!r} returned {X.shape[0]} architectures for ask({n})"
            )
        return X

    def _tell(
        self, X: np.ndarray, F: np.ndarray, feasible: np.ndarray, constraint_values: np.ndarray | None = None
    ) -> None:
        """Tell the optimizer; one that declares ``uses_constraint_values`` also gets the constraint
        targets' ensemble means ``(n, n_constraints)`` (the values feasibility is judged on)."""
        assert self.optimizer is not None
        t = time.perf_counter()
        if constraint_values is not None and getattr(self.optimizer, "uses_constraint_values", False):
            self.optimizer.tell(X, F, feasible, constraint_values=constraint_values)  # type: ignore[call-arg]
        else:
            self.optimizer.tell(X, F, feasible)
        self.counters.optimizer_time_s += time.perf_counter() - t

    def _constraint_values(self, ev: Evaluation) -> np.ndarray | None:
        """``(n, n_constraints)`` ensemble means of the constraint targets of ``ev`` (None: none)."""
        cons = self.problem.constraints
        if not cons:
            return None
        return np.stack([ev.target_mean(c.target, self.problem.objectives) for c in cons], axis=1)

    def _duplicates(self, X: np.ndarray) -> np.ndarray:
        """Which rows of ``X (k, 28)`` were evaluated before (or earlier in ``X``); marks them seen."""
        dup = np.zeros(X.shape[0], dtype=bool)
        for i, a in enumerate(space.arch_id(X).tolist()):
            dup[i] = a in self._seen
            self._seen.add(a)
        return dup

    def _record(self, ev: Evaluation, keep: int, dup: np.ndarray, cum_sim: np.ndarray) -> None:
        """The first ``keep`` evaluations of ``ev`` into the trial log, the incumbents and the counters."""
        c = self.counters
        self.trials.append(ev, keep, c.batch_index, dup, cum_sim, self.wall_time_s, c.optimizer_time_s)
        has_acc = ACCURACY in self.problem.query_targets
        acc = ev.target_mean(ACCURACY, self.problem.objectives)[:keep] if has_acc else None
        eval_index = np.arange(c.n_evals, c.n_evals + keep, dtype=np.int64)
        self.incumbents.add(eval_index, ev.mean[:keep], ev.feasible[:keep], dup, acc)
        c.n_evals += keep
        c.sim_time_s = float(cum_sim[keep - 1])

    def _loop(self) -> None:
        """ask -> evaluate -> (truncate to the simulated-time budget) -> tell -> record, batch by batch."""
        if self.pool is not None:
            return self._async_loop(self.pool)
        evaluate, cadence, progress = self._loop_parts("")
        c, budget = self.counters, self.budget
        try:
            while self.stop.reason is None:
                remaining = budget.remaining_evals(c.n_evals)
                if remaining == 0:
                    c.exhausted_by = "evals"
                    break
                X = self._ask(self.batch_size if remaining is None else min(self.batch_size, remaining))
                ev = evaluate.evaluate_batch(X, self.noise_rng)
                cum_sim = c.sim_time_s + np.cumsum(ev.cost)
                keep = budget.evals_within_sim_time(cum_sim)
                dup = self._duplicates(X[:keep])
                if keep == len(ev):  # a truncated batch ends the run: the optimizer is not told
                    self._tell(X, ev.F, ev.feasible, self._constraint_values(ev))
                if keep > 0:
                    self._record(ev, keep, dup, cum_sim)
                c.batch_index += 1
                truncated = keep < len(ev)
                c.exhausted_by = "sim_time" if truncated else budget.exhausted_by(c.n_evals, c.sim_time_s)
                progress.update(keep)
                if self.on_batch is not None:
                    self.on_batch(self)
                if c.exhausted_by is not None:
                    break
                if self.run_dir is not None and cadence.due(c.n_evals):
                    self._checkpoint(finished=False)
                    cadence.done(c.n_evals)
        finally:
            progress.close()

    def _loop_parts(self, desc_suffix: str) -> tuple[Evaluator, CheckpointCadence, ProgressBar]:
        """What both loops start with: the evaluator, the checkpoint cadence and the progress bar (from the
        evaluations done so far); starts the wall clock."""
        self._t0 = time.perf_counter()
        n = self.counters.n_evals
        progress = ProgressBar(
            self.incumbents,
            total=self.budget.max_evals,
            initial=n,
            desc=f"{self.optimizer_name} {self.problem.name}{desc_suffix}",
            enabled=self.progress,
        )
        return (Evaluator(self.problem, self.bench),
                CheckpointCadence(self.checkpoint_every, self.checkpoint_every_s, n), progress)

    def _async_loop(self, pool: PendingPool) -> None:
        """Keep ``pool.workers`` evaluations running in simulated time: start proposals on idle workers
        (within the budgets: evaluations started, training seconds committed), then finish the earliest,
        evaluate it, tell and record it alone (see :mod:`nasopt.async_eval`)."""
        evaluate, cadence, progress = self._loop_parts(" async")
        c, budget = self.counters, self.budget
        try:
            while self.stop.reason is None:
                self._start_on_idle_workers(pool)
                if len(pool) == 0:
                    c.exhausted_by = pool.closed or budget.exhausted_by(c.n_evals, c.sim_time_s) or "evals"
                    break
                done = pool.pop()
                X = done.x[None, :]
                ev = evaluate.evaluate_batch(X, self.noise_rng)
                cum_sim = c.sim_time_s + ev.cost
                dup = self._duplicates(X)
                self._tell(X, ev.F, ev.feasible, self._constraint_values(ev))
                self._record(ev, 1, dup, cum_sim)
                c.batch_index += 1
                progress.update(1)
                if self.on_batch is not None:
                    self.on_batch(self)
                if self.run_dir is not None and cadence.due(c.n_evals):
                    self._checkpoint(finished=False)
                    cadence.done(c.n_evals)
        finally:
            progress.close()

    def _start_on_idle_workers(self, pool: PendingPool) -> None:
        """Ask for as many proposals as workers are idle and start those within the budgets; the first that
        would pass one closes the pool (the run ends once the running ones finish)."""
        budget, c = self.budget, self.counters
        while pool.free:
            remaining = budget.remaining_evals(pool.started)
            if remaining == 0:
                pool.closed = "evals"
                return
            n = pool.free if remaining is None else min(pool.free, remaining)
            X = self._ask(n)
            cost = np.asarray(self.bench.cost(X), dtype=np.float64).reshape(X.shape[0])
            keep = budget.evals_within_sim_time(c.sim_time_s + pool.committed_cost_s + np.cumsum(cost))
            pool.start(X[:keep], cost[:keep])
            if keep < X.shape[0]:  # the optimizer is never told of the rest: the run ends
                pool.closed = "sim_time"
                return


def search(
    problem: str | Problem = "acc_a100",
    optimizer: str | OptimizerFactory = "auto",
    budget: Budget | int | Mapping[str, Any] = 1500,
    seed: int = 0,
    run_dir: str | Path | None = None,
    bench: Oracle | None = None,
    *,
    batch_size: int | None = None,
    eval_mode: str | None = None,
    progress: bool | None = None,
    print_summary: bool = False,
    checkpoint_every: int | None = 500,
    overwrite: bool = False,
    from_trials: bool = False,
    workers: int | None = None,
    **opt_params: Any,
) -> Run:
    """Run one search in a line: ``nasopt.search("acc_a100", "re", budget=500, seed=1)``.

    ``optimizer="auto"`` (the default, as for ``nasopt search``) runs the optimizer measured best at the
    budget (:func:`nasopt.auto.choose_optimizer`: BO up to 5,000 evaluations, NSGA-II beyond); the run's
    ``config.yaml`` records ``optimizer.requested: auto`` and ``optimizer.choice``, and resuming it in
    ``run_dir`` keeps what it chose.

    ``bench=None`` loads the surrogate (``benchmark.make_benchmark("surrogate")``); ``opt_params`` go to the
    optimizer; ``eval_mode="noisy"`` switches the problem to noisy observations. With ``run_dir`` the run is
    written there and resumable; without, it stays in memory. A ``run_dir`` holding an earlier run is
    resumed (the same run) or refused; ``overwrite=True`` deletes its results and starts afresh;
    ``from_trials=True`` continues from its ``trials.parquet`` with a fresh optimizer when its checkpoint
    is lost (see :class:`Runner`). ``workers=k`` evaluates asynchronously with ``k`` simulated workers
    (:mod:`nasopt.async_eval`).
    """
    prob = get_problem(problem)
    if eval_mode is not None:
        prob = prob.with_eval_mode(eval_mode)
    if bench is None:
        from benchmark import make_benchmark

        bench = make_benchmark("surrogate")
    choice: str | None = None
    if isinstance(optimizer, str) and optimizer == AUTO:
        optimizer, choice = resolve_auto(Budget.parse(budget), run_dir, overwrite)
    runner = Runner(
        prob,
        optimizer,
        bench,
        budget,
        run_dir,
        seed=seed,
        batch_size=batch_size,
        optimizer_params=opt_params,
        checkpoint_every=checkpoint_every,
        progress=progress,
        print_summary=print_summary,
        overwrite=overwrite,
        from_trials=from_trials,
        workers=workers,
    )
    if choice is not None:
        config = runner.default_config()
        config["optimizer"] = {**config["optimizer"], "requested": AUTO, "choice": choice}
        runner.config = config
    return runner.run()


__all__ = ["Runner", "default_batch_size", "search"]
