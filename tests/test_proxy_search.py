"""Proxy search (nasopt.proxy.search): BO finds the known optimum of a synthetic τ/cost landscape within its
budget, a search killed with SIGKILL and run again equals an uninterrupted one and recomputes nothing that
finished, records round-trip, the training evaluator reads cached runs instead of retraining, and bad
configurations get one-line errors (exit 2 on the CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nasopt.proxy.analyze import MIN_ARCHITECTURES, analyze
from nasopt.proxy.search import (
    ProxySearchError,
    Step,
    SyntheticEvaluator,
    TrainingEvaluator,
    _nominal,
    search,
    stratified_architectures,
)
from nasopt.proxy.space import ProxySettings, ProxySpace, ProxySpaceError, nominal_cost, reference_settings

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

REF = ProxySettings(epochs=8, min_res=32, max_res=32, train_fraction=1.0, batch_size=64, lr_peak=0.25)
#: 81 points; the bound below leaves about half of them affordable
SPACE = ProxySpace(
    epochs=(1, 2, 4),
    min_res=(32,),
    max_res=(32,),
    train_fraction=(0.25, 0.5, 1.0),
    batch_size=(32, 64, 128),
    lr_peak=(0.1, 0.25, 0.4),
)
MAX_COST = 0.3


def _evaluator(**kw: Any) -> SyntheticEvaluator:
    return SyntheticEvaluator(REF, n=40, **kw)


def _truth(ev: SyntheticEvaluator, space: ProxySpace = SPACE) -> tuple[float, ProxySettings]:
    """The best τ of any affordable point (by enumeration)."""
    ref = ev.reference()
    best: tuple[float, ProxySettings] | None = None
    for p in space.points():
        if _nominal(ev, p) * 1.05 <= MAX_COST:
            tau = analyze(ref, ev.evaluate(p), n_boot=2).kendall_tau
            if best is None or tau > best[0]:
                best = (tau, p)
    assert best is not None
    return best


@pytest.mark.slow
def test_bo_finds_the_known_optimum_within_budget(tmp_path: Path) -> None:
    ev = _evaluator()
    tau_opt, p_opt = _truth(ev)
    r = search(ev, SPACE, tmp_path, method="bo", budget=2.0, max_cost=MAX_COST, n_boot=50)
    assert r.best is not None and r.spent <= 2.0 + max(s.cost_fraction for s in r.steps)
    assert r.best.tau == pytest.approx(tau_opt), (r.best, p_opt)
    assert all(s.feasible == (s.cost_fraction <= MAX_COST) for s in r.steps)
    # and the grid baseline, at the same budget, does not get there
    g = search(ev, SPACE, tmp_path, method="grid", budget=2.0, max_cost=MAX_COST, n_boot=50)
    assert g.best is not None and g.best.tau < tau_opt
    assert [s.settings for s in g.steps] == [p for p in SPACE.points() if _nominal(ev, p) <= MAX_COST][
        : len(g.steps)
    ]


def test_rerun_of_a_finished_search_computes_nothing_and_a_larger_budget_continues(tmp_path: Path) -> None:
    ev = _evaluator()
    r1 = search(ev, SPACE, tmp_path, method="grid", budget=0.5, max_cost=MAX_COST, n_boot=20)
    calls = ev.calls
    assert search(ev, SPACE, tmp_path, method="grid", budget=0.5, max_cost=MAX_COST, n_boot=20) == r1
    assert ev.calls == calls
    r2 = search(ev, SPACE, tmp_path, method="grid", budget=1.0, max_cost=MAX_COST, n_boot=20)
    assert r2.steps[: len(r1.steps)] == r1.steps and len(r2.steps) > len(r1.steps)


# ------------------------------------------------------------------------------------ resume after SIGKILL
STEPS = 4


def child_main(out: str, log: str, delay: float) -> None:
    """Entry point of the child process: a BO search that takes ``delay`` seconds a proxy."""
    ev = _evaluator(log_file=log, delay_s=delay)
    search(ev, SPACE, out, method="bo", budget=100.0, max_cost=MAX_COST, n_boot=20, max_steps=STEPS)


def _spawn(out: Path, log: Path, delay: float) -> subprocess.Popen[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_proxy_search as t; "
        f"t.child_main({str(out)!r}, {str(log)!r}, {delay!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _steps(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "bo").glob("step_*.json"))]


def test_sigkill_then_rerun_equals_uninterrupted_and_recomputes_nothing(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    child_main(str(whole), str(tmp_path / "whole.log"), 0.0)
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    proc = _spawn(out, log, 0.4)
    end = time.monotonic() + 600  # generous: importing torch/botorch takes long on a loaded machine
    # killed mid-search (two proxies done), mid-proxy, or while BO proposes the first proxy from its GPs
    while len([d for d in _steps(out) if d["status"] == "done"]) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the child made no progress"
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done_before = [d["key"] for d in _steps(out) if d["status"] == "done"]
    assert 2 <= len(done_before) < STEPS
    child_main(str(out), str(log), 0.0)
    assert _steps(out) == _steps(whole)
    computed = log.read_text().split()
    assert len(computed) == len(set(computed)) == STEPS  # every proxy computed once, none twice
    assert computed[: len(done_before)] == done_before


# ---------------------------------------------------------------------------------------------- records
def test_records_round_trip(tmp_path: Path) -> None:
    p = ProxySettings(
        epochs=3, min_res=16, max_res=32, ramp=0.5, train_fraction=0.5, batch_size=128, lr_peak=0.1
    )
    assert ProxySettings.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert ProxySpace.from_dict(json.loads(json.dumps(SPACE.to_dict()))) == SPACE
    r = search(_evaluator(), SPACE, tmp_path, method="grid", budget=0.3, max_cost=MAX_COST, n_boot=20)
    for s in r.steps:
        assert Step.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    json.dumps(r.to_dict())
    # without a ramp the ramp knob is canonical, so equal proxies are one point
    assert ProxySettings(2, 32, 32, ramp=0.5) == ProxySettings(2, 32, 32, ramp=1.0)


def test_settings_make_the_scheme() -> None:
    from nasopt.validation.train.schemes import SMOKE

    ref = SMOKE.with_overrides({"epochs": 8, "min_res": 32, "max_res": 32, "res_step": 8})
    p = ProxySettings(
        epochs=4, min_res=16, max_res=32, ramp=1.0, train_fraction=0.5, batch_size=100, lr_peak=0.25
    )
    s = p.scheme(ref)
    assert (s.epochs, s.batch_size, s.min_res, s.max_res, s.lr_peak_epoch) == (4, 100, 16, 32, 1.0)
    assert s.peak_lr == pytest.approx(ref.lr * 100 / ref.lr_batch)  # the LR scales with the batch
    assert [s.resolution_at(e) for e in range(4)] == p.resolutions() == [16, 16, 16, 32]
    assert s.fingerprint() != ref.fingerprint()
    assert reference_settings(ref).epochs == 8


def test_nominal_cost_charges_validation_for_the_validated_epochs_only() -> None:
    ref = ProxySettings(epochs=6, min_res=32, max_res=32, batch_size=100)
    half = ProxySettings(epochs=3, min_res=32, max_res=32, batch_size=100)
    # every epoch validated by both (the default): training and validation both halve
    assert nominal_cost(half, ref, 0.4) == pytest.approx(0.5)
    # the reference validates once at its end, the proxy its last epoch: 3 epochs + 1 pass of 0.4
    once = nominal_cost(half, ref, 0.4, reference_val_epochs=1, proxy_val_epochs=1)
    assert once == pytest.approx((3 + 0.4) / (6 + 0.4))
    # a proxy validating fewer epochs than the reference costs less than the every-epoch figure
    assert nominal_cost(half, ref, 0.4, proxy_val_epochs=1) == pytest.approx((3 + 0.4) / (6 + 2.4))
    # a quarter of the data at half the resolution: pixels fall 16x, the validation pass stays
    tiny = ProxySettings(epochs=6, min_res=16, max_res=16, train_fraction=0.25, batch_size=100)
    assert nominal_cost(tiny, ref, 0.4, reference_val_epochs=1, proxy_val_epochs=1) == pytest.approx(
        (6 / 16 + 0.4) / (6 + 0.4)
    )


def test_training_evaluator_takes_the_validated_epochs_from_the_scheme(tmp_path: Path) -> None:
    from nasopt.validation.train.schemes import SMOKE

    archs = stratified_architectures(10, 0, resolution=32, num_classes=10)
    ref = SMOKE.with_overrides({"epochs": 6, "top1_best_of_last": 2, "validate_last": 3})
    ev = TrainingEvaluator(ref, str(tmp_path), archs, str(tmp_path))
    assert (ev.reference_val_epochs, ev.proxy_val_epochs) == (3, 2)
    every = TrainingEvaluator(SMOKE, str(tmp_path), archs, str(tmp_path))
    assert every.reference_val_epochs is None  # the reference validates every epoch


def test_proxies_train_with_their_own_seed_when_given(tmp_path: Path) -> None:
    from nasopt.validation.train.schemes import SMOKE

    archs = stratified_architectures(10, 0, resolution=32, num_classes=10)
    p = ProxySettings(epochs=2, min_res=32, max_res=32, batch_size=50)
    shared = TrainingEvaluator(SMOKE, str(tmp_path), archs, str(tmp_path), reference_seeds={3: 10, 4: 5})
    assert {j["seed"] for j in shared.proxy_jobs(p)} == {3}  # the first reference seed
    own = TrainingEvaluator(SMOKE, str(tmp_path), archs, str(tmp_path), reference_seeds={3: 10}, proxy_seed=7)
    assert {j["seed"] for j in own.proxy_jobs(p)} == {7} and len(own.proxy_jobs(p)) == 10
    assert own.describe()["proxy_seed"] == 7 and "proxy_seed" not in shared.describe()  # resumes tell apart


def _fake_record(job: dict[str, Any], top1: float, seconds: float) -> None:
    from nasopt.validation.train.run import as_skeleton, genes_of, record_file, run_id
    from nasopt.validation.train.schemes import TrainScheme

    scheme = TrainScheme(**{**job["scheme"], "rrc_scale": tuple(job["scheme"]["rrc_scale"])})
    fraction = float(job["data"].get("train_fraction", 1.0))
    rid = run_id(genes_of(job["arch"]), scheme, job["seed"], as_skeleton(job["skeleton"]), fraction)
    d = Path(job["out_dir"]) / rid
    d.mkdir(parents=True)
    (d / record_file(rid)).write_text(json.dumps({"metrics": {"val_top1": top1, "train_time": seconds}}))


def test_training_evaluator_reads_cached_runs_and_never_retrains(tmp_path: Path, monkeypatch: Any) -> None:
    import nasopt.proxy.search as S
    from nasopt.validation.train.schemes import SMOKE

    archs = stratified_architectures(12, 0)
    ev = TrainingEvaluator(SMOKE, str(tmp_path / "data"), archs, str(tmp_path), reference_seeds={0: 12, 1: 4})
    for k, job in enumerate(ev.reference_jobs()):
        _fake_record(job, 50.0 + k % 12, 10.0)
    p = ProxySettings(epochs=2, min_res=32, max_res=32, batch_size=50, lr_peak=0.25)
    for k, job in enumerate(ev.proxy_jobs(p)):
        _fake_record(job, 40.0 + k, 2.0)

    def no_training(job: Any) -> None:
        raise AssertionError(f"retrained {job['arch']}")

    monkeypatch.setattr(S, "train_job", no_training)
    ref = ev.reference()
    assert ref.top1.shape == (12, 2) and np.isfinite(ref.top1[:, 1]).sum() == 4
    r = search(
        ev,
        ProxySpace(epochs=(2,), min_res=(32,), max_res=(32,), batch_size=(50,)),
        tmp_path / "s",
        method="grid",
        budget=1.0,
        max_cost=0.5,
        n_boot=20,
    )
    assert len(r.steps) == 1 and r.steps[0].tau == pytest.approx(1.0)
    assert r.steps[0].cost_fraction == pytest.approx(0.2)  # seed-mean per architecture: 2 s over 10 s


def test_stratified_architectures_span_the_macs() -> None:
    from benchmark.macs import macs_params

    X = stratified_architectures(30, 0)
    m = np.asarray(macs_params(X)[0])
    pool = np.asarray(macs_params(stratified_architectures(300, 1))[0])
    assert len(np.unique(X, axis=0)) == 30
    assert m.min() < np.percentile(pool, 5) and m.max() > np.percentile(pool, 95)


# ------------------------------------------------------------------------------------------ bad configs
def test_bad_configurations_get_one_line_errors(tmp_path: Path) -> None:
    from nasopt.validation.train.schemes import SMOKE

    ev = _evaluator()
    with pytest.raises(ProxySearchError, match="costlier than the reference"):
        search(ev, SPACE, tmp_path, max_cost=1.5)
    with pytest.raises(
        ProxySpaceError, match=r"costlier than the reference.*epochs up to 8 > the reference's 4"
    ):
        ProxySpace(epochs=(2, 8), min_res=(32,), max_res=(32,)).check(SMOKE)
    with pytest.raises(ProxySpaceError, match="max_res up to 64"):
        ProxySpace(epochs=(2,), min_res=(32,), max_res=(64,)).check(SMOKE)
    with pytest.raises(ProxySearchError, match=f"too few.*at least {MIN_ARCHITECTURES}"):
        search(SyntheticEvaluator(REF, n=MIN_ARCHITECTURES - 1), SPACE, tmp_path / "few")
    with pytest.raises(ProxySearchError, match="budget"):
        search(ev, SPACE, tmp_path, budget=0)
    with pytest.raises(ProxySearchError, match="method"):
        search(ev, SPACE, tmp_path, method="random")
    with pytest.raises(ProxySpaceError, match="unknown proxy space knob"):
        ProxySpace.from_dict({"epochs": [1], "min_res": [32], "max_res": [32], "warmup": [1]})
    with pytest.raises(ProxySpaceError, match="min_res=32 exceeds max_res=16"):
        ProxySettings(epochs=1, min_res=32, max_res=16)
    search(ev, SPACE, tmp_path / "s", method="grid", budget=0.2, max_cost=MAX_COST, n_boot=10)
    other = ProxySpace(epochs=(1, 2), min_res=(32,), max_res=(32,))
    with pytest.raises(ProxySearchError, match="other settings \\(space differ\\)"):
        search(ev, other, tmp_path / "s", method="grid", budget=0.2, max_cost=MAX_COST)
    for exc in (ProxySearchError, ProxySpaceError):
        assert "\n" not in str(exc("x"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", "proxy", "search", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def test_cli_synthetic_search_and_errors(tmp_path: Path, capsys: Any) -> None:
    from nasopt.proxy.search import main

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"epochs": [1, 2], "min_res": [32], "max_res": [32], "batch_size": [50]}))
    ok = _cli(
        "--synthetic",
        "--out",
        str(tmp_path / "s"),
        "--space",
        str(space),
        "--method",
        "grid",
        "--budget",
        "0.3",
        "--max-cost",
        "0.6",
        "--json",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["best"]["settings"]["epochs"] in (1, 2)
    bad = _cli("--synthetic", "--out", str(tmp_path / "b"), "--max-cost", "2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "costlier than the reference" in bad.stderr
    capsys.readouterr()
    assert main(["--synthetic", "--out", str(tmp_path / "f"), "--archs", "3"]) == 2
    assert "too few" in capsys.readouterr().err
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"epochs": [1, 99], "min_res": [32], "max_res": [32]}))
    assert main(["--synthetic", "--out", str(tmp_path / "p"), "--space", str(big)]) == 2
    err = capsys.readouterr().err
    assert "epochs up to 99" in err and err.count("\n") == 1
    assert main(["--out", str(tmp_path / "n")]) == 2
    assert "--data" in capsys.readouterr().err


def test_an_undefined_tau_never_wins() -> None:
    from nasopt.proxy.search import SearchResult

    def step(i: int, tau: float) -> Step:
        p = ProxySettings(epochs=i + 1, min_res=32, max_res=32)
        return Step(i, p, tau, (tau, tau), 1.0, 0.1, 0.1, True, {})

    # a proxy whose architectures all tie (every top-1 at chance) has τ = NaN: no ranking, never the best
    r = SearchResult(
        "bo", (step(0, float("nan")), step(1, 0.2), step(2, float("nan"))), 10.0, 3.0, 1.0, 0.3, ()
    )
    assert r.best is not None and r.best.index == 1
    assert r.best_within(0.15) is None  # only the undefined one was paid for by then
    within = r.best_within(0.25)
    assert within is not None and within.index == 1


def test_cost_of_reaching_a_tau_counts_every_step_paid_before() -> None:
    from nasopt.proxy.search import SearchResult

    def step(i: int, tau: float, cost_s: float, feasible: bool = True) -> Step:
        p = ProxySettings(epochs=i + 1, min_res=32, max_res=32)
        return Step(i, p, tau, (tau, tau), cost_s, cost_s / 10.0, cost_s / 10.0, feasible, {})

    # reference cost 10 s: the steps cost 0.2, 0.1, 0.3 and 0.1 reference-cost units
    steps = (step(0, 0.5, 2.0, feasible=False), step(1, 0.3, 1.0), step(2, 0.6, 3.0), step(3, 0.7, 1.0))
    r = SearchResult("bo", steps, 10.0, 7.0, 1.0, 0.3, ())
    assert r.first_reaching(0.3) == pytest.approx(0.3)  # step 1, after paying for the infeasible step 0
    assert r.first_reaching(0.5) == pytest.approx(0.6)  # step 0 reached 0.5 but was over the bound
    assert r.first_reaching(0.7) == pytest.approx(0.7)
    assert r.first_reaching(0.8) is None
    best = [getattr(r.best_within(c), "index", None) for c in (0.19, 0.3, 0.59, 0.6, 10.0)]
    assert best == [None, 1, 1, 2, 3]
