"""Compile shallow tree ensembles into block-triple lookup tables for very fast batched prediction.

A tree of depth <= 3 on gene features decides each leaf by at most 3 genes, which lie in at most 3 of the
7 blocks. So every leaf is a box over the configurations of 3 blocks, and a whole ensemble (any number of
trees, any number of members) is *exactly* a sum of tables indexed by the configurations of block
triples: ``f(x) = bias + sum_t T_t[cfg_a(x), cfg_b(x), cfg_c(x)]`` with at most C(7,3) = 35 tables.
Prediction is then one gather per table instead of walking thousands of trees.

A block's configuration index is the mixed-radix number of its 4 genes (e, k, l, se): 36 values, 48 in
block 5. Tables hold all ensemble members on their last axis, so one gather yields every member.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray

#: number of configurations of each block, shape (7,)
BLOCK_SIZES: IntArray = np.array(
    [int(np.prod(space.CARDINALITIES[4 * b : 4 * b + 4])) for b in range(space.N_BLOCKS)], dtype=np.int64
)
#: mixed-radix weights of the 4 genes inside a block, shape (7, 4)
_BLOCK_PLACE: IntArray = np.stack(
    [
        np.array(
            [int(np.prod(space.CARDINALITIES[4 * b + j + 1 : 4 * b + 4])) for j in range(4)], dtype=np.int64
        )
        for b in range(space.N_BLOCKS)
    ]
)
#: gene indices of each configuration of each block: list of (C_b, 4) arrays
BLOCK_GENES: list[IntArray] = [
    np.array(list(itertools.product(*[range(int(c)) for c in space.CARDINALITIES[4 * b : 4 * b + 4]])))
    for b in range(space.N_BLOCKS)
]
#: index of a padding "block" with a single configuration, used to give every table 3 axes
PAD = space.N_BLOCKS
_SIZES_PADDED: IntArray = np.append(BLOCK_SIZES, 1)


def block_groups(size: int) -> list[tuple[int, ...]]:
    """All groups of ``size`` blocks (1..3), padded to 3 entries with :data:`PAD`."""
    if not 1 <= size <= 3:
        raise ValueError(f"group size must be 1, 2 or 3, got {size}")
    return [g + (PAD,) * (3 - size) for g in itertools.combinations(range(space.N_BLOCKS), size)]


TRIPLES: list[tuple[int, ...]] = block_groups(3)


def block_configs(X: IntArray) -> IntArray:
    """Configuration index of every block, ``(n, 28)`` genes -> ``(n, 8)`` (last column: padding, 0)."""
    Xr = X.reshape(X.shape[0], space.N_BLOCKS, 4)
    out: IntArray = np.zeros((X.shape[0], space.N_BLOCKS + 1), dtype=np.int64)
    out[:, : space.N_BLOCKS] = np.einsum("nbj,bj->nb", Xr, _BLOCK_PLACE)
    return out


@dataclass
class Leaf:
    """A leaf of one tree: value, ensemble member, and the allowed gene indices per constrained gene."""

    value: float
    member: int
    allowed: dict[int, BoolArray]


def allowed_below(gene: int, threshold: float, inclusive: bool) -> BoolArray:
    """Mask ``(cardinality,)`` of the gene indices of ``gene`` below a split ``threshold`` (or at it, if
    ``inclusive``): the values a tree's left branch allows."""
    vals = np.arange(int(space.CARDINALITIES[gene]))
    return vals <= threshold if inclusive else vals < threshold


