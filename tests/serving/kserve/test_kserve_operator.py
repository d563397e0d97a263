"""The deferrable KServe deploy at the operator level, driven the way Airflow drives it.

A compiled DAG's ``deploy`` task is executed against the Kubernetes API emulator (kmock, with the
vendored KServe CRD) while a fake KServe controller writes status. The steps mirror Airflow 3:

1. the worker runs ``execute``; it applies the InferenceService and raises ``TaskDeferred``;
2. the triggerer rebuilds the trigger from ``serialize()`` and runs it until it yields an event;
3. a worker resumes the task with ``resume_execution(method_name, kwargs + {"event": payload})``,
   the kwargs having gone through Airflow's serde as they do in the metadata database.

The registry is the embedded MLflow under a temporary MLSPEC_HOME.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import httpx
import pytest
import yaml
from kserve_testkit import (
    GROUP,
    PLURAL,
    VERSION,
    failed_to_load_status,
    pending_status,
    ready_status,
    running_controller,
)

from mlspec.compiler import build_dag
from mlspec.spec import load_spec_text
from mlspec.triggers.kserve import KServeReadinessTrigger

NAME = "tiny-digits"
NS = "ml-serving"
STORE_ROOT = "s3://models/mlspec"
# Fields the API server sets on its own; everything else must be what `mlspec manifest` prints.
SERVER_SET_METADATA = ("generation", "uid", "resourceVersion", "creationTimestamp")


def spec_text(connection: str, *, timeout: int = 30, auth: str = "none") -> str:
    return f"""\
apiVersion: mlspec/v1
kind: ModelSpec
metadata:
  name: {NAME}
  description: Digits, served by KServe
  owner: ml-team
data:
  source: builtin:digits
  preprocess:
    - scale: {{divide_by: 16.0}}
model:
  layers:
    - dense: {{units: 10, activation: softmax}}
training:
  epochs: 1
storage:
  uri: {STORE_ROOT}
registry:
  backend: mlflow
serving:
  platform: kserve
  runtime: kserve-ovms
  namespace: {NS}
  connection: {connection}
  auth: {auth}
  timeout: {timeout}
