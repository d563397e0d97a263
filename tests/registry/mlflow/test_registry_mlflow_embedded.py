"""The embedded MLflow registry (SQLite under MLSPEC_HOME) and tracking, with real published versions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_connection import resolve_connection
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.tracking import TrainingTracker


@pytest.fixture(scope="module")
def registry(mlspec_home: Path) -> MlflowRegistry:
    return MlflowRegistry()


@pytest.fixture(scope="module")
def tracking_uri(mlspec_home: Path) -> str:
    return resolve_connection(None).tracking_uri


def test_register_creates_a_version_with_every_tag(
    registry, publisher, tracking_uri, client_for, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("digits")
    published = publisher.publish(name, run_id="manual__2026-01-01T00:00:00+00:00")
    request = publisher.request(published)

    entry = registry.register(request)

    assert entry.backend == "mlflow" and entry.model_name == name
    assert entry.version == published.version == 1
    assert entry.created is True
    assert entry.url == tracking_uri and entry.url.endswith("/mlflow/mlflow.db")
    client = client_for(tracking_uri)
    mv = client.get_model_version(name, entry.registry_version)
    # created from the MLflow model logged from the store's folder (test_registry_mlflow_logged_model.py)
    assert mv.source.startswith("models:/m-")
    model_file = Path(published.uri.removeprefix("file://")) / "model.onnx"
    model_sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert mv.tags == {
        "mlspec.version": "1",
        "mlspec.state": "candidate",
        "metric.accuracy": "0.9712",
        "metric.f1": "0.9688",
        "data_source": "builtin:digits",
        "spec_hash": "ab12cd34ef56",
        "dag_id": name,
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "model_uri": f"{published.uri}/model.onnx",
        "source_uri": published.uri,
        "onnx_opset": "17",
        "sha256.model.onnx": model_sha,
        "framework": request.framework,
        "task": request.task,
    }
    assert f"{published.uri}/model.onnx" in mv.description and "accuracy=0.9712" in mv.description
    model = client.get_registered_model(name)
    assert model.description == f"{name} classifier"
    assert model.tags["owner"] == "ml-team"


def test_retry_returns_the_same_version(registry, publisher, tracking_uri, client_for, unique_name) -> None:
    name = unique_name("digits")
    published = publisher.publish(name, run_id="scheduled__1")
    first = registry.register(publisher.request(published))

    # a retried store task reuses its version; the retried register task must then find its entry
    again = publisher.publish(name, run_id="scheduled__1")
    assert again.reused and again.version == published.version
    second = registry.register(publisher.request(again))

    assert second.created is False
    assert second.registry_version == first.registry_version
    assert second.to_xcom() == {**first.to_xcom(), "created": False}
    assert len(client_for(tracking_uri).search_model_versions(f"name = '{name}'")) == 1


def test_next_store_version_is_a_new_registry_version_and_find_tells_them_apart(
    registry, publisher, unique_name
) -> None:
    name = unique_name("iris")
    v1 = publisher.publish(name, run_id="run-a", scale=2.0)
    v2 = publisher.publish(name, run_id="run-b", scale=3.0)
    assert (v1.version, v2.version) == (1, 2)
    e1 = registry.register(publisher.request(v1))
    e2 = registry.register(publisher.request(v2, metrics={"accuracy": 0.98}))

    assert e2.created is True and e2.registry_version != e1.registry_version
    assert registry.find(name, 1) == replace(e1, created=False)
    assert registry.find(name, 2) == replace(e2, created=False)
    assert registry.find(name, 3) is None
    assert registry.find(unique_name("never-registered"), 1) is None


def test_s3_sources_are_recorded_as_they_are(
    registry, publisher, tracking_uri, client_for, unique_name
) -> None:
    name = unique_name("mnist")
    published = publisher.publish(name, run_id="run-s3")
    request = publisher.request(
        published, source_uri=f"s3://models/{name}/1", model_uri=f"s3://models/{name}/1/model.onnx",
        storage_connection="aws_default",
    )
    entry = registry.register(request)
    mv = client_for(tracking_uri).get_model_version(name, entry.registry_version)
    assert mv.source == f"s3://models/{name}/1"
    assert mv.tags["storage_connection"] == "aws_default"


def test_record_deployment_tags_every_outcome_and_never_moves_the_alias(
    registry, publisher, tracking_uri, client_for, unique_name
) -> None:
    name = unique_name("digits")
    client = client_for(tracking_uri)
    e1 = registry.register(publisher.request(publisher.publish(name, run_id="run-1")))
    e2 = registry.register(publisher.request(publisher.publish(name, run_id="run-2", scale=5.0)))
    deployment = {"platform": "local", "endpoint_url": "http://127.0.0.1:8555", "served_model_name": name}
    assert registry.production_version(name) is None

    registry.record_deployment(name, 1, deployment, "deployed")
    assert client.get_model_version(name, e1.registry_version).tags["deployment.outcome"] == "deployed"
    assert client.get_registered_model(name).aliases == {}

    registry.record_deployment(name, 1, deployment, "smoke_test_passed")
    assert client.get_registered_model(name).aliases == {}  # production moves only through set_production
    assert registry.production_version(name) is None
    registry.set_production(name, 1, reason="its smoke test passed")
    tags = client.get_model_version(name, e1.registry_version).tags
    assert tags["deployment.platform"] == "local"
    assert tags["deployment.endpoint_url"] == "http://127.0.0.1:8555"
    assert tags["deployment.served_model_name"] == name
    assert tags["deployment.outcome"] == "smoke_test_passed"
    assert tags["deployment.message"] == ""
    assert str(client.get_model_version_by_alias(name, "production").version) == e1.registry_version
    assert registry.production_version(name) == 1

    # version 2 fails its smoke test and is rolled back: version 1 keeps serving, and the alias says so
    registry.record_deployment(name, 2, {**deployment, "message": "agreement 0.42 < 0.99"}, "rolled_back")
    tags2 = client.get_model_version(name, e2.registry_version).tags
    assert tags2["deployment.outcome"] == "rolled_back"
    assert tags2["deployment.message"] == "agreement 0.42 < 0.99"
    assert str(client.get_model_version_by_alias(name, "production").version) == e1.registry_version
    assert registry.production_version(name) == 1

    registry.record_deployment(name, 2, deployment, "smoke_test_passed")
    assert str(client.get_model_version_by_alias(name, "production").version) == e1.registry_version
    registry.set_production(name, 2, reason="its smoke test passed")
    assert str(client.get_model_version_by_alias(name, "production").version) == e2.registry_version
    assert registry.production_version(name) == 2


def test_record_deployment_of_an_unregistered_version_says_what_to_do(
    registry, publisher, unique_name
) -> None:
    name = unique_name("digits")
    registry.register(publisher.request(publisher.publish(name, run_id="run-1")))
    with pytest.raises(RegistryError, match=rf"{name}.*version 7 is not registered.*register task"):
        registry.record_deployment(name, 7, {"platform": "local"}, "deployed")


def test_tracker_logs_params_epochs_and_metrics(tracking_uri, client_for, unique_name) -> None:
    name = unique_name("digits")
    tags = {"dag_id": name, "airflow_run_id": "manual__t1", "task_try": "1"}
    with TrainingTracker(None, name, run_name="train-manual__t1", tags=tags) as tracker:
        tracker.log_params({"epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.001}})
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            tracker.log_epoch(epoch, {"loss": loss, "val_accuracy": 1 - loss / 2})
        tracker.log_metrics({"test_accuracy": 0.97})
        tracker.set_tags({"spec_hash": "ab12"})

    client = client_for(tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == f"mlspec/{name}"
    assert run.data.params == {"epochs": "3", "optimizer.name": "adam", "optimizer.learning_rate": "0.001"}
    assert {k: run.data.tags[k] for k in (*tags, "spec_hash", "mlspec.role")} == {
        **tags, "spec_hash": "ab12", "mlspec.role": "training"
    }
    history = client.get_metric_history(tracker.run_id, "loss")
    steps = [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)]
    assert steps == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert run.data.metrics["test_accuracy"] == pytest.approx(0.97)
    # the embedded store keeps artifacts under MLSPEC_HOME, never in the worker's working directory
    artifact_uri = run.info.artifact_uri
    embedded_artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    assert artifact_uri.startswith(embedded_artifacts.as_uri())


def test_tracker_marks_a_failing_block_failed(tracking_uri, client_for, unique_name) -> None:
    name = unique_name("digits")
    tags = {"dag_id": name, "airflow_run_id": "r"}
    with pytest.raises(ValueError, match="boom"):
        with TrainingTracker(None, name, run_name="train", tags=tags) as tracker:
            tracker.log_epoch(0, {"loss": 1.0})
            raise ValueError("boom")
    assert client_for(tracking_uri).get_run(tracker.run_id).info.status == "FAILED"


def test_tracker_takes_dag_and_run_ids_from_the_airflow_context(
    tracking_uri, client_for, unique_name, monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "ctx-dag")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__ctx")
    monkeypatch.setenv("AIRFLOW_CTX_TRY_NUMBER", "2")
    name = unique_name("digits")
    with TrainingTracker(None, name, run_name="train", tags={"dag_id": "explicit"}) as tracker:
        pass
    tags = client_for(tracking_uri).get_run(tracker.run_id).data.tags
    assert (tags["dag_id"], tags["airflow_run_id"], tags["task_try"]) == ("explicit", "manual__ctx", "2")


def test_registered_version_links_to_the_finished_training_run(
    registry, publisher, tracking_uri, client_for, unique_name
) -> None:
    name = unique_name("digits")
    run_id = "manual__lineage"
    tags = {"dag_id": name, "airflow_run_id": run_id}
    with pytest.raises(RuntimeError):  # a first try that failed; its run must not be linked
        with TrainingTracker(None, name, run_name="train-try1", tags=tags):
            raise RuntimeError("out of memory")
    with TrainingTracker(None, name, run_name="train-try2", tags=tags) as tracker:
        tracker.log_epoch(0, {"loss": 0.1})

    entry = registry.register(publisher.request(publisher.publish(name, run_id=run_id)))
    assert client_for(tracking_uri).get_model_version(name, entry.registry_version).run_id == tracker.run_id
