"""The registry backends, one table: what each ``registry.backend`` needs from the spec, how it is linted and
described, what it offers besides the ModelRegistry interface, and how it is opened.

Everything outside mlspec.registry asks a backend's descriptor (`backend_of(spec)`) instead of comparing its
name. Adding a backend is one module here (a `ModelRegistry` subclass) and one entry in `BACKENDS`; the
schema's `registry.backend` enum is checked against this table by tests/registry/test_registry_backends.py.

Light on purpose (read at DAG parse time and by lint): a backend module, and its client library, is
imported only when a registry is opened. (At module level it would also be a circle: a backend module imports
mlspec.registry.base, and the mlspec.registry package imports this table.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlspec.errors import RegistryError
from mlspec.registry.base import ModelRegistry


@dataclass(frozen=True)
class RegistryBackend:
    """One registry backend. Connection arguments are `registry.connection` (an Airflow connection id or None)."""

    name: str  # the value of registry.backend
    title: str  # in sentences: "MLflow", "the Kubeflow Model Registry"
    open: Callable[[str | None], ModelRegistry]  # for tasks and the CLI's changes: may create an embedded store
    # For pages and status reads: never creates, migrates or repairs anything (an object with the read methods).
    open_for_reading: Callable[[str | None], Any]
    next_step: str  # what to check when it refused or could not be reached
    # Without a connection it keeps its records on this machine (under MLSPEC_HOME); False: it needs one.
    embedded: bool = False
    # Its connection is an MLflow tracking server: training runs go there when tracking.connection is left out.
    tracks_training: bool = False
    # Rules on the `registry` mapping the schema cannot express: (its mapping, problem(path, message)) -> problems.
    lint: Callable[[Mapping, Callable[..., Any]], Iterable[Any]] | None = None
    # Imports its client library ahead of a deadline (a cold import of MLflow takes seconds); None: nothing to do.
    preload: Callable[[], None] | None = None
    # (connection id, tracking run id) -> the parameters that run logged; None: it links no training runs.
    training_run_params: Callable[[str | None, str], dict[str, str]] | None = None


# -- mlflow: the embedded SQLite file, or an MLflow tracking server ----------------------------------------
def _open_mlflow(connection_id: str | None) -> ModelRegistry:
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(connection_id)


def _read_mlflow(connection_id: str | None) -> Any:
    from mlspec.registry.mlflow_registry import open_mlflow_for_reading

    return open_mlflow_for_reading(connection_id)


def _preload_mlflow() -> None:
    import mlflow  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401


def _mlflow_run_params(connection_id: str | None, run_id: str) -> dict[str, str]:
    from mlspec.registry.mlflow_registry import MlflowRegistry

    registry = MlflowRegistry(connection_id, create=False)  # reads only: never creates the embedded database
    return dict(registry.client.get_run(run_id).data.params or {})


MLFLOW = RegistryBackend(
    name="mlflow",
    title="MLflow",
    open=_open_mlflow,
    open_for_reading=_read_mlflow,
    next_step=(
        "check that the MLflow server is up and reachable from the worker and that registry.connection points at "
        "it (without a connection: that MLSPEC_HOME/mlflow is writable)"
    ),
    embedded=True,
    tracks_training=True,
    preload=_preload_mlflow,
    training_run_params=_mlflow_run_params,
)


# -- kubeflow: the Kubeflow Model Registry's REST API -----------------------------------------------------
def _open_kubeflow(connection_id: str | None) -> ModelRegistry:
    from mlspec.registry.kubeflow import KubeflowRegistry

    return KubeflowRegistry(connection_id)


def _lint_kubeflow(registry: Mapping, problem: Callable[..., Any]) -> Iterable[Any]:
    if not registry.get("connection"):
        yield problem(("registry", "connection"), "the kubeflow backend needs a connection id (host, port, token)")


KUBEFLOW = RegistryBackend(
    name="kubeflow",
    title="the Kubeflow Model Registry",
    open=_open_kubeflow,
    open_for_reading=_open_kubeflow,  # a REST API: reading creates nothing
    next_step=(
        "check that the Kubeflow Model Registry is up and reachable from the worker and that registry.connection "
        "(host, port, token) points at it"
    ),
    lint=_lint_kubeflow,
)


BACKENDS: dict[str, RegistryBackend] = {backend.name: backend for backend in (MLFLOW, KUBEFLOW)}


def backend_named(name: str) -> RegistryBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise RegistryError(f"unknown registry backend {name!r}; known: {', '.join(BACKENDS)}") from None


def backend_of(spec: Any) -> RegistryBackend:
    """The descriptor of a spec's registry.backend: a ModelSpec or a resolved spec mapping."""
    registry = spec["registry"] if isinstance(spec, Mapping) else spec.registry
    return backend_named(registry["backend"] if isinstance(registry, Mapping) else registry.backend)
