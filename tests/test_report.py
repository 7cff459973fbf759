"""The report over a small synthetic sweep, run discovery, reference fronts and their cache, the CLIs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from pymoo.indicators.hv import HV

from benchmark import space
from benchmark.synthetic import SyntheticBenchmark
from experiments.perf.report_speed import write_synthetic_run, write_synthetic_sweep
from nasopt import fronts, stats
from nasopt.report import ContextPoints, ReportResult, build_report, dataset_context
from nasopt.rundir import analysis_columns, find_runs, read_run
from optimizers import indicators
from optimizers.base import ProblemInfo

BI = ProblemInfo(
    "t_bi", ("accuracy", "throughput_a100"), (True, True), (-70.0, -32000.0), (-50.0, -4000.0), (1.0, 1.0)
)
SINGLE = ProblemInfo("t_single", ("accuracy",), (True,), (-70.0,), (-50.0,), (1.0,))
TRI = ProblemInfo(
    "t_tri",
    ("accuracy", "throughput_a100", "latency_zcu102"),
    (True, True, False),
    (-70.0, -32000.0, 1.5),
    (-50.0, -4000.0, 25.0),
    (1.0, 1.0, 1.0),
)
PROBLEMS = {p.name: p for p in (BI, SINGLE, TRI)}
OPTIMIZERS = {"rs": 0.0, "re": 0.6, "nsga2": 0.9}
CHECKPOINTS = (20, 50, 100, 200)
N_EVALS = 120


def recompute_hv(run_dir: Path, info: ProblemInfo, n: int | None = None) -> float:
    """HV straight from trials.parquet with pymoo, independent of nasopt.analysis."""
    t = pd.read_parquet(run_dir / "trials.parquet")
    if n is not None:
        t = t.iloc[:n]
    vals = t[[f"mean_{o}" for o in info.objectives]].to_numpy()
    sign = np.where(np.array(info.maximize), -1.0, 1.0)
    F = (vals * sign - np.array(info.ideal)) / (np.array(info.nadir) - np.array(info.ideal))
    pts = F[t["feasible"].to_numpy(bool)]
    pts = pts[np.all(pts < np.array(info.ref_point), axis=1)]
    return float(HV(ref_point=np.array(info.ref_point))(pts)) if len(pts) else 0.0


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    write_synthetic_sweep(root, [BI, SINGLE, TRI], OPTIMIZERS, seeds=range(4), n_evals=N_EVALS)
    # an unfinished, shorter run with infeasible points, nested deeper
    write_synthetic_run(
        root / "extra" / "deep" / "run",
        BI,
        "rs",
        99,
        60,
        0.0,
        np.random.default_rng(7),
        infeasible_frac=0.3,
        finished=False,
    )
    # not a run: trials.parquet without config.yaml / summary.json
    (root / "junk").mkdir()
    pd.DataFrame({"eval_index": [0]}).to_parquet(root / "junk" / "trials.parquet")
    return root


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    out = tmp_path_factory.mktemp("report")
    b0 = np.array([66.0, 15000.0])
    measured = np.column_stack([np.linspace(55, 68, 30), np.linspace(30000, 5000, 30)])
    return build_report(
        [sweep],
        out,
        checkpoints=CHECKPOINTS,
        problems=PROBLEMS,
        context={"t_bi": ContextPoints(measured=measured, b0=b0)},
    )


# ------------------------------------------------------------------------------------------------ registry
def test_metric_registry_is_consistent() -> None:
    import dataclasses

    from nasopt.analysis import RunTrace
    from nasopt.report.metrics import HV, METRICS, PRIMARY, metrics_for, plotted_metric

    names = [m.name for m in METRICS]
    assert len(set(names)) == len(names) and PRIMARY is HV
    fields = {f.name for f in dataclasses.fields(RunTrace)}
    assert all(m.trace in fields for m in METRICS)
    assert [m.name for m in metrics_for(False)] == ["hv", "best_accuracy", "front_size"]
    assert [m.name for m in metrics_for(True)] == names
    assert plotted_metric(SINGLE).name == "best_accuracy"  # the only objective is accuracy
    assert plotted_metric(BI) is HV and plotted_metric(TRI) is HV


# ------------------------------------------------------------------------------------------------ discovery
def test_find_run_dirs_finds_nested_runs_and_skips_non_runs(sweep: Path) -> None:
    dirs = find_runs([sweep])
    assert len(dirs) == 3 * 3 * 4 + 1
    assert all((d / "trials.parquet").is_file() for d in dirs)
    assert not any(d.name == "junk" for d in dirs)
    assert find_runs([sweep / "extra" / "deep" / "run" / "trials.parquet"]) == [
        (sweep / "extra" / "deep" / "run").resolve()
    ]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_runs([sweep / "nope"])


def test_load_run_reads_metadata(sweep: Path) -> None:
    run = read_run(sweep / "extra" / "deep" / "run", analysis_columns, problems=PROBLEMS)
    assert (run.problem, run.optimizer, run.seed, run.n_evals, run.finished) == ("t_bi", "rs", 99, 60, False)
    assert run.info == BI


# ------------------------------------------------------------------------------------------------ report
def test_report_writes_every_table_and_figure(report: ReportResult) -> None:
    out = report.out
    for name in ("runs", "checkpoints", "final", "tests", "ranks"):
        assert report.tables[name].is_file() and report.tables[name].stat().st_size > 0
    names = sorted(p.name for p in report.figures)
    assert names == sorted(
        [
            "final.png",
            "anytime_t_bi.png",
            "anytime_t_single.png",
            "anytime_t_tri.png",
            "fronts_t_bi.png",
            "fronts_t_tri.png",
        ]
    )
    md = report.markdown.read_text()
    for p in report.figures:
        assert p.is_file() and p.stat().st_size > 10_000
        assert p.relative_to(out).as_posix() in md
    for prob in PROBLEMS:
        assert f"## Problem `{prob}`" in md
    assert "not finished" in md  # the unfinished run is reported


def test_final_hv_equals_hv_recomputed_from_trials(report: ReportResult, sweep: Path) -> None:
    runs = pd.read_csv(report.tables["runs"])
    assert len(runs) == 37
    for _, r in runs.iterrows():
        info = PROBLEMS[r["problem"]]
        assert r["hv_end"] == pytest.approx(recompute_hv(Path(r["path"]), info), abs=1e-12)
        assert r["hv_end"] == pytest.approx(r["summary_hypervolume"], abs=1e-12)
        expected_50 = recompute_hv(Path(r["path"]), info, 50)
        assert r["hv_50"] == pytest.approx(expected_50, abs=1e-12)
        if r["n_evals"] < 100:
            assert math.isnan(r["hv_100"])


def test_final_hv_equals_summary_hv_of_real_runs(tmp_path: Path) -> None:
    """The runner's summary and the report compute the HV with the same indicators module, so they agree
    (to rounding: the report's anytime trace sweeps the 2-D front, the runner calls the pymoo HV)."""
    import nasopt

    for problem in ("acc_a100", "acc_constrained_a100"):
        for opt in ("rs", "nsga2"):
            nasopt.search(
                problem,
                opt,
                budget=60,
                seed=0,
                bench=SyntheticBenchmark(),
                run_dir=tmp_path / "runs" / problem / opt,
                progress=False,
            )
    res = build_report([tmp_path / "runs"], tmp_path / "report", checkpoints=(30,), figures=False)
    assert len(res.runs) == 4
    for _, r in res.runs.iterrows():
        summary = json.loads((Path(r["path"]) / "summary.json").read_text())
        assert r["hv_end"] > 0
        assert r["hv_end"] == pytest.approx(summary["hypervolume"], rel=1e-12)
        assert r["summary_hypervolume"] == summary["hypervolume"]


def test_checkpoint_and_final_tables_are_consistent_with_runs(report: ReportResult) -> None:
    runs = pd.read_csv(report.tables["runs"])
    cps = pd.read_csv(report.tables["checkpoints"])
    final = pd.read_csv(report.tables["final"])
    for (prob, opt), g in runs.groupby(["problem", "optimizer"]):
        row = final[(final["problem"] == prob) & (final["optimizer"] == opt)].iloc[0]
        assert row["n_runs"] == len(g)
        assert row["hv_median"] == pytest.approx(np.median(g["hv_end"]))
        s = stats.summarize(g["hv_end"].to_numpy())
        assert (row["hv_ci_low"], row["hv_ci_high"]) == pytest.approx((s.ci_low, s.ci_high))
        c50 = cps[
            (cps["problem"] == prob)
            & (cps["optimizer"] == opt)
            & (cps["metric"] == "hv")
            & (cps["checkpoint"] == "50")
        ].iloc[0]
        assert c50["median"] == pytest.approx(np.median(g["hv_50"]))
        c100 = cps[
            (cps["problem"] == prob)
            & (cps["optimizer"] == opt)
            & (cps["metric"] == "hv")
            & (cps["checkpoint"] == "100")
        ].iloc[0]
        assert c100["n"] == int(np.isfinite(g["hv_100"]).sum())
        # no run reaches 200 evaluations
        c200 = cps[
            (cps["problem"] == prob)
            & (cps["optimizer"] == opt)
            & (cps["metric"] == "hv")
            & (cps["checkpoint"] == "200")
        ].iloc[0]
        assert c200["n"] == 0
        assert row["best_accuracy_median"] == pytest.approx(np.median(g["best_accuracy_end"]))
    # single objective: HV is the normalised distance of the best accuracy to the reference point
    single = runs[runs["problem"] == "t_single"]
    np.testing.assert_allclose(single["hv_end"], 1.0 - (70.0 - single["best_accuracy_end"]) / 20.0)


def test_tests_and_ranks_tables(report: ReportResult) -> None:
    tests = pd.read_csv(report.tables["tests"])
    final = pd.read_csv(report.tables["final"])
    ranks = pd.read_csv(report.tables["ranks"], index_col="problem")
    for prob in PROBLEMS:
        fam = tests[(tests["problem"] == prob) & (tests["metric"] == "hv") & (tests["checkpoint"] == "end")]
        f = final[final["problem"] == prob]
        best = str(f["optimizer"].to_numpy()[int(np.argmax(f["hv_median"].to_numpy()))])
        assert set(fam["best"]) == {best}
        others = fam[fam["optimizer"] != best]
        assert len(others) == len(f) - 1
        np.testing.assert_allclose(others["p_holm"], stats.holm(others["p"].to_numpy()))
        assert ranks.at[prob, best] == 1.0
    assert ranks.loc["average"].to_numpy() == pytest.approx(ranks.drop(index="average").mean().to_numpy())


def test_report_is_deterministic(sweep: Path, report: ReportResult, tmp_path: Path) -> None:
    again = build_report(
        [sweep], tmp_path / "again", checkpoints=CHECKPOINTS, problems=PROBLEMS, figures=False
    )
    for name in ("runs", "checkpoints", "final", "tests", "ranks"):
        assert again.tables[name].read_text() == report.tables[name].read_text()


def test_reference_front_gives_hv_ratio_and_igd(sweep: Path, tmp_path: Path) -> None:
    # reference front = non-dominated union of every t_bi run, in natural units
    pts = []
    for d in find_runs([sweep]):
        run = read_run(d, analysis_columns, problems=PROBLEMS)
        if run.problem == "t_bi":
            t = run.trials[run.trials["feasible"]]
            pts.append(t[["mean_accuracy", "mean_throughput_a100"]].to_numpy())
    allpts = np.vstack(pts)
    mask = indicators.nondominated_mask(-allpts)
    ref = fronts.ReferenceFront(
        "t_bi",
        BI.objectives,
        allpts[mask],
        tuple("x" for _ in range(mask.sum())),
        {"benchmark_digest": "synthetic-v1"},
        {"efficientnet_b0": [60.0, 20000.0]},
    )
    res = build_report(
        [sweep], tmp_path / "rf", checkpoints=(50,), problems=PROBLEMS, reference_fronts={"t_bi": ref}
    )
    runs = res.runs[res.runs["problem"] == "t_bi"]
    assert (runs["hv_ratio_end"] <= 1.0 + 1e-12).all() and (runs["hv_ratio_end"] > 0).all()
    assert (runs["igd_plus_end"] >= 0).all()
    ref_hv = indicators.hypervolume(ref.normalized(BI), np.ones(2))
    np.testing.assert_allclose(runs["hv_ratio_end"], runs["hv_end"] / ref_hv)
    assert {"hv_ratio", "igd_plus"} <= set(res.checkpoints["metric"])
    assert "Reference front" in res.markdown.read_text()
    other = res.runs[res.runs["problem"] == "t_single"]
    assert other["hv_ratio_end"].isna().all()  # no front given for that problem


def test_missing_cached_front_is_a_note_not_an_error(sweep: Path, tmp_path: Path) -> None:
    res = build_report(
        [sweep / "extra"],
        tmp_path / "r",
        problems=PROBLEMS,
        reference_fronts=True,
        cache=tmp_path / "cache",
        figures=False,
    )
    assert any("nasopt fronts --problems t_bi" in n for n in res.notes)


def test_dataset_context_finds_b0_and_measured_points() -> None:
    class FakeDataset:
        X: ClassVar[np.ndarray] = np.vstack(
            [space.sample(5, np.random.default_rng(0)), space.reference("efficientnet_b0")[None, :]]
        )
        labels: ClassVar[dict[str, np.ndarray]] = {
            "accuracy": np.array([60, 61, np.nan, 63, 64, 77.0]),
            "throughput_a100": np.arange(6, dtype=float) * 1000,
        }

    ctx = dataset_context(FakeDataset())(BI)
    assert ctx is not None and ctx.measured is not None and ctx.b0 is not None
    assert ctx.measured.shape == (5, 2)
    np.testing.assert_allclose(ctx.b0, [77.0, 5000.0])
    assert dataset_context(FakeDataset())(TRI) is None  # latency not in the data


# ------------------------------------------------------------------------------- runs of different lengths
@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 optimizers x 3 seeds of 150, 60 and 100 evaluations (different lengths and simulated times)."""
    root = tmp_path_factory.mktemp("uneven")
    for o, (opt, skill) in enumerate(OPTIMIZERS.items()):
        for seed, n in enumerate((150, 60, 100)):
            for info in (BI, SINGLE):
                rng = np.random.default_rng([o, seed])
                write_synthetic_run(root / info.name / f"{opt}_{seed}", info, opt, seed, n, skill, rng)
    return root


@pytest.mark.parametrize("axis", ["evals", "time"])
@pytest.mark.parametrize("problem", ["t_bi", "t_single"])
def test_anytime_median_never_falls_when_runs_drop_out(uneven: Path, axis: str, problem: str) -> None:
    """A run's HV (and best accuracy) never falls; the median curve must not fall when the best runs end."""
    from nasopt.report.data import load_problem_data
    from nasopt.report.figures import anytime_bands
    from nasopt.report.metrics import plotted_metric

    data, _ = load_problem_data([uneven / problem], checkpoints=(50,), problems=PROBLEMS)
    p = data[problem]
    end = max(t.n_evals for t in p.traces) if axis == "evals" else max(t.sim_time_s for t in p.traces) / 3600
    grid = np.linspace(0.0 if axis == "time" else 1.0, end, 400)
    metric = plotted_metric(p.info)
    for label, traces in p.by_label().items():
        med, lo, hi = anytime_bands(traces, metric, axis, grid)
        for curve in (med, lo, hi):
            ok = curve[np.isfinite(curve)]
            assert np.all(np.diff(ok) >= 0), (label, np.diff(ok).min())
        assert np.isfinite(med[-1])  # held to the end of the common axis
        # at the end: the median of every run's final value
        assert med[-1] == pytest.approx(np.median([metric.final(t) for t in traces]))


def test_anytime_quantiles_equal_numpy_and_rank_missing_values_worst() -> None:
    from nasopt.report.figures import _quantiles

    M = np.random.default_rng(0).normal(size=(7, 20))
    np.testing.assert_allclose(_quantiles(M, (0.5, 0.25, 0.75), True), np.percentile(M, [50, 25, 75], axis=0))
    M = np.array([[np.nan, 1.0, 1.0], [np.nan, np.nan, 2.0], [5.0, 5.0, 5.0]])
    med = _quantiles(M, (0.5,), True)[0]
    np.testing.assert_allclose(med, [np.nan, 1.0, 2.0])  # not 5.0: the runs with no value yet are worse
    np.testing.assert_allclose(_quantiles(M, (0.5,), False)[0], [np.nan, 5.0, 2.0])


def test_anytime_figure_says_how_runs_of_different_lengths_are_drawn(uneven: Path, tmp_path: Path) -> None:
    res = build_report([uneven], tmp_path / "r", checkpoints=(50,), problems=PROBLEMS)
    assert "keeps its last value to the end of the axis" in res.markdown.read_text()
    assert any(f.name == "anytime_t_bi.png" for f in res.figures)


def test_checkpoints_no_run_reached_get_no_column(report: ReportResult) -> None:
    """The runs end at 120 (and 60) evaluations: the 200 checkpoint is left out (and said so)."""
    md = report.markdown.read_text()
    assert "@ 100 evals" in md and "@ 200 evals" not in md
    assert "Left out: 200 evaluations (no run reached them)" in md
    runs = pd.read_csv(report.tables["runs"])
    assert {"hv_20", "hv_50", "hv_100"} <= set(runs.columns) and "hv_200" not in runs.columns


def _final_section_of(md: str, problem: str) -> str:
    part = md.split(f"## Problem `{problem}`", 1)[1]
    return part.split("at checkpoints", 1)[0]


def test_too_few_seeds_for_a_significant_test_is_said_in_words(report: ReportResult) -> None:
    """4 seeds per optimizer, 2 comparisons: the smallest Holm p is 2 x 2/C(8,4) = 0.057 >= 0.05. In t_bi
    rs has a 5th run, so there the smallest is 2 x 2/C(9,4) = 0.032 and the tests are shown."""
    md = report.markdown.read_text()
    for problem in ("t_single", "t_tri"):
        sec = _final_section_of(md, problem)
        assert "no rank-sum test can be significant" in sec
        assert "0.029" in sec and "0.057" in sec and "at least 5 runs" in sec
        assert "p (Holm) vs best" not in sec and "significantly worse" not in sec
    sec = _final_section_of(md, "t_bi")
    assert "p (Holm) vs best" in sec and "no rank-sum test" not in sec
    tests = pd.read_csv(report.tables["tests"])
    end = tests[(tests["metric"] == "hv") & (tests["checkpoint"] == "end")]
    pmin = end.groupby("problem")["p_holm_min"].first()
    assert pmin["t_single"] == pytest.approx(4 / 70) and pmin["t_bi"] == pytest.approx(4 / 126)
    assert (tests["p_holm"].dropna() >= tests.loc[tests["p_holm"].notna(), "p_holm_min"] - 1e-12).all()


def test_numbers_in_one_column_share_one_format(report: ReportResult) -> None:
    import re

    for name, path in report.tables.items():
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in raw.columns:
            cells = [c for c in raw[col] if re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?", c)]
            kinds = {("e" in c, "." in c) for c in cells}
            decimals = {len(re.sub(r"e[-+][0-9]+$", "", c).split(".")[1]) for c in cells if "." in c}
            assert len(kinds) <= 1 and len(decimals) <= 1, (name, col, cells[:5])

    # every Markdown table: the cells of a column with numbers have one shape (digits of the integer part
    # aside), e.g. "9.dddd [9.dddd, 9.dddd]"; p-values are "9.ddd" or "< 0.001" (+ " *" if significant)
    def shape(cell: str) -> str:
        cell = cell.removesuffix(" *").removeprefix("< ")
        return re.sub(r"\d", "d", re.sub(r"(?<![.\d])\d+", "9", cell))

    tables = re.findall(r"((?:^\|.*\|\n)+)", report.markdown.read_text(), re.M)
    assert len(tables) > 5
    for table in tables:
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()[2:]]
        for column in zip(*rows, strict=True):
            shapes = {shape(c) for c in column if re.search(r"\d", c) and not c.startswith("**")}
            assert len(shapes) <= 1, (column, shapes)


# ------------------------------------------------------------------------------------------------ CLI
def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.perf.report_speed import default_problems
    from nasopt.report_cli import main

    write_synthetic_sweep(tmp_path / "sw", default_problems()[:1], {"rs": 0.0, "re": 0.5}, range(2), 40)
    assert (
        main([str(tmp_path / "sw"), "--out", str(tmp_path / "out"), "--checkpoints", "10,20", "--no-figures"])
        == 0
    )
    assert (tmp_path / "out" / "report.md").is_file()
    final = pd.read_csv(tmp_path / "out" / "tables" / "final.csv")
    assert set(final["problem"]) == {"acc_a100"} and len(final) == 2
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    assert "no run directories" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "sw"), "--checkpoints", "ten"])


