"""KServeServing against a Kubernetes API emulator (kmock) on 127.0.0.1 with a fake KServe controller."""

from __future__ import annotations

import json

import pytest
from kserve_testkit import failed_to_load_status, pending_status, ready_status, running_controller

from mlspec.errors import ServingError
from mlspec.serving.base import Deployment
from mlspec.serving.kserve import KServeConfig, KServeServing

ROOT = "s3://models-bucket/prod"
NS = "ml-serving"


def backend(connection: str, **overrides) -> KServeServing:
    timeout_s = overrides.pop("timeout_s", 30)
    config = KServeConfig(namespace=NS, connection=connection, timeout_s=timeout_s, **overrides)
    return KServeServing(config, ROOT, poll_interval_s=0.02)


def controller(k8s_api, scenario, name="digits"):
    return running_controller(k8s_api, NS, name, scenario)


def version_of(isvc: dict) -> str:
    return isvc["metadata"]["labels"]["mlspec/version"]


def serves(version: int):
    """Scenario: Ready for specs that serve `version`, never ready otherwise."""

    def scenario(isvc):
        return ready_status(isvc) if version_of(isvc) == str(version) else pending_status(isvc)

    return scenario


def test_first_deploy_creates_and_waits_until_ready(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with controller(k8s_api, ready_status):
        deployment = kserve.deploy("digits", 1, f"{ROOT}/digits/1")
    assert deployment == Deployment(
        platform="kserve", model_name="digits", version=1,
        endpoint_url="http://digits-ml-serving.apps.example.test", served_model_name="digits",
        previous_version=None, previous_state=deployment.previous_state,
    )
    state = deployment.previous_state
    assert state["previous_spec"] is None and state["generation"] == 1
    assert Deployment.from_xcom(json.loads(json.dumps(deployment.to_xcom()))) == deployment
    (stored,) = k8s_api.history(NS, "digits")[:1]
    assert stored["spec"] == kserve.manifest("digits", 1)["spec"]
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlspec"


def test_second_deploy_patches_bumps_generation_and_keeps_previous_spec(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with controller(k8s_api, ready_status):
        first = kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        second = kserve.deploy("digits", 2, f"{ROOT}/digits/2")
    state = second.previous_state
    assert state["generation"] == first.previous_state["generation"] + 1
    assert state["previous_spec"] == kserve.manifest("digits", 1)["spec"]
    assert second.previous_version == state["previous_version"] == 1
    live = kserve.get("digits")
    assert live["spec"] == kserve.manifest("digits", 2)["spec"]
    assert version_of(live) == "2"
    # Patched, not recreated.
    assert live["metadata"]["uid"] == k8s_api.history(NS, "digits")[0]["metadata"]["uid"]
    assert json.loads(live["metadata"]["annotations"]["mlspec/previous-spec"]) == state["previous_spec"]


def test_labels_set_by_others_survive_a_patch(k8s_api, k8s_connection):
    kserve = backend(k8s_connection, auth="token")
    kserve.apply("digits", 1, f"{ROOT}/digits/1")
    # Someone (e.g. the OpenShift AI dashboard) adds its own label; mlspec must not drop it.
    dashboard_label = {"op": "add", "path": "/metadata/labels/opendatahub.io~1dashboard", "value": "true"}
    kserve._patch("digits", [dashboard_label])
    plain = backend(k8s_connection)  # auth switched off: mlspec removes only its own auth keys
    plain.apply("digits", 2, f"{ROOT}/digits/2")
    live = plain.get("digits")
    assert live["metadata"]["labels"]["opendatahub.io/dashboard"] == "true"
    assert "networking.kserve.io/visibility" not in live["metadata"]["labels"]
    assert "security.opendatahub.io/enable-auth" not in live["metadata"]["annotations"]


def test_retried_apply_reuses_its_earlier_change(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    kserve.apply("digits", 1, f"{ROOT}/digits/1")
    first_try = kserve.apply("digits", 2, f"{ROOT}/digits/2")
    retry = kserve.apply("digits", 2, f"{ROOT}/digits/2")
    assert retry == first_try  # same generation, and the spec version 1 had is still the one to restore
    assert retry["previous_spec"] == kserve.manifest("digits", 1)["spec"]
    assert len(k8s_api.history(NS, "digits")) == 2  # the retry patched nothing


def test_timeout_rolls_back_to_the_previous_spec(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with controller(k8s_api, serves(1)):
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        kserve.config = KServeConfig(namespace=NS, connection=k8s_connection, timeout_s=1)
        with pytest.raises(ServingError) as failure:
            kserve.deploy("digits", 2, f"{ROOT}/digits/2")
        message = str(failure.value)
        for part in ("digits", "version 2", NS, "did not become ready", "previous spec restored"):
            assert part in message
        live = kserve.get("digits")
        assert live["spec"] == kserve.manifest("digits", 1)["spec"]
        assert version_of(live) == "1"
        assert "mlspec/previous-spec" not in live["metadata"]["annotations"]
        # The restored spec is a new generation; the controller makes it ready again.
        restored = {"name": "digits", "namespace": NS, "generation": live["metadata"]["generation"]}
        assert kserve.wait(restored, 10)[0] == "ready"


def test_failed_to_load_fails_fast_and_rolls_back(k8s_api, k8s_connection):
    kserve = backend(k8s_connection, timeout_s=60)

    def scenario(isvc):
        if version_of(isvc) == "2":
            return failed_to_load_status(isvc, "Failed to load model digits version 2: invalid ONNX")
        return ready_status(isvc)

    with controller(k8s_api, scenario):
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        state = kserve.apply("digits", 2, f"{ROOT}/digits/2")
        # A 60 s budget: a "failed" (not "timeout") verdict shows it did not wait it out.
        outcome, reason = kserve.wait(state)
        assert outcome == "failed"
        assert "invalid ONNX" in reason
        kserve.rollback(Deployment("kserve", "digits", 2, "", "digits", 1, state))
    assert kserve.get("digits")["spec"] == kserve.manifest("digits", 1)["spec"]


def test_failed_deploy_message_names_the_cause(k8s_api, k8s_connection):
    kserve = backend(k8s_connection, timeout_s=60)

    def scenario(isvc):
        if version_of(isvc) == "2":
            return failed_to_load_status(isvc, "shape mismatch in input_1")
        return ready_status(isvc)

    with controller(k8s_api, scenario):
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        with pytest.raises(ServingError) as failure:
            kserve.deploy("digits", 2, f"{ROOT}/digits/2")
    assert "shape mismatch in input_1" in str(failure.value)
    assert "previous spec restored" in str(failure.value)
    assert version_of(kserve.get("digits")) == "1"


def test_stale_generation_never_counts_as_ready(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)

    def scenario(isvc):  # a controller stuck on generation 1: Ready=True, but for the old spec
        return ready_status(isvc, generation=1)

    with controller(k8s_api, scenario):
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
        state = kserve.apply("digits", 2, f"{ROOT}/digits/2")
        assert state["generation"] == 2
        assert kserve.wait(state, timeout_s=0.5)[0] == "timeout"
        assert kserve.get("digits")["status"]["conditions"][-1]["status"] == "True"


def test_first_deploy_failing_deletes_the_inference_service(k8s_api, k8s_connection):
    kserve = backend(k8s_connection, timeout_s=1)
    with controller(k8s_api, pending_status), pytest.raises(ServingError) as failure:
        kserve.deploy("digits", 1, f"{ROOT}/digits/1")
    assert "InferenceService deleted" in str(failure.value)
    assert kserve.get("digits") is None
    assert k8s_api.history(NS, "digits")[-1] is None  # deleted, not just left behind


def test_refuses_to_take_over_an_inference_service_mlspec_does_not_manage(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    foreign = kserve.manifest("digits", 1)
    del foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    kserve.hook.create_custom_object(group="serving.kserve.io", version="v1beta1", plural="inferenceservices",
                                     body=foreign, namespace=NS)
    with pytest.raises(ServingError, match="not managed by mlspec"):
        kserve.apply("digits", 2, f"{ROOT}/digits/2")


def test_version_uri_outside_the_store_root_is_refused(k8s_connection):
    with pytest.raises(ServingError, match="same storage.uri"):
        backend(k8s_connection).apply("digits", 1, "s3://other-bucket/digits/1")


def test_api_server_rejection_is_a_clear_error(k8s_api, k8s_connection, monkeypatch):
    kserve = backend(k8s_connection)
    bad = kserve.manifest("digits", 1)
    bad["spec"]["predictor"]["minReplicas"] = "two"
    monkeypatch.setattr(kserve, "manifest", lambda name, version: bad)
    with pytest.raises(ServingError, match=r"refused to create InferenceService digits .*422.*minReplicas"):
        kserve.apply("digits", 1, f"{ROOT}/digits/1")


def test_unreachable_cluster_names_the_connection(k8s_api, k8s_connection, monkeypatch):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    # The provider retries reads with exponential backoff (15 s in all); one attempt tells the same story.
    monkeypatch.setattr(KubernetesHook.get_custom_object.retry, "enabled", False)
    kserve = backend(k8s_connection)
    k8s_api.stop()
    with pytest.raises(ServingError, match=f"connection '{k8s_connection}'"):
        kserve.apply("digits", 1, f"{ROOT}/digits/1")
