"""Deploy, roll back and undeploy by version, from the CLI and from the mlspec_operations DAG: the
registry moves first, serving follows, a smoke test proves it, and a failure restores both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e.e2e_testkit import served_version, task_states, xcom
from tests.fixtures.paths import REPO, SPECS

pytestmark = pytest.mark.e2e

MLSPEC = str(Path(sys.executable).parent / "mlspec")


def mlspec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MLSPEC, *args], capture_output=True, text=True, cwd=REPO, env=os.environ.copy())


def registry():
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(None)


@pytest.fixture
def three_versions(run_spec, model_server, request):
    """A model (named after the test) with versions 1, 2 and 3, each promoted in turn: 3 serves."""
    name = "ops-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    text = text.replace("evaluation:\n", "evaluation:\n  champion: null\n")
    for depth in (2, 4, 6):
        _, dag_run = run_spec(text.replace("max_depth: 6", f"max_depth: {depth}"), name)
        assert str(dag_run.state) == "success", task_states(dag_run)
    assert registry().production_history(name) == [1, 2, 3]
    return Path(os.environ["MLSPEC_SPECS_DIR"]) / f"{name}.yaml", name


def test_cli_deploy_rollback_undeploy_and_status(three_versions, model_server):
    path, name = three_versions
    spec = str(path)
    status = json.loads(mlspec("status", spec, "--json").stdout)
    assert status["production"] == 3 and status["serving"] == 3 and status["drift"] is False

    deployed = mlspec("deploy", spec, "--version", "1")
    assert deployed.returncode == 0, deployed.stderr
    assert "version 1 is production and serving" in deployed.stdout and "was 3" in deployed.stdout
    assert served_version(model_server, name) == "1" and registry().production_version(name) == 1

    rolled = mlspec("rollback", spec)  # back to the version that was production before: 3
    assert rolled.returncode == 0, rolled.stderr
    assert served_version(model_server, name) == "3" and registry().production_version(name) == 3

    assert mlspec("rollback", spec, "--to-version", "2").returncode == 0
    assert served_version(model_server, name) == "2"

    missing = mlspec("deploy", spec, "--version", "9")
    assert missing.returncode == 1 and "version 9 is not registered (latest registered: 3); nothing changed" in missing.stderr
    assert served_version(model_server, name) == "2"

    undeployed = mlspec("undeploy", spec)
    assert undeployed.returncode == 0, undeployed.stderr
    assert served_version(model_server, name) is None and registry().production_version(name) is None
    assert registry().version_record(name, 2).state == "undeployed"


def test_status_reports_drift_and_deploy_corrects_it(three_versions, model_server):
    from mlspec.serving.local import LocalServing
    from mlspec.storage import resolve_file_uri

    path, name = three_versions
    spec = str(path)
    LocalServing(model_server).deploy(name, 1, (resolve_file_uri("file://models") / name / "1").as_uri())  # by hand
    status = mlspec("status", spec, "--strict")
    assert status.returncode == 1 and "DRIFT" in status.stdout and "--version 3" in status.stdout
    assert mlspec("deploy", spec, "--version", "3").returncode == 0
    assert json.loads(mlspec("status", spec, "--json").stdout)["drift"] is False


def test_a_failed_deploy_restores_registry_and_serving(three_versions, model_server):
    from mlspec.storage import resolve_file_uri

    path, name = three_versions
    spec = str(path)
    # Version 1's published model no longer matches what the registry recorded: refused, nothing changes.
    model = resolve_file_uri("file://models") / name / "1" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    result = mlspec("deploy", spec, "--version", "1")
    assert result.returncode == 1 and "does not match the sha256" in result.stderr and "nothing changed" in result.stderr
    assert served_version(model_server, name) == "3" and registry().production_version(name) == 3

    # A smoke test no endpoint can pass: the deploy is undone in the registry and in serving.
    path.write_text(path.read_text() + "smoke_test: {max_latency_ms: 0.001}\n")
    failed = mlspec("deploy", spec, "--version", "2")
    assert failed.returncode == 1 and "version 3 is production and serving again" in failed.stderr
    assert served_version(model_server, name) == "3" and registry().production_version(name) == 3
    assert registry().version_record(name, 2).state == "failed"


def test_the_operations_dag_deploys_from_its_trigger_form(three_versions, model_server, airflow_db):
    from mlspec.operations_dag import build_operations_dag

    path, name = three_versions
    dag = build_operations_dag(path.parent)
    assert dag.params["model"] == name and dag.params.get_param("action").schema["enum"] == [
        "status", "deploy", "rollback", "undeploy", "rollout_status", "rollout_pause", "rollout_resume", "rollout_abort"]
    dag_run = dag.test(run_conf={"model": name, "action": "deploy", "version": 1})
    assert task_states(dag_run) == {"run_operation": "success"}
    assert xcom(dag_run, "run_operation")["version"] == 1
    assert served_version(model_server, name) == "1" and registry().production_version(name) == 1
    dag_run = dag.test(run_conf={"model": name, "action": "rollback", "version": None})
    assert served_version(model_server, name) == "3"