# ------------------------------------------------------------------------------------------------ fronts
#: a problem whose fixed box fits the synthetic oracle's value ranges
SYN = ProblemInfo(
    "syn", ("accuracy", "throughput_a100"), (True, True), (-70.0, -2000.0), (-50.0, 0.0), (1.0, 1.0)
)


def test_reference_front_on_synthetic_oracle_is_deterministic_and_good() -> None:
    ev = fronts.oracle_evaluator(SyntheticBenchmark(), SYN)
    a = fronts.compute_reference_front(ev, SYN, np.random.default_rng(0), n_random=500, max_evals=6000)
    b = fronts.compute_reference_front(ev, SYN, np.random.default_rng(0), n_random=500, max_evals=6000)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.n_evaluated <= 6000 + space.N_NEIGHBOURS
    vals, feas = ev(a.X)
    np.testing.assert_allclose(vals, a.values)
    assert feas.all()
    F = SYN.normalize(-a.values)
    assert indicators.nondominated_mask(F).all()
    # better than an independent random sample of the same size
    X = space.sample(6000, np.random.default_rng(1))
    rv, _ = ev(X)
    ref = np.ones(2)
    assert indicators.hypervolume(F, ref) > indicators.hypervolume(SYN.normalize(-rv), ref)
    # supplied architectures are part of the union
    best_acc = space.sample(1, np.random.default_rng(2))
    best_acc[:] = space.CARDINALITIES - 1  # the largest network has the best accuracy here
    c = fronts.compute_reference_front(
        ev, SYN, np.random.default_rng(0), seeds=[best_acc], n_random=10, max_evals=0
    )
    assert c.values[:, 0].max() == pytest.approx(ev(best_acc)[0][0, 0])


