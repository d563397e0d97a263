"""A rollout on KServe: the candidate as a canary (canaryTrafficPercent), its steps, promotion and rollback, against
the Kubernetes API emulator (every stored object checked against the vendored CRD) and a fake Serverless KServe
that keeps Knative revisions and routes as KServe documents it."""

from __future__ import annotations

import asyncio
import time

import pytest
from kserve_testkit import ServerlessKServe, ready_status, running_controller

from mlspec.errors import ServingError
from mlspec.serving.base import Deployment
from mlspec.serving.kserve import KServeConfig, KServeServing
from mlspec.triggers.kserve import KServeReadinessTrigger

ROOT = "s3://models-bucket/prod"
NS = "ml-serving"
NAME = "digits"
CANARY = "canaryTrafficPercent"


def backend(connection: str, mode: str = "Serverless", timeout_s: int = 30) -> KServeServing:
    config = KServeConfig(namespace=NS, connection=connection, timeout_s=timeout_s, deployment_mode=mode)
    return KServeServing(config, ROOT, poll_interval_s=0.02)


def uri(version: int) -> str:
    return f"{ROOT}/{NAME}/{version}"


def step(production: int, candidate: int, percent: int) -> dict:
    """What the rollout plan hands set_traffic for a canary step (the shadow part KServe cannot do)."""
    if percent == 100:
        return {"weights": {str(candidate): 100}, "shadow": {"version": str(production), "percent": 100}}
    return {"weights": {str(production): 100 - percent, str(candidate): percent},
            "shadow": {"version": str(candidate), "percent": 100}}


