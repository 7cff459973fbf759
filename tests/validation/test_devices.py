"""``nasopt device``: design, active learning, resume after SIGKILL, the registered target in problems,
searches and ``bench query``, export/import, and bad input. A synthetic device (known additive cost + noise)
keeps everything fast; one test measures real networks at 32 px."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from benchmark import devices as store
from benchmark import space
from benchmark.targets import Target, get_target, register_target, unregister_target
from nasopt.validation import devices as dv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user cache (devices live in it); user targets of other tests are forgotten."""
    d = tmp_path / "cache"
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(d))
    yield d
    from benchmark.targets import USER_TARGETS

    USER_TARGETS.clear()


def _add(name: str, budget: int = 16, **kw: object) -> dv.AddResult:
    return dv.add_device(name, "synthetic", budget=budget, verbose=False, **kw)  # type: ignore[arg-type]


# ---- design ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [4, 5, 12, 30])
def test_covering_design_covers_every_level(n: int) -> None:
    X = dv.covering_design(n, seed=3)
    assert X.shape == (n, 28) and not dv.missing_levels(X)
    space.validate(X)
    assert len(np.unique(space.arch_id(X))) == n
    if n == 12:  # balanced: every level of a gene equally often
        for j in range(28):
            counts = np.bincount(X[:, j], minlength=int(space.CARDINALITIES[j]))
            assert counts.min() == counts.max()


def test_random_architectures_do_not_cover_every_level_as_cheaply() -> None:
    X = space.sample(4, np.random.default_rng(0))
    assert dv.missing_levels(X)  # 4 random ones miss some level; the design never does


def test_active_learning_choice_is_deterministic_for_a_seed() -> None:
    tgt = Target(
        "latency_altest",
        "ms",
        False,
        ("platform_perf", "latency_altest", "latency_mean"),
        "t",
        is_device=True,
        is_cost=True,
    )
    register_target(tgt)
    try:
        X = dv.covering_design(12, seed=0)
        y = dv.synthetic_cost(X) * np.exp(np.random.default_rng(1).normal(0, 0.03, 12))
        picks = []
        for _ in range(2):
            model = dv.fit_device_surrogate(X, y, tgt.name, seed=0)
            cands = dv.candidate_pool(0, 12, 500)
            picks.append(dv.choose_next(model, tgt.name, cands, 5, exclude=X))
        assert np.array_equal(picks[0], picks[1]) and len(set(picks[0].tolist())) == 5
        # the first pick is where the members disagree most (relative spread)
        mean, std = model.predict(cands, (tgt.name,))[tgt.name]
        assert picks[0][0] == int(np.argmax(std / mean))
        # measured architectures are never picked again
        again = dv.choose_next(model, tgt.name, np.concatenate([X, cands[:3]]), 3, exclude=X)
        assert (again >= 12).all()
    finally:
        unregister_target(tgt.name)


def test_synthetic_device_learning_curve_recovers_the_known_model() -> None:
    """A device with a known additive cost and 2 % noise: 30 measurements give tau >= 0.95 on 300 held-out
    architectures (against the noise-free cost), and more measurements do not do worse."""
    register_target(
        Target(
            "latency_lc",
            "ms",
            False,
            ("platform_perf", "latency_lc", "latency_mean"),
            "t",
            is_device=True,
            is_cost=True,
        )
    )
    rng = np.random.default_rng(7)
    H = space.sample(300, rng)
    truth = dv.synthetic_cost(H)
    taus = {}
    for n in (12, 30):
        X = dv.covering_design(n, seed=1)
        y = dv.synthetic_cost(X) * np.exp(rng.normal(0, 0.02, n))
        model = dv.fit_device_surrogate(X, y, "latency_lc")
        mean = model.predict(H, ("latency_lc",))["latency_lc"][0]
        taus[n] = float(kendalltau(mean, truth)[0])
        assert np.mean(np.abs(mean - truth) / truth) < 0.05
    assert taus[30] >= 0.95 and taus[30] >= taus[12] - 0.01, taus


