"""Quantize the bundle's float network to INT8 and compile it for the board's DPU (in the Vitis AI docker).

Written by nasopt into an FPGA deploy bundle. In the Vitis AI 3.5 PyTorch docker
(``conda activate vitis-ai-pytorch``; Python 3.8, torch 1.13), from the bundle's folder::

    python quantize_compile.py [--calib-root DIR] [--device cpu|cuda] [--arch-json FILE] [--skip-compile]

1. post-training INT8 quantization with vai_q_pytorch (``torch_quantizer``): ``calib`` mode runs the
   calibration images (``calib_images.txt``, relative to ``--calib-root``) through the network and exports the
   quantization config; ``test`` mode then runs one batch-1 pass and exports ``quantized/<Net>_int.xmodel``;
2. ``vai_c_xir -x quantized/<Net>_int.xmodel -a <arch.json of the board's DPU> -o compiled -n <net name>``
   writes ``compiled/<net name>.xmodel``, the file ``run_board.py`` runs on the board.

Without calibration images (a bundle written without a calibration folder) random inputs calibrate: the
xmodel then measures speed correctly but its accuracy means nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from typing import Any, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CALIB_BATCH = 8


def read_manifest() -> dict:
    with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as fh:
        return json.load(fh)


def calibration_paths(manifest: dict, root: str) -> list[str]:
    calib = manifest.get("calibration") or {}
    if not calib.get("list"):
        return []
    with open(os.path.join(HERE, calib["list"]), encoding="utf-8") as fh:
        names = [line.strip() for line in fh if line.strip()]
    paths = [os.path.join(root, n) for n in names]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        sys.exit(
            "error: %d of %d calibration images are missing (first: %s); pass --calib-root, the folder the "
            "names in %s are relative to" % (len(missing), len(paths), missing[0], calib["list"])
        )
    return paths


def batches(paths: list[str], resolution: int, n_random: int) -> Iterator:
    import numpy as np
    import torch

    from model_def import preprocess

    if not paths:
        g = torch.Generator().manual_seed(0)
        for _ in range(max(1, n_random // CALIB_BATCH)):
            yield torch.randn(CALIB_BATCH, 3, resolution, resolution, generator=g)
        return
    for i in range(0, len(paths), CALIB_BATCH):
        chunk = paths[i : i + CALIB_BATCH]
        yield torch.from_numpy(np.stack([preprocess(p, resolution) for p in chunk]))


def quantize(manifest: dict, paths: list[str], device_name: str, out_dir: str, target: str | None) -> str:
    import torch
    from pytorch_nndct.apis import torch_quantizer

    from model_def import load_network

    device = torch.device(device_name)
    r = int(manifest["resolution"])
    model = load_network(os.path.join(HERE, manifest["weights"])).to(device)
    dummy = torch.randn(1, 3, r, r, device=device)

    def make_quantizer(mode: str) -> Any:
        kwargs = {"output_dir": out_dir, "device": device, "bitwidth": 8}
        if target:
            try:  # target-aware quantization (Vitis AI >= 3.0): the DPU's supported ops shape the graph
                return torch_quantizer(mode, model, (dummy,), target=target, **kwargs)
            except TypeError:
                print("this vai_q_pytorch takes no target; quantizing without it")
        return torch_quantizer(mode, model, (dummy,), **kwargs)

    quantizer = make_quantizer("calib")
    qmodel = quantizer.quant_model
    with torch.no_grad():
        for i, x in enumerate(batches(paths, r, int(manifest.get("n_calibration", 150)))):
            qmodel(x.to(device))
            print("calibration batch %d" % (i + 1))
    quantizer.export_quant_config()

    quantizer = make_quantizer("test")
    qmodel = quantizer.quant_model
    with torch.no_grad():
        qmodel(dummy)  # the xmodel export needs one batch-1 forward pass in test mode
    quantizer.export_xmodel(output_dir=out_dir, deploy_check=False)
    found = sorted(glob.glob(os.path.join(out_dir, "*_int.xmodel")))
    if not found:
        sys.exit("error: vai_q_pytorch wrote no *_int.xmodel into %s" % out_dir)
    return found[0]


def compile_xmodel(xmodel: str, arch_json: str, out_dir: str, net_name: str) -> str:
    if not os.path.isfile(arch_json):
        sys.exit(
            "error: DPU arch file %s not found; pass --arch-json (inside the Vitis AI docker it is under "
            "/opt/vitis_ai/compiler/arch/)" % arch_json
        )
    cmd = ["vai_c_xir", "-x", xmodel, "-a", arch_json, "-o", out_dir, "-n", net_name]
    print("$ " + " ".join(cmd))
    subprocess.check_call(cmd)
    return os.path.join(out_dir, net_name + ".xmodel")


def main(argv: list[str] | None = None) -> int:
    manifest = read_manifest()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calib-root", default=(manifest.get("calibration") or {}).get("root") or HERE)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the GPU docker)")
    ap.add_argument("--arch-json", default=manifest["arch_json"])
    ap.add_argument("--skip-compile", action="store_true", help="stop after the quantized xmodel")
    ap.add_argument("--no-target", action="store_true", help="no DPU target (older Vitis AI)")
    args = ap.parse_args(argv)

    paths = calibration_paths(manifest, args.calib_root)
    print(
        "%s on %s (%s): %d calibration images"
        % (manifest["arch"], manifest["board"], manifest["dpu"], len(paths))
    )
    target = None if args.no_target else manifest["dpu"]
    xmodel = quantize(manifest, paths, args.device, os.path.join(HERE, "quantized"), target)
    print("quantized: " + xmodel)
    if args.skip_compile:
        return 0
    compiled = compile_xmodel(xmodel, args.arch_json, os.path.join(HERE, "compiled"), manifest["net_name"])
    print("compiled: %s\ncopy the bundle folder to the board and run: python3 run_board.py" % compiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
