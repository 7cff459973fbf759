"""The run directory: its file names, the trial-table column schema, the writer and the one reader.

A run directory (written by :mod:`nasopt.runner`, read by the analysis, the report and the fronts)::

    config.yaml        the run's config (YAML)
    trials.parquet     one row per evaluation, columns per :func:`trial_columns` (a hard link to the
                       checkpoint's copy where the file system allows: replace it, never write into it)
    summary.json       the end-of-run (or last-checkpoint) summary; ``format_version`` names this format
    checkpoint/        state.json + arrays.npz + the trial table (see nasopt.checkpoint), swapped atomically
    error.txt          only when the run failed (written by the app; removed when a later run ends well)

A directory that holds an earlier run's results (:data:`RESULT_ENTRIES`) but no complete checkpoint is
refused by :func:`check_fresh_start`; :func:`clear_results` is the explicit overwrite.

The trial table of a problem with objectives ``o`` and extra constraint targets ``c`` has the columns
``eval_index, batch_index, arch, g0..g27`` (genes, int8), then per objective ``obs_<o>, mean_<o>, std_<o>``,
then ``mean_<c>``, then ``feasible, duplicate, cost_s, sim_time_s, wall_time_s, optimizer_time_s``.
Column names are made only by the functions here.

:func:`find_runs` finds run directories (single runs and Hydra multirun sweeps), :func:`read_run` reads one
into a :class:`Run` (the same type the runner returns), :func:`read_runs` both.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import space
from benchmark._io import atomic_copy, atomic_write_text
from benchmark.errors import NasoptError
from nasopt.checkpoint import TRIALS_FILE as CHECKPOINT_TRIALS_FILE
from nasopt.checkpoint import load_checkpoint, save_checkpoint
from nasopt.run_summary import format_summary
from optimizers.base import ProblemInfo

CONFIG_FILE = "config.yaml"
TRIALS_FILE = "trials.parquet"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoint"
ERROR_FILE = "error.txt"
#: where Hydra keeps the composed config of a job (read when ``config.yaml`` is absent)
HYDRA_DIR = ".hydra"

#: the run-directory format this version writes (``summary.json`` key ``format_version``; runs written
#: before the key existed are format 1)
FORMAT_VERSION = 1
FORMAT_KEY = "format_version"
READABLE_FORMATS = (1,)

#: leading columns of the trial table
INDEX_COLUMNS = ("eval_index", "batch_index", "arch")
#: trailing columns of the trial table
RECORD_COLUMNS = ("feasible", "duplicate", "cost_s", "sim_time_s", "wall_time_s", "optimizer_time_s")
#: columns that hold wall-clock measurements (excluded when comparing runs for exactness)
WALL_CLOCK_COLUMNS = ("wall_time_s", "optimizer_time_s")
#: columns every reader may rely on (besides ``mean_<objective>``)
REQUIRED_COLUMNS = ("eval_index", "feasible", "sim_time_s")


class RunFormatError(NasoptError, ValueError):
    """A run directory does not follow the run-directory format; the message names the file and field."""


class RunDirError(NasoptError, RuntimeError):
    """The run directory holds a different run, or another process is running it."""


class RunDirBusyError(RunDirError):
    """Another process holds the run directory's lock (nothing was written).

    Attributes:
        holder: the holder's record from ``.lock`` (``{"pid": ..., **owner}``, see :func:`locked`), or None
            when it wrote none (an older nasopt, or it is just taking the lock).
    """

    def __init__(self, message: str, holder: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = None if holder is None else dict(holder)


class RunDirWriteError(RunDirError):
    """A file of the run directory could not be written (read-only, full disk, ...); nothing half-written
    is left and the last complete checkpoint is kept."""


# --------------------------------------------------------------------------------------------------
# column schema
# --------------------------------------------------------------------------------------------------
def gene_column(j: int) -> str:
    """Column of gene ``j`` (int8)."""
    return f"g{j}"


GENE_COLUMNS = tuple(gene_column(j) for j in range(space.N_GENES))


def obs_column(target: str) -> str:
    """What the optimizer observed for an objective (ensemble mean, or a noisy draw in noisy mode)."""
    return f"obs_{target}"


def mean_column(target: str) -> str:
    """Ensemble mean of an objective or constraint target."""
    return f"mean_{target}"


def std_column(target: str) -> str:
    """Ensemble std of an objective."""
    return f"std_{target}"


def trial_columns(objectives: Sequence[str], constraint_targets: Sequence[str] = ()) -> list[str]:
    """Every column of the trial table, in order (see the module docstring)."""
    per_objective = [c for t in objectives for c in (obs_column(t), mean_column(t), std_column(t))]
    return [
        *INDEX_COLUMNS,
        *GENE_COLUMNS,
        *per_objective,
        *(mean_column(t) for t in constraint_targets),
        *RECORD_COLUMNS,
    ]


def analysis_columns(info: ProblemInfo) -> list[str]:
    """The columns the analysis needs: eval index, feasibility, duplicates, times, the objectives' means
    and the mean accuracy (for the best-accuracy trace)."""
    cols = ["eval_index", "feasible", "duplicate", "sim_time_s", *WALL_CLOCK_COLUMNS]
    cols += [mean_column(t) for t in info.objectives]
    if "accuracy" not in info.objectives:
        cols.append(mean_column("accuracy"))
    return cols


def genes(table: pd.DataFrame) -> np.ndarray:
    """The architectures of a trial table, ``(n, 28)`` int64."""
    return table[list(GENE_COLUMNS)].to_numpy(np.int64)


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
#: run directories this process holds the lock of (resolved path -> depth): :func:`locked` is re-entrant
_HELD: dict[Path, int] = {}
#: the lock file of a run directory; while held it names its holder (one JSON line, see :func:`locked`)
LOCK_FILE = ".lock"
#: seconds between two attempts when :func:`locked` was told to wait
LOCK_RETRY_S = 0.2


def _read_holder(path: Path) -> dict[str, Any] | None:
    """The record in a lock file (None when empty, unreadable or not a record)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) else None


