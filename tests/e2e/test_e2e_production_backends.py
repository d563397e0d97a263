"""The walking skeleton on production backends: specs/digits.yaml through real Airflow with an S3 store
(moto server), an MLflow tracking server (`mlflow server`) and local serving (`mlspec serve` reading
s3:// itself), the training data read from S3 too. Every result is checked from the outside: S3
through boto3, MLflow through MlflowClient on the server's URL, the endpoint through tritonclient."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import yaml
from tests.e2e.e2e_testkit import served_version, task_states, xcom
from tests.fixtures.mlflow_server import MlflowServer, mlflow_tracking_server
from tests.fixtures.mlspec_serve import model_server_process
from tests.fixtures.moto_s3 import MotoS3, moto_s3_server
from tests.fixtures.paths import SPECS

pytestmark = pytest.mark.e2e

S3_CONN = "e2e_s3"
MLFLOW_CONN = "e2e_mlflow"
# String labels, unlike builtin:digits' "0".."9": the class names prove the data came from S3.
CLASS_NAMES = [f"d{i}" for i in range(10)]


@dataclass(frozen=True)
class Backends:
    s3: MotoS3
    bucket: str
    mlflow: MlflowServer
    server_url: str
    data_uri: str


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    """moto S3 with a bucket and the digits data in it, an MLflow server, a model server that reads S3;
    the Airflow connections to the first two come from AIRFLOW_CONN_* as a platform engineer sets them."""
    from sklearn.datasets import load_digits

    with pytest.MonkeyPatch.context() as mp, moto_s3_server() as s3:
        # Nothing ambient may reach the code under test or send traffic elsewhere.
        for name in (
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "MLFLOW_TRACKING_URI",
            "MLFLOW_REGISTRY_URI",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_TOKEN",
        ):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv(f"AIRFLOW_CONN_{S3_CONN.upper()}", s3.connection_json())

        bucket = f"mlspec-e2e-{uuid.uuid4().hex[:8]}"
        client = s3.client()
        client.create_bucket(Bucket=bucket)
        digits = load_digits()
        buffer = io.BytesIO()
        np.savez(buffer, x=digits.data.astype(np.float32), y=np.array(CLASS_NAMES)[digits.target])
        client.put_object(Bucket=bucket, Key="data/digits.npz", Body=buffer.getvalue())

        with mlflow_tracking_server(tmp_path_factory.mktemp("mlflow-server")) as mlflow:
            mp.setenv(f"AIRFLOW_CONN_{MLFLOW_CONN.upper()}", mlflow.connection_json())
            state = tmp_path_factory.mktemp("s3-model-server")
            with model_server_process(state, s3.boto3_environment()) as server_url:
                yield Backends(s3, bucket, mlflow, server_url, f"s3://{bucket}/data/digits.npz")


def production_spec(name: str, b: Backends) -> str:
    """specs/digits.yaml as a platform deploys it: S3 data and store, an MLflow server, a model server."""
    spec = yaml.safe_load((SPECS / "digits.yaml").read_text())
    spec["metadata"]["name"] = name
    spec["data"]["source"] = b.data_uri
    spec["data"]["connection"] = S3_CONN
    spec["storage"] = {"uri": f"s3://{b.bucket}/mlspec", "connection": S3_CONN}
    spec["registry"] = {"backend": "mlflow", "connection": MLFLOW_CONN}
    spec["serving"] = {**spec["serving"], "platform": "local", "url": b.server_url}
    return yaml.safe_dump(spec, sort_keys=False)


def s3_objects(b: Backends, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` (relative key -> bytes), read with plain boto3."""
    client = b.s3.client()
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=b.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    return {key[len(prefix) :]: client.get_object(Bucket=b.bucket, Key=key)["Body"].read() for key in keys}


