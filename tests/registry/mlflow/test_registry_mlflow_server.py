"""The MLflow registry and tracking against a real `mlflow server` on 127.0.0.1 (one per test session)."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.tracking import TrainingTracker


def rest_model_version(server_url: str, name: str, version: str) -> dict:
    """Read a model version through the plain REST API, independent of the MLflow client."""
    query = urllib.parse.urlencode({"name": name, "version": version})
    url = f"{server_url}/api/2.0/mlflow/model-versions/get?{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["model_version"]


def test_register_uploads_a_file_store_version_and_tags_it(
    mlflow_server, server_connection, publisher, client_for, unique_name, tmp_path: Path
) -> None:
    name = unique_name("digits")
    registry = MlflowRegistry(server_connection)
    published = publisher.publish(name, run_id="manual__srv1")

    entry = registry.register(publisher.request(published))

    assert entry.created is True and entry.version == 1
    assert entry.url == f"{mlflow_server.url}/#/models/{name}/versions/{entry.registry_version}"
    mv = rest_model_version(mlflow_server.url, name, entry.registry_version)
    tags = {t["key"]: t["value"] for t in mv["tags"]}
    assert tags["mlspec.version"] == "1"
    assert tags["metric.accuracy"] == "0.9712" and tags["metric.f1"] == "0.9688"
    assert tags["model_uri"] == f"{published.uri}/model.onnx"
    for key in ("data_source", "spec_hash", "dag_id", "run_id", "onnx_opset", "sha256.model.onnx"):
        assert tags[key], key
    # The server refuses file:// sources outside a run's artifacts, so the files were uploaded as an
    # MLflow model of a run and the version is created from it; what MLflow holds must be byte-identical
    # to the store's file.
    assert mv["source"].startswith("models:/m-")
    client = client_for(mlflow_server.url)
    from mlflow.artifacts import download_artifacts

    logged = client.get_logged_model(mv["source"].removeprefix("models:/"))
    local = download_artifacts(f"{logged.artifact_location}/model.onnx", dst_path=str(tmp_path))
    uploaded_sha = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    assert uploaded_sha == tags["sha256.model.onnx"] == published.files["model.onnx"]
    run = client.get_run(mv["run_id"])
    assert run.data.tags["mlspec.role"] == "registration"
    assert run.data.tags["airflow_run_id"] == "manual__srv1"

    # the retried register task
    again = MlflowRegistry(server_connection).register(publisher.request(published))
    assert again == replace(entry, created=False)
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    assert registry.find(name, 1) == replace(entry, created=False)
    assert registry.find(name, 2) is None


def test_register_keeps_s3_sources_and_counts_versions(
    mlflow_server, server_connection, publisher, client_for, unique_name
) -> None:
    name = unique_name("mnist")
    registry = MlflowRegistry(server_connection)
    entries = []
    for run_id in ("run-a", "run-b"):
        published = publisher.publish(name, run_id=run_id)
        s3 = f"s3://models/{name}/{published.version}"
        request = publisher.request(published, source_uri=s3, model_uri=f"{s3}/model.onnx")
        entries.append(registry.register(request))
    assert [e.version for e in entries] == [1, 2]
    assert entries[0].registry_version != entries[1].registry_version
    mv = client_for(mlflow_server.url).get_model_version(name, entries[1].registry_version)
    assert mv.source == f"s3://models/{name}/2"  # no upload: the server accepts object-store sources
    assert registry.find(name, 2) == replace(entries[1], created=False)


def test_record_deployment_on_the_server(
    mlflow_server, server_connection, publisher, client_for, unique_name
) -> None:
    name = unique_name("digits")
    registry = MlflowRegistry(server_connection)
    e1 = registry.register(publisher.request(publisher.publish(name, run_id="run-1")))
    e2 = registry.register(publisher.request(publisher.publish(name, run_id="run-2", scale=4.0)))
    endpoint = f"http://{name}.models.example"
    deployment = {"platform": "kserve", "endpoint_url": endpoint, "served_model_name": name}
    client = client_for(mlflow_server.url)

    registry.record_deployment(name, 1, deployment, "smoke_test_passed")
    registry.set_production(name, 1, reason="its smoke test passed")
    failed = {**deployment, "message": "smoke test: agreement 0.50"}
    registry.record_deployment(name, 2, failed, "rolled_back")

    assert client.get_model_version_by_alias(name, "production").version == e1.registry_version
    tags2 = client.get_model_version(name, e2.registry_version).tags
    assert tags2["deployment.outcome"] == "rolled_back"
    assert tags2["deployment.platform"] == "kserve"
    assert tags2["deployment.endpoint_url"] == endpoint
    assert tags2["deployment.message"] == "smoke test: agreement 0.50"
    assert registry.production_version(name) == 1


def test_tracker_on_the_server_and_lineage(
    mlflow_server, server_connection, publisher, client_for, unique_name
) -> None:
    name = unique_name("digits")
    run_id = "scheduled__2026-02-01T00:00:00+00:00"
    tags = {"dag_id": name, "airflow_run_id": run_id, "task_try": "1"}
    losses = [1.2, 0.7, 0.41, 0.33]
    with TrainingTracker(server_connection, name, run_name="train", tags=tags) as tracker:
        tracker.log_params({"batch_size": 64, "optimizer": {"name": "adam"}})
        for epoch, loss in enumerate(losses):
            tracker.log_epoch(epoch, {"loss": loss, "accuracy": 1.0 - loss / 3})
        tracker.log_metrics({"test_f1": 0.95})
    assert tracker.url == f"{mlflow_server.url}/#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}"

    client = client_for(mlflow_server.url)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == f"mlspec/{name}"
    assert run.data.params == {"batch_size": "64", "optimizer.name": "adam"}
    assert run.data.tags["airflow_run_id"] == run_id and run.data.tags["dag_id"] == name
    history = sorted(client.get_metric_history(tracker.run_id, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == list(enumerate(losses))
    assert len(client.get_metric_history(tracker.run_id, "accuracy")) == len(losses)

    # the register task of the same DAG run links the version to this training run and uploads there
    request = publisher.request(publisher.publish(name, run_id=run_id))
    entry = MlflowRegistry(server_connection).register(request)
    mv = client.get_model_version(name, entry.registry_version)
    assert mv.run_id == tracker.run_id
    logged = client.get_logged_model(mv.source.removeprefix("models:/"))
    assert logged.source_run_id == tracker.run_id


def test_tracker_failure_on_the_server(mlflow_server, server_connection, client_for, unique_name) -> None:
    with pytest.raises(KeyError):
        with TrainingTracker(server_connection, unique_name("digits"), run_name="t", tags={}) as tracker:
            raise KeyError("missing column")
    assert client_for(mlflow_server.url).get_run(tracker.run_id).info.status == "FAILED"


def test_unreachable_server_is_a_registry_error_with_the_url(
    publisher, unique_name, closed_port, monkeypatch
) -> None:
    port = closed_port
    # the host given as a full URL, as some platform engineers write it
    down = {"conn_type": "http", "host": f"http://127.0.0.1:{port}"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DOWN", json.dumps(down))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    name = unique_name("digits")
    registry = MlflowRegistry("mlflow_down")

    with pytest.raises(RegistryError) as info:
        registry.register(publisher.request(publisher.publish(name, run_id="run-down")))
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert f"model {name!r} version 1" in message
    assert "'mlflow_down'" in message and "reachable" in message

    with pytest.raises(RegistryError, match=f"127.0.0.1:{port}"):
        TrainingTracker("mlflow_down", name, run_name="t").start()
