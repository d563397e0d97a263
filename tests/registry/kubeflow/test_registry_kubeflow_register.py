"""KubeflowRegistry.register / find against the contract-checked fake Model Registry."""

from __future__ import annotations

import json
import logging
import socket

import httpx
import pytest
from kubeflow_testkit import TOKEN

from mlspec.errors import RegistryError
from mlspec.registry.kubeflow import KubeflowRegistry, read_value


def registry_for(fake, token: str | None = TOKEN) -> KubeflowRegistry:
    return KubeflowRegistry.from_url(fake.url, token=token)


def api(fake) -> httpx.Client:
    """Another registry user, talking to the fake directly."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.Client(base_url=fake.url + "/api/model_registry/v1", headers=headers)


def test_register_creates_model_version_and_artifact_with_every_field(fake, make_request) -> None:
    request = make_request()
    entry = registry_for(fake).register(request)

    [model] = fake.entities("RegisteredModel")
    assert model["name"] == "digits"
    assert model["owner"] == "ml-team"
    assert model["description"] == request.description

    [version] = fake.entities("ModelVersion")
    assert version["name"] == "3"
    assert version["registeredModelId"] == model["id"]
    assert version["externalId"] == "mlspec:digits:3"
    assert version["author"] == "ml-team"
    props = version["customProperties"]
    assert props["accuracy"] == {"metadataType": "MetadataDoubleValue", "double_value": 0.975}
    assert props["f1"] == {"metadataType": "MetadataDoubleValue", "double_value": 0.9712}
    assert props["mlspec_version"] == {"metadataType": "MetadataIntValue", "int_value": "3"}
    for key, expected in {
        "data_source": request.data_source,
        "spec_hash": request.spec_hash,
        "dag_id": request.dag_id,
        "run_id": request.run_id,
        "framework": request.framework,
        "task": request.task,
    }.items():
        assert props[key] == {"metadataType": "MetadataStringValue", "string_value": expected}

    [artifact] = fake.artifacts_of(version["id"])
    assert artifact["artifactType"] == "model-artifact"
    assert artifact["name"] == "digits"
    assert artifact["uri"] == request.model_uri
    assert artifact["modelFormatName"] == "onnx"
    assert artifact["modelFormatVersion"] == "17"
    assert artifact["storageKey"] == "aws_default"
    assert artifact["storagePath"] == "team/digits/3"
    assert artifact["modelSourceKind"] == "airflow"
    assert artifact["modelSourceClass"] == "dag_run"
    assert artifact["modelSourceGroup"] == "digits"
    assert artifact["modelSourceId"] == request.run_id
    assert artifact["modelSourceName"] == "digits"
    assert json.loads(read_value(artifact["customProperties"]["files_sha256"])) == request.files

    assert entry.backend == "kubeflow"
    assert entry.created is True
    assert (entry.model_name, entry.version) == ("digits", 3)
    assert entry.registry_version == version["id"]
    assert entry.url == f"{fake.url}/api/model_registry/v1/model_versions/{version['id']}"
    assert entry.to_xcom()["registry_version"] == version["id"]


def test_retry_finds_the_earlier_registration(fake, make_request) -> None:
    first = registry_for(fake).register(make_request())
    again = registry_for(fake).register(make_request())  # a retried task: a fresh object, same request

    assert again.created is False
    assert again.registry_version == first.registry_version
    assert len(fake.entities("ModelVersion")) == 1
    assert len(fake.entities("ModelArtifact")) == 1
    assert len(fake.calls("POST", "/model_versions")) == 1
    assert len(fake.calls("POST", "/registered_models")) == 1


def test_second_version_joins_the_same_registered_model(fake, make_request) -> None:
    registry = registry_for(fake)
    registry.register(make_request(version=3))
    uri = "s3://models-bucket/team/digits/4/model.onnx"
    entry = registry.register(make_request(version=4, model_uri=uri))

    assert entry.created is True
    assert len(fake.entities("RegisteredModel")) == 1
    assert sorted(v["name"] for v in fake.entities("ModelVersion")) == ["3", "4"]
    # the API version is detected once per registry object
    assert len(fake.calls("GET", "/registered_models")) == 1


def test_retry_after_a_failed_artifact_creates_only_the_artifact(fake, make_request) -> None:
    fake.fail_next(500, "database is locked", method="POST", path="/model_versions/{id}/artifacts")
    with pytest.raises(RegistryError, match="500"):
        registry_for(fake).register(make_request())
    [version] = fake.entities("ModelVersion")
    assert fake.artifacts_of(version["id"]) == []

    entry = registry_for(fake).register(make_request())
    assert entry.created is False
    assert entry.registry_version == version["id"]
    [artifact] = fake.artifacts_of(version["id"])
    assert artifact["uri"] == make_request().model_uri
    assert len(fake.entities("ModelVersion")) == 1


def test_a_registered_model_created_concurrently_is_reused(fake, make_request) -> None:
    with api(fake) as http:
        other = http.post("/registered_models", json={"name": "digits"}).json()
    # Our read happens "before" the other run's write: the fake hides the model once, the create gets 409.
    fake.fail_next(404, "not found", method="GET", path="/registered_model")
    entry = registry_for(fake).register(make_request())

    assert entry.created is True
    assert len(fake.entities("RegisteredModel")) == 1
    assert fake.entities("ModelVersion")[0]["registeredModelId"] == other["id"]
    # the other run's create, then ours, answered 409 and followed by a re-read
    assert [r.status for r in fake.calls("POST", "/registered_models")] == [201, 409]


def test_a_version_created_by_a_concurrent_try_is_reused(fake, make_request) -> None:
    first = registry_for(fake).register(make_request())
    # The second try's reads (by externalId, then by name) run "before" the first try's write.
    fake.fail_next(404, "not found", method="GET", path="/model_version", times=2)
    again = registry_for(fake).register(make_request())

    assert again.created is False
    assert again.registry_version == first.registry_version
    assert [r.status for r in fake.calls("POST", "/model_versions")] == [201, 409]
    assert len(fake.entities("ModelArtifact")) == 1


def test_a_version_mlspec_did_not_register_is_a_conflict(fake, make_request) -> None:
    with api(fake) as http:
        model = http.post("/registered_models", json={"name": "digits"}).json()
        by_hand = {"name": "3", "registeredModelId": model["id"], "externalId": "by-hand"}
        assert http.post("/model_versions", json=by_hand).status_code == 201
    registry = registry_for(fake)
    with pytest.raises(RegistryError, match="did not register") as caught:
        registry.register(make_request())
    assert "'digits'" in str(caught.value)
    assert registry.find("digits", 3) is None


def test_find(fake, make_request) -> None:
    registry = registry_for(fake)
    assert registry.find("digits", 3) is None  # no model yet
    entry = registry.register(make_request())
    assert registry.find("digits", 4) is None  # model, no such version
    found = registry.find("digits", 3)
    assert found is not None
    assert found.registry_version == entry.registry_version
    assert found.url == entry.url
    assert found.created is False


def test_falls_back_to_v1alpha3_when_v1_answers_404(fake_registry, make_request) -> None:
    fake = fake_registry(versions=("v1alpha3",))
    registry = registry_for(fake)
    entry = registry.register(make_request())
    registry.register(make_request(version=4))
    assert registry.find("digits", 3) is not None

    assert "/api/model_registry/v1alpha3/model_versions/" in entry.url
    paths = [r.path for r in fake.requests]
    assert paths[0] == "/api/model_registry/v1/registered_models"  # asked once ...
    assert sum(p.startswith("/api/model_registry/v1/") for p in paths) == 1  # ... and remembered
    assert all(p.startswith("/api/model_registry/v1alpha3/") for p in paths[1:])
    [version, _] = fake.entities("ModelVersion")
    [artifact] = fake.artifacts_of(version["id"])
    assert artifact["modelSourceKind"] == "airflow"
    assert artifact["uri"] == make_request().model_uri


def test_prefers_v1_when_both_answer(fake_registry, make_request) -> None:
    fake = fake_registry(versions=("v1", "v1alpha3"))
    entry = registry_for(fake).register(make_request())
    assert "/api/model_registry/v1/model_versions/" in entry.url
    assert not any("v1alpha3" in r.path for r in fake.requests)


def test_bearer_token_is_sent_on_every_request_and_never_logged(fake, make_request, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    registry = registry_for(fake)
    registry.register(make_request())
    deployment = {"served_model_name": "digits", "endpoint_url": "http://x"}
    registry.record_deployment("digits", 3, deployment, "failed")
    assert len(fake.requests) >= 8
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert "Registered model 'digits' version 3" in caplog.text
    assert TOKEN not in caplog.text


def test_no_token_sends_no_authorization_header(fake_registry, make_request) -> None:
    fake = fake_registry(token=None)
    registry_for(fake, token=None).register(make_request())
    assert all("authorization" not in r.headers for r in fake.requests)


def test_wrong_token_gives_a_registry_error_with_401(fake, make_request) -> None:
    with pytest.raises(RegistryError) as caught:
        registry_for(fake, token="wrong-token-value").register(make_request())
    message = str(caught.value)
    assert "401" in message
    assert "'digits' version 3" in message
    assert "token" in message
    assert "wrong-token-value" not in message
    assert caught.value.status == 401


def test_server_error_names_model_version_status_and_message(fake, make_request) -> None:
    fake.fail_next(500, "pq: connection refused by database", method="POST", path="/model_versions")
    with pytest.raises(RegistryError) as caught:
        registry_for(fake).register(make_request())
    message = str(caught.value)
    assert "'digits' version 3" in message
    assert "HTTP 500" in message
    assert "pq: connection refused by database" in message
    assert "retry" in message
    assert caught.value.status == 500


def test_no_model_registry_api_at_the_address(fake_registry, make_request) -> None:
    fake = fake_registry(versions=())
    with pytest.raises(RegistryError, match="no Kubeflow Model Registry REST API") as caught:
        registry_for(fake).register(make_request())
    assert caught.value.status == 404


def test_unreachable_server(make_request) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on the port any more
    with pytest.raises(RegistryError, match="could not reach") as caught:
        KubeflowRegistry.from_url(f"http://127.0.0.1:{port}").register(make_request())
    assert "'digits' version 3" in str(caught.value)
    assert caught.value.status == 0
