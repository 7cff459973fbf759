"""Asynchronous evaluation (``workers=k``, :mod:`nasopt.async_eval`): deterministic in simulated time,
resumable after SIGKILL with its pending evaluations, faster than synchronous batches in simulated time, and
the optimizer is asked while the other workers' architectures are still pending."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import ConfigurationError
from benchmark.synthetic import SyntheticBenchmark
from nasopt.async_eval import PendingPool
from nasopt.checkpoint import load_checkpoint
from nasopt.rundir import RunDirError, read_run
from nasopt.runner import Runner
from optimizers.random_search import RandomSearch

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BUDGET = 160
WORKERS = 6


def make_runner(run_dir: str | Path | None, opt: str = "re", sleep: float = 0.0, **kw: Any) -> Runner:
    """An asynchronous noisy run (the noise stream follows completion order); ``sleep`` slows each step."""
    from nasopt.problems import get_problem

    kw.setdefault("workers", WORKERS)
    return Runner(
        get_problem("acc_zcu102_latency").with_eval_mode("noisy"),
        opt,
        SyntheticBenchmark(),
        kw.pop("budget", BUDGET),
        run_dir,
        seed=5,
        checkpoint_every=0,
        checkpoint_every_s=None,
        progress=False,
        on_batch=(lambda _r: time.sleep(sleep)) if sleep else None,
        **kw,
    )


def child_main(run_dir: str, opt: str, sleep: float) -> None:
    r = make_runner(run_dir, opt, sleep).run()
    print(json.dumps({"finished": r.finished}), flush=True)


_REF: dict[str, Any] = {}


def reference(opt: str) -> Any:
    if opt not in _REF:
        _REF[opt] = make_runner(None, opt).run()
    return _REF[opt]


@pytest.mark.parametrize("opt", ["rs", "re", "nsga2"])
def test_same_seed_same_async_run(opt: str) -> None:
    a, b = make_runner(None, opt).run(), make_runner(None, opt).run()
    pd.testing.assert_frame_equal(a.comparable_trials(), b.comparable_trials())
    assert a.summary["sim_clock_s"] == b.summary["sim_clock_s"] > 0
    assert a.summary["workers"] == WORKERS and len(a.trials) == BUDGET
    # every completion is told alone: one row per batch index
    assert a.trials["batch_index"].tolist() == list(range(BUDGET))


def test_async_beats_sync_in_simulated_time() -> None:
    """k workers: a synchronous batch waits for its slowest evaluation; the pool does not. Random search
    (proposals independent of results): the async clock is within the list-scheduling bound
    ``sum(cost)/k + max(cost)`` and below the synchronous one (per batch: its slowest)."""
    k = 8
    a = make_runner(None, "rs", workers=k, budget=400).run()
    s = make_runner(None, "rs", workers=None, batch_size=k, budget=400).run()
    sync_clock = float(s.trials.groupby("batch_index")["cost_s"].max().sum())
    cost = a.trials["cost_s"].to_numpy()
    clock = a.summary["sim_clock_s"]
    assert clock <= cost.sum() / k + cost.max() + 1e-6
    assert clock < 0.9 * sync_clock, (clock, sync_clock)
    assert a.summary["sim_time_s"] == pytest.approx(cost.sum())  # the budget still counts training seconds


class _Spy(RandomSearch):
    """Random search that records, at each ask, how many architectures it was asked for and not told."""

    name = "rs"
    outstanding: ClassVar[list[int]] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._untold = 0

    def ask(self, n: int) -> Any:
        type(self).outstanding.append(self._untold)
        self._untold += n
        return super().ask(n)

    def tell(self, X: Any, F: Any, feasible: Any = None) -> None:
        self._untold -= len(X)
        super().tell(X, F, feasible)


def test_optimizer_is_asked_while_the_other_workers_are_pending() -> None:
    _Spy.outstanding = []
    make_runner(None, _Spy, workers=4, budget=40).run()  # type: ignore[arg-type]
    assert _Spy.outstanding[0] == 0 and set(_Spy.outstanding[1:]) == {3}


def test_async_budgets() -> None:
    r = make_runner(None, "rs", workers=4, budget={"max_sim_time_s": 40_000.0}).run()
    assert r.summary["budget"]["exhausted_by"] == "sim_time" and r.finished
    assert r.summary["sim_time_s"] <= 40_000.0
    cost = r.trials["cost_s"].to_numpy()
    assert cost.sum() == pytest.approx(r.summary["sim_time_s"])
    r = make_runner(None, "rs", workers=4, budget=37).run()
    assert len(r.trials) == 37 and r.summary["budget"]["exhausted_by"] == "evals"


def test_workers_validated_and_part_of_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="workers must be a positive integer"):
        make_runner(None, workers=0)
    make_runner(tmp_path, budget=20).run()
    with pytest.raises(RunDirError, match="workers"):
        make_runner(tmp_path, workers=3, budget=20).run()


def test_pool_state_round_trip() -> None:
    pool = PendingPool(3)
    rng = np.random.default_rng(0)
    from benchmark import space

    pool.start(space.sample(3, rng), np.array([5.0, 1.0, 1.0]))
    first = pool.pop()
    twin = PendingPool.from_state(pool.state())
    assert (first.seq, first.finish_s) == (1, 1.0)
    assert [(r.seq, r.finish_s) for r in (twin.pop(), twin.pop())] == [(2, 1.0), (0, 5.0)]
    assert twin.clock_s == 5.0 and twin.started == 3


def _spawn(run_dir: Path, opt: str, sleep: float) -> subprocess.Popen[str]:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_async as t; "
        f"t.child_main({str(run_dir)!r}, {opt!r}, {sleep!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _saved(run_dir: Path) -> int:
    try:
        loaded = load_checkpoint(run_dir / "checkpoint")
    except Exception:
        return -1
    return -1 if loaded is None else int(loaded[0]["n_evals"])


@pytest.mark.parametrize(("opt", "after"), [("re", 5), ("re", 60), ("nsga2", 40)])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, opt: str, after: int) -> None:
    proc = _spawn(tmp_path, opt, sleep=0.02)
    end = time.monotonic() + 120
    while _saved(tmp_path) < after:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no checkpoint in time"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "checkpoint")
    assert state is not None and not state[0]["finished"]
    assert np.asarray(state[0]["async"]["X"]).shape == (WORKERS - 1, 28)  # the pending set is saved
    resumed = make_runner(tmp_path, opt).run()
    ref = reference(opt)
    assert resumed.finished
    pd.testing.assert_frame_equal(resumed.comparable_trials(), ref.comparable_trials())
    on_disk = read_run(tmp_path)
    pd.testing.assert_frame_equal(on_disk.comparable_trials(), ref.comparable_trials())
    assert on_disk.summary["sim_clock_s"] == ref.summary["sim_clock_s"]


def test_workers_from_the_hydra_config(tmp_path: Path) -> None:
    """``nasopt search … workers=3`` runs the asynchronous loop; a synchronous config stores no workers."""
    from hydra import compose, initialize_config_module

    from experiments.config_schema import CONFIG_MODULE, register_configs
    from experiments.run_spec import build_run_spec
    from experiments.search_app import run_from_config

    register_configs()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        sync = compose(config_name="search", overrides=["experiment=smoke", "optimizer=re"])
        asy = compose(config_name="search", overrides=["experiment=smoke", "optimizer=re", "workers=3"])
        with pytest.raises(ConfigurationError, match="workers must be a positive integer"):
            build_run_spec(compose(config_name="search", overrides=["experiment=smoke", "workers=0"]))
    assert "workers" not in build_run_spec(sync).config
    r = run_from_config(asy, tmp_path / "a")
    assert r.summary["workers"] == 3 and r.config["workers"] == 3
    twin = Runner("acc_a100", "re", SyntheticBenchmark(), r.summary["budget"]["max_evals"], None, workers=3,
                  progress=False).run()
    pd.testing.assert_frame_equal(r.comparable_trials(), twin.comparable_trials())


def test_async_nsga2_advances_generations() -> None:
    """An asynchronous caller always has rows out, so a generation is never told whole: NSGA-II advances
    once a generation's worth is told (the untold rows join the next one) instead of sampling for ever."""
    runner = make_runner(None, "nsga2", workers=8, budget=300, optimizer_params={"population_size": 20})
    runner.run()
    assert runner.optimizer is not None
    assert int(runner.optimizer.state()["n_iter"]) >= 10
