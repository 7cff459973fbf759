"""The ask/tell protocol every nasopt optimizer follows.

The runner owns the loop, budget, seeds, logging and checkpoints; an optimizer only proposes and learns::

    opt = make_optimizer("re", problem_info, rng=np.random.default_rng(0))
    X = opt.ask(8)                  # (8, 28) int64 architectures
    opt.tell(X, F, feasible)        # F: (8, m) objectives, all to be MINIMISED; NaN row = failed evaluation
    snapshot = opt.state()          # JSON scalars/lists/dicts + numpy arrays only (no pickle)
    twin = make_optimizer("re", problem_info, rng=np.random.default_rng(123))
    twin.load_state(snapshot)       # twin now proposes exactly what opt would have

Conventions:

- ``F`` is in *internal minimisation* units: ``F[:, i] = -value`` for a maximised target (accuracy,
  throughput) and ``+value`` for a minimised one (latency), in the target's natural unit.
  :meth:`ProblemInfo.normalize` maps it to the problem's fixed ``[0, 1]`` box (0 = ideal, 1 = nadir).
- ``feasible`` is a ``(n,)`` bool array (all True for unconstrained problems).
- A failed evaluation has an all-NaN row in ``F`` and ``feasible=False``; optimizers must tolerate it.
- Randomness comes only from the ``numpy.random.Generator`` passed at construction (an optimizer that needs
  torch derives a ``torch.Generator`` from it); never from global state.
- ``state()`` returns a tree of dicts/lists/JSON scalars whose leaves may also be numpy arrays; the
  checkpoint writer stores arrays in ``.npz`` and the rest as JSON. The base class writes the header (format,
  kind, ``hyperparameters()``, the generator state) and checks it on ``load_state``; a subclass adds its own
  data through the hooks ``_state()`` / ``_load_state()``.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import ConfigurationError
from optimizers._checks import check_state, check_tell_shapes

StateTree = dict[str, Any]


@dataclass(frozen=True)
class ProblemInfo:
    """What an optimizer may know about the problem it solves (no access to the benchmark itself).

    Hashable and immutable: every field is a string, a number or a tuple of them.

    Attributes:
        name: problem name, e.g. ``"acc_a100"``.
        objectives: benchmark target per objective, e.g. ``("accuracy", "throughput_a100")``.
        maximize: per objective, whether the user-facing sense is "maximise" (F holds ``-value`` then).
        ideal: per objective, internal-minimisation value mapped to 0 by :meth:`normalize`.
        nadir: per objective, internal-minimisation value mapped to 1 by :meth:`normalize`.
        ref_point: hypervolume reference point in normalised space, shape ``(m,)``.
        n_constraints: number of constraints (0 = unconstrained).
        constraints: the constraints as text, e.g. ``("throughput_a100 >= 10000",)``.
        eval_mode: what the optimizer observes: ``"mean"`` (ensemble mean) or ``"noisy"`` (a noisy draw).
        log_scale: per objective, whether it is a positive hardware quantity (throughput, latency) best
            modelled on a log scale; empty = none is.
    """

    name: str
    objectives: tuple[str, ...]
    maximize: tuple[bool, ...]
    ideal: tuple[float, ...]
    nadir: tuple[float, ...]
    ref_point: tuple[float, ...]
    n_constraints: int = 0
    constraints: tuple[str, ...] = ()
    eval_mode: str = "mean"
    log_scale: tuple[bool, ...] = ()

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    def is_log_scale(self, i: int) -> bool:
        """Whether objective ``i`` is a positive hardware quantity (see ``log_scale``)."""
        return bool(self.log_scale[i]) if self.log_scale else False

    @functools.cached_property
    def _signs(self) -> FloatArray:
        """``-1`` for maximised objectives, ``+1`` for minimised ones, ``(m,)`` (computed once, read-only)."""
        signs = np.where(np.asarray(self.maximize, dtype=bool), -1.0, 1.0)
        signs.flags.writeable = False
        return signs

    def to_internal(self, values: ArrayLike) -> FloatArray:
        """Natural values ``(n, m)`` (accuracy %, img/s, ms) to internal minimisation values ``(n, m)``."""
        return np.asarray(values, dtype=np.float64) * self._signs

    def to_natural(self, F: ArrayLike) -> FloatArray:
        """Internal minimisation values ``(n, m)`` back to natural units (accuracy %, img/s, ms)."""
        return np.asarray(F, dtype=np.float64) * self._signs

    def normalize(self, F: ArrayLike) -> FloatArray:
        """Internal minimisation values ``(n, m)`` to the fixed box: 0 = ideal, 1 = nadir."""
        ideal = np.asarray(self.ideal, dtype=float)
        nadir = np.asarray(self.nadir, dtype=float)
        return (np.asarray(F, dtype=float) - ideal) / (nadir - ideal)

    def normalize_natural(self, values: ArrayLike) -> FloatArray:
        """Natural values ``(n, m)`` straight to the normalised minimisation box ``(n, m)``."""
        return self.normalize(self.to_internal(values))

    def denormalize(self, F_norm: ArrayLike) -> FloatArray:
        """Normalised minimisation values ``(n, m)`` back to natural units ``(n, m)``."""
        ideal = np.asarray(self.ideal, dtype=float)
        nadir = np.asarray(self.nadir, dtype=float)
        return self.to_natural(np.asarray(F_norm, dtype=float) * (nadir - ideal) + ideal)


class Optimizer(ABC):
    """Base class of ask/tell optimizers. Constructors must not do work with side effects.

    A subclass implements :meth:`ask`, :meth:`tell` and :meth:`hyperparameters`, and, when it keeps state
    beyond its generator, the hooks :meth:`_state` / :meth:`_load_state`; the base class owns the snapshot
    format around them (see :meth:`state`). Constructors take ``(problem, rng, *, <hyperparameters>)`` with
    every hyperparameter keyword-only, validated with the helpers of :mod:`optimizers._checks`.
    """

    #: short registry name, e.g. "rs", "re", "nsga2", "reinforce", "bo"
    name: str = "optimizer"
    #: True if the optimizer handles more than one objective natively
    multi_objective: bool = True
    #: torch intra-op threads the process should use while this optimizer runs (the process owner sets
    #: them, e.g. ``torch.set_num_threads``; library code never does); None = no preference / no torch
    torch_threads: ClassVar[int | None] = None
    #: version of the snapshot layout written by :meth:`state`
    STATE_FORMAT: ClassVar[int] = 1
    #: keys :meth:`state` writes itself; :meth:`_state` must not use them
    _STATE_HEADER: ClassVar[tuple[str, ...]] = ("format", "kind", "n_obj", "hyperparameters", "rng")

    def __init__(self, problem: ProblemInfo, rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"{type(self).__name__} needs a numpy.random.Generator, got {type(rng).__name__}")
        self.problem = problem
        self.rng = rng

    @property
    def preferred_batch_size(self) -> int | None:
        """Architectures per ``ask`` this optimizer is designed for: the runner's batch size when the user
        gives none (None = 1, the sequential algorithm)."""
        return None

    @abstractmethod
    def ask(self, n: int) -> IntArray:
        """Propose ``n`` architectures, shape ``(n, 28)`` int64."""

    @abstractmethod
    def tell(self, X: IntArray, F: FloatArray, feasible: BoolArray | None = None) -> None:
        """Report results of evaluated architectures: ``X (n, 28)``, ``F (n, m)``, ``feasible (n,)``."""

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor settings as resolved (defaults filled in), JSON scalars/lists/dicts only.

        Stored in every snapshot and compared on :meth:`load_state`; a run's fingerprint may use them.
        """
        return {}

    # --- snapshots: one template around two hooks -------------------------------------------------------
    def state(self) -> StateTree:
        """Everything needed to continue exactly: JSON scalars/lists/dicts and numpy arrays, no pickle.

        ``{"format", "kind" (the registry name), "n_obj", "hyperparameters", "rng" (the generator state)}``
        plus the keys of :meth:`_state`.
        """
        own = self._state()
        clash = sorted(set(own) & set(self._STATE_HEADER))
        if clash:
            raise RuntimeError(f"{type(self).__name__}._state() uses reserved key(s) {clash}; rename them")
        return {
            "format": self.STATE_FORMAT,
            "kind": self.name,
            "n_obj": self.problem.n_obj,
            "hyperparameters": self.hyperparameters(),
            "rng": self._rng_state(),
            **own,
        }

    def load_state(self, state: StateTree) -> None:
        """Restore from :meth:`state`; afterwards proposals equal those the original would make.

        Refuses (:class:`benchmark.errors.ConfigurationError`, naming the first difference) a snapshot of
        another format, kind, number of objectives or hyperparameters; then calls :meth:`_load_state` and
        restores the generator last (whatever randomness the hook consumes is undone).
        """
        owner = type(self).__name__
        if isinstance(state, dict) and state.get("format") != self.STATE_FORMAT:
            raise ConfigurationError(
                f"{owner}.load_state(): the state has format {state.get('format')!r} but this version reads "
                f"format {self.STATE_FORMAT}; it was saved by another nasopt version, so start a new run"
            )
        check_state(owner, state, {"kind": self.name, "n_obj": self.problem.n_obj})
        saved = state.get("hyperparameters")
        check_state(owner, {} if saved is None else saved, self.hyperparameters())
        self._load_state(state)
        self._set_rng_state(dict(state["rng"]))

    def _state(self) -> StateTree:
        """Hook: the optimizer's own state (keys other than :attr:`_STATE_HEADER`); default none."""
        return {}

    def _load_state(self, state: StateTree) -> None:  # noqa: B027 (optional hook, default: nothing to restore)
        """Hook: restore what :meth:`_state` saved (``state`` is the whole snapshot); default nothing."""

    # helpers shared by implementations -------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    @staticmethod
    def _check_tell(
        X: IntArray, F: FloatArray, feasible: BoolArray | None, n_obj: int
    ) -> tuple[IntArray, FloatArray, BoolArray]:
        """Shapes of a ``tell`` (see :func:`optimizers._checks.check_tell_shapes`)."""
        return check_tell_shapes(X, F, feasible, n_obj)
