"""The registry and tracking backends are tables (mlspec.registry.backends, mlspec.tracking): the schema's enums
are the tables' names, each backend is opened through its own entry, and its lint rules come from it."""

from __future__ import annotations

import pytest

from mlspec.errors import RegistryError
from mlspec.registry import open_registry
from mlspec.registry.backends import BACKENDS, backend_named, backend_of
from mlspec.registry.kubeflow import KubeflowRegistry
from mlspec.registry.mlflow_registry import MlflowRegistry, NothingRegisteredYet
from mlspec.registry.reading import open_for_reading
from mlspec.spec import SpecError, load_spec_text
from mlspec.spec.schema import load_schema
from mlspec.tracking import TRACKING_BACKENDS, NullTracker, TrainingTracker, open_tracker, tracking_connection

PROPERTIES = load_schema()["properties"]

IRIS = """\
apiVersion: mlspec/v1
kind: ModelSpec
metadata: {name: iris}
data: {source: builtin:iris}
model:
  layers:
    - dense: {units: 3, activation: softmax}
"""


def spec_with(extra: str):
    return load_spec_text(IRIS + extra, "s.yaml")


def test_the_schema_backends_are_the_tables():
    assert PROPERTIES["registry"]["properties"]["backend"]["enum"] == list(BACKENDS)
    assert PROPERTIES["tracking"]["properties"]["backend"]["enum"] == list(TRACKING_BACKENDS)
    assert PROPERTIES["registry"]["properties"]["backend"]["default"] in BACKENDS
    assert PROPERTIES["tracking"]["properties"]["backend"]["default"] in TRACKING_BACKENDS


def test_each_backend_is_opened_through_its_own_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path))
    assert isinstance(open_registry("mlflow", None), MlflowRegistry)
    assert isinstance(open_registry("kubeflow", "model_registry"), KubeflowRegistry)
    # reads never create the embedded store: before it exists they answer "nothing yet"
    assert isinstance(open_for_reading("mlflow", None), NothingRegisteredYet)
    assert not (tmp_path / "mlflow" / "mlflow.db").exists()
    with pytest.raises(RegistryError, match="unknown registry backend 'nexus'; known: mlflow, kubeflow"):
        open_registry("nexus", None)


def test_a_backend_lints_what_it_needs():
    with pytest.raises(SpecError) as info:
        spec_with("registry: {backend: kubeflow}\n")
    assert any("the kubeflow backend needs a connection id" in str(p) for p in info.value.problems)
    assert backend_of(spec_with("registry: {backend: kubeflow, connection: model_registry}\n")) is BACKENDS["kubeflow"]


def test_tracking_goes_where_the_table_says():
    mlflow_server = spec_with("registry: {backend: mlflow, connection: mlflow_server}\n")
    kubeflow = spec_with("registry: {backend: kubeflow, connection: model_registry}\n")
    assert tracking_connection(mlflow_server) == "mlflow_server"  # the registry's MLflow takes the runs too
    assert tracking_connection(kubeflow) is None  # the embedded MLflow: Kubeflow tracks no runs
    assert isinstance(open_tracker(mlflow_server, run_name="r", tags={}), TrainingTracker)
    off = spec_with("tracking: {backend: none}\n")
    assert isinstance(open_tracker(off, run_name="r", tags={}), NullTracker)


def test_every_backend_describes_itself():
    for name, backend in BACKENDS.items():
        assert backend_named(name) is backend and backend.title and backend.next_step
    assert [b.name for b in BACKENDS.values() if b.embedded] == ["mlflow"]
