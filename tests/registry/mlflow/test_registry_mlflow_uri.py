"""Where MLflow lives: the embedded SQLite default and Airflow connections in their common shapes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_connection import display_uri, resolve_connection
from mlspec.registry.mlflow_registry import MlflowRegistry

CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    for name in CREDENTIAL_VARS:
        # setenv first so that monkeypatch restores the original state after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_embedded_default_is_sqlite_under_mlspec_home(tmp_path: Path) -> None:
    uri = resolve_connection(None).tracking_uri
    db = tmp_path / "home" / "mlflow" / "mlflow.db"
    assert uri == f"sqlite:///{db.resolve()}"
    assert (tmp_path / "home" / "mlflow" / "artifacts").is_dir()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"conn_type": "http", "host": "127.0.0.1", "port": 5000, "schema": "http"}, "http://127.0.0.1:5000"),
        ({"host": "mlflow.example.com", "schema": "https"}, "https://mlflow.example.com"),
        ({"conn_type": "http", "host": "mlflow.internal", "port": 8080}, "http://mlflow.internal:8080"),
        ({"conn_type": "https", "host": "mlflow.internal"}, "https://mlflow.internal"),
        ({"conn_type": "http", "host": "http://mlflow:5000"}, "http://mlflow:5000"),
        ({"conn_type": "http", "host": "https://mlflow.example.com/ml/"}, "https://mlflow.example.com/ml"),
        ({"conn_type": "http", "host": "http://mlflow", "port": 5001}, "http://mlflow:5001"),
    ],
)
def test_connection_shapes(monkeypatch: pytest.MonkeyPatch, fields: dict, expected: str) -> None:
    set_connection(monkeypatch, "mlflow_x", **fields)
    assert resolve_connection("mlflow_x").tracking_uri == expected


def test_credentials_go_to_the_connection_not_the_environment_nor_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_connection(
        monkeypatch, "mlflow_auth", conn_type="http", host="mlflow.internal", port=5000,
        login="alice", password="s3cret-pass-word", extra={"token": "tok-987654321"},
    )
    environment = dict(os.environ)
    with caplog.at_level(logging.DEBUG):
        connection = resolve_connection("mlflow_auth")
    assert connection.tracking_uri == "http://mlflow.internal:5000"
    assert (connection.username, connection.password, connection.token) == ("alice", "s3cret-pass-word", "tok-987654321")
    creds = connection.host_creds(connection.tracking_uri)
    assert (creds.username, creds.password, creds.token) == ("alice", "s3cret-pass-word", "tok-987654321")
    assert dict(os.environ) == environment
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "mlflow.internal:5000" in logged
    assert "s3cret-pass-word" not in logged and "tok-987654321" not in logged
    assert "s3cret-pass-word" not in repr(connection) and "tok-987654321" not in repr(connection)


def test_credentials_in_a_host_url_leave_the_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlflow_url_auth", host="https://bob:pw-in-url@mlflow.example.com")
    connection = resolve_connection("mlflow_url_auth")
    assert connection.tracking_uri == "https://mlflow.example.com"
    assert (connection.username, connection.password) == ("bob", "pw-in-url")
    assert not any(os.environ.get(name) for name in CREDENTIAL_VARS)
    assert display_uri("https://bob:pw@mlflow.example.com:8443/x") == "https://mlflow.example.com:8443/x"


def test_the_environment_still_signs_in_where_the_connection_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlflow_plain", conn_type="http", host="mlflow.internal", port=5000)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "set-by-the-platform")
    connection = resolve_connection("mlflow_plain")
    assert not connection.has_credentials
    assert connection.host_creds(connection.tracking_uri).token == "set-by-the-platform"


def test_missing_connection_is_a_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_MLFLOW", raising=False)
    with pytest.raises(RegistryError, match="no_such_mlflow") as info:
        resolve_connection("no_such_mlflow")
    assert "embedded" in str(info.value)


def test_connection_without_host_is_a_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlflow_nohost", conn_type="http", port=5000)
    with pytest.raises(RegistryError, match="has no host"):
        resolve_connection("mlflow_nohost")


def test_non_http_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "mlflow_ftp", conn_type="http", host="ftp://mlflow.example.com")
    with pytest.raises(RegistryError, match="'ftp'"):
        resolve_connection("mlflow_ftp")


def test_registry_construction_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    # An undefined connection only fails when the registry is used, not when a DAG file builds it.
    registry = MlflowRegistry("not_defined_anywhere")
    assert registry.backend == "mlflow"
    with pytest.raises(RegistryError, match="not_defined_anywhere"):
        registry.find("digits", 1)
