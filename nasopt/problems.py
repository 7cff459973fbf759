"""Search problems: objectives (benchmark targets with a sense), constraints, evaluation mode, constants.

A :class:`Problem` names what a search optimises on the benchmark:

- ``objectives``: benchmark targets, each maximised (accuracy, throughput) or minimised (latency) as
  :mod:`benchmark.targets` says;
- ``constraints``: optional bounds on targets judged on the ensemble mean, e.g. ``throughput_a100 >= 10000``;
- ``eval_mode``: what the optimizer sees during the search, ``"mean"`` (the ensemble mean) or ``"noisy"``
  (a draw from the ensemble's predictive spread). The runner always records the ensemble mean too, and
  reports use the mean.

Internally everything is minimised: ``F[:, i] = -value`` for a maximised target and ``+value`` for a
minimised one (natural units); the sign flip and the normalisation live only on
:class:`optimizers.base.ProblemInfo` (``problem.info``). The normalised space used for hypervolume maps
each objective's fixed ``(ideal, nadir)`` pair (:data:`NORMALIZATION`, natural units) to ``(0, 1)``; the
reference point is 1.0 in every normalised objective, so points beyond the nadir contribute no hypervolume.
These constants are published here and never inferred from a run, so hypervolumes of different runs are
comparable.

Named problems (:data:`PROBLEMS`) are mirrored by ``conf/problem/<name>.yaml``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from benchmark import devices as user_devices
from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.errors import NasoptError
from benchmark.targets import TARGET_NAMES, UnknownTargetError, get_target, registered_box
from optimizers import indicators
from optimizers.base import ProblemInfo

#: Fixed normalisation box per target, natural units: ``(ideal, nadir)`` (0 and 1 in normalised space).
NORMALIZATION: dict[str, tuple[float, float]] = {
    "accuracy": (70.0, 50.0),
    "throughput_a100": (32000.0, 4000.0),
    "throughput_3090": (22000.0, 2800.0),
    "throughput_tpuv2": (2000.0, 300.0),
    "throughput_tpuv3": (1900.0, 600.0),
    "throughput_zcu102": (1500.0, 70.0),
    "throughput_vck190": (4600.0, 500.0),
    "latency_zcu102": (1.5, 25.0),
    "latency_vck190": (1.5, 12.0),
}
#: Hypervolume reference point, per normalised objective.
REF_POINT_VALUE = 1.0
#: A constraint bound must lie in ``(0, upper]`` with ``upper = hi + SANITY_FACTOR * (hi - lo)`` of the box.
SANITY_FACTOR = 10.0
#: Upper sanity limits that are physical rather than box-derived (accuracy is a percentage).
_HARD_UPPER: dict[str, float] = {"accuracy": 100.0}

EVAL_MODES = ("mean", "noisy")


class ProblemError(NasoptError, ValueError):
    """A problem definition is invalid; the message names the bad part and how to fix it."""


class ConstraintRangeWarning(UserWarning):
    """A constraint bound beyond the measured range of its target (likely no feasible point)."""


class UnknownProblemError(ProblemError, KeyError):
    """A problem name that is not defined."""

    def __str__(self) -> str:
        return str(self.args[0])


def _check_target(name: str, role: str) -> None:
    try:
        get_target(name)
    except UnknownTargetError as exc:
        raise ProblemError(f"{role}: {exc}") from None
    if name not in NORMALIZATION and user_devices.normalization(name) is None:
        usable = ", ".join([*NORMALIZATION, *user_devices.user_target_names()])
        raise ProblemError(
            f"{role}: target {name!r} has no fixed normalisation box, so it cannot be used in a problem; "
            f"usable targets: {usable}"
        )


def normalization(target: str) -> tuple[float, float]:
    """The fixed ``(ideal, nadir)`` box of ``target`` (natural units): :data:`NORMALIZATION` for built-in
    targets, the box stored with the device (derived once from its measurements) for a user device's."""
    built_box = registered_box(target)  # a built benchmark's own box (its accuracy too), when one is loaded
    if built_box is not None:
        return built_box
    if target in NORMALIZATION:
        return NORMALIZATION[target]
    box = user_devices.normalization(target)
    if box is None:
        raise ProblemError(f"target {target!r} has no fixed normalisation box")
    return box


def sanity_range(target: str) -> tuple[float, float]:
    """Open-closed range ``(low, high]`` a constraint bound on ``target`` must lie in (natural units)."""
    a, b = normalization(target)
    lo, hi = min(a, b), max(a, b)
    upper = hi + SANITY_FACTOR * (hi - lo)
    return 0.0, min(upper, _HARD_UPPER.get(target, upper))


