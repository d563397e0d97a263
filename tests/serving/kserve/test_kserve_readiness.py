"""check_readiness: the contract rules for reading an InferenceService's status."""

from __future__ import annotations

import pytest
from kserve_testkit import failed_to_load_status, pending_status, ready_status, schema_errors

from mlspec.serving.kserve_manifest import KServeConfig, build_inference_service, check_readiness


def isvc(generation: int, status: dict | None = None) -> dict:
    obj = build_inference_service(
        KServeConfig(), model_name="digits", version=generation, store_root_uri="s3://b/m"
    )
    obj["metadata"]["generation"] = generation
    if status is not None:
        obj["status"] = status
    return obj


def with_status(generation: int, make) -> dict:
    obj = isvc(generation)
    obj["status"] = make(obj)
    return obj


@pytest.fixture()
def valid(isvc_validator):
    """Every status used here must be one the CRD accepts, so the cases are ones KServe can produce."""

    def check(obj: dict) -> dict:
        assert schema_errors(isvc_validator, obj) == []
        return obj

    return check


def test_ready(valid):
    obj = valid(with_status(2, ready_status))
    assert check_readiness(obj, 2) == ("ready", "http://digits-default.apps.example.test")


def test_ready_from_predictor_and_ingress_without_ready_condition(valid):
    obj = with_status(1, ready_status)
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
    del obj["status"]["url"]
    valid(obj)
    # Without status.url the cluster-internal address is the endpoint.
    assert check_readiness(obj, 1) == ("ready", "http://digits-predictor.default.svc.cluster.local")


def test_predictor_ready_alone_is_not_ready(valid):
    obj = with_status(1, ready_status)
    obj["status"]["conditions"] = [
        {"type": "PredictorReady", "status": "True"},
        {"type": "IngressReady", "status": "False", "reason": "IngressNotConfigured"},
    ]
    valid(obj)
    outcome, reason = check_readiness(obj, 1)
    assert outcome == "pending"
    assert "IngressReady=False (IngressNotConfigured)" in reason


def test_failed_to_load_fails_fast_with_the_controller_message(valid):
    obj = valid(with_status(3, lambda o: failed_to_load_status(o, "model.onnx: invalid protobuf")))
    outcome, reason = check_readiness(obj, 3)
    assert outcome == "failed"
    assert "model.onnx: invalid protobuf" in reason


def test_blocked_by_failed_load_while_old_model_still_serves(valid):
    obj = with_status(4, lambda o: failed_to_load_status(o, "OOMKilled while loading"))
    # The rollout of the new model failed; the old model is still active and Ready stays True.
    states = {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"}
    obj["status"]["modelStatus"]["states"] = states
    obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    obj["status"]["url"] = "http://digits.example.test"
    valid(obj)
    outcome, reason = check_readiness(obj, 4)
    assert outcome == "failed"
    assert "BlockedByFailedLoad" in reason and "OOMKilled while loading" in reason


def test_invalid_spec_fails(valid):
    obj = with_status(1, pending_status)
    obj["status"]["modelStatus"] = {
        "transitionStatus": "InvalidSpec",
        "states": {"activeModelState": ""},
        "lastFailureInfo": {"reason": "NoSupportingRuntime", "message": "no runtime supports onnx v2"},
    }
    valid(obj)
    expected = "model failed to load (InvalidSpec): no runtime supports onnx v2"
    assert check_readiness(obj, 1) == ("failed", expected)


def test_stale_ready_from_previous_generation_does_not_count(valid):
    # Generation 5 was just applied; the controller still reports generation 4 as Ready.
    obj = valid(with_status(5, lambda o: ready_status(o, generation=4)))
    assert {"type": "Ready", "status": "True"}.items() <= obj["status"]["conditions"][-1].items()
    outcome, reason = check_readiness(obj, 5)
    assert outcome == "pending"
    assert "observedGeneration=4" in reason


def test_stale_failure_from_previous_generation_does_not_count(valid):
    stale = lambda o: {**failed_to_load_status(o, "old failure"), "observedGeneration": 5}  # noqa: E731
    obj = valid(with_status(6, stale))
    assert check_readiness(obj, 6)[0] == "pending"


def test_no_status_yet_is_pending(valid):
    obj = valid(isvc(1))
    assert check_readiness(obj, 1)[0] == "pending"


def test_never_ready_is_pending(valid):
    obj = valid(with_status(1, pending_status))
    outcome, reason = check_readiness(obj, 1)
    assert outcome == "pending"
    assert "Ready=False" in reason


def test_ready_but_rollout_in_progress_is_pending(valid):
    obj = with_status(2, ready_status)
    obj["status"]["modelStatus"]["transitionStatus"] = "InProgress"
    valid(obj)
    assert check_readiness(obj, 2)[0] == "pending"


def test_serverless_waits_for_latest_revision(valid):
    obj = with_status(2, ready_status)
    obj["status"]["components"] = {
        "predictor": {
            "latestCreatedRevision": "digits-predictor-00002",
            "latestReadyRevision": "digits-predictor-00001",
        }
    }
    valid(obj)
    assert check_readiness(obj, 2)[0] == "pending"
    obj["status"]["components"]["predictor"]["latestReadyRevision"] = "digits-predictor-00002"
    assert check_readiness(obj, 2)[0] == "ready"


def test_ready_without_any_url_is_pending(valid):
    obj = with_status(1, ready_status)
    del obj["status"]["url"], obj["status"]["address"]
    valid(obj)
    assert check_readiness(obj, 1)[0] == "pending"
