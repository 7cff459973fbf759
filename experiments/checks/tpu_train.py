"""Train on an XLA device with the real torch_xla, on its CPU client (no TPU needed), and print what it gives.

torch_xla needs its own torch (torch_xla 2.9 <-> torch 2.9), so it lives in a side environment::

    python -m venv .venv-xla && .venv-xla/bin/pip install torch==2.9.0 torch_xla==2.9.0 numpy scipy pandas \
        pyarrow safetensors pillow hydra-core pytest hypothesis && .venv-xla/bin/pip install --no-deps -e .
    PJRT_DEVICE=CPU .venv-xla/bin/python experiments/checks/tpu_train.py --data DIR   # a prepared image folder

It trains the smoke scheme (bf16 autocast, as on a TPU) on ``device="xla"`` and on ``device="cpu"`` from the
same seed, then stops an XLA run after a few steps and resumes it, and prints top-1, images per second and the
largest weight difference between the resumed and the uninterrupted XLA runs. On a TPU VM drop
``PJRT_DEVICE=CPU`` (it defaults to the TPU) and pass ``--scheme proxified`` with ImageNet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PJRT_DEVICE", "CPU")

import torch

from nasopt.signals import StopFlag
from nasopt.validation.model import load_weights
from nasopt.validation.train import get_scheme, read_log, train
from nasopt.validation.train.run import TrainingStopped

SMALL = "e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1- e1k3l1-"


class _StopAfter(StopFlag):
    def __init__(self, n: int) -> None:
        self._left = n
        super().__init__()

    @property
    def reason(self) -> str | None:
        self._left -= 1
        return "request" if self._left < 0 else None

    @reason.setter
    def reason(self, value: str | None) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="an ImageNet-layout folder (prepare fashion-mnist DIR)")
    ap.add_argument("--arch", default=SMALL)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--stop-after", type=int, default=7, help="steps before the interrupted run stops")
    args = ap.parse_args()
    torch.set_num_threads(1)
    s = get_scheme("smoke", epochs=args.epochs, precision="bf16")
    out = Path(tempfile.mkdtemp(prefix="nasopt-xla-"))
    rows = {}
    for dev in ("xla", "cpu"):
        t = time.perf_counter()
        r = train(args.arch, s, args.data, out / dev, device=dev)
        log = read_log(r.run_dir)
        rows[dev] = (r, time.perf_counter() - t, log)
        print(
            f"{dev:>4}: val top-1 {r.record['metrics']['val_top1']:.1f} %  per epoch "
            f"{[round(e['val_top1'], 1) for e in log]}  train img/s {[round(e['img_per_s']) for e in log]}  "
            f"wall {rows[dev][1]:.1f} s"
        )
    try:
        train(args.arch, s, args.data, out / "part", device="xla", stop=_StopAfter(args.stop_after),
              handle_signals=False)
    except TrainingStopped as exc:
        print(f"interrupted: {exc}")
    resumed = train(args.arch, s, args.data, out / "part", device="xla")
    a = load_weights(rows["xla"][0].run_dir / "weights.safetensors").state_dict()
    b = load_weights(resumed.run_dir / "weights.safetensors").state_dict()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    print(
        f"resumed XLA run: val top-1 {resumed.record['metrics']['val_top1']:.1f} % (uninterrupted "
        f"{rows['xla'][0].record['metrics']['val_top1']:.1f} %), largest weight difference {worst:.3g}"
    )
    print(f"runs kept in {out}")


if __name__ == "__main__":
    main()
