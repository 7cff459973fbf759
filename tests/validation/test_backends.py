"""Conformance of every registered measurement backend (device checks run where the device is)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("torch")

from nasopt.validation.measure import BACKENDS, UnknownBackendError, make_backend, measure
from nasopt.validation.testing import BackendConformance


class TestOnnxRuntime(BackendConformance):
    backend = "onnxruntime"
    settings: ClassVar[dict[str, Any]] = {"threads": 1}


class TestTorchCPU(BackendConformance):
    backend = "torch-cpu"
    settings: ClassVar[dict[str, Any]] = {"threads": 1}


class TestCuda(BackendConformance):
    backend = "cuda"


class TestTpu(BackendConformance):
    backend = "tpu"


def test_every_registered_backend_has_a_conformance_class() -> None:
    tested = {c.backend for c in (TestOnnxRuntime, TestTorchCPU, TestCuda, TestTpu)}
    assert set(BACKENDS) <= tested, f"add a BackendConformance subclass for {set(BACKENDS) - tested}"


def test_unknown_backend_and_keyword_are_one_line() -> None:
    with pytest.raises(UnknownBackendError, match="unknown measurement backend 'tpu3'; available: "):
        make_backend("tpu3")
    with pytest.raises(Exception, match=r"has no parameter.*'thread'"):
        make_backend("onnxruntime", thread=1)


def test_cpu_alias_and_threads_recorded() -> None:
    m = measure("e1k3l1- " * 6 + "e1k3l1-", "cpu", "latency", threads=1, resolution=64, repeats=3, warmup=1)
    assert m.protocol.backend == "onnxruntime" and m.protocol.threads == 1
    assert m.environment["threads"] == 1 and m.device == "cpu"
