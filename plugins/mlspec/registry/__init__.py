"""Model registries behind one interface: MLflow (embedded SQLite or a server) and Kubeflow Model Registry."""

from __future__ import annotations

from mlspec.registry.base import ModelRegistry, RegistrationRequest, RegistryEntry

__all__ = ["ModelRegistry", "RegistrationRequest", "RegistryEntry", "open_registry"]


def open_registry(backend: str, connection_id: str | None) -> ModelRegistry:
    if backend == "mlflow":
        from mlspec.registry.mlflow_registry import MlflowRegistry

        return MlflowRegistry(connection_id)
    if backend == "kubeflow":
        from mlspec.registry.kubeflow import KubeflowRegistry

        return KubeflowRegistry(connection_id)
    raise ValueError(f"unknown registry backend {backend!r}")