@dataclass
class TripleTables:
    """A sum of block-group tables for ``n_members`` ensemble members (one channel of a model).

    Groups hold 1 to 3 blocks, padded to 3 with :data:`PAD` (a block with one configuration).

    Attributes:
        triples: ``(T, 3)`` block indices of each table.
        tables: list of ``T`` arrays of shape ``(C_a * C_b * C_c, n_members)``.
        bias: ``(n_members,)`` constant term.
    """

    triples: IntArray
    tables: list[FloatArray]
    bias: FloatArray

    @property
    def n_members(self) -> int:
        return int(self.bias.shape[0])

    @classmethod
    def from_leaves(
        cls, leaves: list[Leaf], bias: FloatArray, group_size: int = 3, chunk: int = 2048
    ) -> TripleTables:
        """Exact table form of a set of leaves whose paths touch at most ``group_size`` blocks."""
        n_members = int(bias.shape[0])
        groups = block_groups(group_size)
        by_triple: dict[int, list[Leaf]] = {}
        for leaf in leaves:
            blocks = {g // 4 for g in leaf.allowed}
            if len(blocks) > group_size:
                raise ValueError(
                    f"a tree path uses {len(blocks)} blocks but tables hold {group_size}; fit shallower trees"
                )
            t = next(i for i, tr in enumerate(groups) if blocks <= set(tr))
            by_triple.setdefault(t, []).append(leaf)
        triples: list[tuple[int, ...]] = []
        tables: list[FloatArray] = []
        for t in sorted(by_triple):
            tri = groups[t]
            sizes = [int(_SIZES_PADDED[b]) for b in tri]
            table = np.zeros((sizes[0], sizes[1] * sizes[2], n_members))
            group = by_triple[t]
            for start in range(0, len(group), chunk):
                part = group[start : start + chunk]
                masks = [np.ones((len(part), s)) for s in sizes]
                for li, leaf in enumerate(part):
                    for g, ok in leaf.allowed.items():
                        pos = tri.index(g // 4)
                        masks[pos][li] *= ok[BLOCK_GENES[g // 4][:, g % 4]]
                values = np.array([leaf.value for leaf in part])
                members = np.array([leaf.member for leaf in part])
                bc = np.einsum("lb,lc->lbc", masks[1], masks[2]).reshape(len(part), -1)
                for m in range(n_members):
                    sel = members == m
                    if sel.any():
                        table[:, :, m] += (masks[0][sel] * values[sel, None]).T @ bc[sel]
            triples.append(tri)
            tables.append(table.reshape(-1, n_members))
        return cls(np.array(triples, dtype=np.int64).reshape(-1, 3), tables, np.asarray(bias, dtype=float))

    @classmethod
    def from_block_additive(cls, weights: list[FloatArray], bias: FloatArray) -> TripleTables:
        """Tables of a block-additive model: ``weights[b]`` has shape ``(C_b, n_members)``."""
        n_members = int(bias.shape[0])
        groups = block_groups(1)
        tables = [np.asarray(weights[g[0]], dtype=float).reshape(-1, n_members) for g in groups]
        return cls(np.array(groups, dtype=np.int64), tables, np.asarray(bias, dtype=float))

    def predict_members(self, cfg: IntArray) -> FloatArray:
        """Member predictions ``(n, n_members)`` from block configurations ``cfg (n, 7)``."""
        out = np.broadcast_to(self.bias, (cfg.shape[0], self.n_members)).copy()
        for (a, b, c), table in zip(self.triples, self.tables, strict=True):
            idx = (cfg[:, a] * _SIZES_PADDED[b] + cfg[:, b]) * _SIZES_PADDED[c] + cfg[:, c]
            out += table[idx]
        return out

    def to_arrays(self, prefix: str) -> dict[str, NDArray[Any]]:
        """Arrays for an ``.npz`` file (float32 tables keep the cache small; sums stay exact to ~1e-5)."""
        out: dict[str, NDArray[Any]] = {f"{prefix}triples": self.triples, f"{prefix}bias": self.bias}
        for i, t in enumerate(self.tables):
            out[f"{prefix}table{i}"] = t.astype(np.float32)
        return out

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> TripleTables:
        triples = np.asarray(arrays[f"{prefix}triples"], dtype=np.int64).reshape(-1, 3)
        tables = [np.asarray(arrays[f"{prefix}table{i}"]) for i in range(len(triples))]
        return cls(triples, tables, np.asarray(arrays[f"{prefix}bias"], dtype=float))


class FusedTables:
    """Several :class:`TripleTables` channels evaluated with a single gather (the query hot path)."""

    def __init__(self, channels: list[TripleTables]) -> None:
        self.n_channels = len(channels)
        self.n_members = channels[0].n_members if channels else 0
        flats, a_, b_, c_, sb, sc, offs, chan = [], [], [], [], [], [], [], []
        offset = 0
        for ci, ch in enumerate(channels):
            if ch.n_members != self.n_members:
                raise ValueError("all channels must have the same number of ensemble members")
            for (a, b, c), table in zip(ch.triples, ch.tables, strict=True):
                flats.append(table)
                a_.append(a)
                b_.append(b)
                c_.append(c)
                sb.append(_SIZES_PADDED[b] * _SIZES_PADDED[c])
                sc.append(_SIZES_PADDED[c])
                offs.append(offset)
                chan.append(ci)
                offset += table.shape[0]
        self.flat = (np.concatenate(flats) if flats else np.zeros((0, self.n_members))).astype(np.float32)
        self.a, self.b, self.c = (np.array(v, dtype=np.int64) for v in (a_, b_, c_))
        self.stride_a = np.array(sb, dtype=np.int64)
        self.stride_b = np.array(sc, dtype=np.int64)
        self.offsets = np.array(offs, dtype=np.int64)
        self.table_channel = np.array(chan, dtype=np.int64)
        self.bias = np.stack([ch.bias for ch in channels]) if channels else np.zeros((0, 0))
        # boundaries for summing consecutive tables of one channel
        self._starts = np.searchsorted(self.table_channel, np.arange(self.n_channels))
        self._has_tables = np.bincount(self.table_channel, minlength=self.n_channels) > 0

    def predict(self, cfg: IntArray) -> FloatArray:
        """Member predictions per channel, ``(n, n_channels, n_members)``, from ``cfg (n, 7)``."""
        n = cfg.shape[0]
        idx = cfg[:, self.a] * self.stride_a + cfg[:, self.b] * self.stride_b + cfg[:, self.c] + self.offsets
        vals = self.flat[idx]  # (n, T, M) float32
        out = np.broadcast_to(self.bias, (n, self.n_channels, self.n_members)).copy()
        if vals.shape[1]:
            sums = np.add.reduceat(vals, self._starts[self._has_tables], axis=1, dtype=np.float64)
            out[:, self._has_tables] += sums
        return out