def test_digits_on_s3_mlflow_server_and_local_serving(
    run_spec, backends, model_server, tmp_path, monkeypatch
):
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    # The production model server is the configured one: the only URL the admin token goes to.
    monkeypatch.setenv("MLSPEC_SERVER_URL", backends.server_url)
    name = f"digits-prod-{uuid.uuid4().hex[:6]}"
    spec, dag_run = run_spec(production_spec(name, backends), name, epochs=2)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert spec.storage.uri == f"s3://{backends.bucket}/mlspec"

    # The data came from S3: its string labels are the class names, all of its rows were split.
    prepared = xcom(dag_run, "prepare_data")
    assert prepared["class_names"] == CLASS_NAMES
    assert sum(prepared["samples"].values()) == 1797

    # The published version in S3: its files, the claim, and a manifest whose hashes match the bytes.
    version = s3_objects(backends, f"mlspec/{name}/1/")
    published = {
        "model.onnx", "signature.json", "metrics.json", "input_schema.json", "output_schema.json",
        "confusion_matrix.png", "training_curves.png", "model_card.md",
        "splits.parquet", "profile.json", "lineage.json",  # no drift.json: nothing was production yet (issue 14)
    }
    assert set(version) == published | {"manifest.json", ".mlspec-claim.json"}
    manifest = json.loads(version["manifest.json"])
    assert set(manifest["files"]) == published
    for file_name, digest in manifest["files"].items():
        assert hashlib.sha256(version[file_name]).hexdigest() == digest, file_name
    assert manifest["spec_hash"] == spec.spec_hash
    metrics = json.loads(version["metrics.json"])
    assert metrics["accuracy"] >= 0.90 and len(metrics["confusion_matrix"]) == 10
    assert json.loads(version["signature.json"])["class_names"] == CLASS_NAMES
    assert xcom(dag_run, "store")["uri"] == f"s3://{backends.bucket}/mlspec/{name}/1"

    # The run's artifacts live under the run-scoped prefix, and the hand-over URIs point at them.
    from mlspec.storage.base import run_key

    run_prefix = f"mlspec/{name}/runs/{run_key(dag_run.run_id)}/"
    artifacts = s3_objects(backends, run_prefix)
    expected = {
        "data/dataset.npz",
        "train/model.keras",
        "evaluate/metrics.json",
        "export/model.onnx",
        "export/signature.json",
        "export/input_schema.json",
        "export/output_schema.json",
        "evaluate/plots/confusion_matrix.png",
        "evaluate/plots/training_curves.png",
        "summary.json",
    }
    assert expected <= set(artifacts), sorted(artifacts)
    # ...and nothing of this run was written beside it.
    everything = set(s3_objects(backends, f"mlspec/{name}/runs/"))
    assert everything == {f"{run_key(dag_run.run_id)}/{key}" for key in artifacts}
    assert prepared["data_uri"] == f"s3://{backends.bucket}/{run_prefix}data/dataset.npz"
    assert artifacts["export/model.onnx"] == version["model.onnx"]

    # The MLflow server holds the training run with one point per epoch...
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=backends.mlflow.url, registry_uri=backends.mlflow.url)
    trained = xcom(dag_run, "train")
    assert 1 <= trained["steps_run"] <= 2
    run = client.get_run(trained["tracking_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["data_source"] == backends.data_uri
    assert run.data.tags["airflow_run_id"] == dag_run.run_id and run.data.tags["dag_id"] == name
    for metric in ("loss", "val_loss"):
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, metric))
        assert len(steps) == trained["steps_run"], metric
        assert steps == list(range(steps[0], steps[0] + len(steps))), metric

    # ...and the registered model: one version with its tags, linked to that run, alias production on it.
    (mv,) = client.search_model_versions(f"name='{name}'")
    tags = mv.tags
    assert mv.source == f"s3://{backends.bucket}/mlspec/{name}/1"
    assert mv.run_id == run.info.run_id
    assert tags["mlspec.version"] == "1"
    assert tags["model_uri"] == f"s3://{backends.bucket}/mlspec/{name}/1/model.onnx"
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert float(tags[f"metric.{metric}"]) == pytest.approx(metrics[metric], abs=1e-4), metric
    assert tags["spec_hash"] == spec.spec_hash and tags["data_source"] == backends.data_uri
    assert tags["dag_id"] == name and tags["run_id"] == dag_run.run_id
    assert tags["storage_connection"] == S3_CONN
    assert tags["deployment.outcome"] == "smoke_test_passed"
    assert tags["deployment.endpoint_url"].startswith(backends.server_url)
    assert client.get_model_version_by_alias(name, "production").version == mv.version

    # Nothing fell back to the embedded defaults.
    assert not (home / "models").exists() and not (home / "mlflow" / "mlflow.db").exists()
    assert served_version(model_server, name) is None

    # The spec's model server loaded the version from S3 and answers a real v2 client like onnxruntime does.
    import tritonclient.http as triton

    from mlspec.ml.data import Dataset
    from mlspec.ml.onnx_export import onnx_predict

    assert served_version(backends.server_url, name) == "1"
    dataset = Dataset.from_npz_bytes(artifacts["data/dataset.npz"])
    # The whole test split, so the endpoint's accuracy can be held against what evaluate measured.
    x, y = dataset.x_test.astype(np.float32), dataset.y_test
    triton_client = triton.InferenceServerClient(url=backends.server_url.removeprefix("http://"))
    assert triton_client.is_model_ready(name)
    infer_input = triton.InferInput("input", list(x.shape), "FP32")
    infer_input.set_data_from_numpy(x)
    answer = triton_client.infer(name, [infer_input])
    probabilities, labels = answer.as_numpy("probabilities"), answer.as_numpy("label")
    offline = onnx_predict(version["model.onnx"], x)
    assert probabilities.shape == offline["probabilities"].shape == (len(x), 10)
    assert np.array_equal(labels, offline["label"])
    np.testing.assert_allclose(probabilities, offline["probabilities"], atol=1e-5)
    # Keras (evaluate) and ONNX agree to 1e-4, so at most a near-tie sample may flip.
    assert (labels == y).mean() == pytest.approx(metrics["accuracy"], abs=1.5 / len(y))
    summary = json.loads(artifacts["summary.json"])
    assert summary["stored_uri"] == f"s3://{backends.bucket}/mlspec/{name}/1"
    assert summary["example"]["label"] == CLASS_NAMES[int(y[0])]


