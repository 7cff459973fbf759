"""Input that used to be accepted silently gets a one-line error or a warning (issue 10, items 6, 7, 10)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark import space
from benchmark.cli import main as bench_main
from benchmark.errors import plain
from benchmark.synthetic import SyntheticBenchmark
from experiments.cli import main as cli_main
from experiments.search_app import main as search_main
from nasopt.budget import Budget, BudgetError
from nasopt.problems import Constraint, ConstraintRangeWarning, ProblemError, make_problem
from nasopt.report_cli import main as report_main
from nasopt.runner import search
from optimizers._checks import check_bool, check_int, check_state

B0_NO_SIGN = "e1k3l1 e6k3l2 e6k5l2 e6k3l3 e6k5l3 e6k5l4 e6k3l1"


def _one_error_line(err: str, prefix: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix) and "Traceback" not in err
    return lines[0]


# -- architecture strings and nasopt bench query -----------------------------------------------------
def test_block_without_se_sign_is_refused() -> None:
    with pytest.raises(space.InvalidArchitectureError, match=r"'e1k3l1' lacks the squeeze-excite sign"):
        space.from_string(B0_NO_SIGN)
    # the documented forms still parse
    b0 = space.reference("efficientnet_b0")
    assert np.array_equal(space.from_string(space.to_string(b0)), b0)
    assert space.from_string(B0_NO_SIGN.replace(" ", "- ") + "-")[3] == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--arch", ""], "--arch is empty"),
        (["--arch", "   "], "--arch is empty"),
        (["--arch", B0_NO_SIGN], "lacks the squeeze-excite sign"),
    ],
)
def test_query_refuses_empty_or_unsigned_arch(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # refused before any data is loaded: the dataset path does not even exist
    code = bench_main(["query", "--dataset", str(tmp_path / "none"), "--no-download", *argv])
    assert code == 2
    assert fragment in _one_error_line(capsys.readouterr().err, "nasopt bench query: error:")


def test_query_refuses_an_empty_archs_list(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "archs.json"
    f.write_text("[]")
    code = bench_main(["query", "--dataset", str(tmp_path / "none"), "--no-download", "--archs", str(f)])
    assert code == 2
    assert "holds an empty list" in _one_error_line(capsys.readouterr().err, "nasopt bench query: error:")


# -- budgets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [1.5, 0.5, 0, -3, float("inf"), float("nan"), np.float64(2.5), True])
def test_budget_parse_refuses_non_integer_evaluations(bad: object) -> None:
    with pytest.raises(BudgetError):
        Budget.parse(bad)  # type: ignore[arg-type]


def test_budget_parse_keeps_integral_numbers() -> None:
    assert Budget.parse(2.0).max_evals == 2 and Budget.parse(np.int64(7)).max_evals == 7
    assert Budget.parse(5) == Budget(max_evals=5)


def test_search_api_refuses_budget_1_5() -> None:
    with pytest.raises(BudgetError, match=r"positive integer, got 1\.5"):
        search("acc_a100", "rs", budget=1.5, seed=0, bench=SyntheticBenchmark())


def test_budget_messages_show_plain_numbers() -> None:
    with pytest.raises(BudgetError) as exc:
        Budget(max_evals=np.int64(0))
    assert "got 0" in str(exc.value) and "np." not in str(exc.value)


# -- constraints far outside the measured range ------------------------------------------------------
def test_constraint_beyond_the_measured_range_warns() -> None:
    with pytest.warns(ConstraintRangeWarning, match=r"4000\.\.32000 img/s"):
        Constraint.parse("throughput_a100 >= 200000")
    with pytest.warns(ConstraintRangeWarning, match="latency_zcu102"):
        make_problem("tight", ["accuracy"], ["latency_zcu102 <= 0.5"])


def test_constraint_inside_the_range_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstraintRangeWarning)
        Constraint.parse("throughput_a100 >= 10000")
        Constraint.parse("throughput_a100 <= 50000")  # beyond the box on the loose side: no warning
        Constraint.parse("latency_zcu102 <= 5")
    with pytest.raises(ProblemError):  # impossible bounds stay errors
        Constraint.parse("throughput_a100 >= 1e9")


# -- nasopt report ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert (
        search_main(
            [
                "benchmark=synthetic",
                "optimizer=rs",
                "budget.max_evals=12",
                "progress=false",
                "print_summary=false",
                f"hydra.run.dir={root / 'r0'}",
            ]
        )
        == 0
    )
    return root


def test_report_refuses_a_missing_dataset_path(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = report_main(
        [str(runs), "--out", str(tmp_path / "rep"), "--no-figures", "--dataset", "/nonexistent"]
    )
    assert code == 2
    assert "--dataset /nonexistent does not exist" in _one_error_line(
        capsys.readouterr().err, "nasopt report:"
    )
    assert not (tmp_path / "rep").exists()


def test_report_refuses_unknown_label_keys(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = report_main(
        [str(runs), "--out", str(tmp_path / "rep"), "--no-figures", "--label-keys", "optimizer.nme"]
    )
    assert code == 2
    assert "optimizer.nme" in _one_error_line(capsys.readouterr().err, "nasopt report:")
    assert not (tmp_path / "rep").exists()
    good = ["--label-keys", "optimizer.name,seed"]
    assert report_main([str(runs), "--out", str(tmp_path / "rep2"), "--no-figures", *good]) == 0


# -- settings checked before a run directory exists --------------------------------------------------
@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("optimizer.params.population_size=0", "population_size=0 must be >= 2"),
        ("optimizer.params.mutation_prob=2.0", "mutation_prob=2.0 must be in [0.0, 1.0]"),
        ("seed=-1", "seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_settings_create_no_run_directory(
    override: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "never"
    code = search_main(
        [
            "benchmark=synthetic",
            "optimizer=nsga2",
            "budget.max_evals=10",
            override,
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert code == 2
    assert fragment in _one_error_line(capsys.readouterr().err, "nasopt search: error:")
    assert not run_dir.exists()


def test_messages_show_plain_numbers() -> None:
    assert plain(np.int64(5)) == "5" and plain(np.float64(0.5)) == "0.5"
    assert plain([np.int64(1), 2]) == "[1, 2]" and plain({"a": np.bool_(True)}) == "{'a': True}"
    for call in (
        lambda: check_int("NSGA2", "population_size", np.float64(2.5), 2),
        lambda: check_bool("BO", "warm_start", np.int64(1)),
        lambda: check_state("RE", {"population_size": 5}, {"population_size": np.int64(6)}),
    ):
        with pytest.raises(ValueError) as exc:
            call()
        assert "np." not in str(exc.value), exc.value
    with pytest.raises(space.InvalidArchitectureError) as exc2:
        space.encode_values(np.full(7, 2), np.full(7, 3), np.ones(7), np.zeros(7))
    assert "value 2;" in str(exc2.value)
    arch = {f"block{b}_{f}": 0 for b in range(7) for f in space.FIELDS}
    arch["block0_e"] = np.float64(1.0)
    with pytest.raises(space.InvalidArchitectureError, match=r"got 1\.0$"):
        space.from_dicts(arch)


# -- small things -------------------------------------------------------------------------------------
def test_nasopt_without_a_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main([]) == 2
    assert "missing command" in capsys.readouterr().err
    assert cli_main(["--help"]) == 0


def test_benchmark_params_need_no_plus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    args = [
        "benchmark=synthetic",
        "optimizer=rs",
        "budget.max_evals=8",
        "progress=false",
        "print_summary=false",
    ]
    assert search_main([*args, "benchmark.params.noise_scale=0.5", f"hydra.run.dir={run_dir}"]) == 0
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["benchmark"]["params"]["noise_scale"] == 0.5
    # a misspelt parameter is still named, before any run directory exists
    assert search_main([*args, "benchmark.params.noise_scal=0.5", f"hydra.run.dir={tmp_path / 'never'}"]) == 2
    assert "noise_scale" in _one_error_line(capsys.readouterr().err, "nasopt search: error:")
    assert not (tmp_path / "never").exists()
