"""The server speaks the Open Inference Protocol: health, metadata, inference, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.fixtures.server_testkit import (
    classifier_onnx,
    classifier_signature,
    identity_onnx,
    identity_signature,
    load,
    predict_direct,
    publish,
)


@pytest.fixture
def served(server, publish_classifier):
    """A server with model `digits` version 1 loaded; returns (server, client)."""
    client = server.client(timeout=30)
    response = load(client, "digits", publish_classifier("digits", 1), "1")
    assert response.status_code == 200, response.text
    yield server, client
    client.close()


@pytest.fixture
def openapi(contracts_dir: Path) -> dict:
    import yaml

    path = contracts_dir / "kserve" / "rest_predict_v2.yaml"
    if not path.exists():
        pytest.skip(f"contract file {path} is missing (set MLSPEC_CONTRACTS)")
    return yaml.safe_load(path.read_text())


def _validate(openapi: dict, schema_name: str, payload) -> None:
    import jsonschema

    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    jsonschema.validate(payload, schema)


def test_health_and_server_metadata(served):
    server, client = served
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    metadata = client.get("/v2").json()
    assert metadata["name"] == "mlspec"
    assert metadata["extensions"] == ["model_repository"]
    assert client.get("/v2/").json() == metadata


def test_model_metadata_describes_the_served_version(served):
    _, client = served
    for path in ("/v2/models/digits", "/v2/models/digits/versions/1"):
        response = client.get(path)
        assert response.status_code == 200
        metadata = response.json()
        assert metadata["name"] == "digits"
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "onnxruntime"
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
        assert metadata["parameters"]["served_version"] == "1"
    assert client.get("/v2/models/digits/ready").status_code == 200
    assert client.get("/v2/models/digits/versions/1/ready").status_code == 200


def test_responses_match_the_protocol_contract(served, openapi):
    _, client = served
    _validate(openapi, "metadata_server_response", client.get("/v2").json())
    _validate(openapi, "metadata_model_response", client.get("/v2/models/digits").json())
    _validate(openapi, "metadata_model_response", client.get("/v2/models/digits/versions/1").json())
    body = {
        "id": "42",
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.25] * 64}],
        "outputs": [{"name": "probabilities"}],
    }
    _validate(openapi, "inference_request", body)
    _validate(openapi, "inference_response", client.post("/v2/models/digits/infer", json=body).json())
    for error in (
        client.get("/v2/models/cifar").json(),
        client.post("/v2/models/digits/infer", json={"inputs": []}).json(),
    ):
        _validate(openapi, "metadata_model_error_response", error)
        _validate(openapi, "inference_error_response", error)


def test_tritonclient_gets_the_same_predictions_as_onnxruntime(served):
    import tritonclient.http as triton

    server, _ = served
    x = np.random.default_rng(7).normal(size=(5, 64)).astype(np.float32)
    expected = predict_direct(classifier_onnx(1), x)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
        assert client.get_server_metadata()["name"] == "mlspec"
        assert client.get_model_metadata("digits")["inputs"][0]["name"] == "input"

        # tritonclient's default: binary tensors both ways.
        binary_input = triton.InferInput("input", list(x.shape), "FP32")
        binary_input.set_data_from_numpy(x)
        result = client.infer("digits", [binary_input], request_id="binary-1")
        assert result.get_response()["id"] == "binary-1"
        assert result.get_response()["model_version"] == "1"
        np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)

        # Plain JSON tensors both ways, through the versioned URL.
        json_input = triton.InferInput("input", list(x.shape), "FP32")
        json_input.set_data_from_numpy(x, binary_data=False)
        wanted = [triton.InferRequestedOutput("probabilities", binary_data=False)]
        result = client.infer("digits", [json_input], model_version="1", outputs=wanted, request_id="json-1")
        assert "data" in result.get_output("probabilities")
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=0, atol=0)
        assert result.as_numpy("probabilities").argmax(axis=1).tolist() == expected.argmax(axis=1).tolist()

        # Errors reach the client with the server's message.
        wrong = triton.InferInput("pixels", list(x.shape), "FP32")
        wrong.set_data_from_numpy(x)
        with pytest.raises(triton.InferenceServerException, match="no input named 'pixels'"):
            client.infer("digits", [wrong])
    finally:
        client.close()


def test_nested_data_and_fp64_input_are_accepted(served):
    _, client = served
    x = np.random.default_rng(3).normal(size=(2, 64))
    body = {
        "id": "nested",
        "inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP64", "data": x.tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    response = client.post("/v2/models/digits/infer", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["id"] == "nested" and payload["model_name"] == "digits"
    output = payload["outputs"][0]
    assert output["datatype"] == "FP32" and output["shape"] == [2, 10]
    got = np.asarray(output["data"], dtype=np.float32).reshape(2, 10)
    np.testing.assert_array_equal(got, predict_direct(classifier_onnx(1), x.astype(np.float32)))


def test_every_datatype_round_trips(server, store_root):
    import tritonclient.http as triton

    uri = publish(store_root, "ident", identity_onnx(), identity_signature(), "run-ident")
    http = server.client(timeout=30)
    assert load(http, "ident", uri).status_code == 200
    values = {
        "f64": np.array([[1.5, -2.25], [1e300, 0.0]], dtype=np.float64),
        "i32": np.array([[1, -2], [2**31 - 1, 0]], dtype=np.int32),
        "i64": np.array([[2**40, -1], [7, 2**62]], dtype=np.int64),
        "flag": np.array([[True, False], [False, True]]),
    }
    datatypes = {"f64": "FP64", "i32": "INT32", "i64": "INT64", "flag": "BOOL"}

    body = {
        "inputs": [
            {"name": f"{n}_in", "shape": [2, 2], "datatype": datatypes[n], "data": v.reshape(-1).tolist()}
            for n, v in values.items()
        ]
    }
    response = http.post("/v2/models/ident/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    for name, value in values.items():
        assert outputs[f"{name}_out"]["datatype"] == datatypes[name]
        np.testing.assert_array_equal(np.asarray(outputs[f"{name}_out"]["data"]).reshape(2, 2), value)

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        for binary in (True, False):
            inputs = []
            for name, value in values.items():
                tensor = triton.InferInput(f"{name}_in", [2, 2], datatypes[name])
                tensor.set_data_from_numpy(value, binary_data=binary)
                inputs.append(tensor)
            wanted = [triton.InferRequestedOutput(f"{n}_out", binary_data=binary) for n in values]
            result = client.infer("ident", inputs, outputs=wanted)
            for name, value in values.items():
                np.testing.assert_array_equal(result.as_numpy(f"{name}_out"), value)
    finally:
        client.close()
    # INT32 data fed to an INT64 input is converted to the model's type.
    body["inputs"][2]["datatype"] = "INT32"
    body["inputs"][2]["data"] = [1, 2, 3, 4]
    response = http.post("/v2/models/ident/infer", json={**body, "outputs": [{"name": "i64_out"}]})
    assert response.status_code == 200, response.text
    expected = {"name": "i64_out", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}
    assert response.json()["outputs"] == [expected]
    # ... but fractions are never silently truncated into an integer input.
    body["inputs"][2]["datatype"] = "FP64"
    response = http.post("/v2/models/ident/infer", json=body)
    assert response.status_code == 400
    assert "is INT64; FP64 data cannot be converted" in response.json()["error"]
    http.close()


def _infer_body(**overrides) -> dict:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}
    tensor.update(overrides)
    return {"inputs": [tensor]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_infer_body(name="pixels"), "no input named 'pixels'"),
        (_infer_body(shape=[1, 63], data=[0.5] * 63), "has shape [-1, 64]"),
        (_infer_body(shape=[2, 64]), "needs 128 values"),
        (_infer_body(datatype="FP128"), "datatype 'FP128' is not supported"),
        (_infer_body(datatype="INT32"), "cannot hold non-integer numbers"),
        (_infer_body(datatype="BOOL", data=[1] * 64), "BOOL cannot hold values of kind 'i'"),
        (_infer_body(data=["a"] * 64), "cannot hold strings"),
        ({"inputs": []}, "non-empty 'inputs'"),
        ({"inputs": _infer_body()["inputs"], "outputs": [{"name": "logits"}]}, "no output named 'logits'"),
    ],
)
def test_bad_requests_answer_400_with_an_error(served, body, fragment):
    _, client = served
    response = client.post("/v2/models/digits/infer", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_malformed_json_answers_400(served):
    _, client = served
    headers = {"content-type": "application/json"}
    response = client.post("/v2/models/digits/infer", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_inconsistent_binary_bodies_answer_400(served):
    _, client = served
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}
    header = json.dumps({"inputs": [tensor]}).encode()
    raw = np.zeros(64, dtype=np.float32).tobytes()
    cases = [
        (header + raw, str(len(header) + 1000), "does not fit a body"),
        (header + raw[:-4], str(len(header)), "binary_data_size 256 does not fit"),
        (header + raw + b"\0", str(len(header)), "1 bytes of binary data no input claims"),
    ]
    for body, length, fragment in cases:
        response = client.post(
            "/v2/models/digits/infer", content=body, headers={"Inference-Header-Content-Length": length}
        )
        assert response.status_code == 400
        assert fragment in response.json()["error"]
    headers = {"Inference-Header-Content-Length": str(len(header))}
    response = client.post("/v2/models/digits/infer", content=header + raw, headers=headers)
    assert response.status_code == 200, response.text


def test_unknown_model_or_version_answers_404(served):
    _, client = served
    for method, path in [
        ("GET", "/v2/models/cifar"),
        ("GET", "/v2/models/cifar/ready"),
        ("POST", "/v2/models/cifar/infer"),
        ("GET", "/v2/models/digits/versions/9"),
        ("POST", "/v2/models/digits/versions/9/infer"),
        ("GET", "/v2/nowhere"),
    ]:
        response = client.request(method, path, json=_infer_body() if method == "POST" else None)
        assert response.status_code == 404, path
        assert response.json()["error"], path


def test_known_model_without_a_ready_version_answers_503(server, store_root):
    client = server.client(timeout=30)
    uri = publish(store_root, "broken", b"not an onnx model", classifier_signature(), "run-broken")
    response = load(client, "broken", uri)
    assert response.status_code == 400
    assert "onnxruntime refused model.onnx" in response.json()["error"]
    for method, path in [
        ("GET", "/v2/models/broken"),
        ("GET", "/v2/models/broken/ready"),
        ("GET", "/v2/models/broken/versions/1/ready"),
        ("POST", "/v2/models/broken/infer"),
    ]:
        response = client.request(method, path, json=_infer_body() if method == "POST" else None)
        assert response.status_code == 503, path
        assert "onnxruntime refused" in response.json()["error"], path
    # Readiness is per model: one model that cannot answer leaves the server live and ready.
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    index = client.post("/v2/repository/index").json()
    assert index == [
        {
            "name": "broken",
            "version": "1",
            "state": "UNAVAILABLE",
            "reason": index[0]["reason"],
            "traffic_percent": 0,
            "shadow_percent": 0,
        }
    ]
    assert "onnxruntime refused" in index[0]["reason"]
    client.close()


def test_errors_from_the_repository_api_are_json(served):
    server, client = served
    assert client.post("/v2/repository/models/digits/load", content=b"[1]").status_code == 400
    no_uri = load(client, "digits", version="5")
    assert no_uri.status_code == 400 and "give parameters.storage_uri" in no_uri.json()["error"]
    missing = load(client, "digits", server.repository.get("digits").storage_uri[: -len("/1")] + "/2", "2")
    assert missing.status_code == 400 and "does not exist" in missing.json()["error"]
    unknown = client.post("/v2/repository/models/cifar/unload")
    assert unknown.status_code == 404 and "cifar" in unknown.json()["error"]
    body = json.dumps({"parameters": {"version": "7"}})
    wrong_version = client.post("/v2/repository/models/digits/unload", content=body)
    assert wrong_version.status_code == 404 and "no version '7'" in wrong_version.json()["error"]
