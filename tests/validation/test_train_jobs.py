"""Training through the engines (``nasopt train ... engine=slurm|submitit_local|ray``,
nasopt.validation.train.jobs): the rendezvous of a multi-node SLURM job from its environment; the SLURM knobs
reaching sbatch; with submitit's local executor (real subprocesses, SLURM's code path without sbatch) a job
preempted with the real signal is requeued and ends bitwise identical to an uninterrupted run, and a 2-task
gloo job equals one process on the same global batch."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from benchmark.errors import ConfigurationError  # noqa: E402
from nasopt.validation.train import checkpoints as ckpt  # noqa: E402
from nasopt.validation.train import dist as D  # noqa: E402
from nasopt.validation.train import get_scheme, read_log, train  # noqa: E402
from nasopt.validation.train.jobs import TrainJob, engine_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARCH = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"
TIME_COLUMNS = ("img_per_s", "epoch_time_s", "train_time_s")

SLURM_TASK = {  # task 5 of a 2-node job of 4 tasks per node
    "SUBMITIT_EXECUTOR": "slurm",
    "SLURM_JOB_ID": "4242",
    "SLURM_NTASKS": "8",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_NODEID": "1",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_JOB_NODELIST": "gpu[01-02]",
}


def _slurm_env(monkeypatch: pytest.MonkeyPatch, **changes: str) -> Any:
    submitit = pytest.importorskip("submitit")
    for k, v in {**SLURM_TASK, **changes}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return submitit.JobEnvironment()


def test_rendezvous_of_a_fake_two_node_slurm_job(monkeypatch: pytest.MonkeyPatch) -> None:
    rv = D.rendezvous(_slurm_env(monkeypatch))
    assert (rv.rank, rv.world, rv.local_rank, rv.local_world, rv.master_addr) == (5, 8, 1, 4, "gpu01")
    assert D.PORT_BASE <= rv.master_port < D.PORT_BASE + D.PORT_SPAN
    assert rv.env() == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu01",
        "MASTER_PORT": str(rv.master_port),
    }
    # every task of the job meets at the same place without talking to the others
    other = D.rendezvous(_slurm_env(monkeypatch, SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0"))
    assert (other.rank, other.master_addr, other.master_port) == (0, "gpu01", rv.master_port)
    # a requeued job (SLURM_RESTART_COUNT) or another job meets on another port; an explicit port wins
    requeued = D.rendezvous(_slurm_env(monkeypatch), environ={"SLURM_RESTART_COUNT": "1"})
    assert requeued.master_port != rv.master_port
    assert D.rendezvous(_slurm_env(monkeypatch, SLURM_JOB_ID="4243")).master_port != rv.master_port
    assert D.rendezvous(_slurm_env(monkeypatch), port=29400).master_port == 29400
    # node lists of several groups: the first host is the master
    env = _slurm_env(
        monkeypatch, SLURM_JOB_NODELIST="node-a[7,9],node-b3", SLURM_JOB_NUM_NODES="3", SLURM_NTASKS="6"
    )
    assert D.rendezvous(env).master_addr == "node-a7" and D.rendezvous(env).local_world == 2
    with pytest.raises(ValueError, match="same number of tasks"):
        D.rendezvous(_slurm_env(monkeypatch, SLURM_NTASKS="7"))


def test_train_job_hands_the_rendezvous_to_the_process_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside a task of a multi-task job, TrainJob sets torchrun's variables before training starts."""
    import nasopt.validation.train.run as run_mod

    _slurm_env(monkeypatch)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(k, "unset")  # recorded, so that what TrainJob sets is undone after the test
    seen: dict[str, str] = {}

    def fake_train(*args: Any, **kwargs: Any) -> Any:
        seen.update({k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")})
        raise ConfigurationError("stop here")

    monkeypatch.setattr(run_mod, "train", fake_train)
    with pytest.raises(ConfigurationError, match="stop here"):
        TrainJob(get_scheme("smoke"), {}, str(tmp_path))(ARCH)
    assert seen == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu01"}


def test_engine_settings() -> None:
    kind, opts, own = engine_settings(
        {
            "kind": "slurm",
            "gpus_per_node": 4,
            "nodes": 2,
            "mem_gb": None,
            "wait": False,
            "master_port": None,
            "setup": [],
        }
    )
    assert kind == "slurm" and opts == {"gpus_per_node": 4, "nodes": 2, "tasks_per_node": 4}
    assert own == {"wait": False, "master_port": None}
    assert engine_settings({"kind": None}) == (None, {}, {})
    with pytest.raises(ConfigurationError, match="engine=slurm"):
        engine_settings({"kind": "ray", "tasks_per_node": 2})
    with pytest.raises(ConfigurationError, match="wait=false"):
        engine_settings({"kind": "ray", "wait": False})


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["engine=pbs"], "local, ray, slurm, submitit_local"),
        (["engine.partition=gpu"], "engine."),
        (["engine=submitit_local", "engine.partitionz=gpu"], "partitionz"),
        (["engine=ray", "engine.address=ray://nowhere:1", "+engine.tasks_per_node=2"], "engine=slurm"),
    ],
)
def test_cli_bad_engine_is_one_line_exit_2(
    args: list[str], words: str, fashion_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nasopt.validation.train.cli import main

    assert main(["--arch", ARCH, "data=folder", f"data.root={fashion_folder}", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


def test_cli_slurm_knobs_reach_sbatch(
    fashion_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``engine=slurm``: one job array of two architectures, 2 nodes x 4 GPUs = 8 tasks (stand-in
    ``srun``/``sbatch`` on PATH record the script; nothing runs)."""
    pytest.importorskip("submitit")
    from nasopt.validation.train.cli import main

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/job.sbatch\necho "Submitted batch job 77"\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]))
    code = main([
        "--arch", ARCH, "--arch", "efficientnet_b0", "scheme=proxified", "data=folder",
        f"data.root={fashion_folder}", f"out_dir={tmp_path / 'runs'}", "engine=slurm", "engine.partition=gpu",
        "engine.nodes=2", "engine.gpus_per_node=4", "engine.mem_gb=64", "engine.timeout_min=300",
        "engine.signal_delay_s=90", "engine.max_num_timeout=7", "engine.wait=false",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "job 77_0" in out.out and "job 77_1" in out.out
    script = (tmp_path / "job.sbatch").read_text()
    for line in (
        "--partition=gpu",
        "--nodes=2",
        "--gpus-per-node=4",
        "--ntasks-per-node=4",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--time=300",
        "--signal=USR2@90",
        "--array=0-1%2",  # array_parallelism 16, capped by submitit at the array size
        "--job-name=nasopt_train",
    ):
        assert f"#SBATCH {line}" in script, (line, script)
    pickles = list((tmp_path / "runs" / ".submitit").rglob("*_submitted.pkl"))
    assert len(pickles) == 2


# ------------------------------------------------------------------------------------------------------
# for real: submitit's local executor
# ------------------------------------------------------------------------------------------------------

#: 4 epochs of 50 steps (1000 images / 20), a checkpoint every 7 steps
SCHEME = {"epochs": 4, "batch_size": 20, "checkpoint_every_steps": 7, "dropout": 0.2, "drop_path_rate": 0.2}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(safetensors_torch.load_file(str(run_dir / "weights.safetensors")))


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.extend(int(t) for t in (task / "children").read_text().split())
    return out


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*_log.*")))


@pytest.mark.slow
def test_preempted_local_job_is_requeued_and_ends_bitwise_identical(
    fashion_folder: Path, tmp_path: Path
) -> None:
    pytest.importorskip("submitit")
    from nasopt.engines import Engine

    job = TrainJob(
        get_scheme("smoke", **SCHEME),
        {"root": str(fashion_folder)},
        str(tmp_path / "ref"),
        seed=4,
        device="cpu",
        deterministic=True,
        threads=1,
        verbose=False,
    )
    torch.set_num_threads(1)
    ref = job(ARCH)  # uninterrupted, in this process
    out = tmp_path / "preempted"
    job = TrainJob(
        get_scheme("smoke", **SCHEME),
        {"root": str(fashion_folder)},
        str(out),
        seed=4,
        device="cpu",
        deterministic=True,
        threads=1,
        overwrite=True,
    )
    jobs = tmp_path / "jobs"
    with Engine("submitit_local", folder=str(jobs / "%j"), timeout_min=60, max_num_timeout=0) as eng:
        handle = eng.submit(job, ARCH)
        controller = handle.job._process.pid  # type: ignore[attr-defined]
        deadline = time.monotonic() + 300
        step = -1
        while time.monotonic() < deadline and step < 7:
            assert not handle.done(), _logs(jobs)
            dirs = list(out.glob("*/checkpoints"))
            steps = ckpt.steps_of(dirs[0], 0) if dirs else []
            step = steps[-1] if steps else -1
            time.sleep(0.01)
        (task,) = _children(controller)
        os.kill(task, signal.SIGUSR2)  # what SLURM sends with --signal=USR2@N, and on preemption
        t = time.monotonic()
        while task in _children(controller) and time.monotonic() - t < 60:
            time.sleep(0.01)
        assert not list(out.glob("*/result_*.json")), "signalled too late: the run had finished"
        result = handle.result()
    logs = _logs(jobs)
    assert "SIGUSR2" in logs and "Requeued job" in logs, logs[-3000:]
    assert "resuming" in logs, logs[-3000:]  # the requeued job resumed from the checkpoint
    run_dir = Path(result["run_dir"])
    assert run_dir.name == Path(ref["run_dir"]).name and result["val_top1"] == ref["val_top1"]
    a, b = _weights(run_dir), _weights(Path(ref["run_dir"]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in read_log(run_dir)]
    assert strip == [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in read_log(ref["run_dir"])]
    # the same job again (a re-run of the command, a late requeue): the finished result, not a second run
    mtime = (run_dir / "weights.safetensors").stat().st_mtime_ns
    assert dataclasses.replace(job, overwrite=False)(ARCH) == result
    assert (run_dir / "weights.safetensors").stat().st_mtime_ns == mtime


DDP = {"epochs": 2, "batch_size": 40, "lr": 0.02, "sync_bn": True, "dropout": 0.0, "drop_path_rate": 0.0}


@pytest.mark.slow
def test_two_task_local_job_equals_one_process(fashion_folder: Path, tmp_path: Path) -> None:
    """submitit's local executor, 2 tasks (gloo on CPU), the rendezvous from its environment: the same
    result as one process on the same global batch, within the tolerance of test_train_ddp (4 steps)."""
    pytest.importorskip("submitit")
    from nasopt.engines import Engine

    data = {"root": str(fashion_folder), "train_fraction": 0.08}
    torch.set_num_threads(1)
    one = train(ARCH, get_scheme("smoke", **DDP), data, tmp_path / "one", device="cpu", deterministic=True)
    job = TrainJob(
        get_scheme("smoke", **DDP), data, str(tmp_path / "two"), device="cpu", deterministic=True, threads=1
    )
    with Engine(
        "submitit_local", folder=str(tmp_path / "jobs" / "%j"), tasks_per_node=2, timeout_min=10
    ) as eng:
        result = eng.submit(job, ARCH).result()
    two_dir = Path(result["run_dir"])
    assert two_dir.name == one.run_dir.name
    assert {p.name for p in (two_dir / "checkpoints").iterdir()} >= {
        "step000000004.rank0.pt",
        "step000000004.rank1.pt",
    }
    assert json.loads((two_dir / "config.json").read_text())["world_size"] == 2
    a, b = _weights(one.run_dir), _weights(two_dir)
    rel = {
        k: float((a[k].double() - b[k].double()).abs().max() / a[k].double().abs().max().clamp_min(1e-2))
        for k in a
        if a[k].is_floating_point()
    }
    worst = max(rel, key=rel.__getitem__)
    assert rel[worst] < 1e-4, f"largest relative difference {rel[worst]:.2e} ({worst})"
    for ra, rb in zip(read_log(one.run_dir), read_log(two_dir), strict=True):
        assert ra["images"] == rb["images"] == 80  # counts summed over ranks
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
        assert abs(ra["val_top1"] - rb["val_top1"]) <= 100 / 300 + 1e-9


@pytest.mark.slow
def test_preempted_two_task_job_is_requeued_and_ends_bitwise_identical(
    fashion_folder: Path, tmp_path: Path
) -> None:
    """Both tasks of a 2-task gloo job get the preemption signal (as SLURM's --signal does): every rank
    checkpoints at the agreed step, rank 0 requeues, the other exits quietly; the requeued job meets again and
    ends bitwise identical to an uninterrupted 2-task job."""
    pytest.importorskip("submitit")
    from nasopt.engines import Engine

    data = {"root": str(fashion_folder), "train_fraction": 0.3}  # 2 epochs of 30 steps
    scheme = get_scheme("smoke", epochs=2, batch_size=10, checkpoint_every_steps=7)

    def job(out: str) -> TrainJob:
        return TrainJob(scheme, data, str(tmp_path / out), device="cpu", deterministic=True, threads=1)

    jobs = tmp_path / "jobs"
    with Engine(
        "submitit_local", folder=str(jobs / "%j"), tasks_per_node=2, timeout_min=60, max_num_timeout=0
    ) as eng:
        ref = eng.submit(job("ref"), ARCH).result()
        handle = eng.submit(job("preempted"), ARCH)
        controller = handle.job._process.pid  # type: ignore[attr-defined]
        deadline = time.monotonic() + 300
        common: list[int] = []
        while time.monotonic() < deadline and not (common and common[-1] >= 7):
            assert not handle.done(), _logs(jobs)[-3000:]
            dirs = list((tmp_path / "preempted").glob("*/checkpoints"))
            if dirs:
                common = sorted(set(ckpt.steps_of(dirs[0], 0)) & set(ckpt.steps_of(dirs[0], 1)))
            time.sleep(0.01)
        tasks = _children(controller)
        assert len(tasks) == 2
        for pid in tasks:
            os.kill(pid, signal.SIGUSR2)
        t = time.monotonic()
        while set(tasks) & set(_children(controller)) and time.monotonic() - t < 60:
            time.sleep(0.01)
        assert not list((tmp_path / "preempted").glob("*/result_*.json")), "signalled too late"
        result = handle.result()
    logs = _logs(jobs)
    assert "Requeued job" in logs and "resuming" in logs, logs[-3000:]
    a, b = _weights(Path(result["run_dir"])), _weights(Path(ref["run_dir"]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in read_log(result["run_dir"])]
    assert strip == [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in read_log(ref["run_dir"])]
