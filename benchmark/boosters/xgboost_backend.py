"""XGBoost as the surrogate's booster: hyperparameter presets, member fitting and leaf extraction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.boosters.base import Member
from benchmark.tables import Leaf, allowed_below

#: Accel-NASBench's tuned hyperparameters of the accuracy model (``accuracy_preset="upstream"``)
UPSTREAM_ACCURACY: dict[str, Any] = {
    "max_depth": 3,
    "min_child_weight": 63,
    "colsample_bytree": 0.9998,
    "colsample_bylevel": 0.9158,
    "lambda": 5.4237,
    "alpha": 0.2300,
    "eta": 0.09373,
}
#: accuracy hyperparameters re-tuned by cross-validation on the default train split
#: (``accuracy_preset="tuned"``, the default; how they were found and what they gain: benchmark/SURROGATE.md)
TUNED_ACCURACY: dict[str, Any] = {
    "max_depth": 3,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.75,
    "colsample_bynode": 0.85,
    "lambda": 0.3,
    "alpha": 0.02,
    "eta": 0.018,
}
#: the boosted residual of the additive device model: pseudo-Huber loss with a 1 % slope on the log residual
#: (why: benchmark/SURROGATE.md)
RESIDUAL: dict[str, Any] = {
    "objective": "reg:pseudohubererror",
    "huber_slope": 0.01,
    "max_depth": 3,
    "min_child_weight": 5,
    "subsample": 0.8,
    "eta": 0.2,
    "lambda": 1.0,
}


def xgboost_leaves(model_json: dict[str, Any], member: int) -> tuple[list[Leaf], float]:
    """Leaves of an XGBoost JSON model (features = the 28 gene indices) and its base score."""
    learner = model_json["learner"]
    base_raw = learner["learner_model_param"]["base_score"]
    base = float(json.loads(base_raw)[0]) if base_raw.startswith("[") else float(base_raw)
    leaves: list[Leaf] = []
    for tree in learner["gradient_booster"]["model"]["trees"]:
        left, right = tree["left_children"], tree["right_children"]
        feat, cond = tree["split_indices"], tree["split_conditions"]
        stack: list[tuple[int, dict[int, BoolArray]]] = [(0, {})]
        while stack:
            node, allowed = stack.pop()
            if left[node] == -1:
                leaves.append(Leaf(float(cond[node]), member, allowed))
                continue
            g = int(feat[node])
            below = allowed_below(g, float(cond[node]), inclusive=False)
            prev = allowed.get(g, np.ones_like(below))
            stack.append((left[node], {**allowed, g: prev & below}))
            stack.append((right[node], {**allowed, g: prev & ~below}))
    return leaves, base


class XGBoostBackend:
    """Histogram XGBoost, one thread, squared error unless the parameters say otherwise."""

    name: ClassVar[str] = "xgboost"
    model_suffix: ClassVar[str] = "ubj"
    accuracy_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "tuned": TUNED_ACCURACY,
        "upstream": UPSTREAM_ACCURACY,
    }
    residual_params: ClassVar[Mapping[str, Any]] = RESIDUAL

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
        import xgboost as xgb

        if interaction_groups is not None:
            params = {**params, "interaction_constraints": str(interaction_groups)}
        dfit = xgb.DMatrix(X[fit], label=y[fit], nthread=1)
        dhold = xgb.DMatrix(X[hold], label=y[hold], nthread=1)
        full = {"objective": "reg:squarederror", "tree_method": "hist", "seed": seed, "nthread": 1, **params}
        booster = xgb.train(
            full,
            dfit,
            num_boost_round=max_rounds,
            evals=[(dhold, "hold")],
            early_stopping_rounds=early_stopping_rounds,
            verbose_eval=False,
        )
        best = int(booster.best_iteration) + 1
        booster = booster[:best]  # upstream defect fixed: predict with the best iteration only
        leaves, base = xgboost_leaves(json.loads(bytes(booster.save_raw("json"))), 0)
        native = bytes(booster.save_raw("ubj"))
        holdout = np.asarray(booster.predict(xgb.DMatrix(X[hold], nthread=1)), dtype=float)
        return Member(leaves, base, best, native, holdout)
