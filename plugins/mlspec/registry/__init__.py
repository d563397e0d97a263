"""Model registries behind one interface: MLflow (embedded SQLite or a server) and Kubeflow Model Registry."""

from __future__ import annotations

import logging

from mlspec.registry.base import ModelRegistry, RegistrationRequest, RegistryEntry

log = logging.getLogger(__name__)

__all__ = ["ModelRegistry", "RegistrationRequest", "RegistryEntry", "open_registry", "record_outcome"]


def open_registry(backend: str, connection_id: str | None) -> ModelRegistry:
    if backend == "mlflow":
        from mlspec.registry.mlflow_registry import MlflowRegistry

        return MlflowRegistry(connection_id)
    if backend == "kubeflow":
        from mlspec.registry.kubeflow import KubeflowRegistry

        return KubeflowRegistry(connection_id)
    raise ValueError(f"unknown registry backend {backend!r}")


def record_outcome(spec, version: int, deployment: dict, outcome: str) -> str:
    """Record a deployment's fate in the spec's registry; returns a note to append when that failed.

    The fate is already decided: a registry problem must not replace that story, nor turn the task
    into a retry that deploys the failed version again.
    """
    from mlspec.errors import MlspecError

    try:
        open_registry(spec.registry.backend, spec.registry.connection).record_deployment(spec.name, version, deployment, outcome)
    except MlspecError as exc:
        log.warning("could not record outcome %r for %s version %d: %s", outcome, spec.name, version, exc)
        return f" The outcome ({outcome}) could not be recorded in the registry: {exc}"
    return ""
