"""The deferrable wait: KServeReadinessTrigger in the triggerer, deployment_from_event in execute_complete."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from kserve_testkit import failed_to_load_status, pending_status, ready_status, running_controller

from mlspec.errors import ServingError
from mlspec.serving.kserve import KServeConfig, KServeServing, deployment_from_event
from mlspec.triggers.kserve import KServeReadinessTrigger

ROOT = "s3://models-bucket/prod"
NS = "ml-serving"


def test_serialize_is_exact_and_round_trips():
    trigger = KServeReadinessTrigger(name="digits", namespace=NS, generation=4, connection="k8s_prod",
                                     timeout_s=900, poll_interval_s=10.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlspec.triggers.kserve.KServeReadinessTrigger"
    assert kwargs == {"name": "digits", "namespace": NS, "generation": 4, "connection": "k8s_prod",
                      "timeout_s": 900, "poll_interval_s": 10.0, "canary": False}
    module, _, cls = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), cls)(**kwargs)  # what the triggerer does
    assert rebuilt.serialize() == (classpath, kwargs)


def run_trigger(trigger: KServeReadinessTrigger) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def controller(k8s_api, scenario):
    return running_controller(k8s_api, NS, "digits", scenario)


def backend(connection: str) -> KServeServing:
    return KServeServing(KServeConfig(namespace=NS, connection=connection), ROOT, poll_interval_s=0.02)


def trigger_for(state: dict, connection: str, timeout_s: float = 30) -> KServeReadinessTrigger:
    return KServeReadinessTrigger(
        name=state["name"], namespace=state["namespace"], generation=state["generation"],
        connection=connection, timeout_s=timeout_s, poll_interval_s=0.02,
    )


def test_trigger_reports_ready_with_url(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    state = kserve.apply("digits", 1, f"{ROOT}/digits/1")
    with controller(k8s_api, ready_status):
        events = run_trigger(trigger_for(state, k8s_connection))
    assert [e.payload["status"] for e in events] == ["ready"]
    assert events[0].payload["url"] == "http://digits-ml-serving.apps.example.test"
    deployment = deployment_from_event(events[0].payload, state, backend=kserve)
    assert (deployment.platform, deployment.version, deployment.endpoint_url) == (
        "kserve", 1, "http://digits-ml-serving.apps.example.test")
    assert deployment.served_model_name == "digits" and deployment.previous_state == state


def test_trigger_fails_fast_on_failed_to_load_and_execute_complete_rolls_back(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)

    def scenario(isvc):
        if isvc["metadata"]["labels"]["mlspec/version"] == "2":
            return failed_to_load_status(isvc, "unsupported opset 99")
        return ready_status(isvc)

    with controller(k8s_api, scenario):
        first = kserve.apply("digits", 1, f"{ROOT}/digits/1")
        assert run_trigger(trigger_for(first, k8s_connection))[0].payload["status"] == "ready"
        state = kserve.apply("digits", 2, f"{ROOT}/digits/2")
        events = run_trigger(trigger_for(state, k8s_connection, timeout_s=60))
        assert len(events) == 1
        assert events[0].payload["status"] == "failed"  # not "timeout": it did not sit out the 60 s
        assert "unsupported opset 99" in events[0].payload["message"]
        with pytest.raises(ServingError) as failure:
            deployment_from_event(events[0].payload, state, backend=kserve)
    message = str(failure.value)
    for part in ("model digits", "version 2", NS, "unsupported opset 99", "previous spec restored"):
        assert part in message
    assert kserve.get("digits")["spec"] == kserve.manifest("digits", 1)["spec"]


def test_trigger_times_out_and_first_deploy_is_deleted(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    state = kserve.apply("digits", 1, f"{ROOT}/digits/1")
    with controller(k8s_api, pending_status):
        events = run_trigger(trigger_for(state, k8s_connection, timeout_s=0.5))
    assert len(events) == 1
    assert events[0].payload["status"] == "timeout"
    assert "Ready=False" in events[0].payload["message"]
    with pytest.raises(ServingError, match="did not become ready in time.*InferenceService deleted"):
        deployment_from_event(events[0].payload, state, backend=kserve)
    assert kserve.get("digits") is None


def test_trigger_ignores_stale_ready(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with controller(k8s_api, lambda isvc: ready_status(isvc, generation=1)):
        kserve.apply("digits", 1, f"{ROOT}/digits/1")
        state = kserve.apply("digits", 2, f"{ROOT}/digits/2")
        events = run_trigger(trigger_for(state, k8s_connection, timeout_s=0.5))
    assert [e.payload["status"] for e in events] == ["timeout"]
    assert "observedGeneration=1" in events[0].payload["message"]


def test_trigger_reports_a_vanished_inference_service(k8s_api, k8s_connection):
    ghost = KServeReadinessTrigger(
        name="ghost", namespace=NS, generation=1, connection=k8s_connection, timeout_s=30,
        poll_interval_s=0.02,
    )
    events = run_trigger(ghost)
    assert [e.payload for e in events] == [
        {"status": "failed", "url": None, "message": f"InferenceService {NS}/ghost disappeared"}
    ]
