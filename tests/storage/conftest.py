"""Fixtures for the object-store tests: a real S3 API (moto server on loopback) and file:// stores.

The moto server runs once per session; every test gets its own bucket, so tests never see each
other's objects. The Airflow connection is given as an AIRFLOW_CONN_* environment variable, which
Airflow reads without a metadata database.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlspec.storage import ModelStore, open_store
from mlspec.storage.s3 import S3Store

CONN_ID = "moto_s3"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def mlspec_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mlspec-home"
    monkeypatch.setenv("MLSPEC_HOME", str(home))
    return home


def _aws_connection_json(endpoint: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture
def s3_conn(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow AWS connection id pointing at the moto server."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", _aws_connection_json(moto_endpoint))
    # Nothing ambient may leak in or send traffic elsewhere (instance metadata, profiles).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return CONN_ID


@pytest.fixture
def aws_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define another Airflow AWS connection: aws_connection(conn_id, endpoint, **extra) -> conn_id."""

    def define(conn_id: str, endpoint: str, **extra: Any) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", _aws_connection_json(endpoint, **extra))
        return conn_id

    return define


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    return free_port()


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, to set up and inspect buckets behind the store's back."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = f"mlspec-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_conn: str, bucket: str, mlspec_home: Path) -> S3Store:
    store = open_store(f"s3://{bucket}/models", s3_conn)
    assert isinstance(store, S3Store)
    return store


@pytest.fixture
def file_store(mlspec_home: Path) -> ModelStore:
    return open_store("file://models")


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ModelStore:
    """The same behaviour is expected of every backend."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def count_writes(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModelStore], list[str]]:
    """Spy on a store's write_bytes: returns the list of keys written from now on."""

    def install(target: ModelStore) -> list[str]:
        written: list[str] = []
        original = target.write_bytes

        def spy(key: str, data: bytes) -> str:
            written.append(key)
            return original(key, data)

        monkeypatch.setattr(target, "write_bytes", spy)
        return written

    return install
