"""Tuning through real Airflow (dag.test) on the embedded defaults: the trials are mapped train task
instances, each its own tracking run tagged mlspec.trial, the best is selected, published, registered with
mlspec.best_trial and its parameters, and served."""

from __future__ import annotations

import json
import math

import pytest
from tests.e2e.e2e_testkit import xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

TUNED = (SPECS / "iris-tuned.yaml").read_text()

OPTUNA_FOREST = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: NAME, description: Iris forest tuned by Optuna}
data:
  source: builtin:iris
  split: {validation: 0.2, test: 0.25, seed: 7, stratify: true}
  preprocess: [{normalize: {}}]
model:
  framework: sklearn
  estimator: random_forest
  params: {n_estimators: 10, random_state: 0}
evaluation:
  thresholds: {accuracy: {min: 0.7}}
tuning:
  strategy: optuna
  trials: 4
  parallel: 2
  seed: 3
  objective: {metric: val_f1}
  space:
    model.params.max_depth: {int_uniform: [1, 6]}
    model.params.n_estimators: {int_uniform: [5, 30]}
    model.params.criterion: {choice: [gini, entropy]}
"""

# k_neighbors with more neighbours than training samples fits, then fails when it predicts: lint cannot
# know the split sizes, so trial 1 fails at run time; the run still picks the best of the others.
GRID_WITH_A_FAILING_TRIAL = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: knn-grid}
data:
  source: builtin:iris
  split: {validation: 0.2, test: 0.25, seed: 7, stratify: true}
  preprocess: [{normalize: {}}]
model:
  framework: sklearn
  estimator: k_neighbors
evaluation:
  thresholds: {accuracy: {min: 0.7}}
tuning:
  strategy: grid
  trials: 3
  objective: {metric: val_accuracy}
  space:
    model.params.n_neighbors: {choice: [3, 500, 7]}
"""


def states(dag_run) -> dict[tuple[str, int], str]:
    """Every task instance's state, mapped ones by (task id, map index)."""
    return {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}


def trial_results(dag_run) -> dict[int, dict]:
    """The mapped train task's results by map index, read back from Airflow's DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id)
            .filter(XComModel.task_id == "train", XComModel.key == "return_value")
            .all()
        )
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def mlflow_client():
    from mlflow import MlflowClient

    from mlspec.registry.mlflow_connection import resolve_connection

    uri = resolve_connection(None).tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def served_version(server_url: str, model: str) -> str | None:
    import httpx

    response = httpx.get(f"{server_url}/v2/models/{model}")
    return response.json()["parameters"]["served_version"] if response.status_code == 200 else None


def check_trials_and_best(dag_run, spec, count: int) -> dict:
    """What every tuned run must show; returns select_best's result."""
    from mlspec.tuning import TRIAL_TAG, objective_direction, param_key

    task_states = states(dag_run)
    assert str(dag_run.state) == "success", task_states
    assert sorted(i for (task, i) in task_states if task == "train") == list(range(count))
    planned = xcom(dag_run, "plan_trials")
    assert [t["index"] for t in planned] == list(range(count))

    results = trial_results(dag_run)
    client = mlflow_client()
    metric = spec.tuning.metric
    for index, result in results.items():
        assert result["trial"]["index"] == index and set(result["trial"]["params"]) == set(spec.tuning.space)
        run = client.get_run(result["tracking_run_id"])
        assert run.data.tags[TRIAL_TAG] == str(index)
        assert run.data.tags["airflow_run_id"] == dag_run.run_id
        # The objective under its own name, as the run's value of that metric.
        assert run.data.metrics[metric] == pytest.approx(result["objective"]["value"])
        for path, value in result["trial"]["params"].items():
            assert run.data.params[f"trial.{param_key(path)}"] == str(value)

    best = xcom(dag_run, "select_best")
    values = {i: r["objective"]["value"] for i, r in results.items() if math.isfinite(r["objective"]["value"])}
    pick = max if objective_direction(metric, spec.tuning.direction) == "maximize" else min
    best_value = pick(values.values())
    assert best["best_trial"] == min(i for i, v in values.items() if v == best_value)
    winner = results[best["best_trial"]]
    assert best["model_uri"] == winner["model_uri"] and best["params"] == winner["trial"]["params"]
    assert best["tracking_run_id"] == winner["tracking_run_id"]
    assert [row["index"] for row in best["trials"]] == list(range(count))
    # The shape of an untuned train result, so evaluate and export take it as they take train's.
    assert {"model_uri", "framework", "tracking_run_id", "steps_run", "stopped_early", "final_metrics", "history"} <= set(best)

    # Only the best model went on: the registered version carries its trial and parameters.
    (version,) = client.search_model_versions(f"name='{spec.name}'")
    assert version.tags["mlspec.best_trial"] == str(best["best_trial"])
    assert json.loads(version.tags["mlspec.best_params"]) == best["params"]
    return best


