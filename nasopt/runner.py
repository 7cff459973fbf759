"""The search loop: ask -> one batched benchmark query -> tell, with budget, constraints, records and resume.

::

    from benchmark.synthetic import SyntheticBenchmark
    run = Runner("acc_a100", "nsga2", SyntheticBenchmark(), Budget(max_evals=1500), "runs/demo", seed=0)
    result = run.run()                       # RunResult: trials (DataFrame), summary (dict)
    result = nasopt.search(problem="acc_a100", optimizer="re", budget=500, seed=1, bench=SyntheticBenchmark())

Seeds: the single integer ``seed`` goes through ``np.random.SeedSequence(seed).spawn(2)``: child 0 seeds the
optimizer's generator, child 1 the benchmark-noise generator (used only in noisy mode). Nothing global.

Evaluation: each batch of architectures is evaluated with one ``bench.query(X, problem.query_targets,
noisy=..., rng=noise_rng)`` call and one ``bench.cost(X)`` call. The optimizer sees ``obs`` (ensemble mean, or
a noisy draw in noisy mode) in internal minimisation units and the feasibility judged on the ensemble mean;
the trial table records both ``obs_<T>`` and the ensemble mean ``mean_<T>``, which reports use.

Budget (see :mod:`nasopt.budget`): evaluations and/or simulated training time, whichever ends first;
re-proposed duplicates are evaluated again and count fully (evaluation and simulated time) with
``duplicate=True`` (a fresh draw in noisy mode).

Run directory (format shared with the report code): ``config.yaml``, ``trials.parquet``, ``summary.json``,
``checkpoint/`` (``state.json`` + ``arrays.npz`` + the trial table, swapped in atomically). Checkpoints are
written after a batch when ``checkpoint_every`` evaluations or ``checkpoint_every_s`` seconds passed since the
last one, at the end, and on SIGINT/SIGTERM (the run stops cleanly after the current batch; a second signal
acts immediately). Running the same run directory again resumes from the last checkpoint (optimizer via
``load_state``, noise generator, trial table, budget counters) and ends with the same trial table as an
uninterrupted run (wall-clock columns aside); a finished run is only reported, not redone. A run directory
is locked while a process runs it, and refuses a different configuration (problem, optimizer and its
parameters, seed, batch size, budget, benchmark digest).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd

from benchmark import space
from benchmark._io import atomic_copy, atomic_write_text
from benchmark.api import Oracle
from nasopt.budget import Budget
from nasopt.checkpoint import TRIALS_FILE as CKPT_TRIALS_FILE
from nasopt.checkpoint import load_checkpoint, save_checkpoint
from nasopt.problems import Problem, get_problem, hypervolume_normalized, nondominated
from nasopt.results import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    SUMMARY_FILE,
    TRIALS_FILE,
    RunResult,
    format_summary,
)
from optimizers.base import Optimizer, ProblemInfo

OptimizerFactory = Callable[..., Optimizer]
#: The checkpoint state layout version.
STATE_FORMAT = 1


class RunDirError(RuntimeError):
    """The run directory holds a different run, or another process is running it."""


class ConfigurationError(ValueError):
    """Bad runner arguments (unknown optimizer parameter, bad batch size, ...); the message names the fix."""


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """JSON round trip (sorted keys; numpy scalars and Enums as plain values) for config comparisons."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if hasattr(o, "value"):
            return o.value
        return str(o)

    return json.loads(json.dumps(obj, sort_keys=True, default=default))


