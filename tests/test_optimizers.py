"""Random search, regularized evolution and NSGA-II beyond the protocol (see the conformance suite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmark import space
from benchmark.synthetic import SyntheticBenchmark
from nasopt.testing import evaluate, load_state_tree, make_problem, run_loop, save_state_tree
from optimizers import evolution, make_optimizer, random_search
from optimizers.evolution import RegularizedEvolution
from optimizers.nsga2 import NSGA2, ArchitectureProblem, CategoricalMutation
from optimizers.random_search import RandomSearch
from optimizers.tournament import (
    multi_objective_winners,
    multi_objective_winners_reference,
    single_objective_winners,
    tournament_winners,
)

BENCH = SyntheticBenchmark()
ACC = make_problem("acc")
ACC_A100 = make_problem("acc_a100")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- shared argument handling --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rs", "re", "nsga2"])
def test_ask_zero_and_bad_n(name: str) -> None:
    opt = make_optimizer(name, ACC, rng())
    empty = opt.ask(0)
    assert empty.shape == (0, 28) and empty.dtype == np.int64
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n must be a non-negative integer"):
            opt.ask(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["rs", "re", "nsga2"])
def test_tell_rejects_genes_outside_space(name: str) -> None:
    opt = make_optimizer(name, ACC, rng())
    X = opt.ask(3)
    F = evaluate(BENCH, ACC, X)
    X[1, 2] = 7
    with pytest.raises(ValueError, match="outside the space"):
        opt.tell(X, F)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("rs", {"deduplicate": "yes"}, "deduplicate"),
        ("rs", {"max_resample": -1}, "max_resample"),
        ("re", {"population_size": 1}, "population_size"),
        ("re", {"sample_size": 30}, "sample_size=30 must be <= population_size=20"),
        ("re", {"sample_size": 0}, "sample_size"),
        ("re", {"mutation_genes": 29}, "mutation_genes"),
        ("re", {"mutation_genes": True}, "mutation_genes"),
        ("nsga2", {"population_size": 1}, "population_size"),
        ("nsga2", {"n_offsprings": 0}, "n_offsprings"),
        ("nsga2", {"crossover_prob": 1.5}, "crossover_prob"),
        ("nsga2", {"mutation_prob": "high"}, "mutation_prob"),
    ],
)
def test_bad_hyperparameters_are_named(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, ACC, rng(), **params)


@pytest.mark.parametrize("name", ["rs", "re", "nsga2"])
def test_unknown_hyperparameter_raises(name: str) -> None:
    with pytest.raises(TypeError, match="bogus"):
        make_optimizer(name, ACC, rng(), bogus=1)


@pytest.mark.parametrize(
    ("name", "params"), [("re", {"population_size": 10}), ("nsga2", {"population_size": 10})]
)
def test_load_state_from_differently_configured_optimizer_raises(name: str, params: dict[str, Any]) -> None:
    state = make_optimizer(name, ACC, rng(), **params).state()
    with pytest.raises(ValueError, match="population_size"):
        make_optimizer(name, ACC, rng()).load_state(state)
    with pytest.raises(ValueError, match="n_obj"):
        make_optimizer(name, ACC_A100, rng(), **params).load_state(state)


# --- random search -------------------------------------------------------------------------------------
def _tiny_sampler(monkeypatch: pytest.MonkeyPatch, n_distinct: int) -> None:
    """Make random search draw from only ``n_distinct`` architectures."""
    pool = space.sample(n_distinct, rng(42))

    def sample(n: int, g: np.random.Generator) -> np.ndarray:
        out: np.ndarray = pool[g.integers(0, n_distinct, size=n)].copy()
        return out

    monkeypatch.setattr(random_search.space, "sample", sample)


def test_random_search_never_repeats_a_proposal(monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_sampler(monkeypatch, 6)
    opt = RandomSearch(ACC, rng())
    X = np.concatenate([opt.ask(2), opt.ask(1), opt.ask(3)])
    assert len(np.unique(space.arch_id(X))) == 6


def test_random_search_without_dedup_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_sampler(monkeypatch, 6)
    opt = RandomSearch(ACC, rng(), deduplicate=False)
    X = np.concatenate([opt.ask(4) for _ in range(5)])
    assert len(np.unique(space.arch_id(X))) < 20


def test_random_search_skips_told_architectures(monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_sampler(monkeypatch, 6)
    opt = RandomSearch(ACC, rng())
    foreign = space.sample(4, rng(42))  # the first four architectures of the tiny pool
    opt.tell(foreign, evaluate(BENCH, ACC, foreign))
    X = opt.ask(2)
    assert not np.isin(space.arch_id(X), space.arch_id(foreign)).any()


def test_random_search_is_uniform_per_gene() -> None:
    X = RandomSearch(ACC, rng()).ask(6000)
    for j, card in enumerate(space.CARDINALITIES):
        freq = np.bincount(X[:, j], minlength=card) / len(X)
        np.testing.assert_allclose(freq, 1.0 / card, atol=0.03)


# --- regularized evolution -----------------------------------------------------------------------------
def test_re_random_until_population_full(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = evolution.tournament_winners

    def spy(F: np.ndarray, feasible: np.ndarray, samples: np.ndarray) -> np.ndarray:
        calls.append(samples.shape[0])
        return real(F, feasible, samples)

    monkeypatch.setattr(evolution, "tournament_winners", spy)
    opt = RegularizedEvolution(ACC, rng(), population_size=10, sample_size=3)
    run_loop(opt, BENCH, ACC, 12, 4, fail_fn=lambda X: np.arange(len(X)) == 0)  # 9 non-failed so far
    assert calls == []
    run_loop(opt, BENCH, ACC, 4, 4)  # now full
    opt.ask(5)
    assert calls == [5]


@pytest.mark.parametrize("problem_name", ["acc", "acc_a100"])
@pytest.mark.parametrize("genes", [1, 3])
def test_re_children_are_mutants_of_members(problem_name: str, genes: int) -> None:
    problem = make_problem(problem_name)
    opt = RegularizedEvolution(problem, rng(1), population_size=15, sample_size=5, mutation_genes=genes)
    run_loop(opt, BENCH, problem, 200, [1, 7])
    pop_X, _, _ = opt.population
    children = opt.ask(40)
    hamming = (children[:, None, :] != pop_X[None, :, :]).sum(axis=2)
    assert (hamming == genes).any(axis=1).all()


def test_re_avoids_population_and_batch_duplicates() -> None:
    opt = RegularizedEvolution(ACC, rng(4), population_size=20, sample_size=10)
    run_loop(opt, BENCH, ACC, 1500, 10)  # converges: mutants of the best collide often
    for _ in range(20):
        pop_X, _, _ = opt.population
        X = opt.ask(10)
        ids = space.arch_id(X)
        assert len(np.unique(ids)) == 10
        assert not np.isin(ids, space.arch_id(pop_X)).any()
        opt.tell(X, evaluate(BENCH, ACC, X))


def test_re_ageing_keeps_most_recent_non_failed() -> None:
    opt = RegularizedEvolution(ACC_A100, rng(), population_size=8, sample_size=3)
    X = space.sample(30, rng(5))
    F = evaluate(BENCH, ACC_A100, X)
    F[[3, 27]] = np.nan
    fe = np.arange(30) % 4 != 0
    opt.tell(X[:13], F[:13], fe[:13])
    opt.tell(X[13:], F[13:], fe[13:])
    keep = np.flatnonzero(~np.isnan(F).any(axis=1))[-8:]
    pop_X, pop_F, pop_fe = opt.population
    np.testing.assert_array_equal(pop_X, X[keep])
    np.testing.assert_array_equal(pop_F, F[keep])
    np.testing.assert_array_equal(pop_fe, fe[keep])


@pytest.mark.parametrize("name", ["re", "nsga2"])
def test_ask_before_tell_batches(name: str) -> None:
    opt = make_optimizer(name, ACC_A100, rng(), population_size=10)
    X = np.concatenate([opt.ask(7) for _ in range(4)])  # several asks with nothing told yet
    assert space.is_valid(X).all() and len(np.unique(space.arch_id(X))) == 28
    opt.tell(X, evaluate(BENCH, ACC_A100, X))
    assert opt.ask(3).shape == (3, 28)


# tournament winners (properties) ---------------------------------------------------------------------------
@st.composite
def tournaments(draw: st.DrawFn, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = draw(st.integers(2, 25))
    s = draw(st.integers(1, p))
    t = draw(st.integers(1, 6))
    F = draw(hnp.arrays(np.float64, (p, m), elements=st.integers(-5, 5).map(float)))
    fe = draw(hnp.arrays(np.bool_, (p,)))
    seed = draw(st.integers(0, 2**32 - 1))
    samples = np.argsort(np.random.default_rng(seed).random((t, p)), axis=1)[:, :s]
    return F, fe, samples


@settings(max_examples=150, deadline=None)
@given(tournaments(1))
def test_single_objective_winner_is_best_of_its_sample(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    F, fe, samples = case
    win = single_objective_winners(F[:, 0], fe, samples)
    np.testing.assert_array_equal(win, tournament_winners(F, fe, samples))
    for t, w in enumerate(win):
        cand = samples[t]
        assert w in cand
        if fe[cand].any():
            assert fe[w]
            assert F[w, 0] == F[cand[fe[cand]], 0].min()
        else:
            assert F[w, 0] == F[cand, 0].min()


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 3).flatmap(tournaments))
def test_multi_objective_winner_is_non_dominated_in_its_sample(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    F, fe, samples = case
    win = multi_objective_winners(F, fe, samples)
    np.testing.assert_array_equal(win, tournament_winners(F, fe, samples))
    for t, w in enumerate(win):
        cand = samples[t]
        assert w in cand
        if fe[cand].any():
            assert fe[w]
            cand = cand[fe[cand]]
        dominates = np.all(F[cand] <= F[w], axis=1) & np.any(F[cand] < F[w], axis=1)
        assert not dominates.any()


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 3).flatmap(tournaments), st.booleans())
def test_vectorised_multi_objective_winners_match_pymoo_per_tournament(
    case: tuple[np.ndarray, np.ndarray, np.ndarray], continuous: bool
) -> None:
    F, fe, samples = case
    if continuous:  # few ties instead of many
        F = F + np.random.default_rng(int(samples.sum())).random(F.shape)
    samples = np.tile(samples, (8, 1))  # enough tournaments to take the vectorised path
    np.testing.assert_array_equal(
        multi_objective_winners(F, fe, samples), multi_objective_winners_reference(F, fe, samples)
    )


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 3).flatmap(tournaments))
def test_reference_winners_match_pymoo_sorting_and_crowding(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F, fe, samples = case
    want = []
    for cand in samples:
        if fe[cand].any():
            cand = cand[fe[cand]]
        front = np.asarray(NonDominatedSorting().do(F[cand], only_non_dominated_front=True), dtype=np.int64)
        if front.size <= 2:
            want.append(cand[front[0]])
        else:
            want.append(cand[front[int(np.argmax(calc_crowding_distance(F[cand][front])))]])
    np.testing.assert_array_equal(multi_objective_winners_reference(F, fe, samples), want)


def test_multi_objective_winner_prefers_crowding_extremes() -> None:
    # all on one front: the boundary points have infinite crowding distance
    f1 = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    F = np.stack([f1, 4.0 - f1], axis=1)
    samples = np.array([[2, 1, 4, 3, 0], [1, 2, 3, 0, 4]])
    win = multi_objective_winners(F, np.ones(5, dtype=bool), samples)
    assert set(win.tolist()) <= {0, 4}


# --- NSGA-II -------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.3, 1.0]))
def test_categorical_mutation_changes_to_other_values(seed: int, prob: float) -> None:
    g = np.random.default_rng(seed)
    X = space.sample(20, g)
    Y = CategoricalMutation(prob)._do(ArchitectureProblem(1), X, random_state=g)
    assert space.is_valid(Y).all()
    changed = Y != X
    if prob == 0.0:
        assert not changed.any()
    if prob == 1.0:
        assert changed.all()


def test_nsga2_leaves_global_random_state_alone() -> None:
    before = np.random.get_state(legacy=False)
    opt = NSGA2(ACC_A100, rng(), population_size=10)
    run_loop(opt, BENCH, ACC_A100, 100, [7, 3], fail_fn=lambda X: space.arch_id(X) % 4 == 0)
    after = np.random.get_state(legacy=False)
    assert isinstance(before, dict) and isinstance(after, dict)
    np.testing.assert_array_equal(before["state"]["key"], after["state"]["key"])
    assert before["state"]["pos"] == after["state"]["pos"]


def test_nsga2_interleaved_instances_do_not_share_randomness() -> None:
    def step(opt: NSGA2, X: np.ndarray) -> None:
        opt.tell(X, evaluate(BENCH, ACC_A100, X))

    alone = NSGA2(ACC_A100, rng(8), population_size=10)
    ref = []
    for _ in range(3):
        ref.append(alone.ask(10))
        step(alone, ref[-1])
    a = NSGA2(ACC_A100, rng(8), population_size=10)
    b = NSGA2(ACC_A100, rng(8), population_size=10)
    for r in ref:
        Xa, Xb = a.ask(10), b.ask(10)
        np.testing.assert_array_equal(Xa, r)
        np.testing.assert_array_equal(Xb, r)
        step(a, Xa)
        step(b, Xb)


def test_nsga2_runs_pymoo_generations() -> None:
    opt = NSGA2(ACC_A100, rng(3), population_size=10)
    first = opt.ask(10)
    opt.tell(first, evaluate(BENCH, ACC_A100, first))
    second = opt.ask(10)
    algo = opt._algorithm()
    assert algo.is_initialized and algo.n_iter == 2 and len(algo.pop) == 10
    # pymoo's duplicate elimination: offspring differ from each other and from their parents
    ids = space.arch_id(second)
    assert len(np.unique(ids)) == 10
    assert not np.isin(ids, space.arch_id(first)).any()


def test_nsga2_odd_batches_grow_the_generation() -> None:
    opt = NSGA2(ACC, rng(), population_size=10)
    X, _, _ = run_loop(opt, BENCH, ACC, 7 * 4, 7)  # 10 + extras, then the next generation
    state = opt.state()
    assert state["initialized"]
    assert len(np.unique(space.arch_id(X[:14]))) == 14  # 10 initial + 4 extra samples, all distinct


def test_nsga2_failed_rank_last() -> None:
    opt = NSGA2(ACC_A100, rng(2), population_size=10)
    run_loop(
        opt,
        BENCH,
        ACC_A100,
        60,
        10,
        fail_fn=lambda X: space.arch_id(X) % 3 == 0,
        feasible_fn=lambda X, F: space.arch_id(X) % 2 == 0,
    )
    opt.ask(1)  # hands the last generation to pymoo
    state = opt.state()
    G = state["pop_G"]
    assert set(np.unique(G).tolist()) <= {0.0, 1.0, 2.0}
    # enough non-failed individuals were evaluated, so no failed one survives; feasible ones come first
    assert not (G == 2.0).any()
    assert np.all(np.diff(G) >= 0)


def test_nsga2_accepts_results_it_did_not_ask_for() -> None:
    opt = NSGA2(ACC, rng(), population_size=10)
    asked = opt.ask(10)
    foreign = space.sample(3, rng(77))
    X = np.concatenate([foreign, asked[::-1]])
    opt.tell(X, evaluate(BENCH, ACC, X))
    state = opt.state()
    assert state["gen_X"].shape == (13, 28) and state["gen_told"].all()
    nxt = opt.ask(10)
    assert len(opt._algorithm().pop) == 13  # the first survival keeps all of generation 0
    assert space.is_valid(nxt).all()


def test_nsga2_checkpoint_between_ask_and_tell(tmp_path: Path) -> None:
    orig = NSGA2(ACC_A100, rng(6), population_size=10)
    run_loop(orig, BENCH, ACC_A100, 23, [7, 3])
    X = orig.ask(6)
    save_state_tree(orig.state(), tmp_path)
    twin = NSGA2(ACC_A100, rng(123), population_size=10)
    twin.load_state(load_state_tree(tmp_path))
    F = evaluate(BENCH, ACC_A100, X)
    orig.tell(X, F)
    twin.tell(X, F)
    a, _, _ = run_loop(orig, BENCH, ACC_A100, 50, [4, 9])
    b, _, _ = run_loop(twin, BENCH, ACC_A100, 50, [4, 9])
    np.testing.assert_array_equal(a, b)


def test_re_checkpoint_between_ask_and_tell(tmp_path: Path) -> None:
    orig = RegularizedEvolution(ACC_A100, rng(6), population_size=10, sample_size=4)
    run_loop(orig, BENCH, ACC_A100, 23, [7, 3])
    X = orig.ask(6)
    save_state_tree(orig.state(), tmp_path)
    twin = RegularizedEvolution(ACC_A100, rng(123), population_size=10, sample_size=4)
    twin.load_state(load_state_tree(tmp_path))
    F = evaluate(BENCH, ACC_A100, X)
    orig.tell(X, F)
    twin.tell(X, F)
    a, _, _ = run_loop(orig, BENCH, ACC_A100, 50, [4, 9])
    b, _, _ = run_loop(twin, BENCH, ACC_A100, 50, [4, 9])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("told", [20, 27])  # at a generation boundary, and inside a generation
def test_nsga2_restore_rebuilds_pymoos_state_through_public_attributes(told: int, tmp_path: Path) -> None:
    """Pins what the restore relies on in pymoo (no private call): a fresh algorithm given ``pop`` (with
    rank/crowding), ``is_initialized``, ``n_iter`` and ``evaluator.n_eval`` continues the run exactly."""
    orig = NSGA2(ACC_A100, rng(4), population_size=10)
    run_loop(orig, BENCH, ACC_A100, told, [7, 3])
    asked = orig.ask(1)  # hands a complete generation to pymoo (or grows the current one)
    save_state_tree(orig.state(), tmp_path)
    twin = NSGA2(ACC_A100, rng(99), population_size=10)
    twin.load_state(load_state_tree(tmp_path))
    for opt in (orig, twin):
        opt.tell(asked, evaluate(BENCH, ACC_A100, asked))
    a, b = orig._algorithm(), twin._algorithm()
    assert b.is_initialized == a.is_initialized and b.n_iter == a.n_iter
    assert b.evaluator.n_eval == a.evaluator.n_eval
    for key in ("X", "F", "G", "rank", "crowding"):
        np.testing.assert_array_equal(np.asarray(b.pop.get(key)), np.asarray(a.pop.get(key)))
    assert b.random_state is twin.rng  # pymoo draws from the optimizer's own generator
    Xo, _, _ = run_loop(orig, BENCH, ACC_A100, 40, [5, 10])
    Xt, _, _ = run_loop(twin, BENCH, ACC_A100, 40, [5, 10])
    np.testing.assert_array_equal(Xo, Xt)
    run_loop(orig, BENCH, ACC_A100, 30, 10)
    run_loop(twin, BENCH, ACC_A100, 30, 10)  # whole generations: pymoo's tell recomputes its incumbent
    assert b.opt is not None
    np.testing.assert_array_equal(np.asarray(b.opt.get("X")), np.asarray(a.opt.get("X")))


# --- registry ----------------------------------------------------------------------------------------------
def test_unknown_optimizer_is_a_configuration_and_key_error() -> None:
    from benchmark.errors import ConfigurationError
    from optimizers import UnknownOptimizerError, optimizer_class

    with pytest.raises(UnknownOptimizerError, match="unknown optimizer 'nope'; available: rs, re") as info:
        optimizer_class("nope")
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, KeyError)


def test_check_optimizer_params_by_name_class_or_factory() -> None:
    from benchmark.errors import ConfigurationError
    from optimizers import check_optimizer_params

    check_optimizer_params("re", {"population_size": 10})
    with pytest.raises(ConfigurationError, match=r"optimizer 're' has no parameter\(s\) 'bogus'; its param"):
        check_optimizer_params("re", {"bogus": 1})
    with pytest.raises(ConfigurationError, match=r"optimizer 'rs' .*: deduplicate, max_resample$"):
        check_optimizer_params(RandomSearch, {"bogus": 1})
    with pytest.raises(ConfigurationError, match="optimizer 'mine' has no parameter"):
        factory = lambda problem, rng, *, k=1: RandomSearch(problem, rng)  # noqa: E731
        check_optimizer_params(factory, {"j": 2}, label="mine")
