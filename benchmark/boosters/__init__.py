"""The gradient-boosting libraries the surrogate fits with, one module each, behind one protocol."""

from __future__ import annotations

from benchmark.boosters.base import ACCURACY_PRESET_NAMES, BoosterBackend, Member
from benchmark.boosters.lightgbm_backend import LightGBMBackend
from benchmark.boosters.xgboost_backend import XGBoostBackend

#: backends by ``SurrogateConfig.backend`` name (the libraries are imported only when a member is fitted)
BACKENDS: dict[str, BoosterBackend] = {b.name: b for b in (XGBoostBackend(), LightGBMBackend())}

__all__ = [
    "ACCURACY_PRESET_NAMES",
    "BACKENDS",
    "BoosterBackend",
    "LightGBMBackend",
    "Member",
    "XGBoostBackend",
]
