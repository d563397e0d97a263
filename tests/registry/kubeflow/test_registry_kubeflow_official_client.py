"""The official `model-registry` Python client reads back what mlspec wrote (it speaks REST API v1)."""

from __future__ import annotations

import pytest
from kubeflow_testkit import TOKEN

from mlspec.registry.kubeflow import KubeflowRegistry

model_registry = pytest.importorskip("model_registry", reason="the model-registry package is not installed")


def official_client(port: int):
    # is_secure=False: plain HTTP; the client still sends user_token as a bearer token.
    return model_registry.ModelRegistry(
        server_address="http://127.0.0.1", port=port, author="reader", is_secure=False, user_token=TOKEN
    )


def test_official_client_reads_model_version_and_artifact(fake, make_request) -> None:
    request = make_request()
    entry = KubeflowRegistry.from_url(fake.url, token=TOKEN).register(request)
    client = official_client(fake.port)

    model = client.get_registered_model("digits")
    assert model is not None
    assert model.name == "digits"
    assert model.owner == "ml-team"

    version = client.get_model_version("digits", "3")
    assert version is not None
    assert version.id == entry.registry_version
    assert version.author == "ml-team"
    assert version.external_id == "mlspec:digits:3"
    assert version.custom_properties["accuracy"] == pytest.approx(0.975)
    assert version.custom_properties["mlspec_version"] == 3
    assert version.custom_properties["run_id"] == request.run_id

    artifact = client.get_model_artifact("digits", "3")
    assert artifact is not None
    assert artifact.uri == request.model_uri
    assert artifact.model_format_name == "onnx"
    assert artifact.model_format_version == "17"
    assert artifact.storage_key == "aws_default"
    assert artifact.storage_path == "team/digits/3"
    assert artifact.model_source_kind == "airflow"
    assert artifact.model_source_id == request.run_id

    assert [v.name for v in client.get_model_versions("digits")] == ["3"]
    # the client sent its token too, and only spoke v1
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert all(r.path.startswith("/api/model_registry/v1/") for r in fake.requests)


def test_official_client_sees_a_recorded_deployment(fake, make_request) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request())
    deployment = {
        "platform": "local",
        "endpoint_url": "http://127.0.0.1:8555/v2/models/digits",
        "served_model_name": "digits",
    }
    registry.record_deployment("digits", 3, deployment, "smoke_test_passed")

    version = official_client(fake.port).get_model_version("digits", "3")
    assert version.custom_properties["deployment_outcome"] == "smoke_test_passed"
    assert version.custom_properties["endpoint_url"] == deployment["endpoint_url"]
