"""KubeflowRegistry.record_deployment: ServingEnvironment, InferenceService, outcome on the ModelVersion."""

from __future__ import annotations

import pytest
from kubeflow_testkit import TOKEN

from mlspec.errors import RegistryError
from mlspec.registry.kubeflow import KubeflowRegistry, read_value

LOCAL = {
    "platform": "local",
    "endpoint_url": "http://127.0.0.1:8555/v2/models/digits",
    "served_model_name": "digits",
}
KSERVE = {
    "platform": "kserve",
    "endpoint_url": "http://digits.ml-prod.example.com/v2/models/digits",
    "served_model_name": "digits",
    "namespace": "ml-prod",
    "inference_service_name": "digits",
    "runtime": "kserve-ovms",
}


def props(entity: dict) -> dict:
    return {key: read_value(value) for key, value in entity.get("customProperties", {}).items()}


@pytest.fixture
def registry(fake, make_request) -> KubeflowRegistry:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request(version=3))
    return registry


def version_entity(fake, name: str) -> dict:
    return next(v for v in fake.entities("ModelVersion") if v["name"] == name)


def test_local_deployment_creates_serving_environment_and_inference_service(fake, registry) -> None:
    registry.record_deployment("digits", 3, dict(LOCAL), "deployed")

    [environment] = fake.entities("ServingEnvironment")
    assert environment["name"] == "local"
    [service] = fake.entities("InferenceService")
    [model] = fake.entities("RegisteredModel")
    version = version_entity(fake, "3")
    assert service["name"] == "digits"
    assert service["servingEnvironmentId"] == environment["id"]
    assert service["registeredModelId"] == model["id"]
    assert service["modelVersionId"] == version["id"]
    assert service["desiredState"] == "DEPLOYED"
    assert props(service)["endpoint_url"] == LOCAL["endpoint_url"]

    recorded = props(version)
    assert recorded["deployment_outcome"] == "deployed"
    assert recorded["endpoint_url"] == LOCAL["endpoint_url"]
    assert recorded["inference_service_id"] == service["id"]
    # what register wrote is still there: PATCH sends the whole map
    assert recorded["accuracy"] == 0.975
    assert recorded["mlspec_version"] == 3


def test_kserve_deployment_uses_the_namespace_and_runtime(fake, registry) -> None:
    registry.record_deployment("digits", 3, dict(KSERVE, message="ready after 41s"), "smoke_test_passed")
    [environment] = fake.entities("ServingEnvironment")
    assert environment["name"] == "ml-prod"
    [service] = fake.entities("InferenceService")
    assert service["runtime"] == "kserve-ovms"
    assert service["desiredState"] == "DEPLOYED"
    recorded = props(version_entity(fake, "3"))
    assert recorded["deployment_outcome"] == "smoke_test_passed"
    assert recorded["deployment_message"] == "ready after 41s"
    assert recorded["deployment_platform"] == "kserve"


def test_outcomes_of_one_deployment_update_one_inference_service(fake, registry) -> None:
    registry.record_deployment("digits", 3, dict(LOCAL), "deployed")
    registry.record_deployment("digits", 3, dict(LOCAL), "smoke_test_passed")
    assert len(fake.entities("ServingEnvironment")) == 1
    [service] = fake.entities("InferenceService")
    assert service["desiredState"] == "DEPLOYED"
    assert props(service)["deployment_outcome"] == "smoke_test_passed"
    assert len(fake.calls("POST", "/inference_services")) == 1
    assert len(fake.calls("PATCH", f"/inference_services/{service['id']}")) == 1


def test_first_deployment_rolled_back_is_undeployed(fake, registry) -> None:
    registry.record_deployment("digits", 3, dict(LOCAL), "deployed")
    failed = dict(LOCAL, message="smoke test: 12/32 answers agreed")
    registry.record_deployment("digits", 3, failed, "rolled_back")

    [service] = fake.entities("InferenceService")
    assert service["desiredState"] == "UNDEPLOYED"
    assert service["modelVersionId"] == version_entity(fake, "3")["id"]
    recorded = props(version_entity(fake, "3"))
    assert recorded["deployment_outcome"] == "rolled_back"
    assert recorded["deployment_message"] == "smoke test: 12/32 answers agreed"