def test_tuned_keras_spec_runs_mapped_trials_and_promotes_the_best(run_spec, model_server):
    # The trigger form's `trials` overrides the spec's 4 for this run.
    text = TUNED.replace("name: iris-tuned", "name: iris-tuned-e2e")
    spec, dag_run = run_spec(text, "iris-tuned-e2e", trials=3)
    assert spec.tuning.trials == 4
    best = check_trials_and_best(dag_run, spec, 3)
    assert best["framework"] == "tensorflow"
    assert states(dag_run)[("promote", -1)] == "success"
    assert served_version(model_server, "iris-tuned-e2e") == "1"
    from mlspec.registry.mlflow_registry import MlflowRegistry

    assert str(MlflowRegistry(None).client.get_model_version_by_alias("iris-tuned-e2e", "production").version) == "1"
    # The learning rate each trial trained with is the trial's, not the trigger form's default.
    client = mlflow_client()
    for result in trial_results(dag_run).values():
        params = client.get_run(result["tracking_run_id"]).data.params
        assert float(params["optimizer.learning_rate"]) == pytest.approx(result["trial"]["params"]["training.optimizer.learning_rate"])


def test_optuna_trials_share_one_study(run_spec, model_server):
    import optuna

    from mlspec.tuning import OPTUNA_TRIAL_ATTR, storage_url, study_name

    spec, dag_run = run_spec(OPTUNA_FOREST.replace("NAME", "forest-optuna"), "forest-optuna")
    best = check_trials_and_best(dag_run, spec, 4)
    assert best["framework"] == "sklearn"

    study = optuna.load_study(study_name=study_name("forest-optuna", dag_run.run_id), storage=storage_url(None))
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    results = trial_results(dag_run)
    for trial in trials:
        result = results[trial.user_attrs[OPTUNA_TRIAL_ATTR]]
        assert result["trial"]["optuna_trial"] == trial.number
        assert trial.value == pytest.approx(result["objective"]["value"])
        assert trial.params == result["trial"]["params"]
    assert study.direction.name == "MAXIMIZE"
    assert study.best_value == pytest.approx(best["objective"]["value"])


def test_a_failed_trial_does_not_sink_the_run(run_spec, model_server):
    spec, dag_run = run_spec(GRID_WITH_A_FAILING_TRIAL, "knn-grid")
    task_states = states(dag_run)
    assert task_states[("train", 1)] == "failed"
    assert task_states[("train", 0)] == task_states[("train", 2)] == "success"
    assert str(dag_run.state) == "success", task_states
    best = xcom(dag_run, "select_best")
    assert best["best_trial"] in (0, 2)
    assert [(row["index"], row["state"]) for row in best["trials"]] == [(0, "success"), (1, "failed"), (2, "success")]
    assert best["trials"][1]["params"] == {"model.params.n_neighbors": 500}
    assert served_version(model_server, "knn-grid") == "1"