def settled(kserve: KServeServing, check, timeout_s: float = 10) -> dict:
    """The InferenceService once the fake controller has observed its generation and `check(isvc)` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        isvc = kserve.get(NAME)
        status = isvc.get("status") or {}
        if status.get("observedGeneration") == isvc["metadata"]["generation"] and check(isvc):
            return isvc
        assert time.monotonic() < deadline, f"the controller did not settle: {status}"
        time.sleep(0.02)


def routed(kserve: KServeServing, weights: dict) -> dict:
    """Wait until KServe reports `weights` (status.components.predictor.traffic, read by traffic())."""
    settled(kserve, lambda isvc: kserve.traffic(NAME)["weights"] == weights)
    return kserve.traffic(NAME)


def canary_in(kserve: KServeServing, controller: ServerlessKServe, production: int = 1, candidate: int = 2):
    """Version `production` served, then `candidate` applied with serve=False and ready: its Deployment."""
    kserve.deploy(NAME, production, uri(production))
    state = kserve.apply(NAME, candidate, uri(candidate), serve=False)
    return kserve.await_ready(state)


def test_the_candidate_goes_in_as_a_canary_answering_nothing(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        deployment = canary_in(kserve, knative)
        live = kserve.get(NAME)
        assert live["spec"] == kserve.manifest(NAME, 2, canary_percent=0)["spec"]
        assert live["spec"]["predictor"][CANARY] == 0
        annotations = live["metadata"]["annotations"]
        assert annotations["mlspec/canary-version"] == "2"
        assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
        # Production stays the served version; the candidate answers only at its own tag URL (the smoke test's).
        assert kserve.served_version(NAME) == 1
        assert deployment.version == 2 and deployment.previous_version == 1
        assert deployment.endpoint_url == f"http://latest-{NAME}-predictor.{NS}.example.test"
        assert deployment.previous_state["canary"] is True
        assert deployment.previous_state["previous_spec"] == kserve.manifest(NAME, 1)["spec"]
        assert routed(kserve, {"1": 100, "2": 0})["shadow"] is None
        assert kserve.metrics_url(deployment) is None

        # A retried deploy patches nothing and returns the same state.
        writes = len(k8s_api.history(NS, NAME))
        assert kserve.apply(NAME, 2, uri(2), serve=False) == deployment.previous_state
        assert len(k8s_api.history(NS, NAME)) == writes


def test_steps_10_50_100_then_the_candidate_is_promoted(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        canary_in(kserve, knative)
        for percent in (10, 50):
            kserve.set_traffic(NAME, step(1, 2, percent))
            assert kserve.get(NAME)["spec"]["predictor"][CANARY] == percent
            assert routed(kserve, {"1": 100 - percent, "2": percent})
            assert kserve.served_version(NAME) == 1
        live = kserve.get(NAME)["status"]["components"]["predictor"]
        assert live["latestRolledoutRevision"] == knative.revision_of_version(1)  # KServe's "prev": production

        # The last step: the candidate answers every request; production stays the served version (as on the
        # model server) until the release's plain load promotes it.
        kserve.set_traffic(NAME, step(1, 2, 100))
        assert kserve.get(NAME)["spec"]["predictor"][CANARY] == 100
        assert routed(kserve, {"2": 100})
        assert kserve.served_version(NAME) == 1
        rolled = settled(kserve, lambda isvc: True)["status"]["components"]["predictor"]
        assert rolled["latestRolledoutRevision"] == knative.revision_of_version(2)

        final = kserve.await_ready(kserve.apply(NAME, 2, uri(2)))  # Release.finish_rollout's plain load
        promoted = kserve.get(NAME)
        assert CANARY not in promoted["spec"]["predictor"]  # KServe's promotion: the field removed
        assert promoted["spec"] == kserve.manifest(NAME, 2)["spec"]
        assert promoted["metadata"]["labels"]["mlspec/version"] == "2"
        assert "mlspec/canary-version" not in promoted["metadata"]["annotations"]
        assert kserve.served_version(NAME) == 2
        assert routed(kserve, {"2": 100})
        assert final.endpoint_url == f"http://{NAME}-{NS}.example.test"
        assert final.previous_state["previous_spec"] == kserve.manifest(NAME, 1)["spec"]
        assert final.previous_state["previous_version"] == 1

        # A retried finish finds it done: nothing is patched.
        writes = len(k8s_api.history(NS, NAME))
        assert kserve.apply(NAME, 2, uri(2))["generation"] == final.previous_state["generation"]
        assert len(k8s_api.history(NS, NAME)) == writes


def test_serve_true_for_the_candidate_promotes_it_too(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        canary_in(kserve, knative)
        kserve.set_traffic(NAME, step(1, 2, 50))
        done = kserve.await_ready(kserve.apply(NAME, 2, uri(2)))
        assert done.version == 2 and kserve.served_version(NAME) == 2
        assert routed(kserve, {"2": 100})


@pytest.mark.parametrize("percent", [50, 100])
@pytest.mark.parametrize("how", ["apply_state", "registry_production", "weights_cleared"])
def test_a_rollback_mid_canary_gives_production_every_request_at_once(k8s_api, k8s_connection, how, percent):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        candidate = canary_in(kserve, knative)
        kserve.set_traffic(NAME, step(1, 2, percent))
        routed(kserve, {"1": 50, "2": 50} if percent == 50 else {"2": 100})
        if how == "apply_state":  # the rollout's own Deployment (its apply state)
            kserve.rollback(candidate)
        elif how == "registry_production":  # Release.serve_production: the registry's production version
            kserve.rollback(Deployment("kserve", NAME, 2, "", NAME, 1, {"storage_uri": uri(1)}))
        else:
            kserve.set_traffic(NAME, {"weights": None})
        live = kserve.get(NAME)
        assert live["spec"]["predictor"][CANARY] == 0
        assert live["metadata"]["labels"]["mlspec/version"] == "1"
        assert kserve.served_version(NAME) == 1
        if how != "weights_cleared":  # production's spec is back, its new revision pinned at 0 %
            assert {**live["spec"]["predictor"], CANARY: None} == {**kserve.manifest(NAME, 1)["spec"]["predictor"],
                                                                    CANARY: None}
            assert "mlspec/canary-version" not in live["metadata"]["annotations"]
        settled(kserve, lambda isvc: kserve.traffic(NAME)["weights"] in ({"1": 100}, {"1": 100, "2": 0}))
        prev = [e for e in kserve.get(NAME)["status"]["components"]["predictor"]["traffic"] if e["percent"]]
        assert [e["revisionName"] for e in prev] == [knative.revision_of_version(1)]  # the revision that served

        if how != "weights_cleared":
            # The next candidate starts from production's spec, not from the rolled-back one.
            state = kserve.apply(NAME, 3, uri(3), serve=False)
            assert state["previous_spec"] == kserve.manifest(NAME, 1)["spec"]
            assert state["previous_version"] == 1


def test_a_canary_that_is_not_ready_gets_no_traffic(k8s_api, k8s_connection):
    """kserve#5983: the first spec.canary routed traffic to canaries that were not ready. This fake controller
    has the same bug (it routes the canary share to the newest revision, ready or not): mlspec never asks it to."""
    kserve = backend(k8s_connection)
    knative = ServerlessKServe(unready={2}, route_unready=True)
    with running_controller(k8s_api, NS, NAME, knative):
        kserve.deploy(NAME, 1, uri(1))
        state = kserve.apply(NAME, 2, uri(2), serve=False)
        assert kserve.wait(state, timeout_s=0.3)[0] == "timeout"
        with pytest.raises(ServingError) as refused:
            kserve.set_traffic(NAME, step(1, 2, 10))
        message = str(refused.value)
        for part in ("version 2", "no share", "not ready", "kserve#5983"):
            assert part in message
        assert kserve.get(NAME)["spec"]["predictor"][CANARY] == 0
        assert routed(kserve, {"1": 100, "2": 0})

        knative.unready.clear()  # the candidate's revision becomes ready: now it may have its share
        kserve.await_ready(state)
        kserve.set_traffic(NAME, step(1, 2, 10))
        assert routed(kserve, {"1": 90, "2": 10})
    assert knative.unready_shares == []


def test_a_canary_that_never_becomes_ready_is_taken_back(k8s_api, k8s_connection):
    kserve = backend(k8s_connection, timeout_s=1)
    knative = ServerlessKServe(unready={2}, route_unready=True)
    with running_controller(k8s_api, NS, NAME, knative):
        kserve.deploy(NAME, 1, uri(1))
        state = kserve.apply(NAME, 2, uri(2), serve=False)
        with pytest.raises(ServingError, match="did not become ready.*previous spec restored"):
            kserve.await_ready(state)
        live = kserve.get(NAME)
        assert live["spec"]["predictor"][CANARY] == 0  # production's spec, its new revision pinned at 0 %
        assert kserve.served_version(NAME) == 1 and "mlspec/canary-version" not in live["metadata"]["annotations"]
        assert routed(kserve, {"1": 100})
    assert knative.unready_shares == []


def test_a_stale_or_unready_status_is_never_read_as_ready(k8s_api, k8s_connection):
    from mlspec.serving.kserve_manifest import canary_not_ready

    isvc = {"metadata": {"generation": 3}, "status": {
        "observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}],
        "components": {"predictor": {"latestCreatedRevision": "d-00002", "latestReadyRevision": "d-00002"}}}}
    assert canary_not_ready(isvc) is None
    stale = {**isvc, "metadata": {"generation": 4}}
    assert "not observed generation 4" in canary_not_ready(stale)
    behind = {**isvc, "status": {**isvc["status"], "components": {"predictor": {
        "latestCreatedRevision": "d-00003", "latestReadyRevision": "d-00002"}}}}
    assert "d-00003 is not ready" in canary_not_ready(behind)
    not_ready = {**isvc, "status": {**isvc["status"], "conditions": [
        {"type": "Ready", "status": "False", "reason": "RevisionFailed"}]}}
    assert "not Ready (Ready=False: RevisionFailed)" in canary_not_ready(not_ready)


def test_raw_deployment_refuses_a_rollout(k8s_api, k8s_connection):
    """kserve#5335, #4074: RawDeployment ignores canaryTrafficPercent and would send 100 % to the candidate."""
    kserve = backend(k8s_connection, mode="RawDeployment")
    with running_controller(k8s_api, NS, NAME, ready_status):
        kserve.deploy(NAME, 1, uri(1))
        before = kserve.get(NAME)
        with pytest.raises(ServingError) as refused:
            kserve.apply(NAME, 2, uri(2), serve=False)
        for part in ("runs in RawDeployment, where KServe ignores", "needs deployment_mode Serverless", CANARY,
                     "100 % of requests to the candidate at once", "kserve#5335",
                     "serving.kserve.deployment_mode: Serverless"):
            assert part in str(refused.value)
        assert kserve.get(NAME)["spec"] == before["spec"]  # nothing changed
        assert kserve.served_version(NAME) == 1


