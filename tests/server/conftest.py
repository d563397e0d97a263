"""Fixtures for the model server tests (the shared ones are in tests/fixtures/model_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.moto_s3 import moto_s3_server


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here gets its own MLSPEC_HOME, and no MLSPEC_SERVER_URL from the environment."""
    monkeypatch.delenv("MLSPEC_SERVER_URL", raising=False)


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server for this test, and boto3's standard environment (what the server reads) set to it."""
    with moto_s3_server() as s3:
        for name, value in s3.boto3_environment().items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(name, raising=False)
        yield s3.endpoint
