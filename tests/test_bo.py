"""Bayesian optimisation (optimizers/bo/): no duplicates, constraints, determinism, state, 1-3 objectives.

Every test uses tiny candidate pools, few MC samples and capped hyper-parameter fits so the whole file
runs in well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymoo.indicators.hv import HV

from benchmark import space
from benchmark.errors import ConfigurationError
from benchmark.synthetic import SyntheticBenchmark
from nasopt.testing import evaluate, load_state_tree, make_problem, save_state_tree
from optimizers import make_optimizer
from optimizers.base import ProblemInfo
from optimizers.bo import BayesianOptimization
from optimizers.bo.acquisition import OutcomeSpace
from optimizers.bo.candidates import balanced_design
from optimizers.bo.models import ENCODINGS, encode, fit_model_list, gp_params, set_gp_params
from optimizers.indicators import pareto_rank

BENCH = SyntheticBenchmark()

#: small, fast settings; every test builds on these
FAST: dict[str, Any] = {
    "n_init": 6,
    "n_random": 40,
    "n_mutants": 2,
    "n_anchors": 4,
    "local_steps": 1,
    "local_top": 2,
    "greedy_pool": 8,
    "mc_samples": 16,
    "screen_samples": 8,
    "max_baseline": 8,
    "fit_maxiter": 15,
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny GPs run fastest (and least disturbed by other processes) on one thread; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(problem: ProblemInfo | str, seed: int = 0, **extra: Any) -> BayesianOptimization:
    info = make_problem(problem) if isinstance(problem, str) else problem
    opt = make_optimizer("bo", info, np.random.default_rng(seed), **{**FAST, **extra})
    assert isinstance(opt, BayesianOptimization)
    return opt


def loop(opt: BayesianOptimization, sizes: list[int], feasible_fn: Any = None) -> list[np.ndarray]:
    """Ask -> synthetic oracle -> tell, once per batch size; returns the proposals."""
    out = []
    for n in sizes:
        X = opt.ask(n)
        F = evaluate(BENCH, opt.problem, X)
        fe = None if feasible_fn is None else feasible_fn(X)
        opt.tell(X, F, fe)
        out.append(X)
    return out


# -- pieces -----------------------------------------------------------------------------------------------
def test_balanced_design_uses_every_value_equally() -> None:
    X = balanced_design(12, np.random.default_rng(0))
    assert X.shape == (12, 28) and space.is_valid(X).all()
    for j, card in enumerate(space.CARDINALITIES.tolist()):
        counts = np.bincount(X[:, j], minlength=card)
        assert counts.max() - counts.min() <= 1, (j, counts)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_encodings_distinguish_architectures(encoding: str) -> None:
    X = space.unique(space.sample(50, np.random.default_rng(1)))[0]
    Z = encode(X, encoding)
    assert Z.dtype == torch.float64 and Z.shape[0] == X.shape[0]
    assert torch.unique(Z, dim=0).shape[0] == X.shape[0]  # injective
    if encoding == "ordinal":
        assert float(Z.min()) >= 0.0 and float(Z.max()) <= 1.0
    if encoding == "onehot":
        assert torch.all(Z.sum(dim=1) == 28)


def test_ordinal_encoding_follows_real_values() -> None:
    x = space.reference("efficientnet_b0")[None, :]
    z = encode(x, "ordinal")[0].numpy()
    dec = space.decode(x)
    np.testing.assert_allclose(z[0::4], (dec["e"][0] - 1) / 5)  # expansion 1..6
    np.testing.assert_allclose(z[1::4], (dec["k"][0] - 3) / 2)  # kernel 3..5


@given(st.integers(1, 6), st.integers(0, 2**16))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pareto_rank_zero_is_the_pareto_front(m: int, seed: int) -> None:
    F = np.random.default_rng(seed).integers(0, 5, size=(12, min(m, 3))).astype(float)
    ranks = pareto_rank(F)
    for i in range(len(F)):
        dominated = any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(len(F)))
        assert (ranks[i] == 0) == (not dominated)


def test_outcome_space_round_trip_with_log_targets() -> None:
    info = make_problem("acc_a100_zcu102")
    outcomes = OutcomeSpace(info.ideal, info.nadir, info.maximize, (False, True, True))
    F = evaluate(BENCH, info, space.sample(20, np.random.default_rng(2)))
    Z = outcomes.to_model(F)
    np.testing.assert_allclose(Z[:, 1], np.log(-F[:, 1]))  # log throughput
    np.testing.assert_allclose(Z[:, 2], np.log(F[:, 2]))  # log latency
    back = outcomes.to_objective(torch.from_numpy(Z)).numpy()
    np.testing.assert_allclose(back, -info.normalize(F), rtol=1e-12, atol=1e-12)


def test_gp_params_round_trip_and_fitting_beats_the_defaults() -> None:
    X = space.sample(30, np.random.default_rng(3))
    y = torch.from_numpy(np.log(BENCH.query(X, ["throughput_a100"])["throughput_a100"].mean))[:, None]
    model, params = fit_model_list(encode(X, "ordinal"), [y], "ordinal", maxiter=30)
    fresh, _ = fit_model_list(encode(X, "ordinal"), [y], "ordinal", fit=False)
    assert set_gp_params(fresh.models[0], params[0]) == len(params[0])
    for name, value in gp_params(fresh.models[0]).items():
        np.testing.assert_array_equal(value, params[0][name])
    # a fitted model predicts better than the prior defaults
    Xt = space.sample(200, np.random.default_rng(4))
    yt = np.log(BENCH.query(Xt, ["throughput_a100"])["throughput_a100"].mean)
    default, _ = fit_model_list(encode(X, "ordinal"), [y], "ordinal", fit=False)
    with torch.no_grad():
        err_fit = np.abs(model.models[0].posterior(encode(Xt, "ordinal")).mean.numpy()[:, 0] - yt).mean()
        err_def = np.abs(default.models[0].posterior(encode(Xt, "ordinal")).mean.numpy()[:, 0] - yt).mean()
    assert err_fit < err_def


# -- behaviour --------------------------------------------------------------------------------------------
def test_bad_hyperparameters_are_rejected_with_their_name() -> None:
    with pytest.raises(ValueError, match="encoding"):
        build("acc", encoding="hamming")
    with pytest.raises(ValueError, match="n_init"):
        build("acc", n_init=0)
    with pytest.raises(ValueError, match="constraint_eta"):
        build("acc", constraint_eta=-1.0)


@pytest.mark.parametrize("problem_name", ["acc", "acc_a100", "acc_a100_zcu102"])
def test_end_to_end_never_duplicates_and_improves(problem_name: str) -> None:
    """1, 2 and 3 objectives: valid, distinct, never re-proposed; better than as many random samples."""
    opt = build(problem_name, seed=1)
    props = loop(opt, [4, 4, 3, 4, 4])
    X = np.concatenate(props)
    assert X.shape == (19, 28) and X.dtype == np.int64 and space.is_valid(X).all()
    assert len(set(space.arch_id(X).tolist())) == len(X)
    assert opt.last_times.n_train > 0 and opt.last_times.n_scored > 0  # the model was used
    info = opt.problem
    hv = HV(ref_point=np.asarray(info.ref_point))

    def quality(X: np.ndarray) -> float:
        F = info.normalize(evaluate(BENCH, info, X))
        return float(-F[:, 0].min()) if info.n_obj == 1 else float(hv(F))

    randoms = [quality(space.sample(len(X), np.random.default_rng(s))) for s in range(5)]
    assert quality(X) > np.median(randoms), (quality(X), randoms)


def test_proposals_avoid_every_evaluated_architecture() -> None:
    """Told architectures (even ones the optimizer never proposed) and pending ones are never proposed."""
    info = make_problem("acc_a100")
    opt = build(info, seed=2, n_init=1)
    told = space.sample(25, np.random.default_rng(7))
    # the current best points and all their neighbours are known: the local search must skip them
    best = told[np.argsort(evaluate(BENCH, info, told)[:, 0])[:3]]
    told = space.unique(np.concatenate([told, space.neighbours_batch(best)]))[0]
    opt.tell(told, evaluate(BENCH, info, told))
    a = opt.ask(6)
    b = opt.ask(5)  # asked again before telling: must not repeat the pending batch
    known = set(space.arch_id(told).tolist())
    ids = space.arch_id(np.concatenate([a, b])).tolist()
    assert len(set(ids)) == 11
    assert not known & set(ids)


def test_constraint_moves_proposals_into_the_feasible_region() -> None:
    """Maximise accuracy under a depth budget (at most 13 layers in all): the budget binds, since deeper
    networks are more accurate; BO that is told feasibility proposes mostly feasible architectures."""
    info = make_problem("acc")
    info = ProblemInfo(info.name, info.objectives, info.maximize, info.ideal, info.nadir, info.ref_point, 1)

    def feasible(X: np.ndarray) -> np.ndarray:
        return np.asarray(space.decode(X)["l"].sum(axis=1) <= 13)

    rng = np.random.default_rng(5)
    init = space.sample(100, rng)
    frac_random = feasible(space.sample(2000, rng)).mean()
    assert 0.2 < frac_random < 0.5  # the constraint binds and the region is not tiny
    constrained = build(info, seed=3)
    constrained.tell(init, evaluate(BENCH, info, init), feasible(init))
    props = np.concatenate(loop(constrained, [4, 4, 4], feasible_fn=feasible))
    frac_bo = feasible(props).mean()
    # without the feasibility information it chases accuracy into the infeasible region
    blind = build(info, seed=3)
    blind.tell(init, evaluate(BENCH, info, init))
    frac_blind = feasible(np.concatenate(loop(blind, [4, 4, 4]))).mean()
    assert frac_bo >= 0.5, (frac_bo, frac_random, frac_blind)
    assert frac_bo > frac_random and frac_bo > frac_blind, (frac_bo, frac_random, frac_blind)


def test_failed_and_all_infeasible_histories_still_give_proposals() -> None:
    opt = build("acc_a100", seed=4, n_init=4)
    X = opt.ask(4)
    F = evaluate(BENCH, opt.problem, X)
    F[:2] = np.nan
    opt.tell(X, F, np.array([False, False, True, True]))
    Y = opt.ask(3)  # failures modelled as infeasible
    assert Y.shape == (3, 28) and not set(space.arch_id(Y).tolist()) & set(space.arch_id(X).tolist())
    only_bad = build("acc_a100", seed=4, n_init=2)
    Z = only_bad.ask(2)
    only_bad.tell(Z, evaluate(BENCH, only_bad.problem, Z), np.zeros(2, dtype=bool))
    assert only_bad.ask(3).shape == (3, 28)  # nothing feasible yet: random exploration


@pytest.mark.parametrize("problem_name", ["acc", "acc_a100_zcu102"])
def test_same_seed_same_proposals_and_different_seed_differs(problem_name: str) -> None:
    sizes = [3, 3, 2, 3]
    a = loop(build(problem_name, seed=11), sizes)
    b = loop(build(problem_name, seed=11), sizes)
    c = loop(build(problem_name, seed=12), sizes)
    for xa, xb in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))


@pytest.mark.parametrize("problem_name", ["acc", "acc_a100"])
def test_state_round_trip_through_files_continues_identically(problem_name: str, tmp_path: Path) -> None:
    orig = build(problem_name, seed=5)
    loop(orig, [3, 3, 2])  # past the initial design: hyper-parameters exist
    state = orig.state()
    assert state["gp_params"], "fitted hyper-parameters must be part of the state"
    save_state_tree(state, tmp_path)
    twin = build(problem_name, seed=999)
    twin.load_state(load_state_tree(tmp_path))
    after_orig = loop(orig, [3, 2, 3])
    after_twin = loop(twin, [3, 2, 3])
    for xo, xt in zip(after_orig, after_twin, strict=True):
        np.testing.assert_array_equal(xo, xt)
    for key, params in orig.state()["gp_params"].items():
        for name, value in params.items():
            np.testing.assert_array_equal(value, twin.state()["gp_params"][key][name])


def test_state_from_a_different_configuration_is_refused() -> None:
    a = build("acc_a100", seed=0)
    loop(a, [3])
    b = build("acc_a100", seed=0, encoding="onehot")
    with pytest.raises(ValueError, match="encoding"):
        b.load_state(a.state())


def test_max_history_caps_the_training_set_and_keeps_the_front() -> None:
    info = make_problem("acc_a100")
    opt = build(info, seed=6, max_history=30)
    X = space.unique(space.sample(80, np.random.default_rng(8)))[0]
    F = np.random.default_rng(9).normal(size=(len(X), 2))  # a small front, unlike the synthetic oracle's
    opt.tell(X, F)
    Xh, _, _ = opt._history()
    assert Xh.shape[0] == 30
    front = X[pareto_rank(F) == 0]
    assert 0 < len(front) < 15
    assert set(space.arch_id(front).tolist()) <= set(space.arch_id(Xh).tolist())
    assert set(space.arch_id(X[-10:]).tolist()) <= set(space.arch_id(Xh).tolist())  # most recent kept
    assert opt.ask(2).shape == (2, 28)
    assert opt.last_times.n_train == 30


def test_refit_every_keeps_hyperparameters_between_refits() -> None:
    opt = build("acc_a100", seed=8, n_init=4, refit_every=2)
    loop(opt, [4])  # initial design: no model yet
    flags, params = [], []
    for _ in range(4):
        loop(opt, [2])
        flags.append(opt.last_times.refit)
        params.append(opt.state()["gp_params"]["objective0"])
    assert flags == [True, False, True, False]
    for name, value in params[0].items():  # a build without refit conditions on new data only
        np.testing.assert_array_equal(value, params[1][name])
    assert any(not np.array_equal(v, params[2][k]) for k, v in params[1].items())


@pytest.mark.parametrize("encoding", ["onehot", "categorical"])
def test_other_encodings_run(encoding: str) -> None:
    props = loop(build("acc_a100", seed=7, encoding=encoding, n_init=4), [4, 2])
    assert np.concatenate(props).shape == (6, 28)


# --- the scaled mode (long runs): bounded informative history, sparse refits, thinned front ---------------
def test_select_informative_keeps_the_front_its_neighbourhood_and_a_spread() -> None:
    from optimizers.bo.history import select_informative

    rng = np.random.default_rng(0)
    X = space.unique(space.sample(400, rng))[0]
    F = rng.normal(size=(len(X), 2))
    F[::7] = np.nan  # failed rows
    fe = rng.random(len(X)) < 0.8
    keep = select_informative(X, F, fe, 100)
    assert keep.sum() == 100
    ok = ~np.isnan(F).any(axis=1)
    front = np.flatnonzero(ok & fe)[pareto_rank(F[ok & fe]) == 0]
    assert keep[front].all()
    # a quarter nearest in genes to the front: closer on average than the evenly spread remainder
    dist = (X[:, None, :] != X[front][None, :, :]).sum(axis=2).min(axis=1)
    assert dist[keep & ~np.isin(np.arange(len(X)), front)].mean() < dist[~keep].mean()
    # the remainder reaches the whole run (early and late rows)
    idx = np.flatnonzero(keep)
    assert idx.min() < 40 and idx.max() > len(X) - 40
    assert select_informative(X[:50], F[:50], fe[:50], 100).all()  # under the cap: everything


def test_scaled_mode_changes_nothing_at_or_below_scale_above() -> None:
    # the same seed with and without the mode: identical proposals until scale_above observations
    a = build("acc_a100", seed=3, scale_above=30, scaled_history=12, scaled_refit_every=3, max_front=2)
    b = build("acc_a100", seed=3, scale_above=10**6)
    sizes = [6, 8, 8, 8]  # 30 observations after these
    for xa, xb in zip(loop(a, sizes), loop(b, sizes), strict=True):
        np.testing.assert_array_equal(xa, xb)
    assert not a.scaled
    assert a.last_times.n_train == b.last_times.n_train == 22  # the last ask saw 22 rows
    xa, xb = loop(a, [4])[0], loop(b, [4])[0]  # this ask sees 30 rows: still the plain mode
    np.testing.assert_array_equal(xa, xb)
    assert a.scaled  # 34 rows now
    loop(a, [2])
    assert a.last_times.n_train == 12


def test_scaled_mode_refits_every_k_builds_and_thins_the_screening_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optimizers.bo.optimizer as bo_optimizer

    seen: list[int] = []
    real = bo_optimizer.make_acquisition

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(int(args[3].shape[0]))  # Y_incumbent rows
        return real(*args, **kwargs)

    monkeypatch.setattr(bo_optimizer, "make_acquisition", spy)
    opt = build("acc_a100", seed=4, scale_above=20, scaled_history=16, scaled_refit_every=3, max_front=3)
    loop(opt, [6, 8, 8])  # 22 observations: scaled from here on
    seen.clear()
    flags = []
    for _ in range(6):
        loop(opt, [2])
        flags.append(opt.last_times.refit)
    assert flags.count(True) == 2 and flags in ([True, False, False] * 2, [False, True, False] * 2,
                                                [False, False, True] * 2)
    assert max(seen) <= 3
    assert opt.last_times.n_train == 16


def test_scaled_mode_with_three_objectives_picks_the_batch_one_acquisition_per_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optimizers.bo.candidates as bo_candidates

    calls: list[str] = []
    for name in ("greedy_batch", "sequential_batch"):
        real = getattr(bo_candidates, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(bo_candidates, name, spy)
    scaled = {"scale_above": 16, "scaled_history": 14}
    a = build("acc_a100_zcu102", seed=2, scaled_batch="parego", **scaled)
    assert build("acc_a100_zcu102").scaled_batch == "believer" and build("acc_a100").scaled_batch == "nehvi"
    X = np.concatenate(loop(a, [6, 6, 6, 5]))
    assert calls == ["greedy_batch"] * 2 + ["sequential_batch"]  # plain mode at 6, 12 rows; scaled at 18
    assert space.is_valid(X).all() and len(np.unique(space.arch_id(X))) == len(X)
    a2 = build("acc_a100_zcu102", seed=2, scaled_batch="parego", **scaled)
    a2.load_state(a.state())  # the weights come from the optimizer's Generator: exact resume
    np.testing.assert_array_equal(a2.ask(3), a.ask(3))
    calls.clear()
    c = build("acc_a100_zcu102", seed=2, scaled_batch="nehvi", **scaled)
    loop(c, [6, 6, 6, 5])
    assert calls == ["greedy_batch"] * 3
    calls.clear()
    d = build("acc_a100_zcu102", seed=2, **scaled)  # believer: the default
    X = np.concatenate(loop(d, [6, 6, 6, 5]))
    assert calls == ["greedy_batch"] * 2 + ["sequential_batch"]
    assert space.is_valid(X).all() and len(np.unique(space.arch_id(X))) == len(X)
    with pytest.raises(ConfigurationError, match="scaled_batch='ehvi' is not one of nehvi, parego, believer"):
        build("acc_a100_zcu102", scaled_batch="ehvi")


def test_scaled_mode_with_one_objective_bounds_the_greedy_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    import optimizers.bo.candidates as bo_candidates

    pools: list[int] = []
    real = bo_candidates.greedy_batch

    def spy(final: Any, pool: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        pools.append(pool.shape[0])
        return real(final, pool, *args, **kwargs)

    monkeypatch.setattr(bo_candidates, "greedy_batch", spy)
    opt = build("acc", seed=1, greedy_pool=30, scale_above=12, scaled_history=12)
    assert opt.scaled_greedy_pool == 30 and build("acc", greedy_pool=512).scaled_greedy_pool == 128
    assert build("acc_a100", greedy_pool=30).scaled_greedy_pool == 30
    opt = build("acc", seed=1, greedy_pool=30, scaled_greedy_pool=9, scale_above=12, scaled_history=12)
    # a depth budget as constraint (the feasibility GP is active, as on acc_constrained_a100)
    loop(opt, [6, 6, 4, 4, 4], feasible_fn=lambda X: np.asarray(space.decode(X)["l"].sum(axis=1) <= 13))
    assert opt.last_times.n_train == 12  # the feasibility GP was active: feasible and infeasible rows
    assert pools[-2:] == [9, 9] and set(pools[:-2]) == {30}  # plain at 6 and 12 rows (random while
    # nothing is feasible), scaled at 16 and 20


def _without_later_settings(state: dict[str, Any]) -> dict[str, Any]:
    """The state layout of a BO version before the scaled mode (its hyperparameters lack the settings)."""
    from optimizers.bo.optimizer import LATER_SETTINGS

    hp = {k: v for k, v in state["hyperparameters"].items() if k not in LATER_SETTINGS}
    return {**state, "hyperparameters": hp}


def test_a_state_saved_by_a_version_before_the_scaled_mode_loads_and_continues_exactly() -> None:
    a = build("acc_a100", seed=8)
    loop(a, [6, 4])
    old = _without_later_settings(a.state())
    b = build("acc_a100", seed=8)
    b.load_state(old)
    np.testing.assert_array_equal(b.ask(4), a.ask(4))
    # a setting the old state does record still has to agree
    c = build("acc_a100", seed=8, n_random=41)
    with pytest.raises(ConfigurationError, match="n_random=40 but this optimizer has n_random=41"):
        c.load_state(old)


def test_a_run_directory_checkpointed_before_the_scaled_mode_resumes(tmp_path: Path) -> None:
    """A run stopped under the old state layout (checkpoint's state.json edited to it) resumes to the table of
    an uninterrupted run."""
    import json

    import pandas as pd

    from nasopt.problems import get_problem
    from nasopt.runner import Runner

    def runner(run_dir: Path | None) -> Runner:
        return Runner(get_problem("acc_a100"), "bo", BENCH, 24, run_dir, seed=3, optimizer_params=FAST,
                      checkpoint_every=0, checkpoint_every_s=None, progress=False)

    run_dir = tmp_path / "run"
    r = runner(run_dir)
    r.on_batch = lambda rr: rr.request_stop() if rr.n_evals >= 12 else None
    assert not r.run().finished
    state_file = run_dir / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["optimizer"] = _without_later_settings(state["optimizer"])
    state_file.write_text(json.dumps(state))
    resumed = runner(run_dir).run()
    assert resumed.finished and len(resumed.trials) == 24
    pd.testing.assert_frame_equal(resumed.comparable_trials(), runner(None).run().comparable_trials())


@pytest.mark.parametrize("problem_name", ["acc", "acc_a100", "acc_a100_zcu102"])
def test_marginal_screening_gives_the_joint_models_acquisition_values(problem_name: str) -> None:
    """The screening acquisition's one-pass marginal posterior (q = 1) scores a pool exactly as the
    wrapped ModelListGP's per-candidate joint posterior does -- with the feasibility GP, 1-3 objectives."""
    from optimizers.bo.acquisition import make_acquisition
    from optimizers.bo.candidates import score
    from optimizers.bo.models import MarginalPosteriorModel

    opt = build(problem_name, seed=3)
    info = opt.problem
    X = space.sample(60, np.random.default_rng(4))
    F = evaluate(BENCH, info, X)
    fe = np.arange(60) % 3 != 0  # a third infeasible: the feasibility GP is the last output
    opt.tell(X, F, fe)
    Xh, Fh, feh = opt._history()
    ok = ~np.isnan(Fh).any(axis=1)
    outcomes = opt.outcomes.for_data(Fh[ok])
    model, feas_index, _, X_base = opt._build_model(Xh, Fh, feh, ok, outcomes)
    assert feas_index == info.n_obj
    Y = torch.from_numpy(-info.normalize(Fh[ok & feh])).to(torch.float64)
    kw: dict[str, Any] = {
        "feasibility_index": feas_index, "mc_samples": 8, "screen_samples": 8, "seed": 11, "eta": 0.01,
        "margin": 0.5, "with_final": False,
    }
    base = encode(X_base, "ordinal")
    marginal, _ = make_acquisition(model, outcomes, base, Y, info.ref_point, **kw)
    assert isinstance(marginal.model, MarginalPosteriorModel)
    pool = space.sample(300, np.random.default_rng(5))
    enc = lambda Z: encode(Z, "ordinal")  # noqa: E731
    fast = score(marginal, pool, enc, 64)
    marginal.model = model  # the same acquisition on the wrapped model: every candidate's joint posterior
    slow = score(marginal, pool, enc, 64)
    assert np.isfinite(fast).all() and np.unique(fast).size > 100
    np.testing.assert_allclose(fast, slow, rtol=1e-7, atol=1e-9)
    # q > 1 batches go to the wrapped model unchanged
    pair = encode(pool[:2], "ordinal").unsqueeze(0)
    wrapped = MarginalPosteriorModel(model).posterior(pair)
    torch.testing.assert_close(wrapped.mean, model.posterior(pair).mean)


def _constraint_means(X: np.ndarray) -> np.ndarray:
    preds = BENCH.query(X, ["throughput_a100", "latency_zcu102"])
    return np.stack([preds["throughput_a100"].mean, preds["latency_zcu102"].mean], axis=1)


#: bounds at which about a third of the synthetic space is feasible
_BOUNDS = np.quantile(_constraint_means(space.sample(2000, np.random.default_rng(9))), [0.35, 0.75], axis=0)
TPUT_MIN, LAT_MAX = float(_BOUNDS[0, 0]), float(_BOUNDS[1, 1])


def _constrained_info() -> ProblemInfo:
    return ProblemInfo(
        name="acc_c",
        objectives=("accuracy",),
        maximize=(True,),
        ideal=(-70.0,),
        nadir=(-45.0,),
        ref_point=(1.1,),
        n_constraints=2,
        constraints=(f"throughput_a100 >= {TPUT_MIN!r}", f"latency_zcu102 <= {LAT_MAX!r}"),
    )


def test_constraint_values_are_modelled_one_gp_each_and_predict_feasibility_better() -> None:
    """With reported constraint values, BO fits a GP per constraint (log scale, the bound's sense) and no
    +-1 feasibility GP; its probability of feasibility ranks held-out architectures better (AUC) than the
    labels' GP fitted on the same 60 rows."""
    from scipy.stats import norm
    from sklearn.metrics import roc_auc_score

    info = _constrained_info()
    X = space.sample(60, np.random.default_rng(0))
    C = _constraint_means(X)
    fe = (C[:, 0] >= TPUT_MIN) & (C[:, 1] <= LAT_MAX)
    assert 5 < fe.sum() < 55
    F = -BENCH.query(X, ["accuracy"])["accuracy"].mean[:, None]
    Xt = space.sample(400, np.random.default_rng(1))
    Ct = _constraint_means(Xt)
    fet = (Ct[:, 0] >= TPUT_MIN) & (Ct[:, 1] <= LAT_MAX)
    aucs = {}
    for models in (True, False):
        opt = build(info, seed=0, constraint_models=models)
        opt.tell(X, F, fe, constraint_values=C)
        rows = opt._history_rows()
        Xh, Fh, feh, Ch = X[rows], F[rows], fe[rows], C[rows]
        ok = ~np.isnan(Fh).any(axis=1)
        model, feas_index, cons, _ = opt._build_model(Xh, Fh, feh, ok, opt.outcomes.for_data(Fh[ok]), Ch)
        enc = encode(Xt, "ordinal")
        with torch.no_grad():
            if models:
                assert feas_index is None and len(cons) == 2
                (_, b0, s0), (_, b1, s1) = cons
                assert b0 == pytest.approx(np.log(TPUT_MIN)) and s0 < 0  # ">=": feasible above the bound
                assert b1 == pytest.approx(np.log(LAT_MAX)) and s1 > 0
                p = np.ones(len(Xt))
                for k, b, s in cons:
                    post = model.models[k].posterior(enc)
                    mu, sd = post.mean.squeeze(-1).numpy(), post.variance.sqrt().squeeze(-1).numpy()
                    p *= norm.cdf(-np.sign(s) * (mu - b) / sd)
            else:
                assert feas_index == 1 and not cons
                post = model.models[feas_index].posterior(enc)
                mu, sd = post.mean.squeeze(-1).numpy(), post.variance.sqrt().squeeze(-1).numpy()
                p = norm.sf((0.5 - mu) / sd)
        aucs[models] = roc_auc_score(fet, p)
    assert aucs[True] > aucs[False] + 0.03, aucs  # 0.82 against 0.75 here


def test_the_runner_reports_constraint_values_and_a_resume_keeps_them(tmp_path: Path) -> None:
    """A BO run on a constrained problem gets the constraint targets' means from the runner (they equal
    the trial table's mean_* columns); they are in its state, and a state loaded elsewhere has them."""
    import nasopt

    run = nasopt.search(
        "acc_constrained_a100", "bo", budget=24, seed=2, bench=BENCH, run_dir=tmp_path / "r", **FAST, q=8
    )
    from nasopt.checkpoint import join_tree, load_checkpoint

    loaded = load_checkpoint(tmp_path / "r" / "checkpoint")
    assert loaded is not None
    state = join_tree(*loaded[:2])["optimizer"]
    C = np.asarray(state["constraint_values"])
    t = run.trials
    np.testing.assert_allclose(C[:, 0], t["mean_throughput_a100"].to_numpy())
    np.testing.assert_allclose(C[:, 1], t["mean_latency_zcu102"].to_numpy())
    from nasopt.problems import get_problem

    twin = build(get_problem("acc_constrained_a100").info, seed=9, q=8)
    twin.load_state(state)
    np.testing.assert_array_equal(twin._C, C)