def test_a_cluster_running_raw_deployment_refuses_though_the_spec_asks_serverless(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)  # the spec says Serverless, the controller reports RawDeployment
    with running_controller(k8s_api, NS, NAME, ready_status):
        kserve.deploy(NAME, 1, uri(1))
        settled(kserve, lambda isvc: isvc["status"]["deploymentMode"] == "RawDeployment")
        with pytest.raises(ServingError, match="runs in RawDeployment"):
            kserve.apply(NAME, 2, uri(2), serve=False)
        assert kserve.served_version(NAME) == 1 and CANARY not in kserve.get(NAME)["spec"]["predictor"]


def test_a_first_version_has_nothing_to_split_with_and_serves(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with running_controller(k8s_api, NS, NAME, ServerlessKServe()):
        deployment = kserve.await_ready(kserve.apply(NAME, 1, uri(1), serve=False))
        assert deployment.previous_state["canary"] is False
        assert CANARY not in kserve.get(NAME)["spec"]["predictor"]
        assert kserve.served_version(NAME) == 1
        kserve.set_traffic(NAME, {"weights": {"1": 100}})  # the plan's steps for a first version: no-ops
        assert routed(kserve, {"1": 100})


def test_traffic_outside_production_and_the_candidate_is_refused(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        canary_in(kserve, knative)
        for weights, fragment in (({"1": 50, "3": 50}, "only to production"), ({"1": 60, "2": 50}, "add up to 100"),
                                  ({"1": 90, "2": 10.5}, "whole percentages")):
            with pytest.raises(ServingError, match=fragment):
                kserve.set_traffic(NAME, {"weights": weights})
        with pytest.raises(ServingError, match="rollout of digits version 2 runs"):
            kserve.apply(NAME, 3, uri(3), serve=False)
        assert kserve.get(NAME)["spec"]["predictor"][CANARY] == 0


def test_a_retried_deploy_takes_the_canary_share_back_to_zero(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    knative = ServerlessKServe()
    with running_controller(k8s_api, NS, NAME, knative):
        first = canary_in(kserve, knative)
        kserve.set_traffic(NAME, step(1, 2, 10))
        again = kserve.apply(NAME, 2, uri(2), serve=False)
        assert kserve.get(NAME)["spec"]["predictor"][CANARY] == 0
        assert again["previous_spec"] == first.previous_state["previous_spec"]
        assert again["previous_version"] == 1


def test_the_readiness_trigger_reports_the_canarys_own_url(k8s_api, k8s_connection):
    kserve = backend(k8s_connection)
    with running_controller(k8s_api, NS, NAME, ServerlessKServe()):
        kserve.deploy(NAME, 1, uri(1))
        state = kserve.apply(NAME, 2, uri(2), serve=False)
        trigger = kserve.readiness_trigger(state)
        assert trigger.serialize()[1]["canary"] is True
        trigger = KServeReadinessTrigger(**{**trigger.serialize()[1], "connection": k8s_connection,
                                            "poll_interval_s": 0.02})

        async def collect():
            return [event async for event in trigger.run()]

        (event,) = asyncio.run(collect())
    assert event.payload["status"] == "ready"
    assert event.payload["url"] == f"http://latest-{NAME}-predictor.{NS}.example.test"


SPEC = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: cars
data:
  source: file://data/cars.csv
  label: Miles_per_Gallon
model:
  framework: sklearn
  task: regression
  estimator: random_forest
storage:
  uri: s3://models/cars
serving:
  platform: kserve
  runtime: kserve-ovms
"""


def test_lint_refuses_a_rollout_in_raw_deployment_and_nothing_else():
    from mlspec.spec import SpecError, load_spec_text

    with pytest.raises(SpecError) as refused:
        load_spec_text(SPEC + "rollout:\n  canary: {steps: [10, 100], bake: 1s}\n", "cars.yaml")
    (problem,) = [str(p) for p in refused.value.problems]
    assert problem.startswith("cars.yaml:17:1: rollout: serving.kserve.deployment_mode is RawDeployment, where KServe "
                              "ignores canaryTrafficPercent")
    serverless = SPEC + "  kserve: {deployment_mode: Serverless}\nrollout:\n  canary: {steps: [10, 100], bake: 1s}\n"
    assert load_spec_text(serverless, "cars.yaml").rollout.canary.steps == (10, 100)
    assert load_spec_text(SPEC, "cars.yaml").rollout is None  # no rollout: RawDeployment releases as before


def test_a_step_on_kserve_passes_without_agreement_though_the_spec_gates_on_it(monkeypatch):
    """KServe cannot shadow, so no row reaches both versions: a step read from Prometheus passes on its other gates
    (lint warns that agreement is never measured) instead of failing for want of rows compared."""
    from mlspec.rollout.metrics import StepMetrics
    from mlspec.spec import load_spec_text
    from mlspec.triggers import rollout as triggers

    rollout = ("rollout:\n  canary: {steps: [10, 100], bake: 1s}\n  gates: {agreement: 0.95, p95_ms: 250}\n"
               "  metrics: {source: prometheus, connection: prom}\n")
    spec = load_spec_text(SPEC + "  kserve: {deployment_mode: Serverless}\n" + rollout, "cars.yaml")
    measured = StepMetrics(requests=500, errors=0, p95_ms=3.0, agreement=None, compared_rows=0, dropped=0)

    class Prometheus:
        def snapshot(self, model):
            return time.time()

        def window(self, model, candidate, production, start):
            return measured

    monkeypatch.setattr(triggers, "metrics_source", lambda spec, url: Prometheus())
    monkeypatch.setattr(triggers, "open_for_reading", lambda backend, connection: None)
    monkeypatch.setattr(triggers, "look", lambda registry, model, version: None)
    trigger = triggers.RolloutStepTrigger(
        spec.to_dict(), "cars.yaml", candidate=2, production=1,
        step={"kind": "canary", "percent": 10, "bake_s": 1}, started_at=time.time() - 1, endpoint_url="http://x",
        window_start=time.time() - 1)

    async def first():
        return [event async for event in trigger.run()][0]

    event = asyncio.run(first())
    assert event.payload["status"] == "pass", event.payload["message"]
    assert [c["gate"] for c in event.payload["checks"]] == ["min_requests", "p95_ms", "error_rate"]
