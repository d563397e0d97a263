"""Lint rules for frameworks and tasks: what scikit-learn and Keras specs need and refuse, each with a location."""

from __future__ import annotations

import pytest

from mlspec.spec import SpecError, load_spec_text

SKLEARN = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: forest}
data:
  source: builtin:iris
  preprocess: [{normalize: {}}]
model:
  framework: sklearn
  estimator: random_forest
  params: {n_estimators: 20, max_depth: 4}
"""

KERAS_REGRESSION = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: reg}
data: {source: builtin:diabetes}
model:
  task: regression
  layers:
    - dense: {units: 8, activation: relu}
    - dense: {units: 1}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_a_sklearn_spec_needs_no_training_section_and_gets_task_defaults():
    spec = load_spec_text(SKLEARN, "s.yaml")
    assert (spec.model.framework, spec.model.task, spec.model.estimator) == ("sklearn", "classification", "random_forest")
    assert dict(spec.model.params) == {"n_estimators": 20, "max_depth": 4}
    assert spec.evaluation.metrics == ("accuracy", "precision", "recall", "f1")


def test_regression_defaults_to_regression_loss_and_metrics():
    spec = load_spec_text(KERAS_REGRESSION, "s.yaml")
    assert spec.training.loss == "mean_squared_error"
    assert spec.evaluation.metrics == ("rmse", "mae", "r2")


def test_unknown_estimator_parameter_suggests_the_real_one():
    (message,) = problems(SKLEARN.replace("n_estimators: 20", "n_estimatorz: 20"))
    assert message.startswith("s.yaml:10:12: model.params.n_estimatorz: unknown parameter `n_estimatorz`")
    assert "did you mean `n_estimators`?" in message


def test_wrongly_typed_estimator_parameter_says_what_is_allowed():
    (message,) = problems(SKLEARN.replace("max_depth: 4", "max_depth: deep"))
    assert message.startswith("s.yaml:10:41: model.params.max_depth:") and "integer" in message and "'deep'" in message


def test_unknown_estimator_lists_the_tasks_estimators():
    (message,) = problems(SKLEARN.replace("random_forest", "random_forrest"))
    assert message.startswith("s.yaml:9:") and "random_forest" in message


def test_estimator_of_the_other_task_is_refused():
    (message,) = problems(SKLEARN.replace("estimator: random_forest", "estimator: ridge").replace("params: {n_estimators: 20, max_depth: 4}", "params: {}"))
    assert "ridge" in message and "classification" in message


def test_sklearn_spec_with_keras_settings_is_told_what_to_remove():
    text = SKLEARN + "  layers: [{dense: {units: 3}}]\ntraining: {epochs: 5}\n"
    messages = problems(text)
    assert any(m.startswith("s.yaml:11:3: model.layers:") and "estimator" in m for m in messages)
    assert any(m.startswith("s.yaml:12:1: training:") and "Keras settings" in m and "model.params" in m for m in messages)


def test_sklearn_refuses_reshape_one_hot_and_image_data():
    text = SKLEARN.replace("preprocess: [{normalize: {}}]", "preprocess: [{reshape: [2, 2]}, {one_hot: {}}]")
    messages = problems(text)
    assert sum("is for Keras models" in m for m in messages) == 2
    (message,) = problems(SKLEARN.replace("builtin:iris", "keras:mnist").replace("preprocess: [{normalize: {}}]", "preprocess: []"))
    assert "one feature vector per sample" in message


def test_sklearn_needs_an_estimator_and_keras_needs_layers():
    (message,) = problems(SKLEARN.replace("  estimator: random_forest\n", "").replace("  params: {n_estimators: 20, max_depth: 4}\n", ""))
    assert "needs model.estimator" in message and "random_forest" in message
    (message,) = problems(KERAS_REGRESSION.replace("  layers:\n    - dense: {units: 8, activation: relu}\n    - dense: {units: 1}\n", ""))
    assert "framework tensorflow needs model.layers" in message
    (message,) = problems(KERAS_REGRESSION + "  estimator: ridge\n")
    assert "model.estimator is a scikit-learn setting" in message


def test_keras_regression_needs_one_linear_unit_and_a_regression_loss():
    messages = problems(KERAS_REGRESSION.replace("{units: 1}", "{units: 3, activation: softmax}") + "training: {loss: sparse_categorical_crossentropy}\n")
    assert any("model.layers[1].dense.units" in m and "units: 1" in m for m in messages)
    assert any("model.layers[1].dense.activation" in m and "linear" in m for m in messages)
    assert any("training.loss" in m and "mean_squared_error, mean_absolute_error" in m for m in messages)


def test_metrics_and_data_must_fit_the_task():
    messages = problems(KERAS_REGRESSION + "evaluation: {metrics: [rmse, accuracy]}\n")
    assert any("evaluation.metrics[1]: accuracy is a classification metric; for regression use rmse" in m for m in messages)
    (message,) = problems(KERAS_REGRESSION.replace("task: regression", "task: classification").replace("{units: 1}", "{units: 3, activation: softmax}"))
    assert "builtin:diabetes is a regression data set but model.task is classification" in message


def test_bounded_metric_thresholds_and_free_regression_thresholds():
    (message,) = problems(SKLEARN + "evaluation: {thresholds: {f1: {min: 1.2}}}\n")
    assert "f1 lies between 0 and 1" in message
    spec = load_spec_text(KERAS_REGRESSION + "evaluation: {thresholds: {rmse: {max: 60}, r2: {min: -0.5}}}\n", "s.yaml")
    assert spec.evaluation.thresholds["rmse"].max == 60


def test_a_setting_several_frameworks_read_names_them_all() -> None:
    # model.params is read by scikit-learn, XGBoost and LightGBM: a Keras spec that sets it is told so.
    with pytest.raises(SpecError) as info:
        load_spec_text(KERAS_REGRESSION + "  params: {max_depth: 3}\n", "s.yaml")
    assert "model.params is a scikit-learn, XGBoost or LightGBM setting; with framework tensorflow" in str(info.value)
