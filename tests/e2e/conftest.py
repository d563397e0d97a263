"""End-to-end fixtures: a real `mlspec serve` process and a specs folder Airflow compiles from."""

from __future__ import annotations

import os

import pytest
from tests.e2e.e2e_testkit import model_server_process


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    """The local model server, started the way a user does (`mlspec serve`), on a free loopback port."""
    with model_server_process(tmp_path_factory.mktemp("server-state"), {}) as url:
        os.environ["MLSPEC_SERVER_URL"] = url
        yield url
        os.environ.pop("MLSPEC_SERVER_URL", None)


@pytest.fixture
def run_spec(airflow_db, model_server, tmp_path, monkeypatch):
    """Write a spec into a fresh specs folder and run its DAG through Airflow (dag.test)."""
    specs = tmp_path / "specs"
    specs.mkdir()
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))

    def run(text: str, name: str, **run_conf):
        from mlspec.compiler import build_dag
        from mlspec.spec import load_spec

        (specs / f"{name}.yaml").write_text(text)
        spec = load_spec(specs / f"{name}.yaml")
        dag_run = build_dag(spec, spec_text=text).test(run_conf=run_conf or None)
        return spec, dag_run

    return run