#: constraints already warned about by :class:`ConstraintRangeWarning`
_WARNED_CONSTRAINTS: set[str] = set()

_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|=>|=<)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``target op bound`` judged on the ensemble mean, natural units, e.g. ``latency_zcu102 <= 5``."""

    target: str
    op: str  # ">=" or "<="
    bound: float

    def __post_init__(self) -> None:
        _check_target(self.target, f"constraint {self}")
        if self.op not in (">=", "<="):
            raise ProblemError(f"constraint {self}: operator must be '>=' or '<=', got {self.op!r}")
        if not np.isfinite(self.bound):
            raise ProblemError(f"constraint {self}: bound must be a finite number")
        low, high = sanity_range(self.target)
        unit = get_target(self.target).unit
        if not low < self.bound <= high:
            raise ProblemError(
                f"impossible constraint '{self}': {self.target} takes values in ({low:g}, {high:g}] {unit}; "
                f"choose a bound in that range"
            )
        box_lo, box_hi = sorted(normalization(self.target))
        outside = (self.op == ">=" and self.bound > box_hi) or (self.op == "<=" and self.bound < box_lo)
        if outside and str(self) not in _WARNED_CONSTRAINTS:  # once per process, not per job/preflight
            _WARNED_CONSTRAINTS.add(str(self))
            warnings.warn(
                f"constraint '{self}' lies outside the range {box_lo:g}..{box_hi:g} {unit} that encloses "
                f"the measured {self.target} values (the problem's normalisation box), so few or no "
                "architectures will be feasible",
                ConstraintRangeWarning,
                stacklevel=2,
            )

    def __str__(self) -> str:
        return f"{self.target} {self.op} {self.bound:g}"

    @classmethod
    def parse(cls, text: str | Constraint | Mapping[str, Any]) -> Constraint:
        """From ``"throughput_a100 >= 10000"``, a mapping ``{target, op, bound}`` or a Constraint."""
        if isinstance(text, Constraint):
            return text
        if isinstance(text, Mapping):
            try:
                return cls(str(text["target"]), str(text["op"]), float(text["bound"]))
            except KeyError as exc:
                raise ProblemError(
                    f"constraint {dict(text)}: missing key {exc}; need target, op, bound"
                ) from None
        m = _CONSTRAINT_RE.match(str(text))
        if m is None:
            raise ProblemError(
                f"constraint {text!r} is not of the form '<target> >= <number>' or '<target> <= <number>' "
                f"(e.g. 'throughput_a100 >= 10000')"
            )
        op = {"=>": ">=", "=<": "<="}.get(m.group(2), m.group(2))
        return cls(m.group(1), op, float(m.group(3)))

    def satisfied(self, values: FloatArray) -> BoolArray:
        """Mask ``(n,)``: ``values (n,)`` satisfy the constraint (NaN never does)."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            ok = v >= self.bound if self.op == ">=" else v <= self.bound
        return np.asarray(ok & np.isfinite(v), dtype=bool)

    def violation(self, values: FloatArray) -> FloatArray:
        """Amount of violation ``(n,)`` in natural units (0 when satisfied, inf for NaN)."""
        v = np.asarray(values, dtype=np.float64)
        out = np.maximum(self.bound - v, 0.0) if self.op == ">=" else np.maximum(v - self.bound, 0.0)
        return np.where(np.isfinite(v), out, np.inf)