def test_reference_front_respects_constraints() -> None:
    from nasopt.problems import Constraint

    info = ProblemInfo("syn_c", SYN.objectives, SYN.maximize, SYN.ideal, SYN.nadir, SYN.ref_point, 1)
    con = Constraint("latency_zcu102", "<=", 5.0)
    ev = fronts.oracle_evaluator(SyntheticBenchmark(), info, [con])
    res = fronts.compute_reference_front(ev, info, np.random.default_rng(0), n_random=300, max_evals=2000)
    lat = SyntheticBenchmark().query(res.X, ["latency_zcu102"])["latency_zcu102"].mean
    assert len(res.X) > 0 and (lat <= 5.0).all()
    with pytest.raises(ValueError, match="1 constraint"):
        fronts.oracle_evaluator(SyntheticBenchmark(), info)


class _Renamed(SyntheticBenchmark):
    digest = "synthetic-v2"


def test_front_cache_roundtrip_digest_mismatch_and_recompute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "c"))
    assert fronts.cache_dir() == tmp_path / "c"
    kw: dict[str, Any] = {"n_random": 200, "max_evals": 1000}
    ev = fronts.oracle_evaluator(SyntheticBenchmark(), SYN)
    f1, fresh = fronts.ensure_reference_front(
        SYN, ev, benchmark_digest="synthetic-v1", dataset_digest="d1", **kw
    )
    assert fresh
    path = fronts.front_path("syn", "synthetic-v1")
    assert path.is_file() and path.with_suffix(".csv").is_file()
    assert path.parent == tmp_path / "c" / "fronts"
    data = json.loads(path.read_text())
    assert data["provenance"]["benchmark_digest"] == "synthetic-v1"
    assert data["provenance"]["dataset_digest"] == "d1"
    assert "efficientnet_b0" in data["context"]
    csv = pd.read_csv(path.with_suffix(".csv"))
    np.testing.assert_allclose(csv[list(SYN.objectives)].to_numpy(), f1.values)
    loaded = fronts.load_reference_front("syn", "synthetic-v1")
    assert loaded is not None
    np.testing.assert_array_equal(loaded.values, f1.values)
    assert loaded.archs == f1.archs
    # reused when nothing changed
    _, fresh = fronts.ensure_reference_front(
        SYN, ev, benchmark_digest="synthetic-v1", dataset_digest="d1", **kw
    )
    assert not fresh
    # a different dataset or benchmark: not reused
    assert fronts.load_reference_front("syn", "synthetic-v1", dataset_digest="d2") is None
    assert fronts.load_reference_front("syn", "synthetic-v2") is None
    _, fresh = fronts.ensure_reference_front(
        SYN, ev, benchmark_digest="synthetic-v1", dataset_digest="d2", **kw
    )
    assert fresh
    ev2 = fronts.oracle_evaluator(_Renamed(), SYN)
    _, fresh = fronts.ensure_reference_front(SYN, ev2, benchmark_digest=_Renamed.digest, **kw)
    assert fresh and fronts.front_path("syn", "synthetic-v2").is_file()
    # a damaged file is named in the error
    path.write_text("{not json")
    with pytest.raises(fronts.FrontCacheError, match="nasopt fronts --force"):
        fronts.load_reference_front("syn", "synthetic-v1")


def test_fronts_cli_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nasopt.fronts_cli import main

    args = [
        "--benchmark",
        "synthetic",
        "--problems",
        "acc",
        "--cache-dir",
        str(tmp_path),
        "--n-random",
        "100",
        "--max-evals",
        "500",
        "--optimizers",
        "rs",
        "--optimizer-evals",
        "30",
        "--optimizer-seeds",
        "1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "acc: 1 points" in out
    path = fronts.front_path("acc", "synthetic-v1", tmp_path)
    prov = json.loads(path.read_text())["provenance"]
    assert prov["seed_sources"] == ["rs seed 0 (30 evals)"]
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["--problems", "nope", "--cache-dir", str(tmp_path)]) == 2
    assert main(["--list", "--cache-dir", str(tmp_path)]) == 0
    assert "acc: 1 points" in capsys.readouterr().out
