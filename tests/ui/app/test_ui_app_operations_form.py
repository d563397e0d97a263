"""The mlspec_operations trigger form preselects a model that runs on this machine (issue 17: it preselected
cifar10, which needs AWS, Kubeflow and KServe): the first model, by name, whose spec uses built-in or local data,
the embedded registry, a file:// store and the local model server."""

from __future__ import annotations

import shutil

import pytest
from tests.fixtures.paths import SPECS


@pytest.fixture
def specs(tmp_path, monkeypatch):
    folder = tmp_path / "specs"
    folder.mkdir()
    monkeypatch.setenv("MLSPEC_SPEC_CACHE", str(tmp_path / "spec-cache"))
    monkeypatch.delenv("MLSPEC_SPECS_DIR", raising=False)
    return folder


def form_default(folder) -> tuple[str, list]:
    from mlspec.dagbag import compile_specs
    from mlspec.operations_dag import build_operations_dag

    dags = compile_specs(folder)
    dag = build_operations_dag(folder, model_names=list(dags))
    model = dag.params.get_param("model")
    return model.value, list(model.schema["enum"])


def test_the_form_preselects_a_model_that_runs_here(specs):
    for path in SPECS.glob("*.yaml"):
        shutil.copy(path, specs)
    default, offered = form_default(specs)
    assert offered[0] == "cifar10"  # still offered, first by name
    assert default == "diabetes", default  # the first that needs nothing but this machine


def test_without_a_local_model_the_first_name_stays(specs):
    for name in ("cifar10", "digits-s3", "mnist"):
        shutil.copy(SPECS / f"{name}.yaml", specs)
    default, _ = form_default(specs)
    assert default == "cifar10"  # mnist downloads its data; none runs here alone, so nothing is preferred
