"""The trial log: evaluated batches -> the trial table, with the columns of :mod:`nasopt.rundir`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark import space
from benchmark._typing import BoolArray, FloatArray
from nasopt.evaluation import Evaluation
from nasopt.problems import Problem
from nasopt.rundir import gene_column, genes, mean_column, obs_column, std_column


class TrialLog:
    """Records of one run, one row per evaluation; batches are merged into the table when it is read.

    Args:
        problem: the problem (which objective and constraint columns there are).
        table: the trial table to continue (a restored checkpoint), or None.
    """

    def __init__(self, problem: Problem, table: pd.DataFrame | None = None) -> None:
        self.problem = problem
        self._table = table if table is not None else pd.DataFrame()
        self._pending: list[dict[str, np.ndarray]] = []
        self._n = len(self._table)

    def __len__(self) -> int:
        return self._n

    def seen_ids(self) -> set[int]:
        """``space.arch_id`` of every architecture in the log."""
        table = self.table()
        return set(space.arch_id(genes(table)).tolist()) if len(table) else set()

    def append(
        self,
        ev: Evaluation,
        keep: int,
        batch_index: int,
        duplicate: BoolArray,
        sim_time_s: FloatArray,
        wall_time_s: float,
        optimizer_time_s: float,
    ) -> None:
        """Record the first ``keep`` rows of ``ev``: ``duplicate (n,)``, cumulative ``sim_time_s (n,)``; the
        wall and optimizer seconds so far are the same for the whole batch."""
        n = keep
        rec: dict[str, np.ndarray] = {
            "eval_index": np.arange(self._n, self._n + n, dtype=np.int64),
            "batch_index": np.full(n, batch_index, dtype=np.int64),
            "_genes": ev.X[:n],
        }
        for i, t in enumerate(self.problem.objectives):
            # the Evaluation's arrays are float64 and never written to: views, copied by table()'s concatenate
            rec[obs_column(t)] = ev.observed[:n, i]
            rec[mean_column(t)] = ev.mean[:n, i]
            rec[std_column(t)] = ev.std[:n, i]
        for t in self.problem.constraint_targets:
            rec[mean_column(t)] = ev.constraint_means[t][:n]
        rec["feasible"] = ev.feasible[:n].copy()
        rec["duplicate"] = duplicate[:n].copy()
        rec["cost_s"] = ev.cost[:n]
        rec["sim_time_s"] = np.asarray(sim_time_s[:n], dtype=np.float64)
        rec["wall_time_s"] = np.full(n, wall_time_s)
        rec["optimizer_time_s"] = np.full(n, optimizer_time_s)
        self._pending.append(rec)
        self._n += n

    def table(self) -> pd.DataFrame:
        """The trial table (pending batches merged; architecture strings are made here, once per row)."""
        if self._pending:
            cols = {k: np.concatenate([b[k] for b in self._pending]) for k in self._pending[0]}
            X = cols.pop("_genes")
            frame: dict[str, Any] = {
                "eval_index": cols.pop("eval_index"),
                "batch_index": cols.pop("batch_index"),
                "arch": space.to_strings(X),
            }
            for j in range(space.N_GENES):
                frame[gene_column(j)] = X[:, j].astype(np.int8)
            frame.update(cols)
            new = pd.DataFrame(frame)
            self._table = new if self._table.empty else pd.concat([self._table, new], ignore_index=True)
            self._pending = []
        return self._table


__all__ = ["TrialLog"]
