"""Fixtures for the object-store tests: a real S3 API (moto server on loopback) and file:// stores.

The moto server (fixtures moto_s3 / moto_endpoint, tests/fixtures/moto_s3.py) runs once per session;
every test gets its own bucket, so tests never see each other's objects. The Airflow connection is
given as an AIRFLOW_CONN_* environment variable, which Airflow reads without a metadata database.
MLSPEC_HOME (fixture mlspec_home) and closed_port come from tests/fixtures too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.moto_s3 import MotoS3, aws_connection_json

from mlspec.storage import ModelStore, open_store
from mlspec.storage.s3 import S3Store

CONN_ID = "moto_s3"


@pytest.fixture
def s3_conn(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow AWS connection id pointing at the moto server."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", aws_connection_json(moto_endpoint))
    # Nothing ambient may leak in or send traffic elsewhere (instance metadata, profiles).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return CONN_ID


@pytest.fixture
def aws_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define another Airflow AWS connection: aws_connection(conn_id, endpoint, **extra) -> conn_id."""

    def define(conn_id: str, endpoint: str, **extra: Any) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", aws_connection_json(endpoint, **extra))
        return conn_id

    return define


@pytest.fixture
def s3_client(moto_s3: MotoS3) -> Any:
    """A plain boto3 client on the moto server, to set up and inspect buckets behind the store's back."""
    return moto_s3.client()


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