@dataclass(frozen=True)
class Problem:
    """A search problem; see the module docstring.

    Attributes:
        name: problem name (a key of :data:`PROBLEMS` for named problems).
        objectives: benchmark target per objective, ``(m,)``.
        constraints: bounds on targets, judged on the ensemble mean.
        eval_mode: ``"mean"`` or ``"noisy"`` (what the optimizer sees).
        description: one line for humans.
    """

    name: str
    objectives: tuple[str, ...]
    constraints: tuple[Constraint, ...] = ()
    eval_mode: str = "mean"
    description: str = ""
    info: ProblemInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ProblemError(f"a problem needs a non-empty name, got {self.name!r}")
        objectives = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives)
        if not objectives:
            raise ProblemError(f"problem {self.name!r}: needs at least one objective")
        for t in objectives:
            _check_target(t, f"problem {self.name!r} objective")
        if len(set(objectives)) != len(objectives):
            raise ProblemError(f"problem {self.name!r}: objectives {list(objectives)} repeat a target")
        constraints = tuple(Constraint.parse(c) for c in self.constraints)
        if self.eval_mode not in EVAL_MODES:
            raise ProblemError(
                f"problem {self.name!r}: eval_mode {self.eval_mode!r} is not one of {', '.join(EVAL_MODES)}"
            )
        object.__setattr__(self, "objectives", objectives)
        object.__setattr__(self, "constraints", constraints)
        maximize = tuple(get_target(t).maximize for t in objectives)
        sign = [-1.0 if mx else 1.0 for mx in maximize]
        ideal = tuple(s * normalization(t)[0] for s, t in zip(sign, objectives, strict=True))
        nadir = tuple(s * normalization(t)[1] for s, t in zip(sign, objectives, strict=True))
        info = ProblemInfo(
            name=self.name,
            objectives=objectives,
            maximize=maximize,
            ideal=ideal,
            nadir=nadir,
            ref_point=(REF_POINT_VALUE,) * len(objectives),
            n_constraints=len(constraints),
            constraints=tuple(str(c) for c in constraints),
            eval_mode=self.eval_mode,
            log_scale=tuple(get_target(t).is_device for t in objectives),
        )
        object.__setattr__(self, "info", info)

    # -- shape helpers ----------------------------------------------------------------------------------
    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def maximize(self) -> tuple[bool, ...]:
        """Per objective, whether the user-facing sense is "maximise"."""
        return self.info.maximize

    @property
    def constraint_targets(self) -> tuple[str, ...]:
        """Constraint targets that are not objectives (recorded as ``mean_<target>`` columns)."""
        out: list[str] = []
        for c in self.constraints:
            if c.target not in self.objectives and c.target not in out:
                out.append(c.target)
        return tuple(out)

    @property
    def query_targets(self) -> tuple[str, ...]:
        """Every target the benchmark must predict: objectives, then extra constraint targets."""
        return self.objectives + self.constraint_targets

    @property
    def ref_point(self) -> FloatArray:
        return np.asarray(self.info.ref_point, dtype=np.float64)

    # -- conversions -----------------------------------------------------------------------------------
    def to_internal(self, values: ArrayLike) -> FloatArray:
        """Natural values ``(n, m)`` to internal minimisation values ``(n, m)`` (:class:`ProblemInfo`)."""
        return self.info.to_internal(values)

    def to_natural(self, F: ArrayLike) -> FloatArray:
        """Internal minimisation values ``(n, m)`` back to natural units (:class:`ProblemInfo`)."""
        return self.info.to_natural(F)

    def normalize_natural(self, values: ArrayLike) -> FloatArray:
        """Natural values ``(n, m)`` to the fixed normalised minimisation box (:class:`ProblemInfo`)."""
        return self.info.normalize_natural(values)

    # -- constraints -----------------------------------------------------------------------------------
    def feasible(self, means: Mapping[str, ArrayLike], n: int | None = None) -> BoolArray:
        """Feasibility ``(n,)`` from ensemble means per target (every constraint target must be present)."""
        if not self.constraints:
            size = n if n is not None else len(np.asarray(next(iter(means.values()))))
            return np.ones(size, dtype=bool)
        ok: BoolArray | None = None
        for c in self.constraints:
            sat = c.satisfied(np.asarray(means[c.target], dtype=np.float64))
            ok = sat if ok is None else ok & sat
        assert ok is not None
        return ok

    # -- identity --------------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """JSON-able definition ``{name, objectives, constraints, eval_mode}`` (identifies a problem)."""
        return {
            "name": self.name,
            "objectives": list(self.objectives),
            "constraints": [str(c) for c in self.constraints],
            "eval_mode": self.eval_mode,
        }

    def with_eval_mode(self, eval_mode: str) -> Problem:
        """Same problem, different evaluation mode."""
        return Problem(self.name, self.objectives, self.constraints, eval_mode, self.description)


# ------------------------------------------------------------------------------------------------------
# indicators in the problem's fixed space
# ------------------------------------------------------------------------------------------------------
def hypervolume(problem: Problem, values: ArrayLike, feasible: ArrayLike | None = None) -> float:
    """Hypervolume of the feasible points among natural ``values (n, m)`` in the problem's fixed space
    (:func:`optimizers.indicators.hypervolume`)."""
    norm = problem.normalize_natural(np.asarray(values, dtype=np.float64).reshape(-1, problem.n_obj))
    if feasible is not None:
        norm = norm[np.asarray(feasible, dtype=bool)]
    return indicators.hypervolume(norm, problem.ref_point)


