"""The XGBoost adapter: `model.framework: xgboost` fits XGBClassifier or XGBRegressor (by
`model.task`) behind the spec's feature steps, and exports it to ONNX with onnxmltools' converter.

`model.params` are XGBoost's constructor parameters, checked at lint time against xgboost_params.json
beside this module, generated from XGBoost's own signature: `python -m
mlspec.ml.frameworks.xgboost_adapter --write` after upgrading XGBoost (a test fails until then).
`early_stopping_rounds` watches the validation split; the model and its ONNX export then keep the
best round. The seed is `training.seed` unless model.params sets random_state. What the model is
and how it is fitted, saved and exported is shared with LightGBM: mlspec.ml.frameworks.boosting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlspec.ml.frameworks.boosting import BoostingAdapter, RoundCallback, boosting_framework
from mlspec.ml.frameworks.signature_params import SignatureParams

if TYPE_CHECKING:
    import numpy as np

PARAMS = SignatureParams(
    library="xgboost",
    classes={"classification": "xgboost.XGBClassifier", "regression": "xgboost.XGBRegressor"},
    file=Path(__file__).with_name("xgboost_params.json"),
    module=__name__ if __name__ != "__main__" else "mlspec.ml.frameworks.xgboost_adapter",
)

# XGBoost names its evaluation sets validation_0, validation_1, ... in the order fit was given them.
_CURVE_PREFIX = {"validation_0": "", "validation_1": "val_"}


class XGBoostAdapter(BoostingAdapter):
    name = "xgboost"
    params = PARAMS

    def rounds(self, estimator: Any) -> int:
        return int(estimator.get_num_boosting_rounds())

    def fit_estimator(
        self, estimator: Any, x: np.ndarray, y: np.ndarray, eval_sets: list, on_round: RoundCallback
    ) -> None:
        from xgboost.callback import TrainingCallback

        class EachRound(TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
                values = {
                    f"{_CURVE_PREFIX[data]}{metric}": float(curve[-1])
                    for data, metrics in evals_log.items()
                    for metric, curve in metrics.items()
                }
                on_round(epoch + 1, values)
                return False  # never stops training itself; early stopping is XGBoost's

        # The callback is set for this fit only: a saved model must not hold it.
        estimator.set_params(callbacks=[EachRound()])
        try:
            estimator.fit(x, y, eval_set=eval_sets, verbose=False)
        finally:
            estimator.set_params(callbacks=None)

    def register_converter(self) -> None:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )


FRAMEWORK = boosting_framework(XGBoostAdapter(), title="XGBoost", tune_example="model.params.max_depth")

if __name__ == "__main__":
    raise SystemExit(PARAMS.main())
