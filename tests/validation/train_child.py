"""A training run in its own process, for the kill/resume and DDP tests: ``python train_child.py JSON``.

JSON: ``{"arch", "data", "out", "scheme": {overrides of smoke}, "seed", "threads"}``; exit 0 when finished,
3 when stopped by a signal (with a checkpoint)."""

from __future__ import annotations

import json
import sys

import torch


def main() -> int:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(int(args.get("threads", 1)))
    from nasopt.validation.train import TrainingStopped, get_scheme, train

    scheme = get_scheme("smoke", **args.get("scheme", {}))
    try:
        train(
            args["arch"],
            scheme,
            args["data"],
            args["out"],
            seed=int(args.get("seed", 0)),
            device="cpu",
            deterministic=True,
        )
    except TrainingStopped as exc:
        print(exc, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