def pareto_indices(problem: Problem, values: ArrayLike, feasible: ArrayLike | None = None) -> IntArray:
    """Row indices ``(k,)`` (ascending) of the feasible, finite, non-dominated rows of natural ``values``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1, problem.n_obj)
    F = problem.to_internal(v)
    if feasible is not None:
        F[~np.asarray(feasible, dtype=bool)] = np.nan
    return np.flatnonzero(indicators.nondominated_mask(F)).astype(np.int64)


# ------------------------------------------------------------------------------------------------------
# named problems
# ------------------------------------------------------------------------------------------------------
def _bi(device: str, metric: str = "throughput") -> Problem:
    suffix = "_latency" if metric == "latency" else ""
    sense = "min" if metric == "latency" else "max"
    return Problem(
        f"acc_{device}{suffix}",
        ("accuracy", f"{metric}_{device}"),
        description=f"max accuracy, {sense} {metric} on {device.upper()}",
    )


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem("acc", ("accuracy",), description="max accuracy"),
        *(_bi(d) for d in ("a100", "3090", "tpuv2", "tpuv3", "zcu102", "vck190")),
        _bi("zcu102", "latency"),
        _bi("vck190", "latency"),
        Problem(
            "acc_a100_zcu102_latency",
            ("accuracy", "throughput_a100", "latency_zcu102"),
            description="max accuracy, max throughput on A100, min latency on ZCU102",
        ),
        Problem(
            "acc_constrained_a100",
            ("accuracy",),
            (Constraint("throughput_a100", ">=", 10000.0), Constraint("latency_zcu102", "<=", 5.0)),
            description="max accuracy s.t. throughput_a100 >= 10000 img/s and latency_zcu102 <= 5 ms",
        ),
    ]
}


def get_problem(name: str | Problem) -> Problem:
    """A named problem (a :class:`Problem` is returned unchanged); an unknown name lists the known ones."""
    if isinstance(name, Problem):
        return name
    if name not in PROBLEMS:
        raise UnknownProblemError(f"unknown problem {name!r}; named problems: {', '.join(PROBLEMS)}")
    return PROBLEMS[name]


def make_problem(
    name: str,
    objectives: str | Sequence[str],
    constraints: Iterable[str | Constraint | Mapping[str, Any]] = (),
    eval_mode: str = "mean",
    description: str = "",
) -> Problem:
    """Build a problem from parts; a *named* problem must keep its definition (only ``eval_mode`` may change).

    Raises :class:`ProblemError` naming an unknown target, an impossible constraint, or a named problem whose
    objectives/constraints were changed (give a custom definition its own ``name``).
    """
    objs = (objectives,) if isinstance(objectives, str) else tuple(str(o) for o in objectives)
    problem = Problem(
        str(name), objs, tuple(Constraint.parse(c) for c in constraints), str(eval_mode), description
    )
    named = PROBLEMS.get(problem.name)
    if named is not None and (
        named.objectives != problem.objectives or set(named.constraints) != set(problem.constraints)
    ):
        raise ProblemError(
            f"problem {problem.name!r} is a named problem (objectives {list(named.objectives)}, constraints "
            f"{[str(c) for c in named.constraints]}); a changed definition needs its own name, "
            f"e.g. problem.name=my_{problem.name}"
        )
    if named is not None and not description:
        problem = Problem(
            named.name, named.objectives, named.constraints, problem.eval_mode, named.description
        )
    return problem


def problem_from_config(cfg: Mapping[str, Any]) -> Problem:
    """From a mapping ``{name, objectives, constraints, eval_mode, description}`` (Hydra ``problem``)."""
    if "name" not in cfg:
        raise ProblemError("problem config needs a 'name'")
    name = str(cfg["name"])
    if "objectives" not in cfg or cfg["objectives"] is None:
        return get_problem(name).with_eval_mode(_mode(cfg.get("eval_mode", "mean")))
    return make_problem(
        name,
        list(cfg["objectives"]),
        list(cfg.get("constraints") or ()),
        _mode(cfg.get("eval_mode", "mean")),
        str(cfg.get("description") or ""),
    )


def _mode(value: Any) -> str:
    # Hydra structured configs hand over an Enum member
    from enum import Enum

    return str(value.value if isinstance(value, Enum) else value)


__all__ = [
    "EVAL_MODES",
    "NORMALIZATION",
    "PROBLEMS",
    "REF_POINT_VALUE",
    "TARGET_NAMES",
    "Constraint",
    "ConstraintRangeWarning",
    "Problem",
    "ProblemError",
    "UnknownProblemError",
    "get_problem",
    "hypervolume",
    "make_problem",
    "normalization",
    "pareto_indices",
    "problem_from_config",
    "sanity_range",
]
