"""Fixtures of the operations and audit-trail tests: one MLSPEC_HOME per module (the embedded MLflow
registry is migrated once), a model server per test."""

from __future__ import annotations

import pytest
from tests.fixtures.server_testkit import TEST_TOKEN
from tests.operators.operations_testkit import start_server


@pytest.fixture(scope="module")
def ops_home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("ops-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSPEC_HOME", str(home))
        mp.setenv("MLSPEC_SERVER_TOKEN", TEST_TOKEN)
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLSPEC_LOCK_TIMEOUT_S"):
            mp.delenv(name, raising=False)
        yield home


@pytest.fixture
def ops_server(ops_home, monkeypatch):
    running = start_server(ops_home, monkeypatch)
    yield running
    running.stop()