# ---- add, resume, the registered target ------------------------------------------------------------------
def test_add_stores_records_device_json_and_surrogate(cache: Path) -> None:
    res = _add("syn", budget=16)
    dev = store.read_device("syn")
    assert res.n_total == 16 and res.target == "latency_syn" and dev.fitted
    X, y, names = store.read_device_records(dev.records_dir, dev.target)
    assert len(X) == 16 and len(np.unique(space.arch_id(X))) == 16 and names[0] == "result_0.json"
    assert not dv.missing_levels(X[:12])  # the covering design came first
    prov = json.loads((dev.records_dir / "result_0.provenance.json").read_text())
    assert prov["measurements"][0]["protocol"]["backend"] == "synthetic" and prov["phase"] == "cover"
    assert dev.info["backend"] == "synthetic" and dev.info["protocol"]["metric"] == "latency"
    ideal, nadir = dev.normalization  # type: ignore[misc]
    assert 0 < ideal < y.min() and nadir > y.max()
    # the records are upstream records: the benchmark's own loader reads them
    from benchmark.dataset import read_records

    assert len(read_records(dev.records_dir)) == 16


def test_box_is_stored_once_and_kept_when_the_device_grows(cache: Path) -> None:
    _add("grow", budget=12)
    box = store.read_device("grow").normalization
    res = _add("grow", budget=20)
    assert res.n_measured_now == 8 and res.n_total == 20
    assert store.read_device("grow").normalization == box


def test_a_continued_add_never_remeasures(cache: Path) -> None:
    _add("again", budget=12)
    X0, _, _ = store.read_device_records(store.device_dir("again") / "records", "latency_again")
    res = _add("again", budget=12)
    assert res.n_measured_now == 0
    res = _add("again", budget=17)
    X, _, _ = store.read_device_records(store.device_dir("again") / "records", "latency_again")
    assert res.n_measured_now == 5 and len(np.unique(space.arch_id(X))) == 17
    assert np.array_equal(X[:12], X0)


