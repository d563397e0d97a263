"""Hostile requests: bounded bodies, element counts and batches; malformed structures answer 400 and
keep the connection usable; only finite numbers are accepted and answered.

Issue 9, "Broken" 2 (a 200 MB JSON request took the server to 13.1 GB RSS) and the server items
of "Weak" (500 and a reset connection for malformed structures; NaN, Infinity and 1e400 accepted).
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from tests.fixtures.server_testkit import TEST_TOKEN, load

ROW = [0.5] * 64


@pytest.fixture
def served(server, publish_classifier):
    with server.client() as client:
        assert load(client, "digits", publish_classifier("digits", 1), "1").status_code == 200
        yield server, client


def _raw_exchange(port: int, requests: list[bytes], *, timeout: float = 30) -> list[bytes]:
    """Send each request on ONE connection, reading each response before the next; returns the
    responses (status line + headers + body) as read; raises if the server closes the connection."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        stream = sock.makefile("rb")
        for request in requests:
            sock.sendall(request)
            status = stream.readline()
            assert status, "the server closed the connection"
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", 0)))
            answers.append(status + body)
    return answers


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


GOOD = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}).encode()


def _tensor(**overrides) -> dict:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROW}
    tensor.update(overrides)
    return tensor


MALFORMED = {
    "outputs[].parameters as a list": {
        "inputs": [_tensor()],
        "outputs": [{"name": "probabilities", "parameters": []}],
    },
    "a 100-dimension shape": {"inputs": [_tensor(shape=[1] * 100, data=[0.5])]},
    "inputs[].parameters as a list": {"inputs": [_tensor(parameters=[1])]},
    "request parameters as a string": {"inputs": [_tensor()], "parameters": "binary"},
    "binary_data_output not a bool": {"inputs": [_tensor()], "parameters": {"binary_data_output": "yes"}},
    "a huge dimension": {"inputs": [_tensor(shape=[2**62, 0], data=[])]},
    "a name that is not a string": {"inputs": [_tensor(name=7)]},
    "a datatype that is a list": {"inputs": [_tensor(datatype=["FP32"])]},
    "a shape of floats": {"inputs": [_tensor(shape=[1.0, 64.0])]},
    "null in the data": {"inputs": [_tensor(data=[None] * 64)]},
    "strings that look like numbers": {"inputs": [_tensor(data=["0.5"] * 64)]},
}


DEEP = (
    b'{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": '
    + b"[" * 1000
    + b"]" * 1000
    + b"}]}"
)


@pytest.mark.parametrize("case", [*sorted(MALFORMED), "data nested 1000 deep", "an array 100000 deep"])
def test_malformed_structures_answer_400_and_keep_the_connection(served, case):
    server, _ = served
    if case == "data nested 1000 deep":
        bad = DEEP
    elif case == "an array 100000 deep":
        bad = b"[" * 100000 + b"]" * 100000
    else:
        bad = json.dumps(MALFORMED[case]).encode()
    first, second = _raw_exchange(
        server.port, [_post("/v2/models/digits/infer", bad), _post("/v2/models/digits/infer", GOOD)]
    )
    assert first.startswith(b"HTTP/1.1 400"), first[:300]
    assert json.loads(first.split(b"\r\n", 1)[1])["error"]
    assert second.startswith(b"HTTP/1.1 200"), second[:300]


def test_the_binary_extension_with_a_huge_shape_answers_400(served):
    server, _ = served
    tensor = {"name": "input", "shape": [2**62, 0], "datatype": "FP32", "parameters": {"binary_data_size": 0}}
    header = json.dumps({"inputs": [tensor]}).encode()
    request = _post("/v2/models/digits/infer", header, f"Inference-Header-Content-Length: {len(header)}\r\n")
    first, second = _raw_exchange(server.port, [request, _post("/v2/models/digits/infer", GOOD)])
    assert first.startswith(b"HTTP/1.1 400") and b"limit" in first
    assert second.startswith(b"HTTP/1.1 200")


