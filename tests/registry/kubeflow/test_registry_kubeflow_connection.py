"""KubeflowRegistry built from an Airflow connection (read lazily through BaseHook.get_connection)."""

from __future__ import annotations

import json

import pytest
from kubeflow_testkit import TOKEN

from mlspec.errors import RegistryError
from mlspec.registry.kubeflow import KubeflowRegistry, connection_settings


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    # Airflow reads AIRFLOW_CONN_<ID> (JSON form) before its metadata database.
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))


def test_connection_with_scheme_in_host_and_token_as_password(fake, make_request, monkeypatch) -> None:
    set_connection(monkeypatch, "mr_password", host="http://127.0.0.1", port=fake.port, password=TOKEN)
    entry = KubeflowRegistry("mr_password").register(make_request())
    assert entry.url.startswith(f"http://127.0.0.1:{fake.port}/api/model_registry/v1/model_versions/")
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_connection_without_scheme_and_token_in_extra(fake, make_request, monkeypatch) -> None:
    set_connection(monkeypatch, "mr_extra", host="127.0.0.1", port=fake.port, extra={"token": TOKEN})
    assert KubeflowRegistry("mr_extra").register(make_request()).created is True
    assert {r.headers.get("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_connection_is_read_on_first_use_not_at_construction(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MR_MISSING", raising=False)
    registry = KubeflowRegistry("mr_missing")  # DAG parsing builds these: no I/O here
    with pytest.raises(RegistryError, match="'mr_missing'"):
        registry.find("digits", 3)


def test_a_wrong_token_in_the_connection_names_the_connection(fake, make_request, monkeypatch) -> None:
    set_connection(monkeypatch, "mr_wrong", host="http://127.0.0.1", port=fake.port, password="not-the-token")
    with pytest.raises(RegistryError) as caught:
        KubeflowRegistry("mr_wrong").register(make_request())
    assert "401" in str(caught.value)
    assert "Airflow connection 'mr_wrong'" in str(caught.value)
    assert "not-the-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected_url"),
    [
        ({"host": "https://mr.example.com"}, "https://mr.example.com"),
        ({"host": "mr.example.com"}, "https://mr.example.com"),
        ({"host": "mr.example.com", "port": 443}, "https://mr.example.com"),
        ({"host": "model-registry.kubeflow", "port": 8080}, "http://model-registry.kubeflow:8080"),
        ({"host": "mr.example.com", "port": 8443, "schema": "https"}, "https://mr.example.com:8443"),
        ({"host": "https://gw.example.com/model-registry/"}, "https://gw.example.com/model-registry"),
        ({"host": "http://mr.example.com:9000"}, "http://mr.example.com:9000"),
    ],
)
def test_connection_settings_base_url(monkeypatch, fields, expected_url) -> None:
    set_connection(monkeypatch, "mr_url", **fields)
    base_url, token, verify = connection_settings("mr_url")
    assert base_url == expected_url
    assert token is None
    assert verify is True


def test_connection_settings_verify_and_missing_host(monkeypatch) -> None:
    tls = {"host": "https://mr.example.com", "password": "p4ssw0rd-token", "extra": {"verify": False}}
    set_connection(monkeypatch, "mr_tls", **tls)
    assert connection_settings("mr_tls") == ("https://mr.example.com", "p4ssw0rd-token", False)
    set_connection(monkeypatch, "mr_nohost", port=8080)
    with pytest.raises(RegistryError, match="has no host"):
        connection_settings("mr_nohost")
