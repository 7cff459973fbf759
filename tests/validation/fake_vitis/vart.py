"""A fake of Vitis AI's ``vart`` module for tests: every job takes ``FAKE_VART_SECONDS`` on a DPU of batch
``FAKE_VART_BATCH``; each runner counts its jobs in ``FAKE_VART_LOG`` (one line per runner at exit)."""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

__version__ = "3.5-fake"
_RUNNERS: list[Runner] = []


class Tensor:
    def __init__(self, name: str, dims: list[int]) -> None:
        self.name = name
        self.dims = dims


class Runner:
    @staticmethod
    def create_runner(subgraph: Any, mode: str) -> Runner:
        assert mode == "run", mode
        assert subgraph.get_attr("device") == "DPU"
        return Runner()

    def __init__(self) -> None:
        self.batch = int(os.environ.get("FAKE_VART_BATCH", "1"))
        self.seconds = float(os.environ.get("FAKE_VART_SECONDS", "0.002"))
        self.jobs = 0
        _RUNNERS.append(self)

    def get_input_tensors(self) -> list[Tensor]:
        return [Tensor("input", [self.batch, 64, 64, 3])]

    def get_output_tensors(self) -> list[Tensor]:
        return [Tensor("logits", [self.batch, 1000])]

    def execute_async(self, inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
        assert tuple(inputs[0].shape) == (self.batch, 64, 64, 3) and str(inputs[0].dtype) == "int8"
        assert tuple(outputs[0].shape) == (self.batch, 1000)
        time.sleep(self.seconds)
        self.jobs += 1
        return (self.jobs, 0)

    def wait(self, job: tuple[int, int]) -> int:
        return 0


@atexit.register
def _log() -> None:
    path = os.environ.get("FAKE_VART_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(f"{r.jobs}\n" for r in _RUNNERS))
