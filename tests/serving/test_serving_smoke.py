"""The smoke test against a real mlspec model server: pass, and each way it fails."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature, predict_direct

from mlspec.errors import ServingError
from mlspec.serving.local import LocalServing
from mlspec.serving.smoke_test import SmokeTestFailed, run_smoke_test

SAMPLES = 8


@pytest.fixture
def deployed(server, publish_classifier):
    LocalServing(server.url).deploy("digits", 1, publish_classifier("digits", 1))
    x = np.random.default_rng(4).normal(size=(SAMPLES, 64)).astype(np.float32)
    expected = predict_direct(classifier_onnx(1), x).argmax(axis=1)
    return server, x, expected


def _run(server, x, expected, **overrides):
    arguments = {
        "endpoint_url": server.url,
        "model_name": "digits",
        "version": 1,
        "x": x,
        # The offline answers by output name, as onnx_export.onnx_predict gives them. The test
        # model answers probabilities only (no label output), so the labels are compared by argmax.
        "expected": {"probabilities": np.eye(10)[expected]},
        "signature": classifier_signature(),
        "min_agreement": 0.99,
        "max_latency_ms": 60_000,
    }
    arguments.update(overrides)
    return run_smoke_test(**arguments)


def test_a_correct_endpoint_passes(deployed):
    server, x, expected = deployed
    assert len(set(expected.tolist())) > 1  # the labels vary, so agreement means something
    report = _run(server, x, expected)
    assert report["passed"] is True and report["problems"] == []
    assert report["samples"] == SAMPLES and report["answered"] == SAMPLES
    assert report["agreement"] == 1.0
    assert 0 < report["p50_ms"] <= report["p95_ms"]
    json.dumps(report)  # goes to XCom as is
    # The unversioned endpoint (as on KServe) passes too.
    assert _run(server, x, expected, version=None)["passed"] is True


def test_wrong_answers_fail_on_agreement(deployed):
    server, x, expected = deployed
    wrong = (expected + 1) % 10  # every label differs from what the model predicts
    with pytest.raises(SmokeTestFailed) as caught:
        _run(server, x, wrong)
    report = caught.value.report
    assert report["passed"] is False and report["agreement"] == 0.0
    assert "agreement 0 is below min_agreement 0.99 (0 of 8 answers match" in str(caught.value)
    assert isinstance(caught.value, ServingError)

    # Half right: the number in the message is the measured share.
    half = expected.copy()
    half[: SAMPLES // 2] = wrong[: SAMPLES // 2]
    with pytest.raises(SmokeTestFailed, match=r"agreement 0\.5 is below min_agreement 0\.99"):
        _run(server, x, half)
    assert _run(server, x, half, min_agreement=0.5)["agreement"] == 0.5


def test_slow_answers_fail_on_latency(deployed):
    server, x, expected = deployed
    with pytest.raises(SmokeTestFailed) as caught:
        _run(server, x, expected, max_latency_ms=1e-6)
    report = caught.value.report
    assert report["agreement"] == 1.0  # only latency failed
    assert report["problems"] == [f"p95 latency {report['p95_ms']:.1f} ms exceeds max_latency_ms 1e-06"]
    assert f"p95 latency {report['p95_ms']:.1f} ms exceeds max_latency_ms 1e-06" in str(caught.value)


def test_a_signature_the_endpoint_does_not_match_fails(deployed):
    server, x, expected = deployed
    signature = classifier_signature()
    signature["outputs"][0]["shape"] = [-1, 12]
    signature["inputs"][0]["datatype"] = "FP64"
    with pytest.raises(SmokeTestFailed) as caught:
        _run(server, x, expected, signature=signature)
    problems = caught.value.report["problems"]
    assert "input 'input' is FP32 at the endpoint but FP64 in the signature" in problems
    expected_problem = (
        "output 'probabilities' has shape [-1, 10] at the endpoint but [-1, 12] in the signature"
    )
    assert expected_problem in problems

    signature = classifier_signature()
    signature["inputs"][0]["name"] = "pixels"
    with pytest.raises(SmokeTestFailed) as caught:
        _run(server, x, expected, signature=signature)
    message = str(caught.value)
    assert "no input named 'pixels'" in message
    assert "8 of 8 requests failed: sample 0: HTTP 400" in message


def test_a_model_that_is_not_served_fails_fast(deployed):
    server, x, expected = deployed
    with pytest.raises(SmokeTestFailed) as caught:
        _run(server, x, expected, version=7)
    assert "the model is not ready" in str(caught.value) and "404" in str(caught.value)
    assert caught.value.report["answered"] == 0


def test_an_unreachable_endpoint_fails(deployed):
    server, x, expected = deployed
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(SmokeTestFailed, match="the endpoint did not answer"):
        _run(server, x, expected, endpoint_url=url, timeout_s=5)


def test_the_bearer_token_is_sent(start_server, publish_classifier, store_root):
    from mlspec.server.app import ServerConfig, create_app

    inner = create_app(config=ServerConfig(allow_roots=(store_root.as_uri(),)))
    seen: list[str | None] = []

    async def recording_app(scope, receive, send):
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]).get(b"authorization", b"").decode() or None)
        await inner(scope, receive, send)

    recording_app.state = inner.state  # the test server's handle reads app.state.repository
    server = start_server(app=recording_app)
    LocalServing(server.url).deploy("digits", 1, publish_classifier("digits", 1))
    seen.clear()
    x = np.random.default_rng(9).normal(size=(2, 64)).astype(np.float32)
    expected = predict_direct(classifier_onnx(1), x).argmax(axis=1)
    assert _run(server, x, expected, token="s3cret")["passed"]
    assert seen and set(seen) == {"Bearer s3cret"}
