"""LightGBM as the surrogate's booster: hyperparameter presets, member fitting and leaf extraction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from benchmark._typing import BoolArray, FloatArray, IntArray
from benchmark.boosters.base import Member
from benchmark.tables import Leaf, allowed_below

#: LightGBM translation of the upstream accuracy hyperparameters (num_leaves 8 = depth 3)
UPSTREAM_ACCURACY: dict[str, Any] = {
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 63,
    "feature_fraction": 0.95,
    "lambda_l2": 5.4237,
    "lambda_l1": 0.23,
    "learning_rate": 0.09373,
}
#: LightGBM translation of the tuned XGBoost accuracy hyperparameters
TUNED_ACCURACY: dict[str, Any] = {
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 2,
    "min_sum_hessian_in_leaf": 1.0,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.75,
    "feature_fraction_bynode": 0.85,
    "lambda_l2": 0.3,
    "lambda_l1": 0.02,
    "learning_rate": 0.018,
}
#: the boosted residual of the additive device model (Huber loss, as the XGBoost residual)
RESIDUAL: dict[str, Any] = {
    "objective": "huber",
    "alpha": 0.02,
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "learning_rate": 0.2,
}


def lightgbm_leaves(model_dump: dict[str, Any], member: int) -> tuple[list[Leaf], float]:
    """Leaves of a LightGBM ``dump_model()`` dict (features = the 28 gene indices); base score is 0."""
    leaves: list[Leaf] = []
    for info in model_dump["tree_info"]:
        stack: list[tuple[dict[str, Any], dict[int, BoolArray]]] = [(info["tree_structure"], {})]
        while stack:
            node, allowed = stack.pop()
            if "leaf_value" in node:
                leaves.append(Leaf(float(node["leaf_value"]), member, allowed))
                continue
            if node.get("decision_type", "<=") != "<=":
                raise ValueError(f"unsupported LightGBM split type {node.get('decision_type')!r}")
            g = int(node["split_feature"])
            below = allowed_below(g, float(node["threshold"]), inclusive=True)
            prev = allowed.get(g, np.ones_like(below))
            stack.append((node["left_child"], {**allowed, g: prev & below}))
            stack.append((node["right_child"], {**allowed, g: prev & ~below}))
    return leaves, 0.0


class LightGBMBackend:
    """Deterministic single-thread LightGBM (row-wise histograms), L2 regression unless the parameters say
    otherwise."""

    name: ClassVar[str] = "lightgbm"
    model_suffix: ClassVar[str] = "txt"
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
        import lightgbm as lgb

        if interaction_groups is not None:
            params = {**params, "interaction_constraints": interaction_groups}
        full = {
            "objective": "regression",
            "seed": seed,
            "verbosity": -1,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            **params,
        }
        dfit = lgb.Dataset(X[fit], label=y[fit], categorical_feature=[], free_raw_data=False)
        dhold = lgb.Dataset(X[hold], label=y[hold], reference=dfit)
        booster = lgb.train(
            full,
            dfit,
            num_boost_round=max_rounds,
            valid_sets=[dhold],
            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        )
        best = int(booster.best_iteration) or booster.current_iteration()
        leaves, base = lightgbm_leaves(booster.dump_model(num_iteration=best), 0)
        native = booster.model_to_string(num_iteration=best).encode()
        holdout = np.asarray(booster.predict(X[hold], num_iteration=best), dtype=float)
        return Member(leaves, base, best, native, holdout)
