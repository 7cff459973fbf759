"""Tests of the REINFORCE controller optimizer (optimizers/reinforce.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import space
from benchmark.synthetic import SyntheticBenchmark
from nasopt import testing
from optimizers import make_optimizer
from optimizers.base import ProblemInfo
from optimizers.reinforce import Reinforce

ACC = ProblemInfo("acc", ("accuracy",), (True,), (-80.0,), (-40.0,), (1.1,))
ACC_THR = ProblemInfo(
    "acc_a100", ("accuracy", "throughput_a100"), (True, True), (-80.0, -2000.0), (-40.0, -200.0), (1.1, 1.1)
)
ACC_LAT = ProblemInfo(
    "acc_lat", ("accuracy", "latency_zcu102"), (True, False), (-80.0, 1.0), (-40.0, 21.0), (1.1, 1.1)
)
ACC_THR_LAT = ProblemInfo(
    "acc_thr_lat",
    ("accuracy", "throughput_a100", "latency_zcu102"),
    (True, True, False),
    (-80.0, -2000.0, 1.0),
    (-40.0, -200.0, 21.0),
    (1.1, 1.1, 1.1),
)

ORACLE = SyntheticBenchmark()


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """The controller's ops are tiny: with 2 OpenMP threads on a shared 2-core machine every op waits for a
    descheduled thread (~30x slower). Tests apply the optimizer's declaration; restored afterwards."""
    before = torch.get_num_threads()
    assert Reinforce.torch_threads is not None
    torch.set_num_threads(Reinforce.torch_threads)
    yield
    torch.set_num_threads(before)


def evaluate(problem: ProblemInfo, X: np.ndarray) -> np.ndarray:
    """Internal-minimisation objectives ``(n, m)`` of ``X`` on the synthetic oracle."""
    return testing.evaluate(ORACLE, problem, X)


def run(opt: Reinforce, steps: int, batch: int = 1) -> list[np.ndarray]:
    proposals = []
    for _ in range(steps):
        X = opt.ask(batch)
        opt.tell(X, evaluate(opt.problem, X))
        proposals.append(X)
    return proposals


