"""The Hydra app ``nasopt search``: config groups compose and instantiate, runs, sweeps, bad overrides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from benchmark import make_benchmark
from experiments.config_schema import CONFIG_MODULE, group_options, register_configs
from experiments.run_spec import build_run_spec, config_container
from experiments.search_app import main, run_from_config
from nasopt.problems import PROBLEMS, problem_from_config
from nasopt.rundir import read_run


def _options(group: str) -> list[str]:
    register_configs()
    return group_options(group)


@pytest.fixture()
def hydra_ctx() -> Iterator[None]:
    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        yield


def _compose(*overrides: str) -> dict[str, Any]:
    return config_container(compose(config_name="search", overrides=list(overrides)))


def _implemented(name: str) -> bool:
    from optimizers import optimizer_class

    try:
        optimizer_class(name)
    except (ImportError, AttributeError):
        return False
    return True


# --------------------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------------------
def test_defaults(hydra_ctx: None) -> None:
    c = _compose()
    assert c["problem"]["name"] == "acc_a100"
    assert c["optimizer"]["name"] == "auto"  # issue 16: picks by the budget (BO at 1500)
    assert c["budget"] == {"max_evals": 1500, "max_sim_time_s": None}
    assert c["seed"] == 0
    assert c["benchmark"]["name"] == "surrogate"
    cfg = compose(config_name="search", return_hydra_config=True)
    assert cfg.hydra.launcher.n_jobs == 2
    assert "joblib" in cfg.hydra.launcher._target_
    assert cfg.hydra.sweep.subdir == "acc_a100/auto/seed0"


def test_all_groups_have_their_options() -> None:
    peers = {"optuna_tpe", "optuna_nsga2", "optuna_gp", "optuna_random"} | {
        f"pymoo_{n}" for n in ("agemoea2", "moead", "smsemoa", "spea2", "ga")
    }
    assert set(_options("optimizer")) == {"auto", "rs", "re", "nsga2", "reinforce", "bo", "bo_nsga2"} | peers
    assert set(_options("benchmark")) == {"surrogate", "synthetic"}
    assert set(_options("problem")) == set(PROBLEMS)
    assert {"paper_biobjective", "smoke"} <= set(_options("experiment"))
    assert {"default", "smoke"} <= set(_options("budget"))


@pytest.mark.parametrize("name", _options("problem"))
def test_problem_configs_compose_to_the_named_problems(hydra_ctx: None, name: str) -> None:
    c = _compose(f"problem={name}")
    built = problem_from_config(c["problem"])
    assert built == PROBLEMS[name]
    assert built.info == PROBLEMS[name].info


@pytest.mark.parametrize("name", _options("optimizer"))
def test_optimizer_configs_compose_and_instantiate(hydra_ctx: None, name: str) -> None:
    c = _compose(f"optimizer={name}", "benchmark=synthetic")
    assert c["optimizer"]["name"] == name
    if name == "auto":
        name = build_run_spec(c).optimizer  # the one it picks (tests below)
        c["optimizer"] = {**c["optimizer"], "name": name}
    if not _implemented(name):
        pytest.skip(f"optimizer {name} is not implemented yet")
    build_run_spec(c)  # parameters exist in the constructor
    from optimizers import make_optimizer

    info = PROBLEMS["acc_a100"].info
    opt = make_optimizer(name, info, np.random.default_rng(0), **c["optimizer"]["params"])
    assert opt.name == name


def test_run_spec_fills_the_constructor_defaults(hydra_ctx: None) -> None:
    import inspect

    from optimizers import optimizer_class

    spec = build_run_spec(_compose("optimizer=nsga2", "optimizer.params.population_size=30"))
    defaults = {
        k: p.default
        for k, p in list(inspect.signature(optimizer_class("nsga2")).parameters.items())[2:]
        if p.default is not p.empty
    }
    assert spec.optimizer_params == {**defaults, "population_size": 30}
    assert spec.config["optimizer"]["params"] == spec.optimizer_params
    assert spec.batch_size is None and spec.benchmark == "surrogate" and spec.problem == PROBLEMS["acc_a100"]


def test_generated_groups_follow_the_registries() -> None:
    from benchmark import BENCHMARKS
    from optimizers import OPTIMIZERS

    assert set(_options("optimizer")) == set(OPTIMIZERS) | {"auto"}
    assert set(_options("benchmark")) == set(BENCHMARKS)
    assert set(_options("problem")) == set(PROBLEMS)


@pytest.mark.parametrize("name", _options("budget"))
def test_budget_configs_compose(hydra_ctx: None, name: str) -> None:
    from nasopt.budget import Budget

    c = _compose(f"budget={name}")
    assert isinstance(Budget.parse(c["budget"]), Budget)


def test_benchmark_configs_compose_and_instantiate(hydra_ctx: None) -> None:
    from benchmark.synthetic import SyntheticBenchmark

    b = _compose("benchmark=synthetic")["benchmark"]
    bench = make_benchmark(b["name"], **b["params"])
    assert isinstance(bench, SyntheticBenchmark)
    c = _compose("benchmark=surrogate")
    assert c["benchmark"]["name"] == "surrogate"


@pytest.mark.parametrize("name", _options("experiment"))
def test_experiment_presets_compose(hydra_ctx: None, name: str) -> None:
    c = _compose(f"experiment={name}")
    assert c["budget"]["max_evals"] is not None
    if name == "smoke":
        assert c["budget"]["max_evals"] <= 100 and c["benchmark"]["name"] == "synthetic"
    if name == "paper_biobjective":
        assert c["budget"]["max_evals"] == 1500
        cfg = compose(config_name="search", overrides=[f"experiment={name}"], return_hydra_config=True)
        assert "nsga2" in cfg.hydra.sweeper.params.optimizer


def test_schema_rejects_typos_and_wrong_types(hydra_ctx: None) -> None:
    from hydra.errors import ConfigCompositionException

    for bad in ("budget.max_evalz=5", "seed=abc", "problem.eval_mode=nosy", "optimzer=rs"):
        with pytest.raises(ConfigCompositionException):
            _compose(bad)


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------
def _smoke_args(run_dir: Path, *extra: str) -> list[str]:
    return [
        "experiment=smoke",
        "optimizer=re",
        "problem=acc_zcu102_latency",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def test_single_run_writes_the_run_dir_and_prints_the_pareto_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not _implemented("re"):
        pytest.skip("re is not implemented yet")
    run_dir = tmp_path / "run"
    assert main(_smoke_args(run_dir, "seed=4")) == 0
    out = capsys.readouterr().out
    assert "Pareto set" in out and "accuracy [%]" in out and "latency_zcu102 [ms]" in out
    run = read_run(run_dir)
    assert run.finished and run.n_evals == 60
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.problem.name == "acc_zcu102_latency" and cfg.optimizer.name == "re" and cfg.seed == 4
    assert cfg.budget.max_evals == 60
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["optimizer"] == "re" and summary["seed"] == 4
    # the same again: reported, not redone
    mtime = (run_dir / "trials.parquet").stat().st_mtime_ns
    assert main(_smoke_args(run_dir, "seed=4")) == 0
    assert (run_dir / "trials.parquet").stat().st_mtime_ns == mtime
    # and a different seed in the same directory is refused
    assert main(_smoke_args(run_dir, "seed=5")) == 2
    assert "different run" in capsys.readouterr().err


def test_cli_dispatches_to_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.cli import main as cli_main

    run_dir = tmp_path / "cli"
    args = ["search", "experiment=smoke", "optimizer=rs" if _implemented("rs") else "optimizer=re"]
    if not (_implemented("rs") or _implemented("re")):
        pytest.skip("no optimizer implemented yet")
    assert cli_main([*args, "budget.max_evals=20", f"hydra.run.dir={run_dir}"]) == 0
    assert read_run(run_dir).n_evals == 20


def test_run_from_config_equals_python_api(hydra_ctx: None, tmp_path: Path) -> None:
    if not _implemented("re"):
        pytest.skip("re is not implemented yet")
    c = _compose("experiment=smoke", "optimizer=re", "print_summary=false", "seed=7")
    a = run_from_config(c, tmp_path / "a")
    import nasopt
    from benchmark.synthetic import SyntheticBenchmark

    b = nasopt.search(
        "acc_a100",
        "re",
        budget=60,
        seed=7,
        bench=SyntheticBenchmark(),
        batch_size=1,
        **c["optimizer"]["params"],
    )
    pd.testing.assert_frame_equal(a.comparable_trials(), b.comparable_trials())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["optimizer=foo"],
            "unknown optimizer 'foo'; available: auto, bo, bo_nsga2, nsga2, optuna_gp, optuna_nsga2, "
            "optuna_random, optuna_tpe, pymoo_agemoea2, pymoo_ga, pymoo_moead, pymoo_smsemoa, pymoo_spea2, "
            "re, reinforce, rs",
        ),
        (["problem=acc_h100"], "unknown problem 'acc_h100'"),
        (["-m", "optimizer=rs,fooo"], "unknown optimizer 'fooo'"),
        (
            ["problem.name=x", "problem.objectives=[accuracy,throughput_foo]"],
            "unknown benchmark target 'throughput_foo'",
        ),
        (["problem.name=x", 'problem.constraints=["throughput_a100 >= 1e9"]'], "impossible constraint"),
        (["problem.name=x", 'problem.constraints=["latency_zcu102 <= -1"]'], "impossible constraint"),
        (['problem.constraints=["latency_zcu102 <= 3"]'], "needs its own name"),
        (["seed=abc"], "could not be converted to Integer"),
        (["budget.max_evalz=5"], "max_evalz"),
        (["optimzer=rs"], "optimzer"),
        (["problem.eval_mode=nosy"], "expected one of [mean, noisy]"),
        (["budget.max_evals=0"], "budget.max_evals must be a positive integer"),
        (["+optimizer.params.pop=3"], "no parameter(s) 'pop'"),
        (
            ["optimizer=nsga2", "optimizer.params.popsize=3"],
            "no parameter(s) 'popsize'; its parameters: population_size",
        ),
        (["problem=acc_a101"], "unknown problem 'acc_a101'"),
        (["budget.max_evls=5"], "max_evls"),
        (["benchmark.name=foo"], "unknown benchmark 'foo'; available: surrogate, synthetic"),
        (["benchmark=synthetic", "+benchmark.params.noise=1"], "no parameter(s) 'noise'"),
    ],
)
def test_bad_overrides_give_one_line_errors(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if "pop" in fragment and not _implemented("nsga2"):
        pytest.skip("nsga2 is not implemented yet")
    code = main([*args, f"hydra.run.dir={tmp_path / 'never'}"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nasopt search: error:") and fragment in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------------------------------
# sweeps
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_multirun_isolates_failures_skips_finished_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = [o for o in ("rs", "re") if _implemented(o)]
    if not opts:
        pytest.skip("no optimizer implemented yet")
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "experiment=smoke",
        f"optimizer={','.join(opts)}",
        "problem=acc_a100,acc_zcu102_latency",
        "seed=0",
        "print_summary=false",
        f"hydra.sweep.dir={sweep}",
    ]
    # one job's directory holds a corrupt checkpoint: that job fails, the others run
    bad = sweep / "acc_a100" / opts[0] / "seed0" / "checkpoint"
    bad.mkdir(parents=True)
    (bad / "state.json").write_text("{corrupt")
    (bad / "arrays.npz").write_bytes(b"")
    # another job's run is already half done (stopped after 20 evaluations)
    register_configs()
    half = sweep / "acc_zcu102_latency" / opts[-1] / "seed0"
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        c = _compose(
            "experiment=smoke",
            f"optimizer={opts[-1]}",
            "problem=acc_zcu102_latency",
            "seed=0",
            "print_summary=false",
        )
    r = run_from_config(c, half, on_batch=lambda rr: rr.request_stop() if rr.n_evals >= 20 else None)
    assert not r.finished
    reference = run_from_config(c, None).comparable_trials()

    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 job(s) of the sweep failed" in err and "unreadable" in err
    assert (bad.parent / "error.txt").is_file()
    done = [
        d
        for d in (sweep / p / o / "seed0" for p in ("acc_a100", "acc_zcu102_latency") for o in opts)
        if d != bad.parent
    ]
    for d in done:
        assert read_run(d).finished, d
    pd.testing.assert_frame_equal(read_run(half).comparable_trials(), reference)

    # the same sweep again, with the broken run removed: finished runs are skipped, the broken one runs
    import shutil

    shutil.rmtree(bad)
    mtimes = {d: (d / "trials.parquet").stat().st_mtime_ns for d in done}
    assert main(args) == 0
    assert {d: (d / "trials.parquet").stat().st_mtime_ns for d in done} == mtimes
    assert read_run(bad.parent).finished
    assert not (bad.parent / "error.txt").exists()


# --------------------------------------------------------------------------------------------------
# optimizer=auto (the default): picks by the budget, records why, keeps its choice on resume
# --------------------------------------------------------------------------------------------------
def test_auto_picks_the_optimizer_by_the_budget(hydra_ctx: None) -> None:
    spec = build_run_spec(_compose("budget.max_evals=300"))
    assert spec.optimizer == "bo" and spec.choice == "auto -> bo, because budget.max_evals=300 <= 5000"
    assert spec.config["optimizer"]["name"] == "bo" and spec.config["optimizer"]["requested"] == "auto"
    assert spec.config["optimizer"]["choice"] == spec.choice
    assert build_run_spec(_compose()).optimizer == "bo"  # the default budget, 1500
    assert build_run_spec(_compose("budget.max_evals=5000")).optimizer == "bo"
    big = build_run_spec(_compose("budget.max_evals=5001"))
    assert big.optimizer == "nsga2" and big.choice == "auto -> nsga2, because budget.max_evals=5001 > 5000"
    timed = build_run_spec(_compose("budget=sim_time", "budget.max_evals=null"))
    assert timed.optimizer == "nsga2" and "no evaluation limit" in str(timed.choice)
    # the chosen optimizer's parameters are filled in and checked as if it were named
    assert build_run_spec(_compose("budget.max_evals=300", "optimizer.params.q=4")).optimizer_params["q"] == 4
    # naming the optimizer keeps the config as before: no choice recorded
    named = build_run_spec(_compose("optimizer=bo", "budget.max_evals=300"))
    assert named.choice is None and "requested" not in named.config["optimizer"]
    assert named.optimizer_params == spec.optimizer_params


def test_auto_run_records_its_choice_and_a_resume_keeps_it(
    hydra_ctx: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run stores what auto picked; resumed after the rule changed, it continues with that optimizer and
    ends with the table of an uninterrupted run of it."""
    import experiments.run_spec as rs_mod
    from experiments.run_spec import run_spec

    run_dir = tmp_path / "run"
    overrides = (
        "experiment=smoke", "budget.max_evals=30", "problem=acc_zcu102_latency", "print_summary=false"
    )
    monkeypatch.setattr(rs_mod, "choose_optimizer", lambda budget: ("re", "the rule of the day"))
    spec = build_run_spec(_compose(*overrides), run_dir)
    assert spec.optimizer == "re"
    stopped = run_spec(spec, run_dir, on_batch=lambda r: r.request_stop() if r.n_evals >= 12 else None)
    assert not stopped.finished
    cfg = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.optimizer.name == "re" and cfg.optimizer.requested == "auto"
    assert cfg.optimizer.choice == "auto -> re, because the rule of the day"
    monkeypatch.setattr(rs_mod, "choose_optimizer", lambda budget: ("rs", "a newer rule"))
    again = build_run_spec(_compose(*overrides), run_dir)
    assert again.optimizer == "re" and "chosen when the run started" in str(again.choice)
    resumed = run_spec(again, run_dir)
    assert resumed.finished and resumed.n_evals == 30
    plain_re = run_spec(build_run_spec(_compose(*overrides, "optimizer=re")), None)
    pd.testing.assert_frame_equal(resumed.comparable_trials(), plain_re.comparable_trials())


