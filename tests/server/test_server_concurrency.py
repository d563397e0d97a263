"""Inference runs off the event loop: a slow request blocks neither probes nor loads nor other requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tests.fixtures.server_testkit import classifier_onnx, load, predict_direct


class GatedSession:
    """Wraps a real session; `run` waits until the test opens the gate, so a request stays in progress."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.started = threading.Event()
        self.gate = threading.Event()

    def run(self, output_names, feeds):
        self.started.set()
        if not self.gate.wait(timeout=60):
            raise RuntimeError("the test never opened the gate")
        return self.inner.run(output_names, feeds)


def _body(x: np.ndarray) -> dict:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return {"inputs": [tensor]}


def test_a_slow_inference_does_not_block_the_event_loop(server, publish_classifier):
    client = server.client(timeout=30)
    assert load(client, "digits", publish_classifier("digits", 1), "1").status_code == 200
    loaded = server.repository.get("digits", "1")
    gated = GatedSession(loaded.session)
    loaded.session = gated
    x = np.random.default_rng(5).normal(size=(1, 64)).astype(np.float32)

    result: dict = {}

    def slow_request() -> None:
        with server.client(timeout=60) as own:
            result["response"] = own.post("/v2/models/digits/infer", json=_body(x))

    caller = threading.Thread(target=slow_request)
    caller.start()
    try:
        assert gated.started.wait(timeout=30), "the inference never reached the session"
        # The inference is in progress and cannot finish until the gate opens; the server still answers.
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/models/digits").status_code == 200
        # A new version can even be loaded and served meanwhile.
        assert load(client, "digits", publish_classifier("digits", 2), "2").status_code == 200
        assert client.get("/v2/models/digits").json()["parameters"]["served_version"] == "2"
        assert "response" not in result and caller.is_alive()
    finally:
        gated.gate.set()
        caller.join(timeout=60)
    response = result["response"]
    assert response.status_code == 200
    # The request kept the version it started with.
    assert response.json()["model_version"] == "1"
    got = np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32).reshape(1, 10)
    np.testing.assert_array_equal(got, predict_direct(classifier_onnx(1), x))
    client.close()


def test_concurrent_requests_each_get_their_own_answer(server, publish_classifier):
    with server.client(timeout=30) as client:
        assert load(client, "digits", publish_classifier("digits", 1), "1").status_code == 200
    samples = np.random.default_rng(8).normal(size=(16, 1, 64)).astype(np.float32)

    def ask(x: np.ndarray) -> np.ndarray:
        with server.client(timeout=30) as own:
            response = own.post("/v2/models/digits/infer", json=_body(x))
            assert response.status_code == 200, response.text
            return np.asarray(response.json()["outputs"][0]["data"], dtype=np.float32)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, samples))
    # One sample per request: compare with onnxruntime run on the same single samples.
    expected = np.stack([predict_direct(classifier_onnx(1), x)[0] for x in samples])
    np.testing.assert_array_equal(np.stack(answers), expected)
