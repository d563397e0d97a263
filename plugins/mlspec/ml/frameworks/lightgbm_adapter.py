"""The LightGBM adapter: `model.framework: lightgbm` fits LGBMClassifier or LGBMRegressor (by
`model.task`) behind the spec's feature steps, and exports it to ONNX with onnxmltools' converter.

`model.params` are the parameters of LightGBM's scikit-learn constructor, checked at lint time
against lightgbm_params.json beside this module, generated from that signature: `python -m
mlspec.ml.frameworks.lightgbm_adapter --write` after upgrading LightGBM (a test fails until then).
LightGBM's own console output is off (verbose=-1); each round's metrics are logged by mlspec. The
seed is `training.seed` unless model.params sets random_state. What the model is and how it is
fitted, saved and exported is shared with XGBoost: mlspec.ml.frameworks.boosting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlspec.ml.frameworks.boosting import BoostingAdapter, RoundCallback, boosting_framework
from mlspec.ml.frameworks.signature_params import SignatureParams

if TYPE_CHECKING:
    import numpy as np

PARAMS = SignatureParams(
    library="lightgbm",
    classes={"classification": "lightgbm.LGBMClassifier", "regression": "lightgbm.LGBMRegressor"},
    file=Path(__file__).with_name("lightgbm_params.json"),
    module=__name__ if __name__ != "__main__" else "mlspec.ml.frameworks.lightgbm_adapter",
)

# The names fit gives the evaluation sets, and the prefix of their curves.
_CURVE_PREFIX = {"train": "", "val": "val_"}


class LightGBMAdapter(BoostingAdapter):
    name = "lightgbm"
    params = PARAMS
    quiet = {"verbose": -1}

    def rounds(self, estimator: Any) -> int:
        return int(estimator.get_params()["n_estimators"])

    def fit_estimator(
        self, estimator: Any, x: np.ndarray, y: np.ndarray, eval_sets: list, on_round: RoundCallback
    ) -> None:
        from lightgbm.basic import LightGBMError

        def each_round(env: Any) -> None:
            values = {
                f"{_CURVE_PREFIX[data]}{metric}": float(value)
                for data, metric, value, *_ in env.evaluation_result_list
            }
            on_round(env.iteration - env.begin_iteration + 1, values)

        try:
            estimator.fit(
                x,
                y,
                eval_X=tuple(ex for ex, _ in eval_sets),
                eval_y=tuple(ey for _, ey in eval_sets),
                eval_names=list(_CURVE_PREFIX)[: len(eval_sets)],
                callbacks=[each_round],
            )
        except LightGBMError as exc:  # e.g. an unknown objective: a settings problem, reported as one
            raise ValueError(str(exc)) from exc

    def register_converter(self) -> None:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )

        def convert(scope: Any, operator: Any, container: Any) -> None:
            operator.raw_operator = _Float32Thresholds(operator.raw_operator)
            convert_lightgbm(scope, operator, container)

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert,
            options={"split": None},
        )


class _Float32Thresholds:
    """A fitted LightGBM model as onnxmltools reads it, each split threshold t replaced by the largest
    float32 <= t. LightGBM compares features with double thresholds; the ONNX tree compares float32
    features with float32 thresholds, and onnxmltools rounds t to the NEAREST float32, which can be a
    feature value just above t: that sample then goes left in ONNX and right in LightGBM (a 7.2
    difference on one diabetes sample). For a float32 x, x <= t exactly when x <= floor32(t), so the
    export decides every split as LightGBM does. Every other attribute is the model's."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.booster_ = _FlooredBooster(model.booster_)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _FlooredBooster:
    is_mock = True  # onnxmltools then reads dump_model() instead of LightGBM's C API

    def __init__(self, booster: Any) -> None:
        self._booster = booster

    def dump_model(self) -> dict[str, Any]:
        import numpy as np

        dump = self._booster.dump_model()
        nodes = [tree["tree_structure"] for tree in dump["tree_info"]]
        while nodes:
            node = nodes.pop()
            if node.get("decision_type") == "<=":
                floored = np.float32(node["threshold"])
                if float(floored) > node["threshold"]:
                    floored = np.nextafter(floored, np.float32(-np.inf))
                node["threshold"] = float(floored)
            nodes.extend(node[child] for child in ("left_child", "right_child") if child in node)
        return dump

    def __getattr__(self, name: str) -> Any:
        return getattr(self._booster, name)


FRAMEWORK = boosting_framework(LightGBMAdapter(), title="LightGBM", tune_example="model.params.num_leaves")

if __name__ == "__main__":
    raise SystemExit(PARAMS.main())
