"""The incumbents of a run: feasible non-dominated set, its hypervolume, best feasible accuracy, counts.

Fed batch by batch by the runner, or from a whole trial table (:meth:`Incumbents.from_table`, what the
analysis uses), with the same result: the front in the problem's fixed normalised space and its
hypervolume through :mod:`optimizers.indicators`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmark._typing import BoolArray, FloatArray, IntArray
from nasopt.rundir import mean_column
from optimizers import indicators
from optimizers.base import ProblemInfo

ACCURACY = "accuracy"


class Incumbents:
    """Feasible non-dominated set (ensemble means), hypervolume and best feasible accuracy so far.

    Points are buffered by :meth:`add`; the front and hypervolume are brought up to date lazily (reading
    :attr:`hypervolume` or :attr:`front_indices`), so adding is cheap.
    """

    def __init__(self, info: ProblemInfo) -> None:
        self.info = info
        self.best_accuracy: float | None = None
        self.n_feasible = 0
        self.n_duplicates = 0
        self._front_idx = np.zeros(0, dtype=np.int64)  # eval indices of the feasible non-dominated rows
        self._front_norm = np.zeros((0, info.n_obj))
        self._pending: list[tuple[IntArray, FloatArray, BoolArray]] = []
        self._hv = 0.0

    def add(
        self,
        eval_index: IntArray,
        means: FloatArray,
        feasible: BoolArray,
        duplicate: BoolArray,
        accuracy: FloatArray | None,
    ) -> None:
        """Add evaluations ``eval_index (n,)`` with objective means ``(n, m)`` (natural units), ``feasible``
        and ``duplicate (n,)``, and the accuracy means ``(n,)`` (None when the problem has no accuracy)."""
        self._pending.append((eval_index, means, feasible))
        self.n_feasible += int(feasible.sum())
        self.n_duplicates += int(duplicate.sum())
        if accuracy is not None:
            acc = np.asarray(accuracy, dtype=np.float64)[feasible]
            acc = acc[np.isfinite(acc)]
            if acc.size and (self.best_accuracy is None or acc.max() > self.best_accuracy):
                self.best_accuracy = float(acc.max())

    def _update(self) -> None:
        if not self._pending:
            return
        new_idx = np.concatenate([p[0] for p in self._pending])
        new_means = np.concatenate([p[1] for p in self._pending])
        ok = np.concatenate([p[2] for p in self._pending]) & np.all(np.isfinite(new_means), axis=1)
        self._pending = []
        if not ok.any():
            return
        idx = np.concatenate([self._front_idx, new_idx[ok]])
        norm = np.concatenate([self._front_norm, self.info.normalize_natural(new_means[ok])])
        keep = indicators.nondominated_mask(norm)
        self._front_idx, self._front_norm = idx[keep], norm[keep]
        self._hv = indicators.hypervolume(self._front_norm, self.info.ref_point)

    @property
    def hypervolume(self) -> float:
        """Hypervolume of the feasible set in the problem's fixed normalised space."""
        self._update()
        return self._hv

    @property
    def front_indices(self) -> IntArray:
        """Eval indices of the feasible non-dominated evaluations, ascending ``(k,)``."""
        self._update()
        return np.sort(self._front_idx)

    def pareto_set(self, trials: pd.DataFrame, targets: tuple[str, ...]) -> list[dict[str, Any]]:
        """The front as records ``{arch, eval_index, <target>: mean...}``, one per architecture (its first
        evaluation), sorted by the first target, best first; ``trials`` row ``i`` has eval index ``i``."""
        idx = self.front_indices
        if not idx.size:
            return []
        rows = trials.iloc[idx][["arch", "eval_index", *(mean_column(t) for t in targets)]]
        rows = rows.drop_duplicates("arch", keep="first")
        rows.columns = pd.Index(["arch", "eval_index", *targets])
        rows = rows.sort_values(targets[0], ascending=not self.info.maximize[0], kind="stable")
        return [{str(k): v for k, v in r.items()} for r in rows.to_dict("records")]

    @classmethod
    def from_table(cls, trials: pd.DataFrame, info: ProblemInfo) -> Incumbents:
        """The incumbents of a whole trial table (``eval_index``, ``feasible``, ``mean_<objective>``, and
        optionally ``duplicate`` and ``mean_accuracy``)."""
        inc = cls(info)
        if len(trials):
            acc_col = mean_column(ACCURACY)
            inc.add(
                trials["eval_index"].to_numpy(np.int64),
                trials[[mean_column(o) for o in info.objectives]].to_numpy(np.float64),
                trials["feasible"].to_numpy(bool),
                trials["duplicate"].to_numpy(bool) if "duplicate" in trials.columns else np.zeros(0, bool),
                trials[acc_col].to_numpy(np.float64) if acc_col in trials.columns else None,
            )
        return inc


__all__ = ["Incumbents"]
