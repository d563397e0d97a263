"""The compose stack's S3 path, run for real against a local S3 server (moto) instead of MinIO.

Only the endpoint changes (http://minio:9000 -> the moto server on 127.0.0.1): the bucket script
runs with minio-init's arguments and environment, the model is published through the minio_s3
connection as compose defines it, and `mlspec serve` runs with the model-server's command and
environment, then loads and serves that model from S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import compose_stack
import httpx
import numpy as np
import pytest
from tests.fixtures.ports import free_port

MODEL = "digits-s3"
FEATURES, CLASSES = 64, 10


def service_env(service: dict, endpoint: str) -> dict[str, str]:
    """The service's compose environment on top of a clean one, pointed at `endpoint`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    env.update(compose_stack.environment(service))
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    env["AWS_ENDPOINT_URL"] = endpoint
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def host_argv(service: dict) -> list[str]:
    """The service's command with its programs and mounted files mapped to this machine."""
    bin_dir = Path(sys.executable).parent
    argv = compose_stack.command(service)
    mapped = []
    for part in argv:
        if part in ("python", "mlspec"):
            mapped.append(str(bin_dir / part) if part == "mlspec" else sys.executable)
        elif part.startswith("/") and (host := compose_stack.host_path_for(service, part)) is not None:
            mapped.append(str(host))
        else:
            mapped.append(part)
    return mapped


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    index = argv.index(name)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def classifier_onnx(seed: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[numpy_helper.from_array(rng.normal(size=(FEATURES, CLASSES)).astype(np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def signature() -> dict:
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, CLASSES]}],
        "opset": 17,
    }


@pytest.fixture(scope="module")
def buckets_created(services, moto_endpoint) -> list[str]:
    """minio-init's command, run as compose would run it (twice: it must be idempotent)."""
    service = services["minio-init"]
    argv, env = host_argv(service), service_env(service, moto_endpoint)
    for attempt in (1, 2):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"attempt {attempt}: {result.stdout}{result.stderr}"
    assert "exists" in result.stderr  # the second run found them
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    return sorted(b["Name"] for b in client.list_buckets()["Buckets"])


def test_bucket_init_creates_the_buckets_on_an_s3_server(buckets_created, services, specs):
    assert "models" in buckets_created and "mlflow" in buckets_created
    assert specs["digits-s3.yaml"].storage.uri.split("/")[2] in buckets_created


def test_bucket_init_fails_clearly_when_no_s3_server_answers(services, moto_endpoint):
    service = services["minio-init"]
    argv = replace_option(host_argv(service), "--wait", "1")
    env = service_env(service, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "did not answer" in result.stderr


@pytest.fixture
def model_server(services, moto_endpoint, tmp_path) -> Iterator[str]:
    """`mlspec serve` with the compose command (host, port, state dir mapped) and environment."""
    service = services["model-server"]
    port = free_port()
    argv = replace_option(host_argv(service), "--host", "127.0.0.1")
    argv = replace_option(argv, "--port", str(port))
    argv = replace_option(argv, "--state-dir", str(tmp_path / "state"))
    env = service_env(service, moto_endpoint)
    env["MLSPEC_HOME"] = str(tmp_path / "server-home")  # the compose path is a volume there
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "model server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_model_published_through_the_compose_connection_is_served_by_the_compose_model_server(
    buckets_created, services, specs, moto_endpoint, model_server, monkeypatch
):
    from mlspec.storage import open_store

    spec = specs["digits-s3.yaml"]
    # The minio_s3 connection exactly as compose defines it, with only the endpoint moved.
    conn = json.loads(
        compose_stack.airflow_connections(services["airflow-scheduler"])[spec.storage.connection]
    )
    assert conn["extra"]["endpoint_url"] == "http://minio:9000"
    conn["extra"]["endpoint_url"] = moto_endpoint
    monkeypatch.setenv(f"AIRFLOW_CONN_{spec.storage.connection.upper()}", json.dumps(conn))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)

    model = classifier_onnx(seed=7)
    store = open_store(spec.storage.uri, spec.storage.connection)
    published = store.publish_version(
        MODEL,
        {"model.onnx": model, "signature.json": json.dumps(signature()).encode()},
        run_id="compose-test",
    )
    assert published.uri == f"{spec.storage.uri}/{MODEL}/{published.version}"

    # Airflow's services and the model server share the admin token compose gives them.
    token = compose_stack.environment(services["airflow-scheduler"])["MLSPEC_SERVER_TOKEN"]
    assert token == compose_stack.environment(services["model-server"])["MLSPEC_SERVER_TOKEN"]
    response = httpx.post(
        f"{model_server}/v2/repository/models/{MODEL}/load",
        json={"parameters": {"storage_uri": published.uri, "version": str(published.version)}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["served_version"] == str(published.version)

    import onnxruntime

    x = np.random.default_rng(1).normal(size=(5, FEATURES)).astype(np.float32)
    expected = onnxruntime.InferenceSession(model).run(None, {"input": x})[0]
    answer = httpx.post(
        f"{model_server}/v2/models/{MODEL}/infer",
        json={
            "inputs": [
                {"name": "input", "datatype": "FP32", "shape": [5, FEATURES], "data": x.ravel().tolist()}
            ]
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    output = answer.json()["outputs"][0]
    got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
