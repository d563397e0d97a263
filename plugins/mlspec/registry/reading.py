"""A registry opened only to read it (the Models page, `mlspec status`): it never creates, migrates or
repairs the embedded MLflow database. Before that database exists (no run has registered anything yet)
every read answers "nothing yet"; creating it is the first task's work, under its lock."""

from __future__ import annotations

from typing import Any

from mlspec.errors import RegistryError
from mlspec.registry.mlflow_embedded import embedded_store_exists
from mlspec.registry.mlflow_registry import MlflowRegistry


class NothingRegisteredYet:
    """The embedded MLflow registry before its database exists: no version, no production, no history."""

    backend = "mlflow"
    connection_id = None

    def production_version(self, model_name: str) -> int | None:
        return None

    def production_history(self, model_name: str) -> list[int]:
        return []

    def production_changes(self, model_name: str) -> list:
        return []

    def latest_version(self, model_name: str) -> int | None:
        return None

    def version_record(self, model_name: str, version: int) -> None:
        return None

    def find(self, model_name: str, version: int) -> None:
        return None

    def list_versions(self, model_name: str) -> list:
        return []

    @property
    def client(self) -> Any:
        raise RegistryError("the embedded MLflow database does not exist yet: nothing has been registered")


def open_for_reading(backend: str, connection_id: str | None) -> Any:
    """The spec's registry for reads only; NothingRegisteredYet when the embedded MLflow has no database."""
    if backend == "mlflow":
        if not connection_id and not embedded_store_exists():
            return NothingRegisteredYet()
        return MlflowRegistry(connection_id, create=False)
    from mlspec.registry import open_registry

    return open_registry(backend, connection_id)