def check_optimizer_params(name: str, cls: Any, params: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigurationError` if ``params`` has a keyword ``cls(problem, rng, **params)`` lacks."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    ps = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return
    allowed = [p.name for p in ps[2:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ConfigurationError(
            f"optimizer {name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(allowed) or '(none)'}"
        )


def default_batch_size(opt: Optimizer) -> int:
    """Runner batch size when none is given: the optimizer's ``preferred_batch_size`` (None = 1)."""
    return opt.preferred_batch_size or 1


@functools.cache
def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("nasopt", "numpy", "pandas", "pymoo", "xgboost", "torch", "botorch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``run_dir/.lock`` (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    fh = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held for the context's lifetime
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunDirError(
                f"run directory {run_dir} is in use by another nasopt process; "
                "wait for it or use another directory"
            ) from None
        yield
    finally:
        fh.close()


# ------------------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------------------
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
        batch_size: architectures per ask/query/tell; None = :func:`default_batch_size`.
        optimizer_params: keyword arguments of the optimizer.
        checkpoint_every: checkpoint after a batch once this many evaluations passed since the last one
            (0 or 1 = after every batch; None = only by time, at the end and on signals).
        checkpoint_every_s: ... or once this many wall seconds passed (None = not by time).
        progress: tqdm progress bar: True, False, or None (only on a terminal).
        print_summary: print the readable summary at the end.
        config: the config to store as ``config.yaml`` (default: built from the arguments).
        on_batch: called with the runner after every evaluated batch (tests use it to slow a run down).
        handle_signals: catch SIGINT/SIGTERM to stop cleanly (only possible in the main thread).
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
        handle_signals: bool = True,
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
        self.requested_batch_size = None if batch_size is None else int(batch_size)
        self.batch_size = self.requested_batch_size or 0
        self.checkpoint_every = checkpoint_every
        self.checkpoint_every_s = checkpoint_every_s
        self.progress = progress
        self.print_summary = print_summary
        self.config = None if config is None else _plain(dict(config))
        self.on_batch = on_batch
        self.handle_signals = handle_signals
        # mutable run state (set up by run())
        self.optimizer: Optimizer | None = None
        self.noise_rng: np.random.Generator | None = None
        self.n_evals = 0
        self.batch_index = 0
        self.sim_time_s = 0.0
        self.optimizer_time_s = 0.0
        self._wall_offset = 0.0
        self._t0 = 0.0
        self._stop: str | None = None
        self._table = pd.DataFrame()
        self._pending: list[dict[str, np.ndarray]] = []
        self._seen: set[int] = set()
        self._front_idx = np.zeros(0, dtype=np.int64)  # eval indices of the feasible non-dominated rows
        self._front_norm = np.zeros((0, self.problem.n_obj))
        self._front_dirty: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._hv = 0.0
        self._best_acc: float | None = None
        self._n_feasible = 0
        self._n_duplicates = 0
        self._exhausted_by: str | None = None
        self._ran = False

    # -- identity ----------------------------------------------------------------------------------------
    def _digest(self) -> str:
        return str(getattr(self.bench, "digest", "unknown"))

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this run; a run directory refuses to continue under a different one."""
        return _plain(
            {
                "problem": self.problem.spec(),
                "optimizer": {"name": self.optimizer_name, "params": self.optimizer_params},
                "seed": self.seed,
                "batch_size": self.batch_size,
                "budget": self.budget.to_dict(),
                "benchmark_digest": self._digest(),
            }
        )

    def default_config(self) -> dict[str, Any]:
        """The config stored when none was given: same keys as the Hydra app's."""
        return _plain(
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

    # -- setup -------------------------------------------------------------------------------------------
    def _make_optimizer(self, rng: np.random.Generator) -> Optimizer:
        spec = self.optimizer_spec
        if isinstance(spec, str):
            from optimizers import make_optimizer, optimizer_class

            check_optimizer_params(spec, optimizer_class(spec), self.optimizer_params)
            try:
                return make_optimizer(spec, self.problem.info, rng, **self.optimizer_params)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"optimizer {spec!r}: {exc}") from exc
        check_optimizer_params(self.optimizer_name, spec, self.optimizer_params)
        return spec(self.problem.info, rng, **self.optimizer_params)

    def _fresh(self) -> None:
        opt_seq, noise_seq = np.random.SeedSequence(self.seed).spawn(2)
        self.optimizer = self._make_optimizer(np.random.default_rng(opt_seq))
        self.noise_rng = np.random.default_rng(noise_seq)
        self.batch_size = self.requested_batch_size or default_batch_size(self.optimizer)

    # -- records -----------------------------------------------------------------------------------------
    def _flush(self) -> pd.DataFrame:
        """Merge pending batches into the trial table (arch strings are made here, once per row)."""
        if self._pending:
            cols = {k: np.concatenate([b[k] for b in self._pending]) for k in self._pending[0]}
            genes = cols.pop("_genes")
            frame: dict[str, Any] = {
                "eval_index": cols.pop("eval_index"),
                "batch_index": cols.pop("batch_index"),
                "arch": space.to_strings(genes),
            }
            for j in range(space.N_GENES):
                frame[f"g{j}"] = genes[:, j].astype(np.int8)
            frame.update(cols)
            new = pd.DataFrame(frame)
            self._table = new if self._table.empty else pd.concat([self._table, new], ignore_index=True)
            self._pending = []
        return self._table

    def _record(
        self,
        X: np.ndarray,
        obs: np.ndarray,
        preds: Mapping[str, Any],
        feasible: np.ndarray,
        duplicate: np.ndarray,
        cost: np.ndarray,
        cum_sim: np.ndarray,
    ) -> None:
        n = X.shape[0]
        wall = self.wall_time_s
        rec: dict[str, np.ndarray] = {
            "eval_index": np.arange(self.n_evals, self.n_evals + n, dtype=np.int64),
            "batch_index": np.full(n, self.batch_index, dtype=np.int64),
            "_genes": X,
        }
        for i, t in enumerate(self.problem.objectives):
            rec[f"obs_{t}"] = obs[:n, i].astype(np.float64)
            rec[f"mean_{t}"] = np.asarray(preds[t].mean[:n], dtype=np.float64)
            rec[f"std_{t}"] = np.asarray(preds[t].std[:n], dtype=np.float64)
        for t in self.problem.constraint_targets:
            rec[f"mean_{t}"] = np.asarray(preds[t].mean[:n], dtype=np.float64)
        rec["feasible"] = feasible[:n].copy()
        rec["duplicate"] = duplicate[:n].copy()
        rec["cost_s"] = cost[:n].astype(np.float64)
        rec["sim_time_s"] = cum_sim[:n].astype(np.float64)
        rec["wall_time_s"] = np.full(n, wall)
        rec["optimizer_time_s"] = np.full(n, self.optimizer_time_s)
        self._pending.append(rec)

    # -- front / indicators --------------------------------------------------------------------------------
    def _add_to_front(self, eval_idx: np.ndarray, means: np.ndarray, feasible: np.ndarray) -> None:
        # buffered; normalised and filtered (feasible, finite) in _update_front
        self._front_dirty.append((eval_idx, means, feasible))

    def _update_front(self) -> None:
        if not self._front_dirty:
            return
        new_idx = np.concatenate([d[0] for d in self._front_dirty])
        new_means = np.concatenate([d[1] for d in self._front_dirty])
        ok = np.concatenate([d[2] for d in self._front_dirty]) & np.all(np.isfinite(new_means), axis=1)
        self._front_dirty = []
        if not ok.any():
            return
        idx = np.concatenate([self._front_idx, new_idx[ok]])
        norm = np.concatenate([self._front_norm, self.problem.normalize_natural(new_means[ok])])
        keep = nondominated(norm)
        self._front_idx, self._front_norm = idx[keep], norm[keep]
        self._hv = hypervolume_normalized(self._front_norm, self.problem.ref_point)

    def _rebuild_stats(self) -> None:
        t = self._table
        self._seen = (
            set(space.arch_id(t[[f"g{j}" for j in range(space.N_GENES)]].to_numpy(np.int64)).tolist())
            if len(t)
            else set()
        )
        self._front_idx = np.zeros(0, dtype=np.int64)
        self._front_norm = np.zeros((0, self.problem.n_obj))
        self._front_dirty = []
        self._hv = 0.0
        self._best_acc = None
        self._n_feasible = int(t["feasible"].sum()) if len(t) else 0
        self._n_duplicates = int(t["duplicate"].sum()) if len(t) else 0
        if len(t):
            means = t[[f"mean_{o}" for o in self.problem.objectives]].to_numpy(np.float64)
            fe = t["feasible"].to_numpy(bool)
            self._add_to_front(t["eval_index"].to_numpy(np.int64), means, fe)
            self._update_front()
            if "mean_accuracy" in t.columns and fe.any():
                acc = t["mean_accuracy"].to_numpy(np.float64)[fe]
                if np.isfinite(acc).any():
                    self._best_acc = float(np.nanmax(acc))

    # -- summary -------------------------------------------------------------------------------------------
    @property
    def wall_time_s(self) -> float:
        return self._wall_offset + (time.perf_counter() - self._t0 if self._t0 else 0.0)

    def summary(self, finished: bool) -> dict[str, Any]:
        """The ``summary.json`` content for the current state."""
        self._update_front()
        table = self._flush()
        pareto: list[dict[str, Any]] = []
        if self._front_idx.size:
            targets = list(self.problem.query_targets)
            # eval_index equals the row position in the table
            rows = table.iloc[np.sort(self._front_idx)][
                ["arch", "eval_index", *(f"mean_{t}" for t in targets)]
            ]
            rows = rows.drop_duplicates("arch", keep="first")
            rows.columns = pd.Index(["arch", "eval_index", *targets])
            rows = rows.sort_values(targets[0], ascending=not self.problem.maximize[0], kind="stable")
            pareto = [{str(k): v for k, v in r.items()} for r in rows.to_dict("records")]
        return _plain(
            {
                "problem": self.problem.name,
                "optimizer": self.optimizer_name,
                "seed": self.seed,
                "n_evals": self.n_evals,
                "sim_time_s": self.sim_time_s,
                "wall_time_s": self.wall_time_s,
                "optimizer_time_s": self.optimizer_time_s,
                "hypervolume": self._hv,
                "best_feasible_accuracy": self._best_acc,
                "pareto_set": pareto,
                "budget": {
                    **self.budget.to_dict(),
                    "used_evals": self.n_evals,
                    "used_sim_time_s": self.sim_time_s,
                    "exhausted_by": self._exhausted_by,
                },
                "finished": finished,
                "interrupted": self._stop,
                "versions": dict(_versions()),
                "benchmark_digest": self._digest(),
                # extras (not required by the format)
                "objectives": list(self.problem.objectives),
                "maximize": list(self.problem.maximize),
                "constraints": [str(c) for c in self.problem.constraints],
                "eval_mode": self.problem.eval_mode,
                "ideal": list(self.problem.info.ideal),
                "nadir": list(self.problem.info.nadir),
                "ref_point": list(self.problem.info.ref_point),
                "batch_size": self.batch_size,
                "n_batches": self.batch_index,
                "n_feasible": self._n_feasible,
                "n_duplicates": self._n_duplicates,
            }
        )

    # -- checkpoints ---------------------------------------------------------------------------------------
    def _state(self, finished: bool) -> dict[str, Any]:
        assert self.noise_rng is not None
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint(),
            "finished": finished,
            "exhausted_by": self._exhausted_by,
            "interrupted": self._stop,
            "n_evals": self.n_evals,
            "batch_index": self.batch_index,
            "sim_time_s": self.sim_time_s,
            "wall_time_s": self.wall_time_s,
            "optimizer_time_s": self.optimizer_time_s,
            "noise_rng": dict(self.noise_rng.bit_generator.state),
            "optimizer": None if self.optimizer is None else self.optimizer.state(),
        }

    def _checkpoint(self, finished: bool) -> dict[str, Any]:
        summary = self.summary(finished)
        if self.run_dir is None:
            return summary
        table = self._flush()
        save_checkpoint(self.run_dir / CHECKPOINT_DIR, self._state(finished), table)
        atomic_copy(self.run_dir / CHECKPOINT_DIR / CKPT_TRIALS_FILE, self.run_dir / TRIALS_FILE)
        atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=1, allow_nan=True))
        return summary

    def _check_fingerprint(self, saved: Mapping[str, Any]) -> None:
        want = self.fingerprint()
        if not self.requested_batch_size:  # the default is resolved on restore: take the saved one
            want["batch_size"] = saved.get("batch_size")
        diffs = [
            f"{k}: saved {json.dumps(saved.get(k))} vs now {json.dumps(want.get(k))}"
            for k in want
            if saved.get(k) != want.get(k)
        ]
        if diffs:
            raise RunDirError(
                f"run directory {self.run_dir} holds a different run ({'; '.join(diffs)}); "
                f"use another run directory, or delete this one to start afresh"
            )

    def _restore(self, state: Mapping[str, Any], trials: pd.DataFrame | None, need_optimizer: bool) -> None:
        if state.get("format") != STATE_FORMAT:
            raise RunDirError(
                f"checkpoint in {self.run_dir} has format {state.get('format')}, expected {STATE_FORMAT}"
            )
        self._check_fingerprint(state["fingerprint"])
        self.batch_size = int(state["fingerprint"]["batch_size"])
        self.n_evals = int(state["n_evals"])
        self.batch_index = int(state["batch_index"])
        self.sim_time_s = float(state["sim_time_s"])
        self._wall_offset = float(state["wall_time_s"])
        self.optimizer_time_s = float(state["optimizer_time_s"])
        self._exhausted_by = state.get("exhausted_by")
        self.noise_rng = np.random.default_rng()
        self.noise_rng.bit_generator.state = state["noise_rng"]
        self._table = trials if trials is not None else pd.DataFrame()
        if len(self._table) != self.n_evals:
            raise RunDirError(
                f"checkpoint in {self.run_dir} is inconsistent ({len(self._table)} trials for {self.n_evals} "
                f"evaluations); delete the run directory to start afresh"
            )
        self._pending = []
        self._rebuild_stats()
        if need_optimizer:
            opt_seq, _ = np.random.SeedSequence(self.seed).spawn(2)
            self.optimizer = self._make_optimizer(np.random.default_rng(opt_seq))
            self.optimizer.load_state(state["optimizer"])

    # -- signals -------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stop is not None:  # second signal: behave as before us
            prev = self._prev_handlers.get(signum, signal.SIG_DFL)
            signal.signal(signum, prev)
            signal.raise_signal(signum)
            return
        self._stop = name
        msg = (
            f"\nnasopt: {name} received - stopping after this batch with a checkpoint (again: stop at once)\n"
        )
        with contextlib.suppress(OSError):
            os.write(2, msg.encode())

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        self._prev_handlers: dict[int, Any] = {}
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._prev_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for signum, prev in self._prev_handlers.items():
                signal.signal(signum, prev)

    # -- the loop ------------------------------------------------------------------------------------------
    def request_stop(self, reason: str = "request") -> None:
        """Stop cleanly after the current batch (as SIGINT would)."""
        self._stop = reason

    def run(self) -> RunResult:
        """Run (or resume, or just report) the search; returns its :class:`~nasopt.results.RunResult`.

        A Runner runs once; to continue a stopped run, make a new Runner on the same run directory.
        """
        if self._ran:
            raise RuntimeError("a Runner runs once; make a new Runner (same run_dir) to resume or report")
        self._ran = True
        if self.run_dir is None:
            with self._signals():
                return self._run()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.run_dir), self._signals():
            return self._run()

    def _run(self) -> RunResult:
        loaded = load_checkpoint(self.run_dir / CHECKPOINT_DIR) if self.run_dir is not None else None
        if loaded is not None:
            state, trials = loaded
            if state.get("finished"):
                self._restore(state, trials, need_optimizer=False)
                return self._report_finished()
            self._restore(state, trials, need_optimizer=True)
        else:
            self._fresh()
            if self.run_dir is not None:
                from omegaconf import OmegaConf

                config = self.config or self.default_config()
                atomic_write_text(self.run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(config)))
        self._loop()
        return self._result(self._checkpoint(finished=self._exhausted_by is not None))

    def _report_finished(self) -> RunResult:
        """A finished run started again: report what is there (rewrite summary/trials only if missing)."""
        assert self.run_dir is not None
        path = self.run_dir / SUMMARY_FILE
        if path.is_file():
            summary = json.loads(path.read_text(encoding="utf-8"))
        else:
            summary = self.summary(finished=True)
            atomic_write_text(path, json.dumps(summary, indent=1, allow_nan=True))
        if not (self.run_dir / TRIALS_FILE).is_file():
            atomic_copy(self.run_dir / CHECKPOINT_DIR / CKPT_TRIALS_FILE, self.run_dir / TRIALS_FILE)
        return self._result(summary)

    def _result(self, summary: dict[str, Any]) -> RunResult:
        result = RunResult(
            self._flush().reset_index(drop=True),
            summary,
            self.config or self.default_config(),
            self.run_dir,
            self.problem,
            self._stop,
        )
        if self.print_summary:
            print(format_summary(summary), flush=True)
        return result

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        disable = None if self.progress is None else not self.progress
        return tqdm(
            total=self.budget.max_evals,
            initial=self.n_evals,
            unit="eval",
            desc=f"{self.optimizer_name} {self.problem.name}",
            disable=disable,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _loop(self) -> None:
        opt = self.optimizer
        assert opt is not None and self.noise_rng is not None
        problem, budget = self.problem, self.budget
        targets = list(problem.query_targets)
        noisy = problem.eval_mode == "noisy"
        self._t0 = time.perf_counter()
        last_ckpt_evals, last_ckpt_time = self.n_evals, time.perf_counter()
        last_post = 0.0
        pbar = self._progress_bar()
        try:
            while self._stop is None:
                remaining = budget.remaining_evals(self.n_evals)
                if remaining == 0:
                    self._exhausted_by = "evals"
                    break
                n = self.batch_size if remaining is None else min(self.batch_size, remaining)
                t = time.perf_counter()
                X = opt.ask(n)
                self.optimizer_time_s += time.perf_counter() - t
                X = space.as_batch(X)
                if not 1 <= X.shape[0] <= n:
                    raise RuntimeError(
                        f"optimizer {self.optimizer_name!r} returned {X.shape[0]} architectures for ask({n})"
                    )
                n = X.shape[0]
                preds = self.bench.query(X, targets, noisy=noisy, rng=self.noise_rng if noisy else None)
                cost = np.asarray(self.bench.cost(X), dtype=np.float64).reshape(n)
                cum = self.sim_time_s + np.cumsum(cost)
                keep = n
                if budget.max_sim_time_s is not None:
                    keep = int(np.searchsorted(cum, budget.max_sim_time_s, side="right"))
                obs = np.stack(
                    [np.asarray(preds[o].value, dtype=np.float64) for o in problem.objectives], axis=1
                )
                mean = np.stack(
                    [np.asarray(preds[o].mean, dtype=np.float64) for o in problem.objectives], axis=1
                )
                feasible = problem.feasible({c.target: preds[c.target].mean for c in problem.constraints}, n)
                # a failed evaluation (NaN/inf objective): all-NaN row for the optimizer, infeasible
                failed = ~(np.all(np.isfinite(obs), axis=1) & np.all(np.isfinite(mean), axis=1))
                feasible &= ~failed
                F = problem.to_internal(obs)
                F[failed] = np.nan
                ids = space.arch_id(X).tolist()
                dup = np.zeros(n, dtype=bool)
                for i, a in enumerate(ids[:keep]):
                    dup[i] = a in self._seen
                    self._seen.add(a)
                if keep == n:
                    t = time.perf_counter()
                    opt.tell(X, F, feasible)
                    self.optimizer_time_s += time.perf_counter() - t
                if keep > 0:
                    eval_idx = np.arange(self.n_evals, self.n_evals + keep, dtype=np.int64)
                    self._record(X[:keep], obs, preds, feasible, dup, cost, cum)
                    self._add_to_front(eval_idx, mean[:keep], feasible[:keep])
                    self._n_feasible += int(feasible[:keep].sum())
                    self._n_duplicates += int(dup[:keep].sum())
                    if "accuracy" in problem.query_targets:
                        acc = np.asarray(preds["accuracy"].mean[:keep], dtype=np.float64)[feasible[:keep]]
                        acc = acc[np.isfinite(acc)]
                        if acc.size and (self._best_acc is None or acc.max() > self._best_acc):
                            self._best_acc = float(acc.max())
                    self.n_evals += keep
                    self.sim_time_s = float(cum[keep - 1])
                self.batch_index += 1
                if keep < n:
                    self._exhausted_by = "sim_time"
                else:
                    self._exhausted_by = budget.exhausted_by(self.n_evals, self.sim_time_s)
                pbar.update(keep)
                now = time.perf_counter()
                if not pbar.disable and now - last_post > 0.5:
                    self._update_front()
                    acc_txt = "n/a" if self._best_acc is None else f"{self._best_acc:.2f}%"
                    pbar.set_postfix_str(f"best acc {acc_txt} hv {self._hv:.4f}", refresh=False)
                    last_post = now
                if self.on_batch is not None:
                    self.on_batch(self)
                if self._exhausted_by is not None:
                    break
                due_evals = (
                    self.checkpoint_every is not None
                    and self.n_evals - last_ckpt_evals >= self.checkpoint_every
                )
                due_time = (
                    self.checkpoint_every_s is not None and now - last_ckpt_time >= self.checkpoint_every_s
                )
                if self.run_dir is not None and (due_evals or due_time):
                    self._checkpoint(finished=False)
                    last_ckpt_evals, last_ckpt_time = self.n_evals, time.perf_counter()
        finally:
            if not pbar.disable:
                self._update_front()
                acc_txt = "n/a" if self._best_acc is None else f"{self._best_acc:.2f}%"
                pbar.set_postfix_str(f"best acc {acc_txt} hv {self._hv:.4f}", refresh=False)
            pbar.close()


# ------------------------------------------------------------------------------------------------------
# convenience
# ------------------------------------------------------------------------------------------------------
def load_default_benchmark(**params: Any) -> Oracle:
    """The Accel-NASBench surrogate via ``benchmark.load_benchmark(**params)`` (imported lazily)."""
    import benchmark

    loader = getattr(benchmark, "load_benchmark", None)
    if loader is None:
        raise ConfigurationError(
            "the surrogate benchmark is not available (benchmark.load_benchmark is missing in this version); "
            "use the synthetic test oracle: benchmark=synthetic (or bench=SyntheticBenchmark())"
        )
    bench: Oracle = loader(**params)
    return bench


def search(
    problem: str | Problem = "acc_a100",
    optimizer: str | OptimizerFactory = "nsga2",
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
    **opt_params: Any,
) -> RunResult:
    """Run one search in a line: ``nasopt.search("acc_a100", "re", budget=500, seed=1)``.

    ``bench=None`` loads the surrogate (``benchmark.load_benchmark()``); ``opt_params`` go to the optimizer;
    ``eval_mode="noisy"`` switches the problem to noisy observations. With ``run_dir`` the run is written
    there and resumable; without, it stays in memory.
    """
    prob = get_problem(problem)
    if eval_mode is not None:
        prob = prob.with_eval_mode(eval_mode)
    oracle = bench if bench is not None else load_default_benchmark()
    runner = Runner(
        prob,
        optimizer,
        oracle,
        budget,
        run_dir,
        seed=seed,
        batch_size=batch_size,
        optimizer_params=opt_params,
        checkpoint_every=checkpoint_every,
        progress=progress,
        print_summary=print_summary,
    )
    return runner.run()


__all__ = [
    "ConfigurationError",
    "ProblemInfo",
    "RunDirError",
    "Runner",
    "check_optimizer_params",
    "default_batch_size",
    "load_default_benchmark",
    "search",
]
