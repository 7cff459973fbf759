"""What a run saves to continue exactly: its counters, the state layout, the fingerprint that a run
directory refuses to continue under a different one, and the checkpointer that writes and restores them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nasopt.rundir import (
    OVERWRITE_HINT,
    RunDirError,
    read_checkpoint,
    write_checkpoint,
    write_summary,
    writing,
)

#: The checkpoint state layout version.
STATE_FORMAT = 1


@dataclass
class Counters:
    """How far a run got: evaluations, batches, simulated/optimizer/wall seconds, why it ended."""

    n_evals: int = 0
    batch_index: int = 0
    sim_time_s: float = 0.0
    optimizer_time_s: float = 0.0
    wall_offset_s: float = 0.0  # wall seconds of the process runs before this one
    exhausted_by: str | None = None

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Counters:
        return cls(
            n_evals=int(state["n_evals"]),
            batch_index=int(state["batch_index"]),
            sim_time_s=float(state["sim_time_s"]),
            optimizer_time_s=float(state["optimizer_time_s"]),
            wall_offset_s=float(state["wall_time_s"]),
            exhausted_by=state.get("exhausted_by"),
        )


def run_state(
    fingerprint: Mapping[str, Any],
    counters: Counters,
    wall_time_s: float,
    finished: bool,
    interrupted: str | None,
    noise_rng: np.random.Generator,
    optimizer_state: Any,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint's state tree (optimizer state included; ``extra``: further keys, e.g. an asynchronous
    run's pending evaluations under ``"async"``)."""
    return {
        **dict(extra or {}),
        "format": STATE_FORMAT,
        "fingerprint": dict(fingerprint),
        "finished": finished,
        "exhausted_by": counters.exhausted_by,
        "interrupted": interrupted,
        "n_evals": counters.n_evals,
        "batch_index": counters.batch_index,
        "sim_time_s": counters.sim_time_s,
        "wall_time_s": wall_time_s,
        "optimizer_time_s": counters.optimizer_time_s,
        "noise_rng": dict(noise_rng.bit_generator.state),
        "optimizer": optimizer_state,
    }


def restore_rng(state: Mapping[str, Any]) -> np.random.Generator:
    """The noise generator saved in ``state``."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state["noise_rng"]
    return rng


class CheckpointCadence:
    """When a checkpoint is due: ``every_evals`` evaluations or ``every_s`` wall seconds after the last one
    (None = never by that measure)."""

    def __init__(self, every_evals: int | None, every_s: float | None, n_evals: int) -> None:
        self.every_evals = every_evals
        self.every_s = every_s
        self.done(n_evals)

    def due(self, n_evals: int) -> bool:
        by_evals = self.every_evals is not None and n_evals - self._evals >= self.every_evals
        by_time = self.every_s is not None and time.perf_counter() - self._time >= self.every_s
        return by_evals or by_time

    def done(self, n_evals: int) -> None:
        """A checkpoint was just written after ``n_evals`` evaluations."""
        self._evals, self._time = n_evals, time.perf_counter()


class Checkpointer:
    """Writes and restores one run directory's checkpoint (+ ``trials.parquet`` and ``summary.json``)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def save(self, state: Mapping[str, Any], trials: pd.DataFrame, summary: Mapping[str, Any]) -> None:
        with writing(self.run_dir):
            write_checkpoint(self.run_dir, state, trials)
            write_summary(self.run_dir, summary)

    def load(
        self,
        fingerprint: Mapping[str, Any],
        batch_size_given: bool,
        resolve_params: Callable[[str, Mapping[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """``(state, trials)`` of the checkpoint, or None; refuses another format, a different run
        (``fingerprint``; its batch size is taken from the checkpoint unless ``batch_size_given``; the
        optimizer parameters of both sides are compared after ``resolve_params`` fills in their defaults)
        and an inconsistent table."""
        loaded = read_checkpoint(self.run_dir)
        if loaded is None:
            return None
        state, trials = loaded
        if state.get("format") != STATE_FORMAT:
            raise RunDirError(
                f"checkpoint in {self.run_dir} has format {state.get('format')}, expected {STATE_FORMAT}"
            )
        saved = dict(state["fingerprint"])
        want = dict(fingerprint)
        if resolve_params is not None:
            for fp in (saved, want):
                opt = dict(fp.get("optimizer") or {})
                opt["params"] = resolve_params(str(opt.get("name")), opt.get("params") or {})
                fp["optimizer"] = opt
        if not batch_size_given:  # the default is resolved on restore: take the saved one
            want["batch_size"] = saved.get("batch_size")
        diffs = [
            f"{k}: saved {json.dumps(saved.get(k))} vs now {json.dumps(want.get(k))}"
            for k in want
            if saved.get(k) != want.get(k)
        ]
        if diffs:
            raise RunDirError(
                f"run directory {self.run_dir} holds a different run ({'; '.join(diffs)}); "
                f"use another run directory, or start afresh here ({OVERWRITE_HINT})"
            )
        table = trials if trials is not None else pd.DataFrame()
        if len(table) != int(state["n_evals"]):
            raise RunDirError(
                f"checkpoint in {self.run_dir} is inconsistent ({len(table)} trials for {state['n_evals']} "
                f"evaluations); use another run directory, or start afresh here ({OVERWRITE_HINT})"
            )
        return state, table


__all__ = ["STATE_FORMAT", "CheckpointCadence", "Checkpointer", "Counters", "restore_rng", "run_state"]
