"""A run's parameters (the trigger form, `mlspec run --param`) reach the fitted model: Keras epochs and
learning rate, and a scikit-learn spec's model.params, through TrainingPlan.from_spec."""

from __future__ import annotations

from tests.fixtures.paths import SPECS

from mlspec.ml.frameworks import TrainingPlan
from mlspec.spec import load_spec


def test_a_run_parameter_overrides_the_specs_estimator_parameter() -> None:
    spec = load_spec(SPECS / "iris-forest.yaml").to_dict()
    assert TrainingPlan.from_spec(spec).params["n_estimators"] == 100
    plan = TrainingPlan.from_spec(spec, run_params={"n_estimators": 3, "max_depth": None, "random_state": 0})
    assert dict(plan.params) == {"n_estimators": 3, "max_depth": None, "random_state": 0}
    assert plan.log_params()["params.n_estimators"] == 3
    # The form's defaults are the spec's values: a run that changes nothing trains what the spec says.
    defaults = {"n_estimators": 100, "max_depth": 6, "random_state": 0}
    assert dict(TrainingPlan.from_spec(spec, run_params=defaults).params) == defaults
    # Keras settings never reach an estimator; `trials` is the tuner's.
    assert "trials" not in TrainingPlan.from_spec(spec, run_params={"trials": 4}).params


def test_the_fitted_pipeline_uses_the_run_value() -> None:
    from mlspec.ml.data import load_source, split
    from mlspec.ml.frameworks import get_adapter

    x, y, classes, features, *_ = load_source("builtin:iris", fmt=None, features=None, label=None, read_bytes=lambda uri: b"")
    dataset = split(x, y, validation=0.1, test=0.2, seed=1, stratify=True, class_names=classes, feature_names=features)
    plan = TrainingPlan.from_spec(load_spec(SPECS / "iris-forest.yaml").to_dict(), run_params={"n_estimators": 3})
    adapter = get_adapter("sklearn")
    model = adapter.build(plan, dataset)
    adapter.fit(model, plan, dataset)
    assert len(model[-1].estimators_) == 3


def test_keras_run_parameters_still_apply() -> None:
    spec = load_spec(SPECS / "digits.yaml").to_dict()
    plan = TrainingPlan.from_spec(spec, run_params={"epochs": 2, "learning_rate": 0.5})
    assert plan.training["epochs"] == 2 and plan.training["optimizer"]["learning_rate"] == 0.5
