"""The MnasNet search space of Accel-NASBench, as batches of integer genes.

An architecture is 28 integers: for each of the 7 MBConv blocks (in order) the index of its expansion
ratio, the index of its kernel size, the index of its layer count, and squeeze-excite (0/1). A batch is an
``(n, 28)`` integer array; every operation here is vectorised over the batch.

Gene values, per block ``i``:

- column ``4*i + 0`` -- expansion index into ``EXPANSIONS = (1, 4, 6)``
- column ``4*i + 1`` -- kernel index into ``KERNELS = (3, 5)``
- column ``4*i + 2`` -- layers index into ``(1, 2, 3)``, or ``(1, 2, 3, 4)`` in block 5 (0-based)
- column ``4*i + 3`` -- squeeze-excite, 0 (off) or 1 (on)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from benchmark._typing import BoolArray, IntArray
from benchmark.errors import NasoptError, plain

N_BLOCKS = 7
GENES_PER_BLOCK = 4
N_GENES = N_BLOCKS * GENES_PER_BLOCK
FIELDS = ("e", "k", "l", "se")
EXPANSIONS = (1, 4, 6)
KERNELS = (3, 5)
LAYERS = (1, 2, 3)
LAYERS_BLOCK5 = (1, 2, 3, 4)
SE_VALUES = (False, True)


def _block_values(block: int) -> tuple[tuple[int, ...], ...]:
    layers = LAYERS_BLOCK5 if block == 5 else LAYERS
    return (EXPANSIONS, KERNELS, layers, (0, 1))


#: Real values for each gene column: ``GENE_VALUES[j][index]``.
GENE_VALUES: tuple[tuple[int, ...], ...] = tuple(
    values for block in range(N_BLOCKS) for values in _block_values(block)
)
#: Number of choices per gene column, shape ``(28,)``.
CARDINALITIES: IntArray = np.array([len(v) for v in GENE_VALUES], dtype=np.int64)
#: Mixed-radix place values so that ``X @ _PLACE`` is a unique index in ``[0, SPACE_SIZE)``.
_PLACE: IntArray = np.concatenate([np.cumprod(CARDINALITIES[::-1])[::-1][1:], [1]]).astype(np.int64)
SPACE_SIZE: int = int(np.prod(CARDINALITIES.astype(object)))
#: Number of one-step neighbours of any architecture (sum over genes of cardinality - 1).
N_NEIGHBOURS: int = int((CARDINALITIES - 1).sum())

# Lookup tables for decoding indices to real values, padded to 4 columns.
_VALUE_TABLE: IntArray = np.zeros((N_GENES, 4), dtype=np.int64)
for _j, _vals in enumerate(GENE_VALUES):
    _VALUE_TABLE[_j, : len(_vals)] = _vals


class InvalidArchitectureError(NasoptError, ValueError):
    """An architecture (or batch) is not in the search space; the message names what and how to fix it."""


def gene_name(column: int) -> str:
    """Upstream key of a gene column, e.g. ``block3_e``."""
    return f"block{column // GENES_PER_BLOCK}_{FIELDS[column % GENES_PER_BLOCK]}"


def _allowed_text(column: int) -> str:
    values = GENE_VALUES[column]
    if column % GENES_PER_BLOCK == 3:
        return "0/1 (False/True)"
    return ", ".join(f"{i} (= {v})" for i, v in enumerate(values))


def as_batch(X: ArrayLike) -> IntArray:
    """Return ``X`` as a validated ``(n, 28)`` int64 batch; a single architecture becomes ``(1, 28)``."""
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != N_GENES:
        raise InvalidArchitectureError(
            f"expected an architecture batch of shape (n, {N_GENES}) (7 blocks x e,k,l,se indices), "
            f"got shape {np.shape(X)}"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidArchitectureError(
                "architecture genes must be integer indices; got non-integer floats"
            )
    elif arr.dtype.kind not in "iu":
        raise InvalidArchitectureError(f"architecture genes must be integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    validate(out)
    return out


def validate(X: IntArray) -> None:
    """Raise :class:`InvalidArchitectureError` naming the first bad row, block, field and allowed values."""
    bad = (X < 0) | (CARDINALITIES[None, :] <= X)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidArchitectureError(
            f"architecture {row}: block {col // GENES_PER_BLOCK} field '{FIELDS[col % GENES_PER_BLOCK]}' "
            f"(gene {col}, {gene_name(col)}) has index {int(X[row, col])}; allowed: {_allowed_text(col)}"
        )


def is_valid(X: ArrayLike) -> BoolArray:
    """Boolean mask ``(n,)`` of rows that lie in the space (shape must already be ``(n, 28)``)."""
    arr = np.asarray(X)
    return np.all((arr >= 0) & (arr < CARDINALITIES[None, :]), axis=1)


def sample(n: int, rng: np.random.Generator) -> IntArray:
    """``n`` architectures drawn uniformly from the whole space, shape ``(n, 28)``."""
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    return np.floor(rng.random((n, N_GENES)) * CARDINALITIES[None, :]).astype(np.int64)


def mutate(X: ArrayLike, rng: np.random.Generator, n_genes: int = 1) -> IntArray:
    """Copy of ``X`` with ``n_genes`` distinct genes per row changed to a *different* allowed value."""
    batch = as_batch(X).copy()
    n = batch.shape[0]
    if not 1 <= n_genes <= N_GENES:
        raise ValueError(f"n_genes must be in [1, {N_GENES}], got {n_genes}")
    # distinct columns per row: argsort of random keys
    cols = np.argsort(rng.random((n, N_GENES)), axis=1)[:, :n_genes]
    rows = np.repeat(np.arange(n), n_genes)
    cols = cols.ravel()
    card = CARDINALITIES[cols]
    shift = 1 + np.floor(rng.random(rows.size) * (card - 1)).astype(np.int64)
    batch[rows, cols] = (batch[rows, cols] + shift) % card
    return batch


# Precomputed neighbour deltas: each row is (column, shift) with shift in 1..card-1.
_NEIGHBOUR_COLS: IntArray = np.concatenate(
    [np.full(int(c) - 1, j, dtype=np.int64) for j, c in enumerate(CARDINALITIES)]
)
_NEIGHBOUR_SHIFTS: IntArray = np.concatenate([np.arange(1, int(c), dtype=np.int64) for c in CARDINALITIES])


def neighbours(x: ArrayLike) -> IntArray:
    """All one-step neighbours of one architecture (every gene set to each other value), ``(43, 28)``."""
    base = as_batch(x)
    if base.shape[0] != 1:
        raise InvalidArchitectureError(f"neighbours() takes one architecture, got {base.shape[0]}")
    out = np.repeat(base, N_NEIGHBOURS, axis=0)
    idx = np.arange(N_NEIGHBOURS)
    card = CARDINALITIES[_NEIGHBOUR_COLS]
    out[idx, _NEIGHBOUR_COLS] = (out[idx, _NEIGHBOUR_COLS] + _NEIGHBOUR_SHIFTS) % card
    return out


def neighbours_batch(X: ArrayLike) -> IntArray:
    """One-step neighbours of every row, ``(n * 43, 28)``, grouped by source row."""
    base = as_batch(X)
    n = base.shape[0]
    out = np.repeat(base, N_NEIGHBOURS, axis=0)
    rows = np.arange(n * N_NEIGHBOURS)
    cols = np.tile(_NEIGHBOUR_COLS, n)
    shifts = np.tile(_NEIGHBOUR_SHIFTS, n)
    out[rows, cols] = (out[rows, cols] + shifts) % CARDINALITIES[cols]
    return out


def arch_id(X: ArrayLike) -> IntArray:
    """Unique int64 key per architecture in ``[0, SPACE_SIZE)`` (mixed-radix index), shape ``(n,)``."""
    return as_batch(X) @ _PLACE


def from_arch_id(ids: ArrayLike) -> IntArray:
    """Inverse of :func:`arch_id`, shape ``(n, 28)``."""
    rem = np.atleast_1d(np.asarray(ids, dtype=np.int64)).copy()
    if np.any((rem < 0) | (rem >= SPACE_SIZE)):
        raise InvalidArchitectureError(f"architecture ids must lie in [0, {SPACE_SIZE})")
    out = np.empty((rem.size, N_GENES), dtype=np.int64)
    for j in range(N_GENES):
        out[:, j] = rem // _PLACE[j]
        rem = rem % _PLACE[j]
    return out


def unique(X: ArrayLike) -> tuple[IntArray, IntArray]:
    """De-duplicate rows keeping first occurrences in order; returns ``(unique_rows, first_indices)``."""
    batch = as_batch(X)
    _, first = np.unique(arch_id(batch), return_index=True)
    first = np.sort(first)
    return batch[first], first


def _as_ids(archs: ArrayLike) -> IntArray:
    arr = np.asarray(archs)
    if arr.ndim == 2:
        return arch_id(arr)
    return np.asarray(arr, dtype=np.int64).reshape(-1)


#: below this many rows :func:`duplicated` probes a Python set (numpy's per-call cost dominates there)
_DUPLICATED_LOOP_BELOW = 256


def duplicated(archs: ArrayLike, known: ArrayLike | Set[int] = ()) -> BoolArray:
    """Which rows repeat an architecture: one in ``known`` or an earlier row of ``archs``, shape ``(n,)``.

    The first occurrence of an architecture that is not in ``known`` is not a duplicate; every later one is.

    Args:
        archs: architectures ``(n, 28)``, or their :func:`arch_id` keys ``(n,)`` (a 1-D array is keys).
        known: architectures already seen: keys ``(k,)``, architectures ``(k, 28)``, or a set of keys
            (a set is probed row by row, so a large growing set costs nothing to pass).
    """
    ids = _as_ids(archs)
    n = ids.size
    if isinstance(known, Set) or n < _DUPLICATED_LOOP_BELOW:
        seen = known if isinstance(known, Set) else set(_as_ids(known).tolist())
        out = np.zeros(n, dtype=bool)
        batch: set[int] = set()
        for i, a in enumerate(ids.tolist()):
            if a in seen or a in batch:
                out[i] = True
            else:
                batch.add(a)
        return out
    out = np.ones(n, dtype=bool)
    _, first = np.unique(ids, return_index=True)
    out[first] = False
    known_ids = _as_ids(known)
    if known_ids.size:
        out |= np.isin(ids, known_ids)
    return out


def decode(X: ArrayLike) -> dict[str, IntArray]:
    """Real values per field, each ``(n, 7)``: ``{"e": ..., "k": ..., "l": ..., "se": ...}``."""
    batch = as_batch(X)
    cols = np.arange(N_GENES)[None, :]
    real = _VALUE_TABLE[cols, batch]
    return {f: real[:, i::GENES_PER_BLOCK] for i, f in enumerate(FIELDS)}


def encode_values(e: ArrayLike, k: ArrayLike, l: ArrayLike, se: ArrayLike) -> IntArray:  # noqa: E741
    """Batch from real values, each ``(n, 7)`` or ``(7,)``; errors name the block and field."""
    fields = {"e": np.atleast_2d(e), "k": np.atleast_2d(k), "l": np.atleast_2d(l), "se": np.atleast_2d(se)}
    n = fields["e"].shape[0]
    out = np.empty((n, N_GENES), dtype=np.int64)
    for fi, (fname, vals) in enumerate(fields.items()):
        if vals.shape != (n, N_BLOCKS):
            raise InvalidArchitectureError(f"field '{fname}' must have shape ({n}, 7), got {vals.shape}")
        for b in range(N_BLOCKS):
            col = b * GENES_PER_BLOCK + fi
            allowed = np.array(GENE_VALUES[col])
            v = vals[:, b].astype(np.int64)
            match = v[:, None] == allowed[None, :]
            ok = match.any(axis=1)
            if not ok.all():
                row = int(np.argmin(ok))
                shown = (False, True) if fname == "se" else GENE_VALUES[col]
                raise InvalidArchitectureError(
                    f"architecture {row}: block {b} field '{fname}' has value {vals[row, b].item()!r}; "
                    f"allowed values: {', '.join(map(str, shown))}"
                )
            out[:, col] = np.argmax(match, axis=1)
    return out


def from_dicts(archs: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> IntArray:
    """Batch from upstream dicts ``{"block0_e": 6, "block0_k": 3, "block0_l": 1, "block0_se": False, ..}``."""
    if isinstance(archs, Mapping):
        archs = [archs]
    n = len(archs)
    vals = {f: np.zeros((n, N_BLOCKS), dtype=np.int64) for f in FIELDS}
    for r, arch in enumerate(archs):
        if not isinstance(arch, Mapping):
            raise InvalidArchitectureError(
                f"architecture {r}: expected a dict of block keys, got {type(arch).__name__}"
            )
        for b in range(N_BLOCKS):
            for f in FIELDS:
                key = f"block{b}_{f}"
                if key not in arch:
                    raise InvalidArchitectureError(f"architecture {r}: missing key '{key}'")
                v = arch[key]
                if isinstance(v, bool) and f != "se":
                    raise InvalidArchitectureError(
                        f"architecture {r}: '{key}' must be an integer, got {plain(v)}"
                    )
                if f == "se" and not isinstance(v, (bool, int, np.integer)):
                    raise InvalidArchitectureError(
                        f"architecture {r}: '{key}' must be true/false, got {plain(v)}"
                    )
                if not isinstance(v, (int, np.integer)):
                    raise InvalidArchitectureError(
                        f"architecture {r}: '{key}' must be an integer, got {plain(v)}"
                    )
                vals[f][r, b] = int(v)
        extra = set(arch) - {f"block{b}_{f}" for b in range(N_BLOCKS) for f in FIELDS}
        if extra:
            raise InvalidArchitectureError(f"architecture {r}: unknown keys {sorted(extra)}")
    if n == 0:
        return np.zeros((0, N_GENES), dtype=np.int64)
    return encode_values(vals["e"], vals["k"], vals["l"], vals["se"])


def to_dicts(X: ArrayLike) -> list[dict[str, int | bool]]:
    """Upstream dicts (real values, SE as bool), one per row."""
    dec = decode(X)
    out: list[dict[str, int | bool]] = []
    for r in range(dec["e"].shape[0]):
        d: dict[str, int | bool] = {}
        for b in range(N_BLOCKS):
            d[f"block{b}_e"] = int(dec["e"][r, b])
            d[f"block{b}_k"] = int(dec["k"][r, b])
            d[f"block{b}_l"] = int(dec["l"][r, b])
            d[f"block{b}_se"] = bool(dec["se"][r, b])
        out.append(d)
    return out


_BLOCK_RE = re.compile(r"^e(\d+)k(\d+)l(\d+)(\+|-)$")
_UNSIGNED_RE = re.compile(r"^e\d+k\d+l\d+$")


def to_strings(X: ArrayLike) -> list[str]:
    """Compact strings, one per row, e.g. ``e1k3l1+ e6k3l2+ ... e6k3l1+`` (``+`` = squeeze-excite on)."""
    dec = decode(X)
    e, k, l_, se = dec["e"], dec["k"], dec["l"], dec["se"]
    return [
        " ".join(f"e{e[r, b]}k{k[r, b]}l{l_[r, b]}{'+' if se[r, b] else '-'}" for b in range(N_BLOCKS))
        for r in range(e.shape[0])
    ]


def to_string(x: ArrayLike) -> str:
    """Compact string of one architecture."""
    return to_strings(x)[0]


def from_strings(strings: Iterable[str]) -> IntArray:
    """Parse compact strings (blocks separated by spaces, ``|``, ``,`` or ``/``); every block ends in its
    squeeze-excite sign, ``+`` (on) or ``-`` (off)."""
    parsed: dict[str, list[list[int]]] = {f: [] for f in FIELDS}
    for r, text in enumerate(strings):
        blocks = [b for b in re.split(r"[\s|,/_]+", text.strip().lower()) if b]
        if len(blocks) != N_BLOCKS:
            raise InvalidArchitectureError(
                f"architecture string {r} {text!r}: expected 7 blocks like 'e6k3l2+' "
                f"(expansion, kernel, layers, '+' SE on / '-' off), got {len(blocks)}"
            )
        row: dict[str, list[int]] = {f: [] for f in FIELDS}
        for b, blk in enumerate(blocks):
            m = _BLOCK_RE.match(blk)
            if m is None and _UNSIGNED_RE.match(blk):
                raise InvalidArchitectureError(
                    f"architecture string {r}: block {b} {blk!r} lacks the squeeze-excite sign; "
                    f"write {blk + '+'!r} (SE on) or {blk + '-'!r} (SE off)"
                )
            if m is None:
                raise InvalidArchitectureError(
                    f"architecture string {r}: block {b} {blk!r} is not of the form 'e<E>k<K>l<L>+' or '-' "
                    f"(e.g. 'e6k5l3+')"
                )
            row["e"].append(int(m.group(1)))
            row["k"].append(int(m.group(2)))
            row["l"].append(int(m.group(3)))
            row["se"].append(1 if m.group(4) == "+" else 0)
        for f in FIELDS:
            parsed[f].append(row[f])
    if not parsed["e"]:
        return np.zeros((0, N_GENES), dtype=np.int64)
    return encode_values(parsed["e"], parsed["k"], parsed["l"], parsed["se"])


def from_string(text: str) -> IntArray:
    """Parse one compact string to a ``(28,)`` array."""
    return from_strings([text])[0]


def parse(arch: Any) -> IntArray:
    """Any single-architecture form (string, upstream dict, 28 genes) to a ``(28,)`` array."""
    if isinstance(arch, str):
        return from_string(arch)
    if isinstance(arch, Mapping):
        return from_dicts(arch)[0]
    return as_batch(arch)[0]


#: Named reference architectures.
REFERENCES: dict[str, IntArray] = {
    "efficientnet_b0": encode_values(
        [1, 6, 6, 6, 6, 6, 6], [3, 3, 5, 3, 5, 5, 3], [1, 2, 2, 3, 3, 4, 1], [1, 1, 1, 1, 1, 1, 1]
    )[0],
}


def reference(name: str) -> IntArray:
    """A named reference architecture, e.g. ``reference("efficientnet_b0")``."""
    key = name.lower().replace("-", "_")
    if key not in REFERENCES:
        raise KeyError(f"unknown reference architecture {name!r}; known: {sorted(REFERENCES)}")
    return REFERENCES[key].copy()
