"""``nasopt train``: train one architecture (a Hydra app composed from ``conf/train``: groups ``scheme``
and ``data``).

::

    nasopt train --arch efficientnet_b0 scheme=proxified data.root=/data/imagenet
    nasopt train --arch "e1k3l1- e1k3l1- ..." scheme=smoke data=folder data.root=/tmp/fashion scheme.epochs=2
    python -m torch.distributed.run --nproc-per-node 4 -m nasopt.validation.train.cli --arch ... (DDP)

Running the same command again resumes the run; bad input is one line on stderr and exit status 2; a run
stopped by SIGTERM/SIGINT (after its checkpoint) exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 130
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

    data = resources.files("nasopt.conf").joinpath("train", "data")
    names = sorted(p.name[: -len(".yaml")] for p in data.iterdir() if p.name.endswith(".yaml"))
    return {"scheme": list(SCHEMES), "data": names}


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--arch`` and Hydra overrides, train, return the exit status."""
    ap = argparse.ArgumentParser(prog="nasopt train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default=None, help="architecture: compact string, reference name or 28 genes")
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
                "data.<root|train_fraction|workers|backend|val_batch>"
            )
        print(f"nasopt train: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    arch = args.arch if args.arch is not None else plain.get("arch")
    if arch is None:
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
    from nasopt.validation.train.run import TrainingStopped, train
    from nasopt.validation.train.schemes import SCHEMES, TrainScheme

    try:
        fields = dict(plain["scheme"])
        scheme = TrainScheme(**fields) if fields.get("name") not in SCHEMES else SCHEMES[fields["name"]]
        scheme = scheme.with_overrides(fields)
        result = train(
            arch,
            scheme,
            plain["data"],
            plain["out_dir"],
            seed=int(plain["seed"]),
            device=None if plain["device"] == "auto" else str(plain["device"]),
            overwrite=bool(plain["overwrite"]),
            deterministic=bool(plain["deterministic"]),
            verbose=bool(plain["verbose"]),
            skeleton=plain.get("skeleton"),
        )
    except TrainingStopped as exc:
        print(f"nasopt train: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (NasoptError, TypeError) as exc:
        print(f"nasopt train: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if bool(plain["verbose"]):
        m = result.record["metrics"]
        print(
            f"nasopt train: {result.run_dir}: val top-1 {m['val_top1']:.2f} %, top-5 {m['val_top5']:.2f} %, "
            f"{m['train_time']:.0f} s; record {result.record_path.name}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