def _spawn_add(cache: Path, name: str, budget: int, delay: float) -> subprocess.Popen[str]:
    env = {**os.environ, "NASOPT_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-c",
        "import sys; from nasopt.validation.devices import main; sys.exit(main(sys.argv[1:]))",
        "add",
        name,
        "--backend",
        "synthetic",
        "--budget",
        str(budget),
        "--delay",
        str(delay),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_resume_after_sigkill_never_remeasures(cache: Path) -> None:
    records = cache / "devices" / "killed" / "records"
    proc = _spawn_add(cache, "killed", 16, delay=0.3)
    deadline = time.monotonic() + 120
    while len(list(records.glob("result_*[0-9].json"))) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = {p.name: p.read_bytes() for p in records.glob("result_*[0-9].json")}
    assert 4 <= len(before) < 16
    proc = _spawn_add(cache, "killed", 16, delay=0.0)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    after = {p.name: p.read_bytes() for p in records.glob("result_*[0-9].json")}
    assert len(after) == 16 and all(after[k] == v for k, v in before.items())  # nothing rewritten
    X, _, _ = store.read_device_records(records, "latency_killed")
    assert len(np.unique(space.arch_id(X))) == 16  # nothing measured twice
    assert f"({16 - len(before)} now;" in out


def test_target_works_in_problems_searches_and_bench_query(cache: Path, tmp_path: Path) -> None:
    _add("mydev", budget=12)
    from benchmark.targets import USER_TARGETS

    USER_TARGETS.clear()  # as a fresh process: found in the user cache on first use
    t = get_target("latency_mydev")
    assert t.is_device and not t.maximize and t.unit == "ms"
    from nasopt.problems import make_problem, normalization

    box = store.read_device("mydev").normalization
    bound = float(np.mean(box))  # type: ignore[arg-type]
    p = make_problem("mine", ["accuracy", "latency_mydev"], [f"latency_mydev <= {bound}"])
    assert normalization("latency_mydev") == box and p.info.nadir[1] == box[1]  # type: ignore[index]
    from benchmark.synthetic import SyntheticBenchmark

    X = space.sample(5, np.random.default_rng(0))
    pred = SyntheticBenchmark().query(X, ["accuracy", "latency_mydev"])
    assert np.allclose(pred["latency_mydev"].mean, store.predict("latency_mydev", X)[0])
    # a search in another process, with the user target as objective and constraint
    run_dir = tmp_path / "run"
    env = {**os.environ, "NASOPT_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "search",
            "experiment=smoke",
            "optimizer=rs",
            "budget.max_evals=20",
            "problem.name=mine",
            "problem.objectives=[accuracy,latency_mydev]",
            f'problem.constraints=["latency_mydev <= {bound}"]',
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from nasopt.rundir import read_run

    run = read_run(run_dir)
    assert run.n_evals == 20 and "mean_latency_mydev" in run.trials.columns


def test_bench_query_json_has_the_user_target(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add("qdev", budget=12)
    capsys.readouterr()
    from benchmark import cli as bench_cli
    from benchmark.oracle import Benchmark

    def fake_load(args: object, **over: object) -> Benchmark:
        b = Benchmark.__new__(Benchmark)
        b.model = type("M", (), {"targets": {}, "coverage": None})()  # type: ignore[assignment]
        return b

    mp = pytest.MonkeyPatch()
    mp.setattr(bench_cli, "_load", fake_load)
    arch = space.to_string(space.reference("efficientnet_b0"))
    try:
        assert bench_cli.main(["query", "--arch", arch, "--targets", "latency_qdev", "--json"]) == 0
    finally:
        mp.undo()
    row = json.loads(capsys.readouterr().out)[0]
    expect = store.predict("latency_qdev", space.reference("efficientnet_b0")[None, :])[0][0]
    assert row["latency_qdev"]["unit"] == "ms" and row["latency_qdev"]["mean"] == pytest.approx(expect)


def test_export_import_round_trip(cache: Path, tmp_path: Path) -> None:
    _add("src", budget=12)
    out = tmp_path / "src.tar.gz"
    assert dv.main(["export", "src", "--out", str(out)]) == 0
    from benchmark.dataset import read_records

    assert len(read_records(out)) == 12  # the upstream layout: the benchmark's loader reads the archive
    assert dv.main(["import", str(out), "--name", "copy"]) == 0
    a, b = store.read_device("src"), store.read_device("copy")
    assert b.normalization == a.normalization and b.info["backend"] == "synthetic"
    Xa, ya, _ = store.read_device_records(a.records_dir, a.target)
    Xb, yb, _ = store.read_device_records(b.records_dir, b.target)
    assert np.array_equal(Xa, Xb) and np.allclose(ya, yb)
    X = space.sample(20, np.random.default_rng(2))
    assert np.allclose(store.predict("latency_src", X)[0], store.predict("latency_copy", X)[0])
    assert dv.main(["remove", "copy"]) == 0
    assert "copy" not in store.device_names()


def test_list_show_and_predicted_vs_measured(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add("shown", budget=12)
    assert dv.main(["list"]) == 0 and "latency_shown" in capsys.readouterr().out
    assert dv.main(["show", "shown"]) == 0 and "normalisation box" in capsys.readouterr().out
    res = dv.predicted_vs_measured("shown", space.sample(8, np.random.default_rng(4)), verbose=False)
    assert res["n"] == 8 and res["mape"] < 0.1 and res["kendall_tau"] > 0.5


@pytest.mark.parametrize(
    "argv, text",
    [
        (["add", "x1", "--backend", "nope"], "unknown measurement backend 'nope'"),
        (["add", "a100", "--backend", "synthetic"], "clashes with the built-in target"),
        (["add", "zcu102", "--backend", "synthetic"], "clashes with the built-in target"),
        (["add", "Bad-Name", "--backend", "synthetic"], "lower-case letters"),
        (["add", "x2", "--backend", "synthetic", "--budget", "3"], "cannot cover every block choice"),
        (["add", "x3"], "give --backend"),
        (["show", "missing"], "no user device 'missing'"),
        (["remove", "missing"], "no user device 'missing'"),
        (["export", "missing", "--out", "x.tar.gz"], "no user device 'missing'"),
        (["import", "nowhere.tar.gz"], "no such archive"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dv.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err, err
    assert not (store.devices_root() / argv[1]).exists() or argv[0] != "add"


def test_resumed_add_with_other_settings_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    _add("fixed", budget=12, noise=0.01)
    assert dv.main(["add", "fixed", "--noise", "0.2", "--budget", "14"]) == 2
    assert "exists with other settings" in capsys.readouterr().err


def test_unavailable_backend_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasopt.validation.measure.cpu import OnnxRuntimeBackend

    monkeypatch.setattr(
        OnnxRuntimeBackend, "availability", classmethod(lambda c: "onnxruntime not installed")
    )
    assert dv.main(["add", "nort", "--backend", "cpu", "--budget", "4"]) == 2
    err = capsys.readouterr().err
    assert "not available here" in err and "\n" not in err.strip()


def test_unknown_user_target_in_a_problem_is_a_problem_error() -> None:
    from nasopt.problems import ProblemError, make_problem

    with pytest.raises(ProblemError, match="unknown benchmark target 'latency_nodev'"):
        make_problem("mine", ["accuracy", "latency_nodev"])


@pytest.mark.slow
def test_real_cpu_device_at_32px(cache: Path) -> None:
    """A real onnxruntime device, 1 thread, 32 px, 6 architectures, few repeats."""
    pytest.importorskip("onnxruntime")
    res = dv.add_device(
        "tinycpu", "cpu", budget=6, threads=1, resolution=32, warmup=1, repeats=3, passes=1, verbose=False
    )
    dev = store.read_device("tinycpu")
    assert res.n_total == 6 and dev.fitted and dev.info["environment"]["threads"] == 1
    assert dev.info["protocol"]["resolution"] == 32 and "onnxruntime" in dev.info["environment"]["runtime"]


def test_default_surrogate_config_json_and_cache_key_are_unchanged() -> None:
    from benchmark.surrogate import SurrogateConfig, SurrogateConfigError

    assert "additive_basis" not in SurrogateConfig().to_json()  # so existing cache keys stay
    phys = SurrogateConfig(additive_basis="physical")
    assert SurrogateConfig.from_json(phys.to_json()) == phys and phys.key() != SurrogateConfig().key()
    with pytest.raises(SurrogateConfigError, match="additive_basis"):
        SurrogateConfig(additive_basis="cubic")


def test_bench_info_lists_user_devices(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.cli import _print_user_devices

    _add("infodev", budget=12)
    _print_user_devices()
    out = capsys.readouterr().out
    assert "latency_infodev" in out and "synthetic" in out and "n=12" in out


def test_until_tau_stops_before_the_budget() -> None:
    res = _add("taudev", budget=60, until_tau=0.8, noise=0.005)
    assert res.n_total < 60 and "tau" in res.stopped and res.fit["kendall_tau"] >= 0.8
    with pytest.raises(Exception, match="until-tau"):
        _add("taubad", budget=20, until_tau=1.5)


def test_a_second_concurrent_add_is_refused_naming_the_first_pid(cache: Path) -> None:
    """Two processes add the same device: the second exits 2 with one line naming the first's PID (and so
    does a remove); nothing of the first is disturbed, and once it is killed the device continues."""
    records = cache / "devices" / "busy" / "records"
    first = _spawn_add(cache, "busy", 12, delay=0.3)
    deadline = time.monotonic() + 120
    while len(list(records.glob("result_*[0-9].json"))) < 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = _spawn_add(cache, "busy", 12, delay=0.0)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2, err
    line = err.strip()
    assert f"PID {first.pid}" in line and "in use by another process" in line and "\n" not in line, err
    assert dv.main(["remove", "busy"]) == 2 and (cache / "devices" / "busy" / "device.json").is_file()
    assert first.poll() is None  # the first one goes on measuring
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert _add("busy", budget=12).n_total == 12  # the lock died with its process: the device continues
    X, _, _ = store.read_device_records(records, "latency_busy")
    assert len(np.unique(space.arch_id(X))) == 12


@pytest.mark.parametrize("given", ["all", None])
@pytest.mark.parametrize("backend", ["onnxruntime", "torch-cpu"])
def test_all_threads_resolve_to_every_core_and_are_recorded(given: object, backend: str) -> None:
    from nasopt.validation.measure import make_backend

    b = make_backend(backend, metric="latency", threads=given)
    cores = len(os.sched_getaffinity(0))
    assert b.threads is None and b.effective_threads() == cores and b.protocol().threads == cores
    assert make_backend(backend, threads=1).protocol().threads == 1


def test_threads_setting_bad_values_are_one_line() -> None:
    from benchmark.errors import ConfigurationError
    from nasopt.validation.measure import make_backend

    for bad in (0, -1, "many", 1.5, True):  # 0 means all only on the command line (--threads 0)
        with pytest.raises(ConfigurationError, match="threads must be a positive integer, or 'all'"):
            make_backend("onnxruntime", threads=bad)


def test_cli_threads_all_is_stored_as_all(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(
        dv, "add_device", lambda *a, **kw: seen.update(kw) or (_ for _ in ()).throw(SystemExit)
    )
    for text in ("all", "0", "ALL"):
        with pytest.raises(SystemExit):
            dv.main(["add", "t", "--backend", "cpu", "--threads", text])
        assert seen["threads"] == "all"
    with pytest.raises(SystemExit):
        dv.main(["add", "t", "--backend", "cpu", "--threads", "3"])
    assert seen["threads"] == 3
    with pytest.raises(SystemExit) as exc:
        dv.main(["add", "t", "--backend", "cpu", "--threads", "-2"])  # argparse: usage + exit 2
    assert exc.value.code == 2


def test_continuing_under_another_protocol_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--threads all`` on a machine with other cores (here: a protocol that resolves differently) would
    mix measurements of two protocols in one device: refused in one line."""
    import dataclasses

    _add("proto", budget=12, threads=0)
    assert store.read_device("proto").info["settings"]["threads"] == "all"
    orig = dv.SyntheticDevice.protocol
    monkeypatch.setattr(
        dv.SyntheticDevice, "protocol", lambda self: dataclasses.replace(orig(self), threads=7)
    )
    assert dv.main(["add", "proto", "--budget", "14"]) == 2
    err = capsys.readouterr().err.strip()
    assert "another protocol here: threads 7 (stored 1)" in err and "\n" not in err, err


class _SpreadBackend:
    """Measurements whose samples spread as listed (one per call)."""

    def __init__(self, spreads: list[float]) -> None:
        self.spreads, self.calls = list(spreads), 0

    def measure(self, genes: object) -> object:
        sp = self.spreads[min(self.calls, len(self.spreads) - 1)]
        self.calls += 1
        return type("M", (), {"mean": 10.0 * (1 + sp), "std": 10.0 * (1 + sp) * sp})()


@pytest.mark.parametrize(
    ("spreads", "max_spread", "calls", "kept"),
    [
        ([0.01], 0.05, 1, 0.01),  # quiet: measured once
        ([0.2, 0.1, 0.3], 0.05, 3, 0.1),  # a burst: three attempts, the quietest kept
        ([0.2, 0.03, 0.3], 0.05, 2, 0.03),  # quiet on the second attempt: stops there
        ([0.2, 0.1], 0.0, 1, 0.2),  # 0: never again
    ],
)
def test_measure_quiet_takes_a_disturbed_measurement_again(
    spreads: list[float], max_spread: float, calls: int, kept: float
) -> None:
    b = _SpreadBackend(spreads)
    m, seen = dv.measure_quiet(b, np.zeros(28, np.int64), max_spread=max_spread, pause_s=0.0)
    assert b.calls == calls and len(seen) == calls and m.std / m.mean == pytest.approx(kept)


def test_add_records_every_attempt_of_a_disturbed_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dv, "QUIET_PAUSE_S", 0.0)
    _add("bursty", budget=4, noise=0.3)  # samples spread ~10 % > 5 %: each taken three times
    prov = json.loads((store.device_dir("bursty") / "records" / "result_0.provenance.json").read_text())
    assert len(prov["spreads"]) == 3 and prov["max_spread"] == dv.MAX_SPREAD
    kept = prov["measurements"][0]
    assert kept["std"] / kept["mean"] == pytest.approx(min(prov["spreads"]))
    _add("calm", budget=4)  # 1 % noise: measured once each
    prov = json.loads((store.device_dir("calm") / "records" / "result_0.provenance.json").read_text())
    assert len(prov["spreads"]) == 1
