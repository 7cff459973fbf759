"""``nasopt benchmark build``: a tiny build end to end (synthetic trainer and device, seconds), resume after a
real SIGKILL, the built archive used by ``load_benchmark``, ``nasopt search`` and ``nasopt report`` (real
subprocesses), and bad specs / corrupt archives as one-line errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import built, geometry, space, targets
from benchmark.dataset import DatasetError, read_records
from benchmark.macs import macs_params
from benchmark.oracle import load_benchmark
from nasopt.benchmark_build import BenchmarkSpec, BuildError, BuildSpecError, build_benchmark, load_spec
from nasopt.benchmark_build.build import finished_build, pack_partial
from nasopt.benchmark_build.cli import main as bench_build_main

REPO = Path(__file__).resolve().parents[1]
N = 12
TINY = [
    "name=tiny",
    "trainer=synthetic",
    "num_classes=10",
    "skeleton=0.25",
    f"n_architectures={N}",
    "devices=[{name: syn, backend: synthetic, options: {noise: 0.01}}]",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Own cache directory; the targets and boxes a built benchmark registers are forgotten afterwards."""
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NASOPT_DATASET", raising=False)
    users, boxes = dict(targets.USER_TARGETS), dict(targets.REGISTERED_BOXES)
    yield
    targets.USER_TARGETS.clear()
    targets.USER_TARGETS.update(users)
    targets.REGISTERED_BOXES.clear()
    targets.REGISTERED_BOXES.update(boxes)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NASOPT_DATASET"}
    env.update({"NASOPT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    return env


def _cli(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def tiny_build(tmp_path: Path) -> Path:
    res = build_benchmark(load_spec(None, TINY), tmp_path / "build", verbose=False)
    assert res.finished and res.archive is not None
    return res.archive


# -------------------------------------------------------------------------------------------------- build
def test_tiny_build_end_to_end(tmp_path: Path) -> None:
    spec = load_spec(None, TINY)
    res = build_benchmark(spec, tmp_path / "build", verbose=False)
    assert res.finished and res.trained_now == N and res.measured_now == N and res.n_records == N
    archive = res.archive
    assert archive is not None and archive.name == "tiny.tar.gz"
    meta = res.meta
    assert meta["counts"] == {"architectures": N, "records": N, "measured": {"latency_syn": N}}
    assert meta["skeleton"] == geometry.MNASNET.scaled(0.25).to_dict()
    assert (meta["num_classes"], meta["resolution"]) == (10, 32)
    assert [t["name"] for t in meta["targets"]] == ["accuracy", "train_time", "latency_syn"]
    assert meta["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == built.META_NAME and len(meta["checksums"]) == N
    # the records are Accel-NASBench records: the benchmark's own reader takes them, its targets included
    info = built.read_info(archive)
    assert info is not None
    built.register(info)
    data = read_records(archive, targets=info.extra_targets)
    assert len(data) == N and np.isfinite(data.labels["latency_syn"]).all()
    assert np.isnan(data.labels["throughput_a100"]).all()
    sk = geometry.MNASNET.scaled(0.25)
    m, p = macs_params(data.X, skeleton=sk, resolution=32, num_classes=10)
    np.testing.assert_allclose(data.macs, m)
    np.testing.assert_allclose(data.params, p)
    # the archive is reproducible: packing the same records again gives the same bytes
    (tmp_path / "build" / built.META_NAME).unlink()
    again = build_benchmark(spec, tmp_path / "build", verbose=False)
    assert again.trained_now == 0 and again.measured_now == 0
    assert again.meta["archive_sha256"] == meta["archive_sha256"]


def test_load_built_like_the_builtin(tiny_build: Path, tmp_path: Path) -> None:
    cache = tmp_path / "surrogates"
    bench = load_benchmark(tiny_build, cache_dir=cache, verbose=False, n_members=2)
    assert bench.targets == ("accuracy", "train_time", "latency_syn")
    assert bench.digest.startswith("tiny-")
    X = space.sample(500, np.random.default_rng(0))
    pred = bench.query(X)
    assert set(pred) == set(bench.targets) and pred["latency_syn"].mean.shape == (500,)
    assert (pred["latency_syn"].mean > 0).all()
    np.testing.assert_allclose(bench.cost(X), pred["train_time"].mean)
    m, _ = bench.macs_params(X)
    np.testing.assert_allclose(
        m, macs_params(X, skeleton=geometry.MNASNET.scaled(0.25), resolution=32, num_classes=10)[0]
    )
    # from the cache: no fit, fast, the same predictions; the build directory means its archive
    t0 = time.perf_counter()
    again = load_benchmark(tiny_build.parent, cache_dir=cache, verbose=False, n_members=2)
    assert time.perf_counter() - t0 < 1.0
    assert again.cache_path == bench.cache_path
    np.testing.assert_array_equal(again.query(X, "accuracy")["accuracy"].mean, pred["accuracy"].mean)
    # a built-in-only target: one line naming what the benchmark has
    with pytest.raises(
        built.BuiltBenchmarkError,
        match=r"throughput_a100 not in the built benchmark 'tiny'.*"
        r"accuracy, train_time, latency_syn",
    ):
        bench.query(X, ["accuracy", "throughput_a100"])
    with pytest.raises(built.BuiltBenchmarkError, match="no upstream default split"):
        load_benchmark(tiny_build, cache_dir=cache, verbose=False, split="default")


def test_builtin_data_unchanged_after_a_built_one(tiny_build: Path, tmp_path: Path, anb_kit: Any) -> None:
    """Loading a built benchmark does not change how the built-in-layout data loads (its boxes go again)."""
    from nasopt.problems import normalization

    load_benchmark(tiny_build, cache_dir=tmp_path / "s", verbose=False, n_members=2)
    assert normalization("accuracy") != (70.0, 50.0)  # the built benchmark's own box while it is loaded
    d = anb_kit.write_dir(tmp_path / "anb", anb_kit.records(range(30)))
    bench = load_benchmark(d, cache_dir=tmp_path / "s", verbose=False, n_members=2, targets=["accuracy"])
    assert bench.built is None and bench.digest.startswith("anb-")
    assert normalization("accuracy") == (70.0, 50.0)


# ------------------------------------------------------------------------------------------------- resume
def test_resume_after_sigkill_redoes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "build"
    args = ["benchmark", "build", *TINY, "trainer_options.delay=0.5", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = out / "build.log"
    deadline = time.time() + 600  # the command's start (torch's import) takes long on a loaded machine
    while time.time() < deadline:
        if log.is_file() and log.read_text().count("measured ") >= 2:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = log.read_text().count("trained ") if log.is_file() else 0
    assert 2 <= before < N, f"killed after {before} trainings: too early or too late to test a resume"
    calls_before = (out / "train" / "calls.log").read_text().split()
    r = _cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert "records" in r.stdout and "tiny.tar.gz" in r.stdout
    calls = (out / "train" / "calls.log").read_text().split()
    # every architecture trained once; at most the one killed mid-"training" ran again
    assert len(set(calls)) == N and len(calls) <= N + 1
    assert len(calls) - len(calls_before) <= N - before + 1
    lines = log.read_text().splitlines()
    assert sum(ln.split()[1] == "measured" for ln in lines) == N  # none measured twice
    assert sum(ln.split()[1] == "trained" for ln in lines) == N
    # a finished build is not rebuilt: the same command says so and leaves the archive alone
    archive = out / "tiny.tar.gz"
    stamp = (archive.stat().st_mtime_ns, hashlib.sha256(archive.read_bytes()).hexdigest())
    r = _cli(tmp_path, *args)
    assert r.returncode == 0 and "already built" in r.stdout
    assert (archive.stat().st_mtime_ns, hashlib.sha256(archive.read_bytes()).hexdigest()) == stamp


def test_sigterm_stops_between_jobs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "build"
    args = ["benchmark", "build", *TINY, "trainer_options.delay=0.3", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "build.log"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.is_file() and "measured " in log.read_text()):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err.strip().splitlines()[-1]
    assert not (out / "tiny.tar.gz").exists()
    r = _cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert len(set((out / "train" / "calls.log").read_text().split())) == N


def test_another_spec_in_the_directory_is_refused(tmp_path: Path) -> None:
    build_benchmark(load_spec(None, TINY), tmp_path / "b", verbose=False)
    other = load_spec(None, [*TINY, "sample_seed=1"])
    with pytest.raises(BuildError, match=r"holds the build of another spec.*--overwrite"):
        build_benchmark(other, tmp_path / "b", verbose=False)
    res = build_benchmark(other, tmp_path / "b", verbose=False, overwrite=True)
    assert res.finished and res.trained_now == N


def test_digest_covers_results_not_execution() -> None:
    base = load_spec(None, TINY)
    same = load_spec(
        None, [*TINY, "engine=submitit_local", "max_parallel=3", "threads=2", "trainer_options.delay=1"]
    )
    assert same.digest() == base.digest()
    for change in (
        "proxy.epochs=2",
        "seeds=[0,1]",
        "skeleton=0.5",
        "sampling=cover",
        "resolution=64",
        "devices=[{name: syn, backend: synthetic, batch: 4}]",
    ):
        assert load_spec(None, [*TINY, change]).digest() != base.digest(), change


def test_seeds_and_cover_sampling(tmp_path: Path) -> None:
    spec = load_spec(None, [*TINY, "seeds=[0,1]", "sampling=cover"])
    res = build_benchmark(spec, tmp_path / "b", verbose=False)
    assert res.meta["counts"]["records"] == 2 * N and res.meta["counts"]["measured"] == {"latency_syn": N}
    info = built.read_info(res.archive)  # type: ignore[arg-type]
    assert info is not None
    built.register(info)
    data = read_records(res.archive, targets=info.extra_targets)  # type: ignore[arg-type]
    assert len(np.unique(space.arch_id(data.X))) == N
    assert np.isfinite(data.labels["latency_syn"]).sum() == N  # measured once per architecture


@pytest.mark.slow
def test_submitit_local_engine(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    spec = load_spec(
        None, [*TINY, "engine=submitit_local", "max_parallel=2", "engine_options={timeout_min: 10}"]
    )
    res = build_benchmark(spec, tmp_path / "b", verbose=False)
    assert res.finished and res.trained_now == N


# ------------------------------------------------------------------------------------- search and report
def test_built_archive_in_search_and_report(tiny_build: Path, tmp_path: Path) -> None:
    load_benchmark(tiny_build, cache_dir=tmp_path / "cache" / "surrogates", verbose=False)  # fit once, cached
    run = tmp_path / "run"
    r = _cli(
        tmp_path,
        "search",
        f"benchmark.params.dataset={tiny_build}",
        "problem.name=tiny_acc_syn",
        "problem.objectives=[accuracy,latency_syn]",
        "optimizer=rs",
        "budget.max_evals=60",
        f"hydra.run.dir={run}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["objectives"] == ["accuracy", "latency_syn"] and summary["n_evals"] == 60
    assert summary["benchmark_digest"].startswith("tiny-")
    assert summary["hypervolume"] > 0  # the built benchmark's own boxes, not ImageNet's accuracy box
    rep = _cli(tmp_path, "report", str(run), "--out", str(tmp_path / "report"))
    assert rep.returncode == 0, rep.stderr[-2000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "tiny_acc_syn" in text and "latency_syn" in text
    info = _cli(tmp_path, "bench", "info", "--dataset", str(tiny_build))
    assert info.returncode == 0, info.stderr[-2000:]


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("n_architectures=0", "n_architectures=0: build at least 10"),
        ("sampling=sobol", "sampling='sobol': choose uniform or cover"),
        ("bogus=1", "unknown setting.*bogus"),
        ("devices=[{name: My-CPU, backend: synthetic}]", "name 'My-CPU'"),
        ("proxy.epochz=2", "unknown scheme setting.*epochz"),
        ("seeds=[0,0]", "each seed once"),
        ("engine=slurmm", "engine='slurmm'"),
        ("train_fraction=0", r"train_fraction=0: give a fraction in \(0, 1\]"),
    ],
)
def test_bad_specs_are_one_line(override: str, match: str) -> None:
    with pytest.raises(BuildSpecError, match=match) as err:
        load_spec(None, [*TINY, override])
    assert "\n" not in str(err.value)


def test_bad_spec_on_the_cli_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_build_main(["build", *TINY, "n_architectures=0", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_architectures=0" in err[0]
    assert not (tmp_path / "b").exists()
    assert (
        bench_build_main(["build", "trainer=torch", "data=/nonexistent/fm", "--out", str(tmp_path / "c")])
        == 2
    )
    assert "no train/ folder" in capsys.readouterr().err
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: fromfile\ntrainer: synthetic\nnum_classes: 10\nn_architectures: 10\n")
    assert bench_build_main(["build", str(spec), "n_architectures=11", "--print-spec"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["n_architectures"] == 11


def test_torch_trainer_needs_data() -> None:
    with pytest.raises(BuildSpecError, match="data=None"):
        BenchmarkSpec(name="x")


def _rewrite(archive: Path, dest: Path, change: Any) -> Path:
    with tarfile.open(archive) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    members = change(members)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    dest.write_bytes(gzip.compress(raw.getvalue()))
    return dest


def test_corrupt_archives_are_one_line(tiny_build: Path, tmp_path: Path) -> None:
    def edit_record(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        name, data = members[1]
        rec = json.loads(data)
        rec["metrics"]["val_top1"] = 99.0
        return [members[0], (name, json.dumps(rec).encode()), *members[2:]]

    def drop_record(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [m for i, m in enumerate(members) if i != 1]

    def bad_meta(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [(members[0][0], b"{not json"), *members[1:]]

    cache = tmp_path / "s"
    for change, match in (
        (edit_record, "does not match its checksum"),
        (drop_record, "missing"),
        (bad_meta, "benchmark.json is corrupt"),
    ):
        bad = _rewrite(tiny_build, tmp_path / f"{change.__name__}.tar.gz", change)
        with pytest.raises(built.BuiltBenchmarkError, match=match) as err:
            load_benchmark(bad, cache_dir=cache, verbose=False, n_members=2)
        assert "\n" not in str(err.value)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tiny_build.read_bytes()[: tiny_build.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated, corrupt"):
        load_benchmark(truncated, cache_dir=cache, verbose=False, n_members=2)


def test_info_command(tiny_build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_build_main(["info", str(tiny_build)]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "latency_syn" in out and "10 classes" in out
    assert bench_build_main(["info", str(REPO / "README.md")]) == 2


def test_shards_build_one_benchmark(tmp_path: Path) -> None:
    first = build_benchmark(load_spec(None, [*TINY, "shard=0/2"]), tmp_path / "b", verbose=False)
    assert not first.finished and first.trained_now == N // 2 and first.n_records == N // 2
    partial = pack_partial(tmp_path / "b")  # an unfinished build's records so far, a loadable archive
    info = built.read_info(partial)
    assert info is not None and info.meta["partial"] and info.meta["counts"]["records"] == N // 2
    assert finished_build(tmp_path / "b") is None
    second = build_benchmark(load_spec(None, [*TINY, "shard=1/2"]), tmp_path / "b", verbose=False)
    assert second.finished and second.trained_now == N // 2 and second.n_records == N
    whole = build_benchmark(load_spec(None, TINY), tmp_path / "c", verbose=False)
    # the same benchmark: the same records and trainings (the synthetic device's noise follows its call count)
    assert whole.meta["spec_digest"] == second.meta["spec_digest"]
    assert whole.meta["checksums"].keys() == second.meta["checksums"].keys()
    built.register(built.read_info(second.archive))  # type: ignore[arg-type]
    a = read_records(second.archive, targets=["latency_syn"])  # type: ignore[arg-type]
    b = read_records(whole.archive, targets=["latency_syn"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.labels["accuracy"], b.labels["accuracy"])
    with pytest.raises(BuildSpecError, match="shard='2/2'"):
        load_spec(None, [*TINY, "shard=2/2"])