"""


def deploy_task(text: str):
    """A fresh deploy task from a freshly compiled DAG, as each worker process gets one."""
    return build_dag(load_spec_text(text)).get_task("deploy")


def stored(version: int) -> dict:
    """What the store task hands to deploy through XCom."""
    return {
        "version": version,
        "uri": f"{STORE_ROOT}/{NAME}/{version}",
        "files": {"model.onnx": "0" * 64, "signature.json": "1" * 64},
    }


def context_for(version: int) -> dict:
    """The run's context, plus what Airflow renders into deploy's `stored` input for that run."""
    return {"run_id": f"manual__deploy_v{version}", "stored": stored(version)}


def given_inputs(task, context: dict):
    """Render the deploy operator's input as Airflow does before a try: store's result for the run."""
    task.stored = context["stored"]
    return task


def start(task, context: dict):
    """Worker, first try: execute must apply the InferenceService and defer."""
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        given_inputs(task, context).execute(context)
    return deferred.value


def run_in_triggerer(deferred) -> list:
    """Triggerer: rebuild the trigger from its serialized form and collect what run() yields.

    The operator polls every 5 s, right for a cluster; here the poll interval alone is shortened so
    the module stays fast. Everything else comes from the serialized trigger.
    """
    classpath, kwargs = deferred.trigger.serialize()
    module, _, cls = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), cls)(**{**kwargs, "poll_interval_s": 0.05})

    async def collect():
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def resume(task, context: dict, deferred, event):
    """Scheduler + worker: next_kwargs go through serde with the event added, then resume_execution."""
    from airflow.sdk.serde import deserialize, serialize

    stored_kwargs = deserialize(serialize(deferred.kwargs or {}))  # what the DB keeps while deferred
    next_kwargs = deserialize(serialize({**stored_kwargs, "event": event.payload}))  # the trigger's event
    return given_inputs(task, context).resume_execution(deferred.method_name, next_kwargs, context)


def read_isvc(k8s_api, name: str = NAME) -> dict | None:
    """The InferenceService straight from the emulator's HTTP API (not through mlspec's code)."""
    url = f"{k8s_api.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{name}"
    response = httpx.get(url, timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def printed_manifest(text: str, tmp_path: Path, version: int, capsys) -> dict:
    """What `mlspec manifest <spec> --version N` prints."""
    from mlspec.cli import main

    path = tmp_path / f"{NAME}.yaml"
    path.write_text(text)
    capsys.readouterr()
    assert main(["manifest", str(path), "--version", str(version)]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def without_server_fields(isvc: dict) -> dict:
    meta = {k: v for k, v in isvc["metadata"].items() if k not in SERVER_SET_METADATA}
    return {**{k: v for k, v in isvc.items() if k != "status"}, "metadata": meta}


def version_of(isvc: dict) -> str:
    return isvc["metadata"]["labels"]["mlspec/version"]


def controller(k8s_api, scenario):
    return running_controller(k8s_api, NS, NAME, scenario)


def serves_only(*versions: int):
    """Scenario: ready for the given versions; any other version fails to load."""

    def scenario(isvc):
        if version_of(isvc) in {str(v) for v in versions}:
            return ready_status(isvc)
        return failed_to_load_status(isvc, f"model version {version_of(isvc)}: unsupported ONNX opset 99")

    return scenario


def register_versions(*versions: int):
    """Register store versions of the model in the embedded MLflow (the register task's work)."""
    from mlspec.registry import RegistrationRequest
    from mlspec.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry()
    for version in versions:
        uri = f"{STORE_ROOT}/{NAME}/{version}"
        registry.register(
            RegistrationRequest(
                model_name=NAME,
                version=version,
                source_uri=uri,
                model_uri=f"{uri}/model.onnx",
                metrics={"accuracy": 0.95},
                data_source="builtin:digits",
                spec_hash="f" * 64,
                dag_id=NAME,
                run_id=f"manual__register_v{version}",
                onnx_opset=17,
            )
        )
    registry.client.search_registered_models()  # creates the database even when nothing is registered
    return registry


@pytest.fixture(scope="module")
def mlflow_databases(tmp_path_factory) -> dict[str, Path]:
    """Embedded MLflow databases made once per module: creating one runs every MLflow migration,
    which takes seconds on a busy machine. "empty" has no versions; "registered" has 1 and 2."""
    import shutil

    from mlspec.registry.mlflow_embedded import embedded_dir

    made: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLSPEC_HOME", str(tmp_path_factory.mktemp("mlflow-empty")))
        register_versions()
        made["empty"] = embedded_dir() / "mlflow.db"
        env.setenv("MLSPEC_HOME", str(tmp_path_factory.mktemp("mlflow-registered")))
        made["registered"] = shutil.copyfile(made["empty"], embedded_dir() / "mlflow.db")  # migrated once
        register_versions(1, 2)
    return made


def embedded_mlflow(template: Path):
    """This test's own embedded MLflow (under its MLSPEC_HOME), starting as a copy of `template`."""
    import shutil

    from mlspec.registry.mlflow_embedded import embedded_dir
    from mlspec.registry.mlflow_registry import MlflowRegistry

    shutil.copyfile(template, embedded_dir() / "mlflow.db")
    return MlflowRegistry()


@pytest.fixture()
def mlflow_versions(mlflow_databases):
    """Versions 1 and 2 of the model registered in this test's embedded MLflow."""
    registry = embedded_mlflow(mlflow_databases["registered"])
    assert registry.find(NAME, 1) is not None and registry.find(NAME, 2) is not None
    return registry


def deployment_tags(registry, version: int) -> dict:
    """The deployment.* tags of a store version, read with a plain MlflowClient."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    (mv,) = [
        mv
        for mv in client.search_model_versions(f"name = '{NAME}'")
        if mv.tags.get("mlspec.version") == str(version)
    ]
    return {k: v for k, v in mv.tags.items() if k.startswith("deployment.")}


# -- 1. execute applies the manifest and defers --------------------------------------------------
def test_execute_applies_the_printed_manifest_and_defers_to_the_readiness_trigger(
    k8s_api, k8s_connection, tmp_path, capsys, mlflow_versions
):
    text = spec_text(k8s_connection, timeout=45)
    context = context_for(1)
    deferred = start(deploy_task(text), context)

    assert deferred.method_name == "execute_complete"
    assert isinstance(deferred.trigger, KServeReadinessTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "mlspec.triggers.kserve.KServeReadinessTrigger"
    assert kwargs == {
        "name": NAME,
        "namespace": NS,
        "generation": 1,
        "connection": k8s_connection,
        "timeout_s": 45,
        "poll_interval_s": 5,
        "canary": False,
    }
    assert deferred.kwargs["version"] == 1
    assert deferred.kwargs["state"]["previous_spec"] is None

    live = read_isvc(k8s_api)
    assert live is not None and live["metadata"]["generation"] == 1
    assert without_server_fields(live) == printed_manifest(text, tmp_path, 1, capsys)


def test_a_retried_execute_finds_its_own_apply_and_changes_nothing(k8s_api, k8s_connection, mlflow_versions):
    text = spec_text(k8s_connection)
    first = start(deploy_task(text), context_for(1))
    before = read_isvc(k8s_api)
    again = start(deploy_task(text), context_for(1))  # the worker died after applying; Airflow retries
    after = read_isvc(k8s_api)
    assert again.trigger.serialize() == first.trigger.serialize()
    assert again.kwargs == first.kwargs
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


# -- 2. the trigger's ready event resumes into the Deployment XCom ---------------------------------
def test_ready_event_resumes_into_a_deployment_xcom(k8s_api, k8s_connection, mlflow_versions):
    text = spec_text(k8s_connection)
    context = context_for(1)
    deferred = start(deploy_task(text), context)
    with controller(k8s_api, serves_only(1)) as fake:
        events = run_in_triggerer(deferred)
    assert fake.writes, "the fake controller never wrote a status"
    assert [e.payload["status"] for e in events] == ["ready"]

    result = resume(deploy_task(text), context, deferred, events[0])

    url = f"http://{NAME}-{NS}.apps.example.test"  # the status.url the controller wrote
    assert read_isvc(k8s_api)["status"]["url"] == url
    assert json.loads(json.dumps(result)) == result  # Airflow stores the return value as JSON XCom
    assert result["platform"] == "kserve"
    assert result["endpoint_url"] == url
    assert (result["model_name"], result["version"], result["served_model_name"]) == (NAME, 1, NAME)
    assert result["previous_version"] is None
    assert result["previous_state"] == deferred.kwargs["state"]
    assert deployment_tags(mlflow_versions, 1) == {}  # promote records success, not deploy


# -- 3. FailedToLoad: rollback to version 1, rolled_back recorded, the task fails without retry ----
def test_failed_to_load_rolls_back_records_and_fails_the_task(k8s_api, k8s_connection, mlflow_versions):
    from airflow.sdk.exceptions import AirflowFailException

    text = spec_text(k8s_connection, timeout=60)
    with controller(k8s_api, serves_only(1)):
        first_ctx = context_for(1)
        first = start(deploy_task(text), first_ctx)
        resume(deploy_task(text), first_ctx, first, run_in_triggerer(first)[0])
        mlflow_versions.set_production(NAME, 1, reason="promoted")  # what the run's promote does
        v1_spec = read_isvc(k8s_api)["spec"]

        context = context_for(2)
        deferred = start(deploy_task(text), context)
        assert deferred.kwargs["state"]["previous_version"] == 1
        assert deferred.trigger.serialize()[1]["generation"] == 2
        assert read_isvc(k8s_api)["spec"] != v1_spec  # version 2 was really applied
        events = run_in_triggerer(deferred)
        assert [e.payload["status"] for e in events] == ["failed"]  # a verdict, not a 60 s timeout

        with pytest.raises(AirflowFailException) as failure:
            resume(deploy_task(text), context, deferred, events[0])

    message = str(failure.value)
    for part in (f"model {NAME}", "version 2", "unsupported ONNX opset 99", "restored", "Next step:"):
        assert part in message, f"{part!r} missing from: {message}"
    live = read_isvc(k8s_api)
    assert live["spec"] == v1_spec
    assert version_of(live) == "1"
    assert not {"mlspec/previous-spec", "mlspec/previous-version"} & set(live["metadata"]["annotations"])

    tags = deployment_tags(mlflow_versions, 2)
    assert tags["deployment.outcome"] == "rolled_back"
    assert tags["deployment.platform"] == "kserve"
    assert "unsupported ONNX opset 99" in tags["deployment.message"]
    assert deployment_tags(mlflow_versions, 1) == {}
    assert mlflow_versions.production_version(NAME) == 1  # a rollback never moves the alias


def test_a_failed_candidate_goes_back_to_the_registry_production_not_to_what_the_cluster_served(
    k8s_api, k8s_connection, mlflow_versions
):
    """The registry's production is version 1, the cluster serves 3 (applied by hand): after candidate 2 fails to
    load, the cluster serves 1 again, not 3."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.serving.kserve import KServeConfig, KServeServing

    text = spec_text(k8s_connection, timeout=60)
    with controller(k8s_api, serves_only(1, 3)):
        first_ctx = context_for(1)
        first = start(deploy_task(text), first_ctx)
        resume(deploy_task(text), first_ctx, first, run_in_triggerer(first)[0])
        mlflow_versions.set_production(NAME, 1, reason="promoted")
        by_hand = KServeServing(KServeConfig(namespace=NS, connection=k8s_connection, timeout_s=30), STORE_ROOT,
                                poll_interval_s=0.05)
        by_hand.deploy(NAME, 3, f"{STORE_ROOT}/{NAME}/3")
        assert version_of(read_isvc(k8s_api)) == "3"

        context = context_for(2)
        deferred = start(deploy_task(text), context)
        assert deferred.kwargs["state"]["previous_version"] == 3  # what the cluster had
        events = run_in_triggerer(deferred)
        assert [e.payload["status"] for e in events] == ["failed"]
        with pytest.raises(AirflowFailException) as failure:
            resume(deploy_task(text), context, deferred, events[0])
        live = read_isvc(k8s_api)

    assert version_of(live) == "1" and live["spec"] == by_hand.manifest(NAME, 1)["spec"]
    assert "Serving had version 3 before; it now serves the registry's production version: version 1" in str(failure.value)
    assert deployment_tags(mlflow_versions, 2)["deployment.outcome"] == "rolled_back"
    assert mlflow_versions.production_version(NAME) == 1


def test_a_failed_smoke_test_on_kserve_serves_the_registry_production_version_again(
    k8s_api, k8s_connection, mlflow_versions
):
    """smoke_test's rollback on KServe: candidate 2 is ready but answered wrong; the release service's restore
    applies the registry's production version 1 (it used to need the apply's own state, which it did not get)."""
    from mlspec.release import Release

    text = spec_text(k8s_connection)
    with controller(k8s_api, serves_only(1, 2)):
        for version in (1, 2):
            context = context_for(version)
            deferred = start(deploy_task(text), context)
            resume(deploy_task(text), context, deferred, run_in_triggerer(deferred)[0])
            if version == 1:
                mlflow_versions.set_production(NAME, 1, reason="promoted")
        assert version_of(read_isvc(k8s_api)) == "2"
        release = Release.open(load_spec_text(text))
        assert release.serve_production(2, NAME) == "version 1 is serving again"
        live = read_isvc(k8s_api)
    assert version_of(live) == "1" and live["spec"] == release.serving.manifest(NAME, 1)["spec"]


def test_a_failed_redeploy_of_the_production_version_on_kserve_keeps_it_serving(k8s_api, k8s_connection, mlflow_versions):
    """Production 1 was deployed again and failed after it became ready (its smoke test): the restore serves
    version 1 again; it never reads "failed == production" as "nothing served before" and deletes the service."""
    from mlspec.release import Release

    text = spec_text(k8s_connection)
    with controller(k8s_api, serves_only(1)):
        context = context_for(1)
        deferred = start(deploy_task(text), context)
        resume(deploy_task(text), context, deferred, run_in_triggerer(deferred)[0])
        mlflow_versions.set_production(NAME, 1, reason="promoted")
        release = Release.open(load_spec_text(text))
        assert release.serve_production(1, NAME) == "version 1 is serving again"
        live = read_isvc(k8s_api)
    assert version_of(live) == "1" and live["spec"] == release.serving.manifest(NAME, 1)["spec"]


# -- 4. timeout: never ready, a first deploy is deleted again --------------------------------------
def test_timeout_rolls_back_a_first_deploy_and_fails_the_task(k8s_api, k8s_connection, mlflow_versions):
    from airflow.sdk.exceptions import AirflowFailException

    text = spec_text(k8s_connection, timeout=1)
    context = context_for(1)
    deferred = start(deploy_task(text), context)
    assert deferred.trigger.serialize()[1]["timeout_s"] == 1
    with controller(k8s_api, pending_status) as fake:
        events = run_in_triggerer(deferred)
    assert fake.writes, "the fake controller never wrote a status"
    assert [e.payload["status"] for e in events] == ["timeout"]

    with pytest.raises(AirflowFailException) as failure:
        resume(deploy_task(text), context, deferred, events[0])
    message = str(failure.value)
    for part in (f"model {NAME}", "version 1", "did not become ready in time", "InferenceService deleted"):
        assert part in message, f"{part!r} missing from: {message}"
    assert read_isvc(k8s_api) is None
    assert deployment_tags(mlflow_versions, 1)["deployment.outcome"] == "rolled_back"


def test_a_registry_failure_does_not_hide_the_rollback(k8s_api, k8s_connection, mlflow_versions):
    """The model is gone from MLflow while the deploy waits: the rollback's story must still be what the task
    reports."""
    from airflow.sdk.exceptions import AirflowFailException

    text = spec_text(k8s_connection, timeout=1)
    context = context_for(1)
    deferred = start(deploy_task(text), context)
    mlflow_versions.client.delete_registered_model(NAME)
    with controller(k8s_api, pending_status):
        events = run_in_triggerer(deferred)

    with pytest.raises(AirflowFailException) as failure:
        resume(deploy_task(text), context, deferred, events[0])
    message = str(failure.value)
    assert "did not become ready in time" in message and "InferenceService deleted" in message
    assert "could not be recorded" in message and "not registered" in message
    assert read_isvc(k8s_api) is None


# -- 5. the smoke test sends the Kubernetes connection's token -------------------------------------
def test_smoke_test_bearer_token_comes_from_the_kubernetes_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_WITH_TOKEN",
        json.dumps({"conn_type": "kubernetes", "extra": {"in_cluster": False, "token": "abc"}}),
    )
    from mlspec.serving.smoke_test import spec_settings

    with_token = spec_settings(load_spec_text(spec_text("k8s_with_token", auth="token")))
    without = spec_settings(load_spec_text(spec_text("k8s_with_token", auth="none")))
    assert with_token["token"] == "abc"
    assert without["token"] is None


