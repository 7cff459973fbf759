"""Repeat-measurement noise and the fidelity ceiling it implies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import space
from benchmark.dataset import Dataset
from benchmark.noise import estimate_noise, noise_caps, noise_ceiling, repeat_deviations


def _repeated(n_arch: int, k: int, sigma: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_arch`` distinct architectures measured ``k`` times each with additive noise ``sigma``."""
    X = space.unique(space.sample(n_arch * 2, rng))[0][:n_arch]
    truth = rng.normal(60.0, 3.0, len(X))
    Xr = np.repeat(X, k, axis=0)
    y = np.repeat(truth, k) + rng.normal(0.0, sigma, len(Xr))
    return Xr, y


def test_estimate_recovers_known_sigma() -> None:
    rng = np.random.default_rng(0)
    X, y = _repeated(400, 3, 0.25, rng)
    thr = np.exp(np.log(1000.0) + 0.02 * rng.normal(size=len(y)))
    est = estimate_noise(X, {"accuracy": y, "throughput_a100": thr})
    acc = est["accuracy"]
    assert acc.n_groups == 400 and acc.n_residuals == 800 and not acc.relative
    assert acc.sigma_rms == pytest.approx(0.25, rel=0.08)
    assert acc.sigma_robust == pytest.approx(0.25, rel=0.12)
    rel = est["throughput_a100"]
    assert rel.relative and rel.sigma_rms == pytest.approx(0.02, rel=0.08)


def test_unique_architectures_give_no_estimate() -> None:
    X = space.unique(space.sample(50, np.random.default_rng(1)))[0]
    est = estimate_noise(X, {"accuracy": np.linspace(50, 60, len(X))})
    assert est["accuracy"].n_groups == 0 and np.isnan(est["accuracy"].sigma_rms)


def test_missing_values_are_left_out() -> None:
    rng = np.random.default_rng(2)
    X, y = _repeated(30, 2, 0.3, rng)
    y[::2] = np.nan  # one measurement of every pair missing: no repeats remain
    d, k = repeat_deviations(X, y)
    assert d.size == 0 and k.size == 0


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 5), st.floats(0.01, 2.0), st.integers(0, 2**31 - 1))
def test_deviations_sum_to_zero_per_group(k: int, sigma: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X, y = _repeated(20, k, sigma, rng)
    d, kk = repeat_deviations(X, y)
    assert d.size == 20 * k and np.all(kk == k)
    assert abs(float(d.sum())) < 1e-8 * max(1.0, float(np.abs(y).sum()))


def test_ceiling_falls_with_noise_and_is_one_without() -> None:
    y = np.random.default_rng(3).normal(60.0, 3.3, 500)
    caps = [noise_ceiling(y, s, np.random.default_rng(0), n_draws=20) for s in (0.0, 0.1, 0.3, 1.0)]
    assert caps[0]["kendall_tau"] == pytest.approx(1.0) and caps[0]["r2"] == pytest.approx(1.0)
    taus = [c["kendall_tau"] for c in caps]
    assert taus == sorted(taus, reverse=True) and taus[-1] < 0.85
    # R² of a perfect model is 1 - sigma^2 / var(y)
    assert caps[2]["r2"] == pytest.approx(1.0 - 0.09 / y.var(), abs=0.004)


def test_ceiling_is_deterministic_for_a_seed() -> None:
    y = np.random.default_rng(4).lognormal(7.0, 0.5, 300)
    a = noise_ceiling(y, 0.03, np.random.default_rng(9), relative=True, n_draws=10)
    b = noise_ceiling(y, 0.03, np.random.default_rng(9), relative=True, n_draws=10)
    assert a == b and 0.9 < a["kendall_tau"] < 1.0
    assert np.isnan(noise_ceiling(y, float("nan"), np.random.default_rng(0))["kendall_tau"])


def test_caps_cover_the_scored_targets_only() -> None:
    y = np.random.default_rng(5).normal(60.0, 3.3, 200)
    noise = {
        "accuracy": {"sigma_rms": 0.3, "relative": False, "n_groups": 10},
        "throughput_a100": {"sigma_rms": 0.01, "relative": True, "n_groups": 10},
    }
    caps = noise_caps(noise, {"accuracy": y})
    assert set(caps) == {"accuracy"} and caps["accuracy"]["n_groups"] == 10
    direct = noise_ceiling(y, 0.3, np.random.default_rng(0), n_draws=30)
    assert caps["accuracy"]["cap_kendall_tau"] == direct["kendall_tau"]
    assert caps["accuracy"]["cap_r2"] == direct["r2"]


@pytest.mark.dataset
def test_real_records_have_repeats(anb_dataset: Dataset) -> None:
    est = estimate_noise(anb_dataset.X, dict(anb_dataset.labels))
    acc = est["accuracy"]
    assert acc.n_groups >= 5
    # retraining the same architecture moves top-1 by tenths of a point, not by points
    assert 0.02 < acc.sigma_robust < 1.0
    assert est["latency_zcu102"].sigma_rms < est["throughput_tpuv3"].sigma_rms
