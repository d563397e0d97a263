"""Two MLflow connections with different credentials in one process: each client signs in with its own,
none reaches os.environ, and a third connection without credentials is not signed in with theirs."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.mlflow_server import MlflowServer, mlflow_tracking_server
from tests.registry.mlflow.mlflow_testkit import SigningInProxy, signing_in_proxy

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.tracking import TrainingTracker

ALICE = "Basic " + base64.b64encode(b"alice:pw-alice").decode()
BOB = "Bearer tok-bob"


@pytest.fixture(scope="module")
def artifact_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A tracking server that takes artifacts through its own API, so uploads must sign in too."""
    with mlflow_tracking_server(tmp_path_factory.mktemp("mlflow-signed-in"), artifacts_through_server=True) as server:
        yield server


@pytest.fixture
def proxies(artifact_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SigningInProxy, SigningInProxy]]:
    """Alice's gateway (basic auth) and Bob's (a bearer token) in front of the same server, and the Airflow
    connections to them: mlflow_alice, mlflow_bob, and mlflow_nobody (Alice's gateway, no credentials)."""
    with signing_in_proxy(artifact_server.url, ALICE) as alice, signing_in_proxy(artifact_server.url, BOB) as bob:
        def define(conn_id: str, port: int, **fields: object) -> None:
            connection = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", **fields}
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))

        define("mlflow_alice", alice.port, login="alice", password="pw-alice")
        define("mlflow_bob", bob.port, extra={"token": "tok-bob"})
        define("mlflow_nobody", alice.port)
        yield alice, bob


def test_each_connection_signs_in_with_its_own_credentials_and_the_environment_is_untouched(
    proxies, publisher, unique_name, mlspec_home: Path
) -> None:
    alice_proxy, bob_proxy = proxies
    environment = dict(os.environ)
    alice, bob = MlflowRegistry("mlflow_alice"), MlflowRegistry("mlflow_bob")
    names = unique_name("alice"), unique_name("bob")
    run_id = "manual__2026-03-03T00:00:00+00:00"

    # interleaved, as tasks of one process (dag.test()) would run them
    with TrainingTracker("mlflow_bob", experiment=names[1], run_name=run_id,
                         tags={"dag_id": names[1], "airflow_run_id": run_id}) as tracker:
        tracker.log_metrics({"accuracy": 0.9})
    first = alice.register(publisher.request(publisher.publish(names[0], run_id)))
    second = bob.register(publisher.request(publisher.publish(names[1], run_id)))
    alice.set_production(names[0], first.version, reason="test")

    assert (first.created, second.created) == (True, True)
    assert alice.production_version(names[0]) == first.version
    assert bob.find(names[1], second.version) is not None
    assert dict(os.environ) == environment
    assert not {k for k in os.environ if k.startswith("MLFLOW_TRACKING_")}
    for proxy in (alice_proxy, bob_proxy):
        assert proxy.seen and not proxy.refused, proxy.refused[:3]
        # the logged model's files went through the server's artifact API, signed in as well
        assert any("/mlflow-artifacts/artifacts/" in path and method == "PUT" for method, path, _ in proxy.seen)

    # a connection without credentials gets none of theirs, even in the same process after them
    with pytest.raises(RegistryError, match="mlflow_nobody"):
        MlflowRegistry("mlflow_nobody").latest_version(names[0])
    assert alice_proxy.refused and {auth for _, _, auth in alice_proxy.refused} == {""}


def test_a_connection_with_a_token_never_sends_the_workers_own_login(
    proxies, publisher, unique_name, mlspec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow prefers a username/password over a token: the login a platform engineer exported for another
    server must not reach the connection's server in place of the connection's own token."""
    _, bob_proxy = proxies
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "envuser")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "envpw")
    name = unique_name("bob-env")

    version = MlflowRegistry("mlflow_bob").register(
        publisher.request(publisher.publish(name, "manual__2026-03-03T00:00:00+00:00")))

    assert version.created
    assert bob_proxy.seen and not bob_proxy.refused, bob_proxy.refused[:3]
    assert {auth for _, _, auth in bob_proxy.seen} == {BOB}


def test_a_connection_credential_replaces_every_kind_the_environment_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlspec.registry.mlflow_connection import MlflowConnection

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "envuser")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "envpw")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "env-token")
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "some_auth_provider")
    monkeypatch.setenv("MLFLOW_TRACKING_AWS_SIGV4", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    uri = "http://mlflow.example:5000"

    by_token = MlflowConnection(uri, "conn", token="conn-token").host_creds(uri)
    by_login = MlflowConnection(uri, "conn", username="alice", password="pw").host_creds(uri)
    without = MlflowConnection(uri, "conn").host_creds(uri)

    assert (by_token.username, by_token.password, by_token.token) == (None, None, "conn-token")
    assert (by_login.username, by_login.password, by_login.token) == ("alice", "pw", None)
    for creds in (by_token, by_login):
        assert (creds.auth, creds.aws_sigv4) == (None, False)
        assert creds.ignore_tls_verification  # TLS settings are not credentials: they still apply
    # a connection that says nothing keeps what the worker's environment configures
    assert (without.username, without.token, without.auth) == ("envuser", "env-token", "some_auth_provider")
