"""Every spec's DAG has a trigger form: a scikit-learn spec offers its model.params (typed from the
estimator table, the spec's values as defaults), a tuned spec `trials`, every spec `accept_drift`; a
configuration key that is not a parameter fails the run's first task at once, naming the accepted keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.fixtures.paths import SPECS

from mlspec.compiler import build_dag
from mlspec.ml.frameworks import TrainingPlan
from mlspec.spec import load_spec


def tuned_forest(tmp_path):
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", "name: forest-tuned")
    text += "tuning:\n  strategy: grid\n  trials: 2\n  objective: {metric: val_accuracy}\n  space:\n    model.params.max_depth: {choice: [2, 4]}\n"
    (tmp_path / "forest-tuned.yaml").write_text(text)
    return load_spec(tmp_path / "forest-tuned.yaml")


def test_a_sklearn_form_offers_the_specs_params_typed_from_the_estimator_table():
    dag = build_dag(load_spec(SPECS / "iris-forest.yaml"))
    params = dag.params
    assert set(params.keys()) == {"n_estimators", "max_depth", "random_state", "accept_drift"}
    assert params["n_estimators"] == 100 and params["max_depth"] == 6 and params["random_state"] == 0
    n_estimators = params.get_param("n_estimators").schema
    assert n_estimators["type"] == "integer" and n_estimators["minimum"] == 1
    max_depth = params.get_param("max_depth").schema
    assert max_depth["type"] == ["integer", "null"]  # the table's anyOf, with a type the form can show
    assert "an integer >= 1 or null" in params.get_param("max_depth").description
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        params.get_param("n_estimators").resolve(0)
    assert params.get_param("n_estimators").resolve(3) == 3
    assert "n_estimators" in dag.doc_md and "Trigger with parameters" in dag.doc_md


def test_gradient_boosting_learning_rate_is_a_number_form_field():
    params = build_dag(load_spec(SPECS / "diabetes.yaml")).params
    assert params["learning_rate"] == 0.05 and params.get_param("learning_rate").schema["type"] == "number"
    assert set(params.keys()) == {"n_estimators", "max_depth", "learning_rate", "random_state", "accept_drift"}


def test_a_tuned_sklearn_form_offers_trials_and_leaves_out_what_a_trial_sets(tmp_path):
    params = build_dag(tuned_forest(tmp_path)).params
    assert set(params.keys()) == {"n_estimators", "random_state", "trials", "accept_drift"}
    assert params["trials"] == 2


def test_keras_forms_are_unchanged():
    assert set(build_dag(load_spec(SPECS / "digits.yaml")).params.keys()) == {"epochs", "learning_rate", "accept_drift"}
    assert set(build_dag(load_spec(SPECS / "iris-tuned.yaml")).params.keys()) == {"epochs", "trials", "accept_drift"}


@pytest.mark.parametrize("name", ["digits.yaml", "iris-forest.yaml", "iris-tuned.yaml", "penguins.yaml"])
def test_every_form_has_accept_drift_off_by_default(name):
    """Issue 14: a run that validate_data would stop for drift can be retrained anyway from the trigger form."""
    params = build_dag(load_spec(SPECS / name)).params
    assert list(params.keys())[-1] == "accept_drift" and params["accept_drift"] is False
    field = params.get_param("accept_drift")
    assert field.schema["type"] == "boolean"
    assert field.description.startswith("Retrain even when validate_data finds drift or schema problems")
    assert "the version records that the drift was accepted" in field.description
    spec = load_spec(SPECS / name)  # validate_data reads it; training is the same with it or without
    assert TrainingPlan.from_spec(spec.resolved, run_params={"accept_drift": True}) == TrainingPlan.from_spec(spec.resolved)


def _first_task_check(dag, conf):
    task = dag.get_task("prepare_data")
    hook = task._pre_execute_hook
    assert hook is not None, "the first task checks the run's configuration"
    return hook({"dag_run": SimpleNamespace(conf=conf), "params": {}})


def test_an_unknown_conf_key_fails_the_first_task_with_the_accepted_keys():
    from airflow.sdk.exceptions import AirflowFailException

    dag = build_dag(load_spec(SPECS / "iris-forest.yaml"))
    assert _first_task_check(dag, {"n_estimators": 3}) is None
    assert _first_task_check(dag, None) is None
    assert _first_task_check(dag, {"accept_drift": True}) is None
    with pytest.raises(AirflowFailException, match="`accept_drift` must be"):
        _first_task_check(dag, {"accept_drift": "yes"})
    with pytest.raises(AirflowFailException) as raised:
        _first_task_check(dag, {"n_estimatorz": 1})
    message = str(raised.value)
    assert "`n_estimatorz` (did you mean `n_estimators`?)" in message
    assert "Accepted keys: n_estimators, max_depth, random_state, accept_drift" in message
    assert "iris-forest" in message
    with pytest.raises(AirflowFailException, match="`n_estimators` must be an integer >= 1, got 2.5"):
        _first_task_check(dag, {"n_estimators": 2.5})
    # Keras: epochs and learning_rate only.
    keras = build_dag(load_spec(SPECS / "digits.yaml"))
    with pytest.raises(AirflowFailException, match="Accepted keys: epochs, learning_rate, accept_drift"):
        _first_task_check(keras, {"n_estimators": 1})
