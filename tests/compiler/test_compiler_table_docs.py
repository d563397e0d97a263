"""The DAG docs of a table model say how its endpoint is called: one input per column, not one FP32 array."""

from __future__ import annotations

from tests.fixtures.paths import SPECS

from mlspec.compiler import build_dag
from mlspec.spec import load_spec


def test_a_table_models_dag_docs_name_one_input_per_column():
    doc = build_dag(load_spec(SPECS / "penguins.yaml")).doc_md
    assert "a CSV, Parquet or SQL table one input per column, named as the column" in doc
    assert "input_schema.json lists them with example rows" in doc
