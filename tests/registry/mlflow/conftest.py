"""Fixtures for the MLflow registry and tracking: real published versions, a real `mlflow server`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fixtures.mlflow_server import MlflowServer
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model

from mlspec.registry.base import RegistrationRequest
from mlspec.storage import PublishedVersion, open_store


@pytest.fixture(scope="module")
def mlspec_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MLSPEC_HOME per test module: the embedded SQLite registry is migrated once, not per test."""
    home = tmp_path_factory.mktemp("mlspec-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLSPEC_HOME", str(home))
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                     "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        yield home


@dataclass
class Publisher:
    """Publishes real versions through mlspec's own store and builds the register task's request."""

    store_uri: str

    def publish(self, name: str, run_id: str, scale: float = 2.0) -> PublishedVersion:
        store = open_store(self.store_uri)
        return store.publish_version(name, {"model.onnx": tiny_onnx_model(scale)}, run_id=run_id)

    def request(self, published: PublishedVersion, **overrides: object) -> RegistrationRequest:
        fields: dict = dict(
            model_name=published.name,
            version=published.version,
            source_uri=published.uri,
            model_uri=f"{published.uri}/model.onnx",
            metrics={"accuracy": 0.9712, "f1": 0.9688},
            data_source="builtin:digits",
            spec_hash="ab12cd34ef56",
            dag_id=published.name,
            run_id=published.run_id,
            onnx_opset=17,
            description=f"{published.name} classifier",
            owner="ml-team",
            files=dict(published.files),
        )
        fields.update(overrides)
        return RegistrationRequest(**fields)


@pytest.fixture(scope="module")
def publisher(mlspec_home: Path) -> Publisher:
    return Publisher((mlspec_home / "models").as_uri())


@pytest.fixture
def client_for() -> Callable[[str], object]:
    """client_for(tracking_uri) -> a plain MlflowClient, to read back what mlspec wrote."""

    def make(tracking_uri: str) -> object:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    return make


# -- the session's `mlflow server` (fixture mlflow_server, tests/fixtures/mlflow_server.py) ------------
@pytest.fixture
def server_connection(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Airflow connection `mlflow_test` (from the environment, as a platform engineer would set it)."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", mlflow_server.connection_json())
    return "mlflow_test"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """DNS-1123 model names unique per test, since a module shares one registry."""

    def make(stem: str) -> str:
        return f"{stem}-{request.node.name.replace('_', '-').lower()}"[:60].rstrip("-")

    return make