def _busy(run_dir: Path) -> RunDirBusyError:
    holder = _read_holder(run_dir / LOCK_FILE)
    if holder is None:  # the holder may be between taking the lock and writing its record
        time.sleep(0.05)
        holder = _read_holder(run_dir / LOCK_FILE)
    who = "" if holder is None else f" (PID {holder['pid']})"
    return RunDirBusyError(
        f"run directory {run_dir} is in use by another nasopt process{who}; wait for it or use another "
        "directory",
        holder,
    )


@contextlib.contextmanager
def locked(
    run_dir: Path,
    owner: Mapping[str, Any] | None = None,
    wait: Callable[[RunDirBusyError], bool] | None = None,
) -> Iterator[None]:
    """Exclusive advisory lock on ``run_dir/.lock`` (released by the OS if the process dies).

    While held, the file names the holder: ``{"pid": <this process>, **owner}`` (one JSON line, emptied on
    release), so a refused process can say who holds it. Re-entrant within a process: the app takes it
    before it writes anything, the runner again inside (the inner call neither waits nor rewrites).

    Args:
        run_dir: the run directory (it must exist).
        owner: more about the holder, JSON values (the app: the sweep's main process).
        wait: called with the refusal when another process holds the lock; True: try again in
            :data:`LOCK_RETRY_S` seconds, False: raise it. None: raise at once.

    Raises:
        RunDirBusyError: another process holds the lock (``holder`` names it).
    """
    key = Path(run_dir).resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with writing(Path(run_dir)):  # a read-only directory, a full disk: one line
        fh = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the context's lifetime
    try:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                refusal = _busy(Path(run_dir))
                if wait is None or not wait(refusal):
                    raise refusal from None
                time.sleep(LOCK_RETRY_S)
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), **dict(owner or {})}) + "\n")
            fh.flush()
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            with contextlib.suppress(OSError):
                fh.truncate(0)
    finally:
        fh.close()


def holding_locks() -> bool:
    """Whether this process holds the lock of any run directory now."""
    return bool(_HELD)


def lock_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock now: its record (``{"pid": ...}`` at least), or None when it is free
    (or has no lock file). Takes nothing: a free lock is tried and released at once."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file() or Path(run_dir).resolve() in _HELD:
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        return None
    try:
        fh = open(path, "a+")  # noqa: SIM115 - closed below
    except OSError:  # e.g. a read-only copy of a sweep: nobody can be running it from here
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return _read_holder(path) or {"pid": None}
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None


