"""The deploy side sends the model server's token: from MLSPEC_SERVER_TOKEN, else the token file the
server generated in its state folder under MLSPEC_HOME; the smoke test sends the same token, and
`serving.auth: token` is valid for the local platform."""

from __future__ import annotations

import numpy as np
import pytest
from tests.fixtures.paths import SPECS
from tests.fixtures.server_testkit import TEST_TOKEN, classifier_onnx, classifier_signature, predict_direct

from mlspec.errors import ServingError
from mlspec.serving.local import LocalServing
from mlspec.serving.smoke_test import endpoint_token, run_smoke_test


def test_deploy_sends_the_token_from_the_environment(server, publish_classifier):
    serving = LocalServing(server.url)
    assert serving.token == TEST_TOKEN
    assert serving.deploy("digits", 1, publish_classifier("digits", 1)).version == 1


def test_deploy_reads_the_token_file_the_server_wrote_under_mlspec_home(
    start_server, publish_classifier, monkeypatch
):
    from mlspec.home import server_state_dir

    monkeypatch.delenv("MLSPEC_SERVER_TOKEN")
    server = start_server(server_state_dir())  # as `make serve` runs it: MLSPEC_HOME/server
    generated = (server_state_dir() / "token").read_text().strip()
    serving = LocalServing(server.url)
    assert serving.token == generated
    deployment = serving.deploy("digits", 1, publish_classifier("digits", 1))
    serving.rollback(deployment)


def test_a_wrong_or_missing_token_says_how_to_fix_it(server, publish_classifier, monkeypatch):
    uri = publish_classifier("digits", 1)
    with pytest.raises(ServingError, match="HTTP 401.*not the server's: set MLSPEC_SERVER_TOKEN"):
        LocalServing(server.url, token="wrong").deploy("digits", 1, uri)
    monkeypatch.delenv("MLSPEC_SERVER_TOKEN")
    with pytest.raises(ServingError, match="no token was found: set MLSPEC_SERVER_TOKEN"):
        LocalServing(server.url).deploy("digits", 1, uri)


def _spec(auth: str):
    from mlspec.spec import load_spec_text

    text = (SPECS / "digits.yaml").read_text().replace("  auth: none", f"  auth: {auth}", 1)
    return load_spec_text(text, "digits.yaml")


def test_auth_token_is_valid_for_the_local_platform_and_the_smoke_test_sends_the_server_token(
    start_server, publish_classifier, tmp_path, monkeypatch
):
    from mlspec.server.app import ServerConfig

    spec = _spec("token")
    assert spec.serving.platform == "local" and spec.serving.auth == "token"
    server = start_server(config=ServerConfig(auth="token", allow_roots=(tmp_path.as_uri(),)))
    LocalServing(server.url).deploy("digits", 1, publish_classifier("digits", 1))
    token = endpoint_token(spec)
    assert token == TEST_TOKEN
    x = np.random.default_rng(2).normal(size=(4, 64)).astype(np.float32)
    expected = {"probabilities": np.eye(10)[predict_direct(classifier_onnx(1), x).argmax(axis=1)]}
    arguments = dict(
        endpoint_url=server.url,
        model_name="digits",
        version=1,
        x=x,
        expected=expected,
        signature=classifier_signature(),
        min_agreement=0.99,
        max_latency_ms=60_000,
    )
    assert run_smoke_test(**arguments, token=token)["passed"]
    with pytest.raises(ServingError, match="401"):
        run_smoke_test(**arguments, token=None)
    monkeypatch.delenv("MLSPEC_SERVER_TOKEN")
    with pytest.raises(ServingError, match="no model server token was found"):
        endpoint_token(spec)
    assert endpoint_token(_spec("none")) is None
