"""A fake ``torch_quantizer``: records the calls in ``FAKE_NNDCT_LOG`` (JSON lines) and writes
``<Model>_int.xmodel`` on export, as the real one does."""

from __future__ import annotations

import json
import os
from typing import Any


def _log(**event: Any) -> None:
    with open(os.environ["FAKE_NNDCT_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")


class torch_quantizer:
    def __init__(self, quant_mode: str, module: Any, input_args: Any, output_dir: str, **kw: Any) -> None:
        self.mode = quant_mode
        self.module = module
        self.output_dir = output_dir
        _log(
            event="init",
            mode=quant_mode,
            model=type(module).__name__,
            bitwidth=kw.get("bitwidth"),
            target=kw.get("target"),
        )

        def forward(x: Any) -> Any:
            _log(event="forward", mode=quant_mode, shape=list(x.shape))
            return module(x)

        self.quant_model = forward

    def export_quant_config(self) -> None:
        _log(event="export_quant_config", mode=self.mode)

    def export_xmodel(self, output_dir: str, deploy_check: bool = False) -> None:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, f"{type(self.module).__name__}_int.xmodel"), "w") as fh:
            fh.write("1")
        _log(event="export_xmodel", mode=self.mode)
