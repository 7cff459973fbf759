"""``nasopt train``: train one architecture (a Hydra app composed from ``conf/train``: groups ``scheme``
and ``data``).

::

    nasopt train --arch efficientnet_b0 scheme=proxified data.root=/data/imagenet
    nasopt train --arch "e1k3l1- e1k3l1- ..." scheme=smoke data=folder data.root=/tmp/fashion scheme.epochs=2
    python -m torch.distributed.run --nproc-per-node 4 -m nasopt.validation.train.cli --arch ... (DDP)
    nasopt train --arch A --arch B ... engine=slurm engine.partition=gpu engine.gpus_per_node=4 engine.nodes=2

``engine`` (``conf/train/engine``: local = this process, slurm, submitit_local, ray) submits one job per
architecture through :mod:`nasopt.engines` (:mod:`nasopt.validation.train.jobs`) and waits for them.
Running the same command again resumes the run; bad input is one line on stderr and exit status 2; a run
stopped by SIGTERM/SIGINT (after its checkpoint) exits with 130; a submitted job that failed: exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 130
EXIT_JOB_FAILED = 1
CONFIG_NAME = "train"


def _register_schemes() -> None:
    from hydra.core.config_store import ConfigStore

    from nasopt.validation.train.schemes import SCHEMES

    cs = ConfigStore.instance()
    for name, scheme in SCHEMES.items():
        cs.store(group="scheme", name=name, node=scheme.to_dict())


def compose(overrides: Sequence[str]) -> Any:
    """The composed config (an OmegaConf DictConfig) of ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    _register_schemes()
    conf_dir = resources.files("nasopt.conf").joinpath("train")
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))


def _group_options() -> dict[str, list[str]]:
    from nasopt.validation.train.schemes import SCHEMES

    conf = resources.files("nasopt.conf").joinpath("train")
    options = {"scheme": list(SCHEMES)}
    for group in ("data", "engine"):
        folder = conf.joinpath(group)
        options[group] = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    return options


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--arch`` and Hydra overrides, train, return the exit status."""
    ap = argparse.ArgumentParser(prog="nasopt train", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--arch",
        action="append",
        default=None,
        help="architecture: compact string, reference name or 28 genes; repeat it for several (one job each)",
    )
    ap.add_argument("overrides", nargs="*", help="Hydra overrides: scheme=proxified data.root=DIR seed=1 ...")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from benchmark.errors import NasoptError

    try:
        cfg = compose(args.overrides)
        plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        msg = _one_line(exc)
        for group, options in _group_options().items():
            if f"'{group}/" in msg:
                msg += f"; {group}= one of {', '.join(options)}"
        if "Could not override" in msg:
            msg = msg.rstrip(".") + (
                "; settings are scheme.<TrainScheme field> and "
                "data.<root|train_fraction|workers|backend|val_batch>, engine.<setting of conf/train/engine>"
            )
        print(f"nasopt train: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    arch = args.arch if args.arch is not None else plain.get("arch")
    archs = [str(a) for a in arch] if isinstance(arch, list) else [] if arch is None else [str(arch)]
    if not archs:
        print(
            "nasopt train: error: no architecture: pass --arch <compact string or reference name>",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    threads = plain.get("threads")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            print(
                f"nasopt train: error: threads must be a positive integer or null, got {threads!r}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        import torch

        torch.set_num_threads(threads)
    from nasopt.validation.train.jobs import TrainJob, engine_settings
    from nasopt.validation.train.run import TrainingStopped, train
    from nasopt.validation.train.schemes import SCHEMES, TrainScheme

    try:
        fields = dict(plain["scheme"])
        scheme = TrainScheme(**fields) if fields.get("name") not in SCHEMES else SCHEMES[fields["name"]]
        scheme = scheme.with_overrides(fields)
        kind, engine_opts, own = engine_settings(plain.get("engine") or {})
        run: dict[str, Any] = {
            "seed": int(plain["seed"]),
            "device": None if plain["device"] == "auto" else str(plain["device"]),
            "overwrite": bool(plain["overwrite"]),
            "deterministic": bool(plain["deterministic"]),
            "verbose": bool(plain["verbose"]),
            "skeleton": plain.get("skeleton"),
        }
        if kind is not None:
            job = TrainJob(
                scheme,
                plain["data"],
                str(plain["out_dir"]),
                threads=threads,
                **run,
                master_port=own.get("master_port"),
            )
            return _submit(job, archs, kind, engine_opts, own)
        results = [train(a, scheme, plain["data"], plain["out_dir"], **run) for a in archs]
    except TrainingStopped as exc:
        print(f"nasopt train: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (NasoptError, TypeError) as exc:
        print(f"nasopt train: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if bool(plain["verbose"]):
        for result in results:
            m = result.record["metrics"]
            print(
                f"nasopt train: {result.run_dir}: val top-1 {m['val_top1']:.2f} %, top-5 "
                f"{m['val_top5']:.2f} %, {m['train_time']:.0f} s; record {result.record_path.name}"
            )
    return 0


def _submit(job: Any, archs: list[str], kind: str, options: dict[str, Any], own: dict[str, Any]) -> int:
    """One job per architecture on the engine; one line per job; exit 1 when one failed."""
    from nasopt.validation.train.jobs import submit_training

    outcomes = submit_training(job, archs, kind, options, own)
    failed = 0
    for arch, out in zip(archs, outcomes, strict=True):
        if isinstance(out, str):  # submitted, not awaited
            print(f"nasopt train: submitted {arch} as job {out} ({kind}); the same command resumes it")
        elif out.error is not None:
            failed += 1
            print(f"nasopt train: {arch}: {out.error}", file=sys.stderr)
        else:
            v = out.value
            print(
                f"nasopt train: {v['run_dir']}: val top-1 {v['val_top1']:.2f} %, "
                f"top-5 {v['val_top5']:.2f} %, {v['train_time']:.0f} s ({kind})"
            )
    return EXIT_JOB_FAILED if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
