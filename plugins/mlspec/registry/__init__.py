"""Model registries behind one interface: MLflow (embedded SQLite or a server) and Kubeflow Model Registry,
one descriptor each in the table of mlspec.registry.backends."""

from __future__ import annotations

from mlspec.registry.backends import backend_named
from mlspec.registry.base import ModelRegistry, RegistrationRequest, RegistryEntry

__all__ = ["ModelRegistry", "RegistrationRequest", "RegistryEntry", "open_registry"]


def open_registry(backend: str, connection_id: str | None) -> ModelRegistry:
    """The registry a spec's `registry.backend` and `registry.connection` name (mlspec.registry.backends)."""
    return backend_named(backend).open(connection_id)

