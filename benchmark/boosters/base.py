"""What a gradient-boosting library offers the surrogate: one ensemble member, fitted with early stopping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from benchmark._typing import FloatArray, IntArray
from benchmark.tables import Leaf

#: names of the accuracy hyperparameter presets every backend provides (``SurrogateConfig.accuracy_preset``):
#: ``"tuned"`` (re-tuned by cross-validation, the default) and ``"upstream"`` (Accel-NASBench's)
ACCURACY_PRESET_NAMES = ("tuned", "upstream")


@dataclass
class Member:
    """One fitted ensemble member.

    Attributes:
        leaves: every leaf of its trees (member index 0; the ensemble sets its own).
        base_score: constant added to the sum of the leaves.
        rounds: boosting rounds kept (the best iteration on the held-out rows).
        native: the library's own serialised model (XGBoost UBJ bytes, LightGBM model text).
        holdout_prediction: predictions ``(n_hold,)`` at the held-out rows, in the order given.
    """

    leaves: list[Leaf]
    base_score: float
    rounds: int
    native: bytes
    holdout_prediction: FloatArray


class BoosterBackend(Protocol):
    """A gradient-boosting library behind the surrogate (features: the 28 gene indices as floats)."""

    #: ``SurrogateConfig.backend`` value
    name: ClassVar[str]
    #: file suffix of :attr:`Member.native` in the cache (``models/<target>_member<m>.<suffix>``)
    model_suffix: ClassVar[str]
    #: accuracy hyperparameters per preset name (:data:`ACCURACY_PRESET_NAMES`)
    accuracy_presets: ClassVar[Mapping[str, Mapping[str, Any]]]
    #: hyperparameters of the boosted residual of the additive model
    residual_params: ClassVar[Mapping[str, Any]]

    def fit_member(
        self,
        X: NDArray[np.float32],
        y: FloatArray,
        fit: IntArray,
        hold: IntArray,
        params: Mapping[str, Any],
        *,
        seed: int,
        max_rounds: int,
        early_stopping_rounds: int,
        interaction_groups: list[list[int]] | None = None,
    ) -> Member:
        """Boost on rows ``fit`` of ``X (n, 28)`` / ``y (n,)``, early-stopping on rows ``hold``.

        Args:
            params: library hyperparameters (merged over the backend's fixed ones).
            seed: the member's boosting seed.
            interaction_groups: feature groups one tree path must stay inside (None: unconstrained).
        """
        ...
