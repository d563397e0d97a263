"""Asset events: every promoted version is an event of the Asset x-mlspec://<name> whose extra carries the
version, the stored URI and the test metrics; a run where the champion holds emits none; the example
downstream DAG (examples/score_on_new_model.py) is scheduled on that Asset and scores against the endpoint."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import REPO, SPECS

pytestmark = pytest.mark.e2e

WEAK = "estimator: decision_tree\n  params: {max_depth: 1, random_state: 0}"


def forest_spec(name: str, model: str | None = None) -> str:
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    if model:
        text = text.replace("estimator: random_forest\n  params: {n_estimators: 100, max_depth: 6, random_state: 0}", model)
    return text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")


def asset_events(uri: str) -> list:
    """The asset's events in Airflow's DB, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == uri)
            .order_by(AssetEvent.id)
            .all()
        )
        return [(row.source_dag_id, row.source_task_id, row.source_run_id, dict(row.extra or {})) for row in rows]


def load_example(path=REPO / "examples" / "score_on_new_model.py"):
    spec = importlib.util.spec_from_file_location("mlspec_example_score_on_new_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_promoted_version_is_an_asset_event_and_a_held_champion_is_not(run_spec, model_server, tmp_path, monkeypatch):
    name = "assets-iris"
    uri = f"x-mlspec://{name}"
    _, first = run_spec(forest_spec(name), name)
    assert str(first.state) == "success", task_states(first)

    events = asset_events(uri)
    assert len(events) == 1
    dag_id, task_id, run_id, extra = events[0]
    assert (dag_id, task_id, run_id) == (name, "promote", first.run_id)
    stored = xcom(first, "store")
    assert extra["model"] == name and extra["version"] == stored["version"] == 1
    assert extra["stored_uri"] == stored["uri"]
    assert extra["metrics"] == xcom(first, "evaluate")["metrics"]
    assert set(extra["metrics"]) == {"accuracy", "precision", "recall", "f1"}
    assert extra["infer_url"] == f"{model_server}/v2/models/{name}/infer"

    # A weaker retrain: the champion holds, promote is skipped and no event is emitted.
    _, second = run_spec(forest_spec(name, WEAK), name)
    assert str(second.state) == "success", task_states(second)
    assert task_states(second)["promote"] == "skipped"
    assert xcom(second, "evaluate")["champion"]["decision"] == "champion_holds"
    assert len(asset_events(uri)) == 1

    # The example downstream DAG is scheduled on this asset, and scores the production version. dag.test()
    # runs what Airflow parsed from a DAG bundle: the example, copied into a folder of its own, is that bundle.
    bundle = tmp_path / "downstream-dags"
    bundle.mkdir()
    (bundle / "score_on_new_model.py").write_text((REPO / "examples" / "score_on_new_model.py").read_text())
    config = {"name": "downstream", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
              "kwargs": {"path": str(bundle)}}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([config]))
    monkeypatch.setenv("MLSPEC_SCORE_MODEL", name)
    example = load_example(bundle / "score_on_new_model.py")
    dag = example.dag
    assert dag.dag_id == "score_on_new_assets_iris"
    from airflow.sdk import Asset

    assert list(dag.timetable.asset_condition.objects) == [Asset(name=uri, uri=uri)]
    assert example.model_asset(name) == Asset(name=uri, uri=uri)
    scored = dag.test()
    assert str(scored.state) == "success", task_states(scored)
    result = xcom(scored, "score_new_version")
    assert result["version"] == 1 and len(result["rows"]) == 3
    assert result["outputs"]["model_version"] == "1"
    assert len(result["outputs"]["label"]) == 3 and len(result["outputs"]["probabilities"]) == 9