def test_an_internal_error_answers_json_500_and_keeps_the_connection(served, monkeypatch):
    server, _ = served

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.repository, "index", broken)
    index = (
        f"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_TOKEN}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    first, second = _raw_exchange(server.port, [index, _post("/v2/models/digits/infer", GOOD)])
    assert first.startswith(b"HTTP/1.1 500") and b"RuntimeError: boom" in first
    assert second.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("literal", "fragment"),
    [
        ("NaN", "not valid JSON: unexpected character, expected a JSON value: line 1 column"),
        ("NaN", "; JSON has no NaN or Infinity; send null for a missing value"),
        ("Infinity", "not valid JSON"),
        ("-Infinity", "JSON has no NaN or Infinity; send null for a missing value"),
        ("1e400", "not valid JSON"),
        ("1e39", "too large for FP32"),
    ],
)
def test_non_finite_numbers_are_refused(served, literal, fragment):
    _, client = served
    data = ", ".join(["0.5"] * 63 + [literal])
    body = '{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [%s]}]}' % data
    response = client.post(
        "/v2/models/digits/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_non_finite_binary_inputs_are_refused(served):
    _, client = served
    values = np.full((1, 64), 0.5, dtype=np.float32)
    values[0, 3] = np.nan
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}
    header = json.dumps({"inputs": [tensor]}).encode()
    response = client.post(
        "/v2/models/digits/infer",
        content=header + values.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400 and "NaN" in response.json()["error"]


def test_non_finite_outputs_are_written_as_null():
    from mlspec.server.tensors import InferRequest, encode_response

    outputs = {"y": np.array([[np.nan, np.inf, 1.5]], dtype=np.float32)}
    body, _ = encode_response(
        model_name="m", model_version="1", request=InferRequest(None, {}, None), outputs=outputs
    )
    assert json.loads(body, parse_constant=lambda c: pytest.fail(f"bare {c} in the answer"))["outputs"][0][
        "data"
    ] == [
        None,
        None,
        1.5,
    ]


def test_a_body_over_the_limit_is_refused_before_it_is_read(start_server, publish_classifier, tmp_path):
    from mlspec.server.app import ServerConfig
    from mlspec.server.tensors import Limits

    config = ServerConfig(allow_roots=(tmp_path.as_uri(),), limits=Limits(max_body_bytes=1024 * 1024))
    server = start_server(config=config)
    with server.client() as client:
        assert load(client, "digits", publish_classifier("digits", 1)).status_code == 200
    # 200 MB announced, 1 KB sent: the answer comes without the rest of the body.
    head = (
        "POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + b"[" * 1024)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit of 1048576 bytes" in answer

    # A chunked body (no Content-Length) is cut off as soon as it passes the limit.
    def chunks():
        for _ in range(64):
            yield b" " * 65536

    with server.client() as client:
        response = client.post("/v2/models/digits/infer", content=chunks())
        assert response.status_code == 413


def test_batch_and_element_limits(start_server, publish_classifier, tmp_path):
    from mlspec.server.app import ServerConfig
    from mlspec.server.tensors import Limits

    config = ServerConfig(
        allow_roots=(tmp_path.as_uri(),), limits=Limits(max_elements=64 * 100, max_batch=50)
    )
    server = start_server(config=config)
    with server.client() as client:
        assert load(client, "digits", publish_classifier("digits", 1)).status_code == 200
        ok = client.post("/v2/models/digits/infer", json={"inputs": [_tensor(shape=[50, 64], data=ROW * 50)]})
        assert ok.status_code == 200, ok.text
        batch = client.post(
            "/v2/models/digits/infer", json={"inputs": [_tensor(shape=[51, 64], data=ROW * 51)]}
        )
        assert (
            batch.status_code == 400 and "batch 51 exceeds the server's limit of 50" in batch.json()["error"]
        )
        # Elements: refused from the shape, before the data is converted, and from the body itself.
        wide = client.post("/v2/models/digits/infer", json={"inputs": [_tensor(shape=[1, 7000], data=[0.5])]})
        assert wide.status_code == 400 and "limit of 6400" in wide.json()["error"]
        flood = client.post(
            "/v2/models/digits/infer", json={"inputs": [_tensor(shape=[1, 64], data=[0] * 20000)]}
        )
        assert flood.status_code == 400 and "limit of 6400 values" in flood.json()["error"]


def _large(values: str, rows: int = 400, datatype: str = "FP32", nested: bool = False) -> bytes:
    """A JSON request over SIMD_MIN_BYTES: `rows` rows of 64 values, the last value replaced by `values`."""
    row = ", ".join(["0.25"] * 64)
    data = ", ".join([f"[{row}]" if nested else row] * (rows - 1))
    last = ", ".join(["0.25"] * 63 + [values])
    data += f", [{last}]" if nested else f", {last}"
    return (
        '{"id": "big", "inputs": [{"name": "input", "shape": [%d, 64], "datatype": "%s", "data": [%s]}]}'
        % (rows, datatype, data)
    ).encode()


@pytest.mark.parametrize(
    ("last", "datatype", "nested", "fragment"),
    [
        ("0.5", "FP32", False, None),
        ("0.5", "FP32", True, None),
        ("7", "INT64", False, "cannot hold non-integer numbers"),
        ("NaN", "FP32", False, "not valid JSON"),
        ("1e400", "FP32", False, "not valid JSON"),
        ("1e39", "FP32", False, "too large for FP32"),
        ("true", "FP32", False, None),
        ("null", "FP32", False, "cannot hold mixed, null"),
        ('"0.5"', "FP32", False, "cannot hold strings"),
        ("[0.5]", "FP32", False, "ragged"),
        ("[0.5, 0.5]", "FP32", False, "ragged"),
    ],
)
def test_large_json_bodies_are_read_exactly_like_small_ones(last, datatype, nested, fragment):
    """Bodies over SIMD_MIN_BYTES take simdjson's path straight to float64; what they accept and refuse,
    and the values, are those of the orjson path."""
    from mlspec.server import tensors
    from mlspec.server.errors import BadRequest

    body = _large(last, datatype=datatype, nested=nested)
    assert len(body) >= tensors.SIMD_MIN_BYTES
    if fragment is not None:
        with pytest.raises(BadRequest, match=fragment.replace("(", r"\(")):
            tensors.parse_infer_request(body, None)
        return
    parsed = tensors.parse_infer_request(body, None)
    assert parsed.id == "big"
    values = parsed.inputs["input"]
    expected = np.full((400, 64), 0.25, dtype=np.float32)
    expected[-1, -1] = 1.0 if last == "true" else float(last)
    if nested:  # [[...], [...]]: also right, through orjson
        assert tensors._loads_large(body) is None
    assert values.shape == (400, 64) and values.dtype == np.float32
    np.testing.assert_array_equal(values, expected)


def test_large_json_bodies_are_read_without_simdjson_too(monkeypatch):
    from mlspec.server import tensors

    body = _large("0.5")
    with_simd = tensors.parse_infer_request(body, None).inputs["input"]
    monkeypatch.setattr(tensors, "simdjson", None)
    assert tensors._loads_large(body) is None
    np.testing.assert_array_equal(tensors.parse_infer_request(body, None).inputs["input"], with_simd)