def test_rollback_of_a_new_version_records_the_old_one_serving_again(fake, registry, make_request) -> None:
    registry.record_deployment("digits", 3, dict(LOCAL), "smoke_test_passed")
    registry.register(make_request(version=4))
    registry.record_deployment("digits", 4, dict(LOCAL), "deployed")
    [service] = fake.entities("InferenceService")
    assert service["modelVersionId"] == version_entity(fake, "4")["id"]

    registry.record_deployment("digits", 4, dict(LOCAL, message="smoke test failed"), "rolled_back")
    [service] = fake.entities("InferenceService")
    assert service["desiredState"] == "DEPLOYED"
    assert service["modelVersionId"] == version_entity(fake, "3")["id"]
    assert props(version_entity(fake, "4"))["deployment_outcome"] == "rolled_back"
    assert props(version_entity(fake, "3"))["deployment_outcome"] == "smoke_test_passed"


def test_failed_deploy_of_a_new_version_leaves_the_serving_one_alone(fake, registry, make_request) -> None:
    registry.record_deployment("digits", 3, dict(LOCAL), "smoke_test_passed")
    registry.register(make_request(version=4))
    def service_patches() -> int:
        return len([r for r in fake.requests if r.method == "PATCH" and "inference_services" in r.path])

    patches_before = service_patches()

    registry.record_deployment("digits", 4, dict(LOCAL, message="image pull failed"), "failed")
    [service] = fake.entities("InferenceService")
    assert service["modelVersionId"] == version_entity(fake, "3")["id"]
    assert service["desiredState"] == "DEPLOYED"
    assert service_patches() == patches_before
    assert props(version_entity(fake, "4"))["deployment_outcome"] == "failed"


def test_deployment_of_an_unregistered_version_is_an_error(fake, registry) -> None:
    with pytest.raises(RegistryError, match="no such version") as caught:
        registry.record_deployment("digits", 9, dict(LOCAL), "deployed")
    assert "'digits' version 9" in str(caught.value)
    assert fake.entities("InferenceService") == []


def test_unknown_outcome_is_an_error(registry) -> None:
    with pytest.raises(RegistryError, match="unknown outcome 'promoted'"):
        registry.record_deployment("digits", 3, dict(LOCAL), "promoted")


def test_server_error_while_recording_names_the_status(fake, registry) -> None:
    fake.fail_next(503, "registry is restarting", method="POST", path="/serving_environments")
    with pytest.raises(RegistryError) as caught:
        registry.record_deployment("digits", 3, dict(LOCAL), "deployed")
    message = str(caught.value)
    assert "HTTP 503" in message and "registry is restarting" in message and "'digits' version 3" in message


def test_kserve_deployment_as_the_serving_layer_hands_it_over(fake, registry, make_request) -> None:
    from mlspec.serving.base import Deployment

    registry.register(make_request(version=4))
    state = {"name": "digits", "namespace": "ml-prod", "generation": 2, "previous_spec": {}, "version": 4}
    deployment = Deployment(
        platform="kserve",
        model_name="digits",
        version=4,
        endpoint_url="http://digits.ml-prod.example.com",
        served_model_name="digits",
        previous_version=3,
        previous_state=state,
    )
    registry.record_deployment("digits", 4, deployment.to_xcom(), "deployed")

    [environment] = fake.entities("ServingEnvironment")
    assert environment["name"] == "ml-prod"
    [service] = fake.entities("InferenceService")
    assert service["name"] == "digits"
    assert service["modelVersionId"] == version_entity(fake, "4")["id"]
    # the store's previous_version is remembered, so a rollback can point back at it
    assert props(service)["previous_model_version_id"] == version_entity(fake, "3")["id"]

    failed = {**deployment.to_xcom(), "message": "smoke test failed"}
    registry.record_deployment("digits", 4, failed, "rolled_back")
    [service] = fake.entities("InferenceService")
    assert service["modelVersionId"] == version_entity(fake, "3")["id"]
    assert service["desiredState"] == "DEPLOYED"


def test_a_readiness_failure_report_without_served_name(fake, registry) -> None:
    # What the deploy operator records when KServe never became ready: platform, namespace, message.
    report = {"platform": "kserve", "namespace": "ml-prod", "message": "predictor CrashLoopBackOff"}
    registry.record_deployment("digits", 3, report, "rolled_back")

    [environment] = fake.entities("ServingEnvironment")
    assert environment["name"] == "ml-prod"
    [service] = fake.entities("InferenceService")
    assert service["name"] == "digits"
    assert service["desiredState"] == "UNDEPLOYED"
    recorded = props(version_entity(fake, "3"))
    assert recorded["deployment_outcome"] == "rolled_back"
    assert recorded["deployment_message"] == "predictor CrashLoopBackOff"
