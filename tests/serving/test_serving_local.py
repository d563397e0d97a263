"""LocalServing against a real mlspec model server: deploy, roll back, and clear errors."""

from __future__ import annotations

import socket

import httpx
import numpy as np
import pytest
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature, predict_direct, publish

from mlspec.errors import ServingError
from mlspec.serving.base import Deployment
from mlspec.serving.local import LocalServing

X = np.random.default_rng(21).normal(size=(3, 64)).astype(np.float32)


def _served(url: str) -> tuple[int, str, np.ndarray]:
    """(status, model_version, probabilities) of the unversioned infer endpoint."""
    tensor = {"name": "input", "shape": [3, 64], "datatype": "FP32", "data": X.reshape(-1).tolist()}
    body = {"inputs": [tensor]}
    response = httpx.post(f"{url}/v2/models/digits/infer", json=body, timeout=30)
    if response.status_code != 200:
        return response.status_code, "", np.empty(0)
    payload = response.json()
    return 200, payload["model_version"], np.asarray(payload["outputs"][0]["data"], np.float32).reshape(3, 10)


def test_deploy_then_roll_back_to_the_previous_version(server, publish_classifier):
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    serving = LocalServing(server.url)

    first = serving.deploy("digits", 1, v1)
    assert first == Deployment("local", "digits", 1, server.url, "digits", None, None)
    status, version, answer = _served(server.url)
    assert (status, version) == (200, "1")
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(1), X))

    second = serving.deploy("digits", 2, v2)
    assert second.previous_version == 1
    assert second.previous_state == {"storage_uri": v1}
    assert Deployment.from_xcom(second.to_xcom()) == second
    status, version, answer = _served(server.url)
    assert (status, version) == (200, "2")
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(2), X))

    serving.rollback(second)
    status, version, answer = _served(server.url)
    assert (status, version) == (200, "1")
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(1), X))
    assert httpx.get(f"{server.url}/v2/models/digits/versions/2/ready").status_code == 404
    assert httpx.get(f"{server.url}/v2/models/digits").json()["versions"] == ["1"]
    serving.rollback(second)  # a retried rollback finds the work done
    assert _served(server.url)[1] == "1"


def test_rolling_back_a_first_deployment_removes_the_model(server, publish_classifier):
    serving = LocalServing(server.url)
    deployment = serving.deploy("digits", 1, publish_classifier("digits", 1))
    assert _served(server.url)[0] == 200
    serving.rollback(deployment)
    assert _served(server.url)[0] == 404
    serving.rollback(deployment)  # idempotent


def test_a_retried_deploy_still_knows_what_served_before(server, publish_classifier):
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    serving = LocalServing(server.url)
    serving.deploy("digits", 1, v1)
    serving.deploy("digits", 2, v2)
    retried = serving.deploy("digits", 2, v2)
    assert (retried.previous_version, retried.previous_state) == (1, {"storage_uri": v1})
    serving.rollback(retried)
    assert _served(server.url)[1] == "1"


def test_a_failed_load_raises_and_keeps_the_old_version(server, publish_classifier, store_root):
    serving = LocalServing(server.url)
    serving.deploy("digits", 1, publish_classifier("digits", 1))
    broken = publish(store_root, "digits", b"not onnx", classifier_signature(), "run-broken")
    with pytest.raises(ServingError) as caught:
        serving.deploy("digits", 2, broken)
    message = str(caught.value)
    assert "could not load digits version 2" in message and "version 1 keeps serving" in message
    assert _served(server.url)[1] == "1"


def test_rollback_reloads_the_previous_version_from_storage_when_the_server_lost_it(
    start_server, publish_classifier
):
    v1, v2 = publish_classifier("digits", 1), publish_classifier("digits", 2)
    first = start_server()
    deployment = LocalServing(first.url).deploy("digits", 2, v2)
    assert deployment.previous_version is None
    # A deployment that replaced version 1 on a server that has since restarted without state.
    replaced = Deployment("local", "digits", 2, first.url, "digits", 1, {"storage_uri": v1})
    LocalServing(first.url).rollback(replaced)
    status, version, answer = _served(first.url)
    assert (status, version) == (200, "1")
    np.testing.assert_array_equal(answer, predict_direct(classifier_onnx(1), X))


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_deploy_without_a_server_says_how_to_start_one(monkeypatch, publish_classifier):
    url = f"http://127.0.0.1:{_unused_port()}"
    monkeypatch.setenv("MLSPEC_SERVER_URL", url)
    serving = LocalServing()  # the default URL comes from MLSPEC_SERVER_URL
    assert serving.base_url == url
    with pytest.raises(ServingError) as caught:
        serving.deploy("digits", 1, publish_classifier("digits", 1))
    message = str(caught.value)
    assert f"no model server answers at {url}" in message
    assert "`mlspec serve`" in message and "`make serve`" in message
    with pytest.raises(ServingError, match="no model server answers"):
        serving.rollback(Deployment("local", "digits", 1, url, "digits"))


def test_a_full_server_fails_the_deploy_at_once_with_its_limit(start_server, publish_classifier, tmp_path):
    """A server at its --max-models answers 507, which lasts until a model is unloaded: the deploy says so at
    once instead of waiting it out like a 409 (a load in flight)."""
    import time

    from mlspec.server.app import ServerConfig

    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(),), max_models=1))
    serving = LocalServing(server.url)
    serving.deploy("digits", 1, publish_classifier("digits", 1))

    started = time.monotonic()
    with pytest.raises(ServingError, match=r"limit \(--max-models\)"):
        serving.deploy("iris", 1, publish_classifier("iris", 2))
    assert time.monotonic() - started < 10
