"""End-to-end fixtures: a specs folder Airflow compiles from (model_server is in tests/fixtures)."""

from __future__ import annotations

import pytest


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
