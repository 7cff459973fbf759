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


def test_batch_sweep_reports_the_best_and_stops_at_out_of_memory() -> None:
    from nasopt.validation.measure import best_batch

    small = "e1k3l1- " * 6 + "e1k3l1-"
    best, every = best_batch(
        small, "tests.validation.fake_backend:ParamsLatencyBackend", (1, 4, 16), resolution=32
    )
    assert [m.protocol.batch for m in every] == [
        1,
        4,
        16,
    ] and best.protocol.batch == 16  # fixed time per pass
    best, every = best_batch(
        small, "tests.validation.fake_backend:OutOfMemoryAbove8", (2, 8, 32, 64), resolution=32
    )
    assert [m.protocol.batch for m in every] == [2, 8] and best.protocol.batch == 8


def test_plugin_backend_by_import_path_and_bad_paths() -> None:
    assert make_backend("tests.validation.fake_backend:ParamsLatencyBackend").name == "params-latency"
    with pytest.raises(UnknownBackendError, match="cannot import measurement backend"):
        make_backend("tests.validation.nowhere:Backend")
    with pytest.raises(UnknownBackendError, match="is not a MeasurementBackend subclass"):
        make_backend("nasopt.validation.measure.stats:Timer")
