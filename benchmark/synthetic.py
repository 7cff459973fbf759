"""A tiny analytic oracle with the same interface as the surrogate benchmark, for fast tests and demos.

Its numbers are smooth functions of the genes (bigger/wider networks: more accurate, slower), so
optimizers and the runner can be exercised in milliseconds without fitting any model. It is not
Accel-NASBench and must never be used to draw conclusions about real architectures.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from benchmark import devices as user_devices
from benchmark import space
from benchmark._typing import FloatArray
from benchmark.api import TargetPrediction
from benchmark.targets import DEVICES, check_targets

#: rough best throughput per device in the real data (img/s)
_PEAK_THROUGHPUT = {
    "a100": 30000.0,
    "3090": 21000.0,
    "tpuv2": 1800.0,
    "tpuv3": 1800.0,
    "zcu102": 1450.0,
    "vck190": 4500.0,
}


class SyntheticBenchmark:
    """Deterministic analytic stand-in for :class:`benchmark.Benchmark` (same ``query``/``cost``)."""

    digest = "synthetic-v1"

    def __init__(self, noise_scale: float = 0.05) -> None:
        self.noise_scale = noise_scale

    def _size(self, X: ArrayLike) -> FloatArray:
        dec = space.decode(space.as_batch(X))
        depth_w = np.array([0.5, 0.8, 1.0, 1.2, 1.3, 1.5, 0.7])
        size = (dec["e"] * dec["l"] * (dec["k"] / 3.0) ** 1.5 * (1.0 + 0.15 * dec["se"])) @ depth_w
        return size.astype(float)  # ~ 3 .. 240

    def query(
        self,
        X: ArrayLike,
        targets: str | list[str] | tuple[str, ...] | None = None,
        *,
        noisy: bool = False,
        rng: np.random.Generator | None = None,
    ) -> dict[str, TargetPrediction]:
        names = check_targets(targets)
        if noisy and rng is None:
            raise ValueError("noisy queries need rng=numpy.random.Generator(...)")
        batch = space.as_batch(X)
        size = self._size(batch)
        dec = space.decode(batch)
        se_bonus = dec["se"].sum(axis=1) * 0.15
        means: dict[str, FloatArray] = {"accuracy": 45.0 + 4.0 * np.log1p(size) + se_bonus}
        for i, d in enumerate(DEVICES):
            lat = 0.5 + 0.02 * (1.0 + 0.1 * i) * size + 0.05 * dec["se"].sum(axis=1) * (i % 3)
            # scaled so each device spans roughly its measured range (and the problems' fixed boxes)
            means[f"throughput_{d}"] = _PEAK_THROUGHPUT[d] * 0.55 / lat
        means["latency_zcu102"] = 1.0 + 0.08 * size
        means["latency_vck190"] = 1.0 + 0.04 * size
        means["train_time"] = 1000.0 + 15.0 * size
        out: dict[str, TargetPrediction] = {}
        for name in names:
            if name not in means:  # a user device's target: its own fitted surrogate
                means[name] = user_devices.predict(name, batch)[0]
            mean = means[name]
            std = self.noise_scale * np.abs(mean) * 0.01 + 1e-9
            value = mean + std * rng.standard_normal(mean.shape) if noisy and rng is not None else mean
            out[name] = TargetPrediction(mean, std, value)
        return out

    def cost(self, X: ArrayLike) -> FloatArray:
        return self.query(X, ["train_time"])["train_time"].mean
