"""A scikit-learn DAG's trigger form, used as a user does through Airflow (dag.test): a value given for
one of the spec's model.params trains the model with it; a key that is not a parameter fails the run at
its first task, and nothing is trained."""

from __future__ import annotations

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e


def forest(name: str) -> str:
    # No champion gate: the run goes to production whatever it scores, and the thresholds let 3 trees through.
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    text = text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")
    return text


def test_a_form_value_is_what_the_model_is_trained_with(run_spec):
    spec, dag_run = run_spec(forest("form-forest"), "form-forest", n_estimators=3)
    assert str(dag_run.state) == "success", task_states(dag_run)
    from mlspec.ml.frameworks import get_adapter
    from mlspec.storage import open_store

    store = open_store(spec.storage.uri, spec.storage.connection)
    model = get_adapter("sklearn").load(store.read_uri(xcom(dag_run, "train")["model_uri"]))
    assert len(model[-1].estimators_) == 3  # the spec says 100
    from mlspec.registry.mlflow_registry import MlflowRegistry

    run = MlflowRegistry(None).client.get_run(xcom(dag_run, "train")["tracking_run_id"])
    assert run.data.params["params.n_estimators"] == "3"
    # The published model card says what it was trained with, not what the spec says.
    card = store.read_uri(f"{xcom(dag_run, 'store')['uri']}/model_card.md").decode()
    assert "random_forest (max_depth=6, n_estimators=3, random_state=0)" in card, card[:600]


def test_an_unknown_key_fails_the_first_task_with_the_accepted_keys(run_spec, capfd):
    _, dag_run = run_spec(forest("form-typo"), "form-typo", n_estimatorz=1)
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states["prepare_data"] == "failed" and states["train"] == "upstream_failed", states
    out, err = capfd.readouterr()
    assert "`n_estimatorz` (did you mean `n_estimators`?)" in out + err
    assert "Accepted keys: n_estimators, max_depth, random_state" in out + err
