"""How far a prediction lies from the data the surrogate was fitted on (its training records).

Two measures, recorded at fit time and saved with the surrogate (benchmark/SURROGATE.md, "Extrapolation"):

- **measured range** per target: ``[min, max]`` of the target over the training records. A prediction is
  *extrapolated* when its whole one-std interval lies outside that range, ``mean - std > max`` or
  ``mean + std < min`` (:func:`extrapolated`): the model then predicts a value no record has shown. O(n).
- **distance to the data** per architecture: the gene Hamming distance (0-28) to the nearest training
  architecture (0: measured itself). The training records are a random sample of the space, so most
  architectures lie 5-9 genes from the nearest one (validation records too): the distance says how unusual
  a point is, the range test whether a prediction leaves the data. About 2 ms per 1,000 architectures
  against 4,100 records, half a batched query (``experiments/perf/coverage_speed.py``), so it is computed
  where asked (``nasopt bench query``), not in the search loop.

The std is not widened where a prediction extrapolates: ``experiments/checks/extrapolation_calibration.py``
found no one rule that improves calibration for every target (benchmark/SURROGATE.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.tables import BLOCK_GENES, block_configs

#: key of the training architectures in a saved surrogate's ``tables.npz``
GENES_KEY = "coverage/genes"
#: rows per chunk of the distance computation (keeps the (chunk, N) work array in cache)
_CHUNK = 256


def extrapolated(mean: FloatArray, std: FloatArray, lo: float, hi: float) -> BoolArray:
    """``(n,)``: the one-std interval ``[mean - std, mean + std]`` lies wholly outside ``[lo, hi]``.

    NaN means (failed evaluations) and a NaN range are never extrapolated."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.nan_to_num(np.asarray(std, dtype=np.float64), nan=0.0)
    with np.errstate(invalid="ignore"):
        return np.asarray((mean - std > hi) | (mean + std < lo), dtype=bool)


def excess(mean: FloatArray, lo: float, hi: float) -> FloatArray:
    """``(n,)``: how far ``mean`` lies outside ``[lo, hi]`` in target units (0 inside)."""
    mean = np.asarray(mean, dtype=np.float64)
    return np.maximum(np.maximum(mean - hi, lo - mean), 0.0)


class TrainingCoverage:
    """What the surrogate's training records cover: per-target measured ranges and the architectures.

    Args:
        ranges: ``{target: (min, max)}`` over the training records with a finite label.
        genes: the distinct training architectures, ``(N, 28)``.
        n_records: how many training records (repeats included) there were.
    """

    def __init__(
        self, ranges: Mapping[str, tuple[float, float]], genes: IntArray, n_records: int
    ) -> None:
        self.ranges = {t: (float(lo), float(hi)) for t, (lo, hi) in ranges.items()}
        self.genes = np.asarray(genes, dtype=np.uint8).reshape(-1, space.N_GENES)
        self.n_records = int(n_records)
        self._tables: list[np.ndarray] | None = None

    @classmethod
    def from_data(
        cls, X: IntArray, labels: Mapping[str, FloatArray], targets: Sequence[str]
    ) -> TrainingCoverage:
        """From training genes ``X (n, 28)`` and ``labels {target: (n,)}`` (NaN = not measured)."""
        ranges = {}
        for t in targets:
            y = np.asarray(labels[t], dtype=np.float64)
            ok = np.isfinite(y)
            ranges[t] = (float(y[ok].min()), float(y[ok].max())) if ok.any() else (np.nan, np.nan)
        return cls(ranges, np.unique(np.asarray(X), axis=0), len(X))

    # queries -------------------------------------------------------------------------------------------
    def extrapolated(self, target: str, mean: FloatArray, std: FloatArray) -> BoolArray:
        """``(n,)``: the prediction's one-std interval lies outside ``target``'s measured range."""
        lo, hi = self.ranges[target]
        return extrapolated(mean, std, lo, hi)

    def excess(self, target: str, mean: FloatArray) -> FloatArray:
        """``(n,)``: how far ``mean`` lies outside ``target``'s measured range (0 inside)."""
        lo, hi = self.ranges[target]
        return excess(mean, lo, hi)

    def distance(self, X: IntArray) -> IntArray:
        """Gene Hamming distance ``(n,)`` (0-28) from each of ``X (n, 28)`` to the nearest training
        architecture (0: measured). Per block, the distance from every configuration to every training
        architecture's is tabled once ``(C_b, N)``; a query is 7 row gathers and a minimum."""
        X = np.asarray(X)
        out = np.full(X.shape[0], space.N_GENES, dtype=np.int64)
        if not len(self.genes) or not len(X):
            return out
        tables = self._distance_tables()
        cfgs = block_configs(X)
        for start in range(0, X.shape[0], _CHUNK):
            rows = cfgs[start : start + _CHUNK]
            acc = tables[0][rows[:, 0]]  # (chunk, N) uint8, a copy
            for b in range(1, space.N_BLOCKS):
                acc += tables[b][rows[:, b]]
            out[start : start + len(rows)] = acc.min(axis=1)
        return out

    def _distance_tables(self) -> list[np.ndarray]:
        if self._tables is None:
            per_block = self.genes.reshape(-1, space.N_BLOCKS, space.GENES_PER_BLOCK)
            self._tables = [
                (BLOCK_GENES[b][:, None, :] != per_block[None, :, b, :]).sum(axis=2).astype(np.uint8)
                for b in range(space.N_BLOCKS)
            ]
        return self._tables

    # persistence ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """What ``meta.json`` records (the architectures go to ``tables.npz`` under :data:`GENES_KEY`)."""
        return {
            "ranges": {t: [lo, hi] for t, (lo, hi) in self.ranges.items()},
            "n_records": self.n_records,
            "n_architectures": len(self.genes),
        }

    @classmethod
    def from_json(cls, d: Any, genes: IntArray) -> TrainingCoverage:
        """Inverse of :meth:`to_json`; raises ``TypeError``/``ValueError`` on an ill-typed record."""
        if not isinstance(d, dict) or not isinstance(d.get("ranges"), dict):
            raise TypeError("'coverage' must be an object with 'ranges'")
        ranges = {}
        for t, r in d["ranges"].items():
            if not (isinstance(r, list) and len(r) == 2 and all(type(v) in (int, float) for v in r)):
                raise TypeError(f"coverage.ranges.{t} must be [min, max], got {r!r}")
            ranges[t] = (float(r[0]), float(r[1]))
        n = d.get("n_records")
        if type(n) is not int:
            raise TypeError(f"coverage.n_records must be an integer, got {n!r}")
        genes = np.asarray(genes)
        if genes.ndim != 2 or genes.shape[1] != space.N_GENES or genes.shape[0] != d.get("n_architectures"):
            raise ValueError(f"{GENES_KEY} has shape {genes.shape}, not (n_architectures, {space.N_GENES})")
        if genes.size and (genes.max(axis=0) >= space.CARDINALITIES).any():
            raise ValueError(f"{GENES_KEY} holds gene values outside the search space")
        return cls(ranges, genes, n)


__all__ = ["GENES_KEY", "TrainingCoverage", "excess", "extrapolated"]
