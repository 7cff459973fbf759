"""Snapshots by replay, for optimizers wrapping a library whose internal state cannot be saved without pickle.

Optuna keeps no serialisable sampler state (its samplers hold random states, caches and, for NSGA-II, the
generations inside the study), and pymoo's own checkpoints pickle the whole algorithm. The peer adapters
(:mod:`optimizers.optuna_peers`, :mod:`optimizers.pymoo_peers`) therefore save

- the optimizer's generator state at its first ``ask``/``tell`` (``replay_rng0``), and
- the log of every ``ask(n)`` and ``tell(X, F, feasible)`` since, with the rows it proposed and was told,

and resume by building a fresh, identically seeded library object and re-running that log through it:
the same calls on the same generator state give the same proposals, so the resumed optimizer is in exactly
the state the original was in. Every replayed ``ask`` is checked against the proposals saved with it; a
difference (another library version, a non-deterministic build) is a :class:`ConfigurationError` naming
both versions instead of a silently different run. Resuming costs the library's own ask/tell time for the
history so far (no evaluations); the log grows by one row per proposed or told architecture.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark import space
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers.base import StateTree

_ASK, _TELL = 0, 1
#: keys :meth:`ReplayLog.to_state` writes
STATE_KEYS = (
    "replay_rng0",
    "replay_versions",
    "replay_kind",
    "replay_size",
    "replay_asked",
    "replay_told_X",
    "replay_told_F",
    "replay_told_feasible",
)


@dataclass
class ReplayLog:
    """The generator state at first use and every ``ask``/``tell`` since, in order.

    Attributes:
        n_obj: objectives per told row.
        versions: library name -> version the log was written with (checked on replay mismatch).
    """

    n_obj: int
    versions: dict[str, str] = field(default_factory=dict)
    rng0: dict[str, Any] | None = None
    kinds: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    asked: list[IntArray] = field(default_factory=list)
    told_X: list[IntArray] = field(default_factory=list)
    told_F: list[FloatArray] = field(default_factory=list)
    told_fe: list[BoolArray] = field(default_factory=list)

    def begin(self, rng: np.random.Generator) -> None:
        """Remember ``rng``'s state unless already done (call before the first use of ``rng``)."""
        if self.rng0 is None:
            self.rng0 = copy.deepcopy(dict(rng.bit_generator.state))

    def record_ask(self, X: IntArray) -> None:
        """One ``ask`` and its proposals ``X (n, 28)``."""
        self.kinds.append(_ASK)
        self.sizes.append(int(X.shape[0]))
        self.asked.append(np.asarray(X, dtype=np.int64).copy())

    def record_tell(self, X: IntArray, F: FloatArray, feasible: BoolArray) -> None:
        """One ``tell``: ``X (n, 28)``, ``F (n, m)`` (NaN rows = failed), ``feasible (n,)``."""
        self.kinds.append(_TELL)
        self.sizes.append(int(X.shape[0]))
        self.told_X.append(np.asarray(X, dtype=np.int64).copy())
        self.told_F.append(np.asarray(F, dtype=np.float64).reshape(-1, self.n_obj).copy())
        self.told_fe.append(np.asarray(feasible, dtype=bool).copy())

    def to_state(self) -> StateTree:
        """The log as JSON values and numpy arrays (keys :data:`STATE_KEYS`)."""
        m = self.n_obj

        def cat(parts: list[Any], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

        return {
            "replay_rng0": copy.deepcopy(self.rng0),
            "replay_versions": dict(self.versions),
            "replay_kind": np.asarray(self.kinds, dtype=np.int64),
            "replay_size": np.asarray(self.sizes, dtype=np.int64),
            "replay_asked": cat(self.asked, (0, space.N_GENES), np.int64),
            "replay_told_X": cat(self.told_X, (0, space.N_GENES), np.int64),
            "replay_told_F": cat(self.told_F, (0, m), np.float64),
            "replay_told_feasible": cat(self.told_fe, (0,), bool),
        }

    def replay(
        self,
        owner: str,
        state: StateTree,
        rng: np.random.Generator,
        ask: Callable[[int], IntArray],
        tell: Callable[[IntArray, FloatArray, BoolArray], None],
    ) -> None:
        """Re-run the log saved in ``state`` through ``ask``/``tell`` of a freshly reset optimizer.

        ``rng`` is set to the saved first-use state first; this log must be empty (the calls re-record it).
        Raises :class:`ConfigurationError` if a replayed ``ask`` proposes other rows than were saved.
        """
        rng0 = state.get("replay_rng0")
        if rng0 is None:
            return
        rng.bit_generator.state = copy.deepcopy(dict(rng0))
        kinds = np.asarray(state["replay_kind"], dtype=np.int64).reshape(-1)
        sizes = np.asarray(state["replay_size"], dtype=np.int64).reshape(-1)
        asked = np.asarray(state["replay_asked"], dtype=np.int64).reshape(-1, space.N_GENES)
        tX = np.asarray(state["replay_told_X"], dtype=np.int64).reshape(-1, space.N_GENES)
        tF = np.asarray(state["replay_told_F"], dtype=np.float64).reshape(-1, self.n_obj)
        tfe = np.asarray(state["replay_told_feasible"], dtype=bool).reshape(-1)
        a = t = 0
        for e, (kind, n) in enumerate(zip(kinds.tolist(), sizes.tolist(), strict=True)):
            if kind == _ASK:
                X = ask(n)
                if not np.array_equal(X, asked[a : a + n]):
                    saved = dict(state.get("replay_versions") or {})
                    raise ConfigurationError(
                        f"{owner}.load_state(): replaying the saved ask/tell history gave other proposals at "
                        f"call {e} (saved with {saved or 'unknown versions'}, now {self.versions}); resume "
                        f"with the library version that wrote the checkpoint, or start a new run"
                    )
                a += n
            else:
                tell(tX[t : t + n], tF[t : t + n], tfe[t : t + n])
                t += n


__all__ = ["STATE_KEYS", "ReplayLog"]