def test_a_losing_challenger_keeps_production_with_an_mlflow_server(run_spec, backends, model_server, tmp_path, monkeypatch):
    """The champion gate against the MLflow server and the S3 store: the champion's files come from S3,
    verified by the sha256 the server's registry holds; a challenger that must win by 0.5 cannot."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "mlspec-home"))
    monkeypatch.setenv("MLSPEC_SERVER_URL", backends.server_url)
    name = f"digits-gate-{uuid.uuid4().hex[:6]}"
    _, first = run_spec(production_spec(name, backends), name, epochs=2)
    assert str(first.state) == "success", task_states(first)
    strict = yaml.safe_load(production_spec(name, backends))
    strict["evaluation"]["champion"] = {"metric": "accuracy", "min_delta": 0.5}
    _, second = run_spec(yaml.safe_dump(strict, sort_keys=False), name, epochs=2)
    states = task_states(second)
    assert str(second.state) == "success", states
    assert states["deploy"] == states["smoke_test"] == states["promote"] == "skipped"
    verdict = xcom(second, "evaluate")["champion"]
    # The same model again: a tie (the same score) or a gain below min_delta; either way the champion holds.
    assert verdict["decision"] in ("champion_holds", "tie") and verdict["champion_version"] == 1
    assert verdict["scored_on"] == "this run's test split"

    client = MlflowClient(tracking_uri=backends.mlflow.url, registry_uri=backends.mlflow.url)
    assert client.get_model_version_by_alias(name, "production").tags["mlspec.version"] == "1"
    (candidate,) = [v for v in client.search_model_versions(f"name='{name}'") if v.tags["mlspec.version"] == "2"]
    assert candidate.tags["mlspec.state"] == "candidate" and candidate.tags["champion.decision"] == verdict["decision"]
    assert served_version(backends.server_url, name) == "1"