#: entries of a run directory that hold results of a run (``checkpoint.tmp/`` is a write in progress)
RESULT_ENTRIES = (TRIALS_FILE, SUMMARY_FILE, CONFIG_FILE, CHECKPOINT_DIR, CHECKPOINT_DIR + ".old")
#: how a user starts afresh in a directory that holds an earlier run
OVERWRITE_HINT = "Python: overwrite=True; nasopt search: overwrite=true"


def existing_results(run_dir: Path) -> list[str]:
    """The :data:`RESULT_ENTRIES` present in ``run_dir`` (``checkpoint/`` etc. only when not empty)."""
    found = []
    for name in RESULT_ENTRIES:
        p = run_dir / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    return found


def count_trials(path: Path) -> int | None:
    """Rows of a parquet trial table (from its footer), or None when it is unreadable."""
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception:
        return None


def check_fresh_start(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Refuse to start a run from zero in ``run_dir`` when it holds results of an earlier run.

    Only called when there is no complete checkpoint to resume. A ``config.yaml`` alone (a run stopped
    before its first checkpoint) is no result when it equals ``config``: starting again loses nothing.
    """
    found = existing_results(run_dir)
    if found == [CONFIG_FILE]:
        with contextlib.suppress(RunFormatError):
            if json_plain(read_config(run_dir)) == json_plain(config):
                return
    if not found:
        return
    what = []
    for name in found:
        if name == TRIALS_FILE:
            n = count_trials(run_dir / name)
            what.append(f"{name} ({'unreadable' if n is None else f'{n} evaluations'})")
        else:
            what.append(name + ("/" if (run_dir / name).is_dir() else ""))
    if CONFIG_FILE in found and len(found) == 1:
        why = "the config of a different run that stopped before its first checkpoint"
    elif TRIALS_FILE in found:
        why = (
            f"the trial table of an earlier run, but no complete checkpoint ({CHECKPOINT_DIR}/state.json + "
            f"arrays.npz), so its optimizer state is lost and it cannot be resumed exactly (Python: "
            f"from_trials=True continues from those trials with a fresh optimizer)"
        )
    else:
        why = f"an earlier run without a complete checkpoint ({CHECKPOINT_DIR}/state.json + arrays.npz)"
    raise RunDirError(
        f"run directory {run_dir} holds {', '.join(what)}: {why}; nothing was changed. Use another run "
        f"directory, or delete these and start afresh here ({OVERWRITE_HINT})"
    )


def clear_results(run_dir: Path) -> None:
    """Delete every result of an earlier run in ``run_dir`` (an explicit overwrite; call under the lock)."""
    import shutil

    for name in (*RESULT_ENTRIES, CHECKPOINT_DIR + ".tmp", ERROR_FILE):
        p = run_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def json_plain(obj: Any) -> Any:
    """JSON round trip (sorted keys; numpy scalars and Enum members as plain values, anything else as its
    ``str``): what a config or fingerprint looks like once written, for comparisons."""
    from enum import Enum

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Enum):
            return o.value
        return str(o)

    return json.loads(json.dumps(obj, sort_keys=True, default=default))


def unwritable_reason(exc: OSError) -> str:
    """``"read-only"`` for a read-only file system or missing permission, else the OS's words."""
    import errno

    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"read-only ({exc.strerror or exc})"
    return str(exc.strerror or exc)


@contextlib.contextmanager
def writing(run_dir: Path) -> Iterator[None]:
    """Turn an OSError while writing ``run_dir`` into a one-line :class:`RunDirWriteError` (the writers
    themselves leave no partial file behind: ``benchmark._io``, :func:`nasopt.checkpoint.save_checkpoint`)."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise RunDirWriteError(
            f"cannot write to run directory {run_dir}: {unwritable_reason(exc)}{where}; nothing half-written "
            "was left and its last complete checkpoint is kept: make it writable (or free space) and run "
            "again to resume, or use another run directory"
        ) from exc


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """``config.yaml`` (atomically)."""
    from omegaconf import OmegaConf

    atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(dict(config))))


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """``summary.json`` (atomically), with this version's ``format_version``."""
    text = json.dumps({**summary, FORMAT_KEY: FORMAT_VERSION}, indent=1, allow_nan=True)
    atomic_write_text(run_dir / SUMMARY_FILE, text)


def write_checkpoint(run_dir: Path, state: Mapping[str, Any], trials: pd.DataFrame) -> None:
    """Swap in a new ``checkpoint/`` holding ``state`` and ``trials``, then publish the table as
    ``trials.parquet``.

    The table is written once: ``trials.parquet`` becomes a hard link to the checkpoint's copy (replaced
    atomically), so a process killed at any moment leaves a complete checkpoint and a complete
    ``trials.parquet``; where hard links are unavailable it is an atomic copy.
    """
    save_checkpoint(run_dir / CHECKPOINT_DIR, state, trials)
    publish_trials(run_dir)


def publish_trials(run_dir: Path) -> None:
    """``trials.parquet`` := the checkpoint's trial table (hard link, else copy; atomic either way)."""
    src = run_dir / CHECKPOINT_DIR / CHECKPOINT_TRIALS_FILE
    dst = run_dir / TRIALS_FILE
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
    except OSError:
        atomic_copy(src, dst)
        return
    try:
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def read_checkpoint(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame | None] | None:
    """``(state, trials)`` of the run's checkpoint, or None when it has none."""
    return load_checkpoint(run_dir / CHECKPOINT_DIR)


# --------------------------------------------------------------------------------------------------
# the run type
# --------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One run: its trial table, summary and config (from the runner, or read from a run directory).

    Attributes:
        path: the run directory (None for a run kept in memory).
        problem, optimizer, seed: what ran.
        label: how the run is grouped in reports (the optimizer name unless ``label_keys`` were given).
        trials: the trial table (all columns, or those asked for).
        info: the problem's fixed constants.
        summary: the ``summary.json`` content (empty if the run has none yet).
        config: the run's config as a plain dict (empty if absent).
        interrupted: signal name if the runner stopped early on SIGINT/SIGTERM (or "request"), else None.
    """

    path: Path | None
    problem: str
    optimizer: str
    seed: int
    label: str
    trials: pd.DataFrame
    info: ProblemInfo
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    interrupted: str | None = None

    @property
    def n_evals(self) -> int:
        return len(self.trials)

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished", False))

    @property
    def benchmark_digest(self) -> str | None:
        d = self.summary.get("benchmark_digest")
        return None if d is None else str(d)

    @property
    def hypervolume(self) -> float:
        return float(self.summary.get("hypervolume", float("nan")))

    @property
    def pareto_set(self) -> pd.DataFrame:
        """The feasible non-dominated set (ensemble means, natural units), one row per architecture."""
        return pd.DataFrame(self.summary.get("pareto_set", []))

    def comparable_trials(self) -> pd.DataFrame:
        """The trial table without wall-clock columns (what must be identical between equal runs)."""
        return self.trials.drop(columns=[c for c in WALL_CLOCK_COLUMNS if c in self.trials.columns])

    def format(self) -> str:
        """Readable end-of-run summary (see :func:`nasopt.run_summary.format_summary`)."""
        return format_summary(self.summary)


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Every directory at or below ``paths`` holding ``trials.parquet`` plus ``config.yaml`` or
    ``summary.json`` (single runs and Hydra multirun sweeps alike), resolved, sorted, without duplicates."""
    roots = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: set[Path] = set()
    for p in roots:
        root = Path(p)
        if not root.exists():
            raise FileNotFoundError(f"run directory {str(root)!r} does not exist")
        if root.is_dir():
            candidates = list(root.rglob(TRIALS_FILE))
        else:
            candidates = [root] if root.name == TRIALS_FILE else []
        for trials in candidates:
            d = trials.parent
            if trials.is_file() and ((d / CONFIG_FILE).is_file() or (d / SUMMARY_FILE).is_file()):
                found.add(d.resolve())
    return sorted(found)


def config_get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``"a.b"`` (``default`` if any level is missing)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``summary.json`` (empty if absent); an unknown ``format_version`` is refused in one line."""
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(summary, dict):
        raise RunFormatError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    version = summary.get(FORMAT_KEY, 1)
    if version not in READABLE_FORMATS:
        raise RunFormatError(
            f"{path}: run-directory format version {version!r}, but this nasopt reads version(s) "
            f"{', '.join(map(str, READABLE_FORMATS))}; read it with the nasopt version that wrote it"
        )
    return summary


def read_config(run_dir: Path) -> dict[str, Any]:
    """``config.yaml`` (else Hydra's ``.hydra/config.yaml``) as a plain dict (empty if absent)."""
    for path in (run_dir / CONFIG_FILE, run_dir / HYDRA_DIR / CONFIG_FILE):
        if path.is_file():
            import yaml  # PyYAML: what OmegaConf writes with, and much faster to read than OmegaConf.load

            try:
                cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise RunFormatError(f"{path}: not valid YAML ({exc})") from exc
            if cfg is None or cfg == {}:
                continue
            if not isinstance(cfg, dict):
                raise RunFormatError(f"{path}: expected a mapping at the top level, got {type(cfg).__name__}")
            return {str(k): v for k, v in cfg.items()}
    return {}


def problem_info(
    name: str,
    problems: Mapping[str, ProblemInfo] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ProblemInfo:
    """Fixed constants of a run's problem: ``problems[name]`` if given; else the run config's ``problem``
    section (custom problems) or the named problem, both through ``nasopt.problems``."""
    if problems is not None and name in problems:
        return problems[name]
    from nasopt.problems import ProblemError, get_problem, problem_from_config

    pcfg = None if config is None else config.get("problem")
    bcfg = None if config is None else config.get("benchmark")
    if isinstance(bcfg, Mapping) and isinstance(bcfg.get("params"), Mapping):
        from benchmark.built import register_setting

        register_setting(bcfg["params"])  # a built benchmark's targets and boxes, which the problem may name
    custom_error: ProblemError | None = None
    if isinstance(pcfg, Mapping) and str(pcfg.get("name", name)) == name:
        try:
            return problem_from_config(pcfg).info
        except ProblemError as exc:  # e.g. a target of a device removed since the run
            custom_error = exc
    try:
        return get_problem(name).info
    except KeyError as exc:  # UnknownProblemError
        if custom_error is not None:
            raise LookupError(
                f"the run's problem {name!r} (config.yaml) cannot be rebuilt: {custom_error}; "
                "re-register what it uses (nasopt device import FILE) or pass its ProblemInfo "
                "(problems={...})"
            ) from custom_error
        raise LookupError(
            f"problem {name!r} is neither a named problem nor defined in the run's config.yaml; "
            "pass its ProblemInfo explicitly (problems={...})"
        ) from exc


def _meta(summary: Mapping[str, Any], config: Mapping[str, Any], key: str, path: Path) -> Any:
    if key in summary and summary[key] is not None:
        return summary[key]
    value = config_get(config, f"{key}.name") if key in ("problem", "optimizer") else config_get(config, key)
    if value is None and key in config and not isinstance(config[key], Mapping):
        value = config[key]
    if value is None:
        raise RunFormatError(
            f"run {path}: cannot tell its {key}: neither {SUMMARY_FILE} '{key}' nor {CONFIG_FILE} "
            f"'{key}.name' / '{key}' is set"
        )
    return value


#: ``columns`` of :func:`read_run`: names, or a function of the problem naming them
ColumnSelection = Sequence[str] | Callable[[ProblemInfo], Sequence[str]] | None


def read_run(
    path: str | Path,
    columns: ColumnSelection = None,
    *,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
) -> Run:
    """Read one run directory (finished or not) into a :class:`Run`.

    Args:
        path: the run directory.
        columns: trial-table columns to read (None = all; e.g. :func:`analysis_columns`); columns the
            table lacks are left out, except ``mean_<objective>`` and :data:`REQUIRED_COLUMNS`.
        problems: ProblemInfo per problem name for problems ``nasopt.problems`` does not know.
        label_keys: dotted config keys (e.g. ``("optimizer.name", "optimizer.params.pop_size")``) joined
            into the run's label; by default the label is the optimizer name.
    """
    d = Path(path)
    trials_path = d / TRIALS_FILE
    if not trials_path.is_file():
        hint = f" (it failed: see {ERROR_FILE})" if (d / ERROR_FILE).is_file() else ""
        raise FileNotFoundError(
            f"{d} holds no {TRIALS_FILE}; not a nasopt run directory or no results yet{hint}"
        )
    summary = read_summary(d)
    config = read_config(d)
    problem = str(_meta(summary, config, "problem", d))
    optimizer = str(_meta(summary, config, "optimizer", d))
    seed = int(_meta(summary, config, "seed", d))
    info = problem_info(problem, problems, config)
    import pyarrow.parquet as pq

    try:
        available = pq.read_schema(trials_path).names
    except Exception as exc:  # pyarrow.ArrowInvalid, OSError: a truncated or foreign file
        raise RunFormatError(f"{trials_path}: not a readable parquet table ({_first_line(exc)})") from exc
    needed = [*REQUIRED_COLUMNS, *(mean_column(t) for t in info.objectives)]
    missing = [c for c in needed if c not in available]
    if missing:
        raise RunFormatError(
            f"{trials_path}: missing column(s) {missing} needed for problem {problem!r}; "
            "was it written by a different nasopt version?"
        )
    wanted = columns(info) if callable(columns) else columns
    selected = None if wanted is None else [c for c in dict.fromkeys(wanted) if c in set(available)]
    try:
        df = pd.read_parquet(trials_path, columns=selected)
    except Exception as exc:
        raise RunFormatError(f"{trials_path}: not a readable parquet table ({_first_line(exc)})") from exc
    if len(df) and not np.all(np.diff(df["eval_index"].to_numpy()) > 0):
        df = df.sort_values("eval_index", kind="stable").reset_index(drop=True)
    if label_keys:
        label = "/".join(str(config_get(config, k, summary.get(k.split(".")[0], "?"))) for k in label_keys)
    else:
        label = optimizer
    return Run(d, problem, optimizer, seed, label, df, info, summary, config)


def read_runs(
    paths: str | Path | Iterable[str | Path],
    columns: ColumnSelection = None,
    *,
    problems: Mapping[str, ProblemInfo] | None = None,
    label_keys: Sequence[str] = (),
) -> list[Run]:
    """Find (:func:`find_runs`) and read (:func:`read_run`) every run below ``paths``; warns about two runs
    of the same problem, label and seed."""
    roots = [paths] if isinstance(paths, (str, Path)) else list(paths)
    dirs = find_runs(roots)
    if not dirs:
        raise FileNotFoundError(
            f"no run directories ({TRIALS_FILE} + {CONFIG_FILE}/{SUMMARY_FILE}) found below "
            f"{[str(p) for p in roots]}"
        )
    runs = [read_run(d, columns, problems=problems, label_keys=label_keys) for d in dirs]
    seen: dict[tuple[str, str, int], Path | None] = {}
    for r in runs:
        key = (r.problem, r.label, r.seed)
        if key in seen:
            warnings.warn(
                f"two runs of problem {r.problem!r}, {r.label!r}, seed {r.seed}: {seen[key]} and {r.path}; "
                "both are counted (pass only one of them if one is a copy)",
                stacklevel=2,
            )
        seen[key] = r.path
    return runs


__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "ERROR_FILE",
    "FORMAT_VERSION",
    "GENE_COLUMNS",
    "LOCK_FILE",
    "SUMMARY_FILE",
    "TRIALS_FILE",
    "WALL_CLOCK_COLUMNS",
    "Run",
    "RunDirBusyError",
    "RunDirError",
    "RunDirWriteError",
    "RunFormatError",
    "analysis_columns",
    "check_fresh_start",
    "clear_results",
    "config_get",
    "count_trials",
    "existing_results",
    "find_runs",
    "gene_column",
    "genes",
    "holding_locks",
    "json_plain",
    "lock_holder",
    "locked",
    "mean_column",
    "obs_column",
    "problem_info",
    "publish_trials",
    "read_checkpoint",
    "read_config",
    "read_run",
    "read_runs",
    "read_summary",
    "std_column",
    "trial_columns",
    "unwritable_reason",
    "write_checkpoint",
    "write_config",
    "write_summary",
    "writing",
]
