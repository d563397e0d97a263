"""The walking skeleton, driven the way a user drives it: specs/digits.yaml through real Airflow on the
embedded defaults (file:// store, embedded MLflow, `mlspec serve`), checked from the outside."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

DIGITS = (SPECS / "digits.yaml").read_text()


def renamed(name: str, text: str = DIGITS) -> str:
    return text.replace("name: digits", f"name: {name}")


def mlflow_client():
    from mlflow import MlflowClient

    from mlspec.registry.mlflow_connection import resolve_connection

    uri = resolve_connection(None).tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def served_version(server_url: str, model: str) -> str | None:
    import httpx

    response = httpx.get(f"{server_url}/v2/models/{model}")
    return response.json()["parameters"]["served_version"] if response.status_code == 200 else None


def test_digits_end_to_end(run_spec, model_server):
    spec, dag_run = run_spec(DIGITS, "digits", epochs=4)
    assert str(dag_run.state) == "success", task_states(dag_run)
    store_root = Path(spec.storage.uri.replace("file://", "")) if spec.storage.uri.startswith("file:///") else None
    from mlspec.storage import resolve_file_uri

    version_dir = resolve_file_uri(spec.storage.uri) / "digits" / "1"

    # Stored files and their hashes.
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "model.onnx", "signature.json", "metrics.json", "input_schema.json", "output_schema.json",
        "confusion_matrix.png", "training_curves.png", "model_card.md",  # evaluate's plots and the card (issue 10)
        "splits.parquet", "profile.json", "lineage.json",  # which rows went where, the data profile, lineage (issue 14)
    }
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((version_dir / name).read_bytes()).hexdigest() == digest
    assert manifest["spec_hash"] == spec.spec_hash and store_root is None
    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.90 and len(metrics["confusion_matrix"]) == 10

    # Training honoured the run parameter and logged one metric point per epoch to MLflow.
    trained = xcom(dag_run, "train")
    assert trained["steps_run"] <= 4 and trained["framework"] == "tensorflow"
    client = mlflow_client()
    history = client.get_metric_history(trained["tracking_run_id"], "loss")
    assert [m.step for m in history] == list(range(1, trained["steps_run"] + 1))
    assert client.get_run(trained["tracking_run_id"]).data.params["epochs"] == "4"

    # The MLflow version and its tags.
    (version,) = client.search_model_versions("name='digits'")
    assert version.source.startswith("models:/m-")  # the MLflow model logged from version_dir
    tags = version.tags
    assert tags["mlspec.version"] == "1"
    assert float(tags["metric.accuracy"]) == pytest.approx(metrics["accuracy"], abs=1e-4)
    assert tags["data_source"] == "builtin:digits" and tags["spec_hash"] == spec.spec_hash
    assert tags["dag_id"] == "digits" and tags["run_id"] == dag_run.run_id
    assert client.get_model_version_by_alias("digits", "production").version == version.version

    # Correct predictions from the endpoint through a real v2 client.
    import tritonclient.http as triton

    from mlspec.ml.data import Dataset
    from mlspec.ml.onnx_export import onnx_predict

    dataset = Dataset.from_npz_bytes(Path(resolve_file_uri(xcom(dag_run, "prepare_data")["data_uri"])).read_bytes())
    x, y = dataset.x_test[:100], dataset.y_test[:100]
    triton_client = triton.InferenceServerClient(url=model_server.removeprefix("http://"))
    assert triton_client.is_model_ready("digits")
    infer_input = triton.InferInput("input", list(x.shape), "FP32")
    infer_input.set_data_from_numpy(x.astype(np.float32))
    answer = triton_client.infer("digits", [infer_input])
    labels, probabilities = answer.as_numpy("label"), answer.as_numpy("probabilities")
    offline = onnx_predict((version_dir / "model.onnx").read_bytes(), x)
    assert np.array_equal(labels, offline["label"]) and np.array_equal(labels, probabilities.argmax(1))
    assert (labels == y).mean() >= 0.9

    # The server's metadata carries the published input and output schemas.
    metadata = triton_client.get_model_metadata("digits")
    input_schema = metadata["parameters"]["input_schema"]
    assert len(input_schema["features"]) == 64 and input_schema["features"][0]["name"] == "pixel_0_0"
    assert metadata["parameters"]["output_schema"]["class_names"] == [str(i) for i in range(10)]

    # The printed curl command works when pasted.
    from mlspec.summary import curl_command, format_summary, read_summary

    summary = read_summary(spec, dag_run.run_id)
    printed = format_summary(summary)
    for fragment in ("accuracy=", "model version  1", str(version_dir.as_uri()), "registry       mlflow", summary["infer_url"], "curl -s"):
        assert fragment in printed
    answer = json.loads(subprocess.run(curl_command(summary), shell=True, capture_output=True, text=True, check=True).stdout)
    predicted = {o["name"]: o["data"] for o in answer["outputs"]}["label"][0]
    assert summary["example"]["label"] == str(int(y[0]))
    assert str(predicted) == summary["example"]["predicted"] == str(int(offline["label"][0]))


def test_retried_register_makes_no_second_version(run_spec):
    spec, dag_run = run_spec(renamed("digits-retry"), "digits-retry", epochs=2)
    assert str(dag_run.state) == "success", task_states(dag_run)
    first = xcom(dag_run, "register")
    assert first["created"] is True

    # Retry the register task exactly as Airflow would: same run, same upstream results.
    from mlspec.compiler import build_dag

    register = build_dag(spec).get_task("register")
    # What Airflow renders into the operator's inputs before a try: the earlier stages' results.
    register.stored, register.evaluation = xcom(dag_run, "store"), xcom(dag_run, "evaluate")
    again = register.execute({"run_id": dag_run.run_id})
    assert again["created"] is False
    assert again["registry_version"] == first["registry_version"]
    assert len(mlflow_client().search_model_versions("name='digits-retry'")) == 1


def test_failed_threshold_publishes_nothing(run_spec, model_server):
    strict = renamed("digits-strict").replace("accuracy: {min: 0.90}", "accuracy: {min: 0.9999}")
    spec, dag_run = run_spec(strict, "digits-strict", epochs=1)
    states = task_states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["evaluate"] == "failed"
    assert all(states[t] in ("upstream_failed", "None", "none") for t in ("export_onnx", "store", "register", "deploy"))
    from mlspec.storage import open_store

    store = open_store(spec.storage.uri)
    assert store.list_versions("digits-strict") == []
    assert [c for c in store.list_children("digits-strict") if c != "runs"] == []
    assert mlflow_client().search_registered_models("name='digits-strict'") == []
    assert served_version(model_server, "digits-strict") is None


def test_failed_smoke_test_leaves_the_previous_version_serving(run_spec, model_server):
    good = renamed("digits-rollback")
    _, first = run_spec(good, "digits-rollback", epochs=2)
    assert str(first.state) == "success", task_states(first)
    assert served_version(model_server, "digits-rollback") == "1"

    # The same model, but with a latency budget no endpoint can meet: the smoke test must fail.
    impossible = good.replace("max_latency_ms: 500", "max_latency_ms: 0.001")
    impossible = impossible.replace("evaluation:\n", "evaluation:\n  champion: null\n")  # a tie would keep v1
    spec, second = run_spec(impossible, "digits-rollback", epochs=2)
    states = task_states(second)
    assert str(second.state) == "failed"
    assert states["deploy"] == "success" and states["smoke_test"] == "failed" and states["promote"] == "upstream_failed"
    assert served_version(model_server, "digits-rollback") == "1"
    client = mlflow_client()
    versions = {v.tags["mlspec.version"]: v for v in client.search_model_versions("name='digits-rollback'")}
    assert versions["2"].tags["deployment.outcome"] == "rolled_back"
    assert client.get_model_version_by_alias("digits-rollback", "production").version == versions["1"].version
