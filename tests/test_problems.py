"""Problems: named definitions, senses, fixed normalisation, constraints, hypervolume, error messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.targets import TARGETS
from nasopt.problems import (
    NORMALIZATION,
    PROBLEMS,
    Constraint,
    Problem,
    ProblemError,
    UnknownProblemError,
    get_problem,
    hypervolume,
    make_problem,
    pareto_indices,
)


def test_named_problems_exist_with_expected_objectives() -> None:
    expected = {
        "acc": ("accuracy",),
        "acc_a100": ("accuracy", "throughput_a100"),
        "acc_3090": ("accuracy", "throughput_3090"),
        "acc_tpuv2": ("accuracy", "throughput_tpuv2"),
        "acc_tpuv3": ("accuracy", "throughput_tpuv3"),
        "acc_zcu102": ("accuracy", "throughput_zcu102"),
        "acc_vck190": ("accuracy", "throughput_vck190"),
        "acc_zcu102_latency": ("accuracy", "latency_zcu102"),
        "acc_vck190_latency": ("accuracy", "latency_vck190"),
        "acc_a100_zcu102_latency": ("accuracy", "throughput_a100", "latency_zcu102"),
        "acc_constrained_a100": ("accuracy",),
    }
    assert {k: p.objectives for k, p in PROBLEMS.items()} == expected
    c = PROBLEMS["acc_constrained_a100"].constraints
    assert [str(x) for x in c] == ["throughput_a100 >= 10000", "latency_zcu102 <= 5"]


def test_normalisation_constants_and_ref_point() -> None:
    p = get_problem("acc_zcu102_latency")
    info = p.info
    assert info.maximize == (True, False)
    # internal minimisation: maximised targets negated
    assert info.ideal == (-70.0, 1.5)
    assert info.nadir == (-50.0, 25.0)
    assert info.ref_point == (1.0, 1.0)
    nat = np.array([[70.0, 1.5], [50.0, 25.0], [60.0, 13.25]])
    np.testing.assert_allclose(p.normalize_natural(nat), np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]))
    # the published table, natural units (ideal, nadir)
    assert NORMALIZATION["throughput_a100"] == (32000.0, 4000.0)
    assert NORMALIZATION["latency_vck190"] == (1.5, 12.0)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sense_follows_targets(name: str) -> None:
    p = PROBLEMS[name]
    assert p.maximize == tuple(TARGETS[t].maximize for t in p.objectives)
    v = np.array([[60.0] * p.n_obj])
    internal = p.to_internal(v)
    assert np.all(internal[0] == np.where(p.maximize, -60.0, 60.0))
    np.testing.assert_array_equal(p.to_natural(internal), v)


@settings(max_examples=50, deadline=None)
@given(
    acc=st.lists(st.floats(40, 80), min_size=1, max_size=30),
    seed=st.integers(0, 2**31),
)
def test_normalisation_is_monotone_in_the_good_direction(acc: list[float], seed: int) -> None:
    """Better natural values (higher accuracy/throughput, lower latency) map to smaller normalised ones."""
    p = get_problem("acc_a100_zcu102_latency")
    rng = np.random.default_rng(seed)
    n = len(acc)
    nat = np.column_stack([acc, rng.uniform(1000, 40000, n), rng.uniform(0.5, 30, n)])
    better = nat + np.array([1.0, 100.0, -0.1])
    assert np.all(p.normalize_natural(better) < p.normalize_natural(nat))


def test_pareto_keeps_high_accuracy_and_low_latency() -> None:
    p = get_problem("acc_zcu102_latency")
    nat = np.array([[68.0, 3.0], [60.0, 2.0], [55.0, 10.0], [66.0, 8.0]])
    assert pareto_indices(p, nat).tolist() == [0, 1]
    q = get_problem("acc_zcu102")  # throughput is maximised
    assert pareto_indices(q, nat).tolist() == [0, 2, 3]


def test_pareto_ignores_infeasible_and_nan_rows() -> None:
    p = get_problem("acc_zcu102_latency")
    nat = np.array([[68.0, 3.0], [70.0, 1.0], [np.nan, 1.0], [60.0, 2.0]])
    fe = np.array([True, False, True, True])
    assert pareto_indices(p, nat, fe).tolist() == [0, 3]


def test_hypervolume_fixed_reference_and_nadir() -> None:
    p = get_problem("acc_zcu102_latency")
    one = np.array([[60.0, 3.0]])
    expected = (1 - 0.5) * (1 - (3.0 - 1.5) / 23.5)
    assert hypervolume(p, one) == pytest.approx(expected)
    # beyond the nadir (accuracy below 50) contributes nothing
    assert hypervolume(p, np.array([[45.0, 2.0]])) == 0.0
    assert hypervolume(p, np.vstack([one, [[45.0, 2.0]]])) == pytest.approx(expected)
    # infeasible points are left out
    assert hypervolume(p, np.vstack([one, [[69.0, 1.6]]]), [True, False]) == pytest.approx(expected)
    # single objective: 1 - normalised best
    assert hypervolume(get_problem("acc"), np.array([[65.0], [55.0]])) == pytest.approx(0.75)


def test_constraint_parsing_and_feasibility() -> None:
    c = Constraint.parse("throughput_a100>=10000")
    assert (c.target, c.op, c.bound) == ("throughput_a100", ">=", 10000.0)
    assert Constraint.parse({"target": "latency_zcu102", "op": "<=", "bound": 5}) == Constraint(
        "latency_zcu102", "<=", 5.0
    )
    p = get_problem("acc_constrained_a100")
    means = {
        "throughput_a100": np.array([12000.0, 9000.0, 15000.0, np.nan]),
        "latency_zcu102": np.array([4.0, 4.0, 6.0, 1.0]),
    }
    assert p.feasible(means).tolist() == [True, False, False, False]
    assert p.query_targets == ("accuracy", "throughput_a100", "latency_zcu102")
    assert p.constraint_targets == ("throughput_a100", "latency_zcu102")
    np.testing.assert_allclose(c.violation(np.array([9000.0, 11000.0])), [1000.0, 0.0])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("throughput_a100 >= 1e9", "impossible constraint"),
        ("latency_zcu102 <= -1", "impossible constraint"),
        ("latency_zcu102 <= 0", "impossible constraint"),
        ("accuracy >= 101", "impossible constraint"),
        ("throughput_foo >= 10", "unknown benchmark target 'throughput_foo'"),
        ("latency_zcu102 < 5", "not of the form"),
        ("train_time <= 100", "no fixed normalisation box"),
    ],
)
def test_bad_constraints_are_clear_errors(text: str, fragment: str) -> None:
    with pytest.raises(ProblemError, match=fragment):
        Constraint.parse(text)


def test_bad_problems_are_clear_errors() -> None:
    with pytest.raises(ProblemError, match="unknown benchmark target 'accuracyy'"):
        Problem("x", ("accuracyy",))
    with pytest.raises(ProblemError, match="repeat"):
        Problem("x", ("accuracy", "accuracy"))
    with pytest.raises(ProblemError, match="eval_mode"):
        Problem("x", ("accuracy",), eval_mode="median")
    with pytest.raises(UnknownProblemError, match=r"unknown problem 'acc_h100'.*acc_a100"):
        get_problem("acc_h100")
    # a named problem keeps its definition; only eval_mode may change
    with pytest.raises(ProblemError, match="needs its own name"):
        make_problem("acc_a100", ["accuracy", "latency_zcu102"])
    assert make_problem("acc_a100", ["accuracy", "throughput_a100"], eval_mode="noisy").eval_mode == "noisy"
    custom = make_problem("mine", ["accuracy", "throughput_a100"], ["latency_zcu102 <= 4"])
    assert custom.info.n_constraints == 1