def test_a_failed_rollback_is_recorded_as_failed_not_rolled_back(k8s_api, k8s_connection, mlflow_versions):
    from airflow.sdk.exceptions import AirflowFailException

    text = spec_text(k8s_connection)
    with controller(k8s_api, serves_only(1)):
        first_ctx = context_for(1)
        first = start(deploy_task(text), first_ctx)
        resume(deploy_task(text), first_ctx, first, run_in_triggerer(first)[0])
        context = context_for(2)
        deferred = start(deploy_task(text), context)
        events = run_in_triggerer(deferred)
    assert [e.payload["status"] for e in events] == ["failed"]
    # Someone deletes the InferenceService while the task waits to resume: there is nothing to restore.
    url = f"{k8s_api.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{NAME}"
    assert httpx.delete(url, timeout=5).status_code == 200

    with pytest.raises(AirflowFailException) as failure:
        resume(deploy_task(text), context, deferred, events[0])
    assert "Rolling back ALSO failed" in str(failure.value)
    assert deployment_tags(mlflow_versions, 2)["deployment.outcome"] == "failed"


def test_an_unreachable_cluster_fails_with_a_retryable_kserve_next_step(monkeypatch, tmp_path, mlflow_versions):
    from airflow.sdk.exceptions import AirflowException

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(AirflowException) as failure:
        given_inputs(deploy_task(spec_text("no_such_k8s_connection")), context_for(1)).execute(context_for(1))
    assert type(failure.value) is AirflowException  # an outage may pass: deploy keeps its retry
    message = str(failure.value)
    assert f"deploy failed for model {NAME}" in message and "no_such_k8s_connection" in message
    assert "kubectl get inferenceservices" in message
    assert "make serve" not in message