def test_the_cli_names_autos_choice_when_a_run_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import experiments.run_spec as rs_mod

    monkeypatch.setattr(rs_mod, "choose_optimizer", lambda budget: ("rs", "a rule"))
    assert main(["experiment=smoke", "budget.max_evals=30", f"hydra.run.dir={tmp_path / 'cli'}"]) == 0
    assert "new run (optimizer: auto -> rs, because a rule)" in capsys.readouterr().out
    assert read_run(tmp_path / "cli").summary["optimizer"] == "rs"


def test_the_peers_comparison_sweep_covers_every_optimizer_at_its_budget(hydra_ctx: None) -> None:
    """experiment=peers_comparison: every nasopt optimizer and peer adapter (optuna_gp aside: minutes per
    trial), the four problems, 10 seeds; 1500 evaluations for bo / optuna_tpe, 5000 for the fast ones."""
    from optimizers import OPTIMIZERS

    cfg = compose(config_name="search", overrides=["experiment=peers_comparison"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert set(str(params.optimizer).split(",")) == set(OPTIMIZERS) - {"optuna_gp"}
    assert set(str(params.problem).split(",")) == {
        "acc_a100", "acc_zcu102_latency", "acc_constrained_a100", "acc_a100_zcu102_latency"
    }
    assert str(params.seed) == "range(10)"
    budgets = {
        o: _compose("experiment=peers_comparison", f"optimizer={o}")["budget"]["max_evals"]
        for o in ("bo", "optuna_tpe", "nsga2", "re", "pymoo_moead", "auto")
    }
    assert budgets == {"bo": 1500, "optuna_tpe": 1500, "nsga2": 5000, "re": 5000, "pymoo_moead": 5000,
                       "auto": 1500}
    assert _compose("experiment=peers_smoke", "optimizer=nsga2")["budget"]["max_evals"] == 300


def test_help_lists_the_search_groups_only(capsys: Any) -> None:
    try:
        code = main(["--help"])
    except SystemExit as exc:  # Hydra exits after printing its help
        code = exc.code
    assert code in (0, None)
    out = capsys.readouterr().out
    groups = out.split("== Configuration groups ==")[1].split("== Config ==")[0]
    listed = {line.split(":")[0] for line in groups.splitlines() if ": " in line}
    assert listed == {"benchmark", "problem", "optimizer", "budget", "experiment"}
    assert "optimizer: " in groups and "bo_nsga2" in groups  # the generated options are there
    assert "train" not in listed and "train/engine" not in groups  # nasopt train's groups are not
