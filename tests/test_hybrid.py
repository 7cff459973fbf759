"""BO-seeded NSGA-II (optimizers/hybrid.py): its BO phase is plain BO, NSGA-II starts from every BO
observation, and a state saved on either side of the switch continues exactly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmark import space
from benchmark.errors import ConfigurationError
from benchmark.synthetic import SyntheticBenchmark
from nasopt.testing import load_state_tree, make_problem, run_loop, save_state_tree
from optimizers import make_optimizer
from optimizers.hybrid import BOThenNSGA2

BENCH = SyntheticBenchmark()
TINY_BO: dict[str, Any] = {
    "n_init": 6, "n_random": 20, "n_mutants": 1, "n_anchors": 3, "n_block_anchors": 0, "local_steps": 0,
    "greedy_pool": 4, "mc_samples": 4, "screen_samples": 2, "max_baseline": 4, "fit_maxiter": 10,
}
SWITCH = 24


class TinyHybrid(BOThenNSGA2):
    """The registered optimizer with tiny BO settings (for the runner's SIGKILL test)."""

    def __init__(self, problem: Any, rng: np.random.Generator) -> None:
        super().__init__(problem, rng, switch_at=48, bo={**TINY_BO, "q": 6}, population_size=12)


def hybrid(seed: int = 0, problem: str = "acc_a100", **extra: Any) -> BOThenNSGA2:
    opt = make_optimizer(
        "bo_nsga2", make_problem(problem), np.random.default_rng(seed),
        switch_at=SWITCH, bo=TINY_BO, population_size=10, **extra,
    )
    assert isinstance(opt, BOThenNSGA2)
    return opt


@pytest.mark.parametrize("problem", ["acc", "acc_a100"])
def test_the_bo_phase_is_a_plain_bo_run_with_the_same_seed(problem: str) -> None:
    info = make_problem(problem)
    h = hybrid(seed=3, problem=problem)
    bo = make_optimizer("bo", info, np.random.default_rng(3), **TINY_BO)
    Xh, _, _ = run_loop(h, BENCH, info, SWITCH, 8)
    Xb, _, _ = run_loop(bo, BENCH, info, SWITCH, 8)
    np.testing.assert_array_equal(Xh, Xb)
    assert h.phase == "bo"
    h.ask(8)
    assert h.phase == "evolution"


def test_nsga2_starts_from_every_bo_observation_and_keeps_the_best() -> None:
    info = make_problem("acc_a100")
    h = hybrid(seed=1)
    X, F, fe = run_loop(h, BENCH, info, SWITCH, 8)
    off = h.ask(10)  # the switch: BO's 24 rows are NSGA-II's first population, ranked
    assert h._evolution is not None
    pop = h._evolution._algorithm().pop
    parents = space.arch_id(np.asarray(pop.get("X"), dtype=np.int64))
    told = space.arch_id(X)
    assert sorted(parents.tolist()) == sorted(told.tolist())
    # pymoo ranked them by non-domination: its rank 0 is BO's front
    from optimizers.indicators import pareto_rank

    ranks = {int(a): int(r) for a, r in zip(parents, pop.get("rank"), strict=True)}
    assert {a for a, r in ranks.items() if r == 0} == set(told[pareto_rank(F) == 0].tolist())
    # offspring are new architectures (NSGA-II eliminates duplicates)
    assert off.shape == (10, space.N_GENES) and not np.isin(space.arch_id(off), told).any()
    # after NSGA-II's first generation, survival keeps population_size parents
    h.tell(off, F[:10], fe[:10])
    h.ask(10)
    assert len(h._evolution._algorithm().pop) == 10


@pytest.mark.parametrize("stop_at", [16, SWITCH, SWITCH + 16])
def test_state_saved_on_either_side_of_the_switch_continues_identically(stop_at: int, tmp_path: Path) -> None:
    info = make_problem("acc_a100")
    a = hybrid(seed=7)
    run_loop(a, BENCH, info, stop_at, 8)
    save_state_tree(a.state(), tmp_path / "state")
    b = hybrid(seed=999)
    b.load_state(load_state_tree(tmp_path / "state"))
    assert b.phase == a.phase
    Xa, _, _ = run_loop(a, BENCH, info, 32, 8)
    Xb, _, _ = run_loop(b, BENCH, info, 32, 8)
    np.testing.assert_array_equal(Xa, Xb)


def test_bad_settings_name_the_setting() -> None:
    info = make_problem("acc_a100")
    with pytest.raises(ConfigurationError, match="n_int"):
        BOThenNSGA2(info, np.random.default_rng(0), bo={"n_int": 5})
    with pytest.raises(ConfigurationError, match="switch_at"):
        BOThenNSGA2(info, np.random.default_rng(0), switch_at=0)
    with pytest.raises(ConfigurationError, match="population_size"):
        BOThenNSGA2(info, np.random.default_rng(0), population_size=1)
    with pytest.raises(ConfigurationError, match="mapping"):
        BOThenNSGA2(info, np.random.default_rng(0), bo=[1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("after_checkpoints", [1, 12])  # killed in the BO phase, and in NSGA-II's
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, after_checkpoints: int) -> None:
    """A real process running the hybrid through the runner, SIGKILLed, then resumed: the trial table equals
    an uninterrupted run's (tests/test_resume.py's child process and comparison)."""
    import signal

    import test_resume as tr

    run_dir = tmp_path / "run"
    proc = tr._spawn(run_dir, "bo_nsga2_tiny", sleep=0.05)
    tr._wait_for_checkpoint(proc, run_dir)
    from nasopt.checkpoint import CheckpointError

    seen = 0
    while seen < after_checkpoints * 6 and proc.poll() is None:
        try:
            n = tr._saved_evals(run_dir)
        except CheckpointError:  # read while the child rotated its checkpoints: look again
            n = None
        seen = n if n is not None else seen
        time.sleep(0.01)
    rc, _, _ = tr._kill(proc)
    assert rc == -signal.SIGKILL
    assert tr._saved_evals(run_dir) is not None
    tr._resume_and_compare(run_dir, "bo_nsga2_tiny")
