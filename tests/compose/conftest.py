"""Fixtures for the docker-compose tests: the parsed compose file, every spec in specs/, a moto S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import compose_stack
import pytest
from tests.fixtures.moto_s3 import moto_s3_server


@pytest.fixture(autouse=True)
def _own_mlspec_home(mlspec_home: Path) -> None:
    """Every test here gets its own MLSPEC_HOME."""


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server standing in for MinIO, one per test module (not the session's)."""
    with moto_s3_server() as s3:
        yield s3.endpoint


@pytest.fixture(scope="session")
def compose() -> dict:
    return compose_stack.load()


@pytest.fixture(scope="session")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="session")
def specs() -> dict[str, object]:
    """file name -> ModelSpec for every spec file in specs/ (each must load: `mlspec lint` checks why)."""
    from mlspec.dagbag import spec_files
    from mlspec.spec import load_spec

    return {path.name: load_spec(path) for path in spec_files(compose_stack.SPECS_DIR)}