def through_disk(state: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Write a state to files (arrays -> .npz, the rest -> JSON) and read it back."""
    testing.save_state_tree(state, tmp_path)
    return testing.load_state_tree(tmp_path)


# proposals -----------------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_proposals_are_valid_architectures(n: int, seed: int) -> None:
    X = Reinforce(ACC, np.random.default_rng(seed)).ask(n)
    assert X.shape == (n, 28)
    assert X.dtype == np.int64
    assert space.is_valid(X).all()


def test_registry_builds_it() -> None:
    opt = make_optimizer("reinforce", ACC_THR, np.random.default_rng(0), lr=1e-3)
    assert isinstance(opt, Reinforce)
    assert opt.hp["lr"] == 1e-3


def test_sampling_follows_the_policy_head_by_head() -> None:
    """With all weights zero but the head biases, every gene is drawn from softmax(bias) of its own head."""
    opt = Reinforce(ACC, np.random.default_rng(1))
    target = {
        "e": [0.2, 0.3, 0.5],
        "k": [0.7, 0.3],
        "l": [0.6, 0.3, 0.1],
        "l5": [0.1, 0.2, 0.3, 0.4],
        "se": [0.25, 0.75],
    }
    with torch.no_grad():
        for p in opt.net.parameters():
            p.zero_()
        packed = [p for key in ("e", "k", "l", "l5", "se") for p in target[key]]
        opt.net.head.bias.copy_(torch.log(torch.tensor(packed)))
    X = opt.ask(8000)
    for col in range(28):
        field = col % 4
        key = ("e", "k", "l" if col != 22 else "l5", "se")[field]
        freq = np.bincount(X[:, col], minlength=space.CARDINALITIES[col]) / len(X)
        np.testing.assert_allclose(freq, target[key], atol=0.02, err_msg=f"gene {col}")


def test_sampled_log_prob_matches_training_log_prob() -> None:
    """The hand-stepped sampler and the fused LSTM used for learning describe the same distribution."""
    opt = Reinforce(ACC, np.random.default_rng(2))
    run(opt, 5, batch=4)  # move away from the initial weights
    X, logp = opt._sample(16, with_log_prob=True)
    assert logp is not None
    train_logp, entropy = opt._log_prob(X)
    np.testing.assert_allclose(logp.numpy(), train_logp.detach().numpy(), rtol=1e-5, atol=1e-4)
    # 28 decisions of 2-4 choices each: the entropy is at most sum(log(card))
    assert (entropy.detach().numpy() <= np.log(space.CARDINALITIES).sum() + 1e-4).all()
    assert (entropy.detach().numpy() > 0).all()


# determinism and state -----------------------------------------------------------------------------
def test_same_seed_same_run_different_seed_different_run() -> None:
    a = run(Reinforce(ACC_THR, np.random.default_rng(7)), 6, batch=3)
    b = run(Reinforce(ACC_THR, np.random.default_rng(7)), 6, batch=3)
    c = run(Reinforce(ACC_THR, np.random.default_rng(8)), 6, batch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_global_random_state_is_untouched() -> None:
    torch_before = torch.random.get_rng_state().clone()
    np_before: dict[str, Any] = np.random.get_state(legacy=False)
    opt = Reinforce(ACC, np.random.default_rng(3))
    run(opt, 3, batch=2)
    assert torch.equal(torch.random.get_rng_state(), torch_before)
    np_after: dict[str, Any] = np.random.get_state(legacy=False)
    assert np.array_equal(np_after["state"]["key"], np_before["state"]["key"])
    assert np_after["state"]["pos"] == np_before["state"]["pos"]


@pytest.mark.parametrize("learn_steps", [0, 7])
def test_state_round_trip_is_exact(learn_steps: int, tmp_path: Path) -> None:
    opt = Reinforce(ACC_LAT, np.random.default_rng(11), lr=3e-3)
    run(opt, learn_steps, batch=2)
    snapshot = through_disk(opt.state(), tmp_path)
    twin = Reinforce(ACC_LAT, np.random.default_rng(999), lr=3e-3)
    twin.load_state(snapshot)
    assert twin.baseline == opt.baseline and twin.n_updates == opt.n_updates == learn_steps
    # the twin continues exactly as the original: same proposals, same learning
    for mine, theirs in zip(run(opt, 5, batch=3), run(twin, 5, batch=3), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    for (name, p), q in zip(opt.net.named_parameters(), twin.net.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert opt.rng.bit_generator.state == twin.rng.bit_generator.state


def test_load_state_rejects_other_hyperparameters() -> None:
    state = Reinforce(ACC, np.random.default_rng(0), hidden_size=50).state()
    with pytest.raises(ValueError, match="hidden_size"):
        Reinforce(ACC, np.random.default_rng(0)).load_state(state)


# reward --------------------------------------------------------------------------------------------
def test_reward_accuracy_only_is_accuracy_in_percent() -> None:
    opt = Reinforce(ACC, np.random.default_rng(0))
    np.testing.assert_allclose(opt.reward(np.array([[-75.0], [-60.5]])), [75.0, 60.5])
    np.testing.assert_allclose(opt.reward(np.array([[-75.0]]), np.array([False])), [37.5])


def test_reward_throughput_factor() -> None:
    opt = Reinforce(ACC_THR, np.random.default_rng(0), reward_target=1000.0)
    r = opt.reward(np.array([[-70.0, -2000.0], [-70.0, -500.0], [-70.0, -1000.0]]))
    np.testing.assert_allclose(r, [70.0 * 2.0**0.07, 70.0 * 0.5**0.07, 70.0])


def test_reward_latency_factor_lower_latency_is_better() -> None:
    opt = Reinforce(ACC_LAT, np.random.default_rng(0), reward_target=5.0, reward_exponent=0.1)
    r = opt.reward(np.array([[-70.0, 2.5], [-70.0, 10.0], [-70.0, 5.0]]))
    np.testing.assert_allclose(r, [70.0 * 2.0**0.1, 70.0 * 0.5**0.1, 70.0])
    assert r[0] > r[2] > r[1]


def test_reward_three_objectives_multiplies_factors() -> None:
    opt = Reinforce(ACC_THR_LAT, np.random.default_rng(0), reward_target={"throughput_a100": 1000.0})
    # latency target defaults to the ideal/nadir midpoint, (1 + 21) / 2 = 11 ms
    assert opt.reward_targets == {"throughput_a100": 1000.0, "latency_zcu102": 11.0}
    r = opt.reward(np.array([[-70.0, -3000.0, 5.5]]))
    np.testing.assert_allclose(r, [70.0 * 3.0**0.07 * 2.0**0.07])
    same = Reinforce(ACC_THR_LAT, np.random.default_rng(0), reward_target=[1000.0, 11.0])
    assert same.reward_targets == opt.reward_targets


def test_default_target_is_natural_midpoint() -> None:
    assert Reinforce(ACC_THR, np.random.default_rng(0)).reward_targets == {"throughput_a100": 1100.0}


@settings(max_examples=50, deadline=None)
@given(
    acc=st.floats(30, 90),
    thr=st.floats(10, 1e4),
    lat=st.floats(0.1, 100),
    up=st.floats(1.01, 10),
)
def test_reward_is_monotone_in_every_objective(acc: float, thr: float, lat: float, up: float) -> None:
    opt = Reinforce(ACC_THR_LAT, np.random.default_rng(0))
    base, more_acc, more_thr, more_lat = opt.reward(
        np.array([[-acc, -thr, lat], [-acc * up, -thr, lat], [-acc, -thr * up, lat], [-acc, -thr, lat * up]])
    )
    assert more_acc > base and more_thr > base and more_lat < base


@pytest.mark.parametrize(
    ("problem", "target", "match"),
    [
        (ACC, 5.0, "no objective besides accuracy"),
        (ACC_THR_LAT, 5.0, "one number"),
        (ACC_THR, {"latency_zcu102": 5.0}, "not non-accuracy objectives"),
        (ACC_THR_LAT, [1.0], "has 1 values"),
        (ACC_THR, -3.0, "positive"),
    ],
)
def test_bad_reward_target_is_explained(problem: ProblemInfo, target: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Reinforce(problem, np.random.default_rng(0), reward_target=target)


@pytest.mark.parametrize(("key", "value"), [("lr", 0.0), ("baseline_decay", 1.0), ("entropy_weight", -1.0)])
def test_bad_hyperparameters_are_explained(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        kwargs: dict[str, Any] = {key: value}
        Reinforce(ACC, np.random.default_rng(0), **kwargs)


# learning ------------------------------------------------------------------------------------------
def test_update_raises_probability_of_better_than_baseline_architecture() -> None:
    opt = Reinforce(ACC, np.random.default_rng(4), lr=1e-2)
    X = opt.ask(2)
    before = opt._log_prob(X)[0].detach().numpy()
    opt.tell(X, np.array([[-75.0], [-60.0]]))  # baseline 0.95*75 + 0.05*60: row 0 above, row 1 below
    assert opt.baseline == pytest.approx(0.95 * 75.0 + 0.05 * 60.0)
    after = opt._log_prob(X)[0].detach().numpy()
    assert after[0] - after[1] > before[0] - before[1]


@pytest.mark.parametrize(("batch", "lr"), [(1, 3.5e-4), (6, 3e-3)])
def test_policy_learns_on_synthetic_accuracy(batch: int, lr: float) -> None:
    """Paper settings (one architecture per step), and upstream's batches of 6 with a larger lr."""
    opt = Reinforce(ACC, np.random.default_rng(5), lr=lr)
    proposals = np.concatenate(run(opt, 600 // batch, batch=batch))
    acc = -evaluate(ACC, proposals)[:, 0]
    assert acc[-100:].mean() > acc[:100].mean() + 1.0


def test_policy_learns_the_scalarised_reward_of_three_objectives() -> None:
    opt = Reinforce(ACC_THR_LAT, np.random.default_rng(5))
    proposals = np.concatenate(run(opt, 600))
    reward = opt.reward(evaluate(ACC_THR_LAT, proposals))
    assert reward[-100:].mean() > reward[:100].mean() + 1.0


# failed and infeasible rows --------------------------------------------------------------------------
def test_nan_rows_are_skipped() -> None:
    a = Reinforce(ACC_THR, np.random.default_rng(6))
    b = Reinforce(ACC_THR, np.random.default_rng(6))
    X = a.ask(4)
    b.ask(4)
    F = evaluate(ACC_THR, X)
    F_nan = F.copy()
    F_nan[[1, 3]] = np.nan
    a.tell(X, F_nan, np.array([True, False, True, False]))
    b.tell(X[[0, 2]], F[[0, 2]])
    assert a.baseline == b.baseline
    for p, q in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(a.ask(3), b.ask(3))


def test_non_finite_rows_are_skipped() -> None:
    a = Reinforce(ACC_LAT, np.random.default_rng(9))
    b = Reinforce(ACC_LAT, np.random.default_rng(9))
    X = a.ask(3)
    b.ask(3)
    F = evaluate(ACC_LAT, X)
    F_inf = F.copy()
    F_inf[1, 0] = -np.inf
    a.tell(X, F_inf)
    b.tell(X[[0, 2]], F[[0, 2]])
    assert a.baseline == b.baseline
    assert all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters(), strict=True))


def test_all_nan_batch_changes_nothing() -> None:
    opt = Reinforce(ACC, np.random.default_rng(7))
    weights = [p.detach().clone() for p in opt.net.parameters()]
    X = opt.ask(3)
    opt.tell(X, np.full((3, 1), np.nan), np.zeros(3, dtype=bool))
    assert opt.baseline is None and opt.n_updates == 0 and opt.n_told == 3
    assert all(torch.equal(w, p) for w, p in zip(weights, opt.net.parameters(), strict=True))


def test_infeasible_rows_learn_from_penalised_reward() -> None:
    a = Reinforce(ACC, np.random.default_rng(8), infeasible_penalty=0.0)
    X = a.ask(2)
    a.tell(X, np.array([[-70.0], [-72.0]]), np.array([True, False]))
    assert a.baseline == pytest.approx(0.95 * 70.0 + 0.05 * 0.0)
