"""The DAG docs of a table model say how its endpoint is called, one input per column, and never offer the
single-array curl (a row of zeros as `input` FP32) that the docs of a spec on a known data set carry."""

from __future__ import annotations

from tests.fixtures.paths import SPECS

from mlspec.compiler import build_dag
from mlspec.spec import load_spec


def test_a_table_models_dag_docs_name_one_input_per_column_and_offer_no_single_array_curl():
    table = build_dag(load_spec(SPECS / "penguins.yaml")).doc_md
    assert "a CSV, Parquet or SQL table one input per column, named as the column" in table
    assert "input_schema.json lists them with example rows" in table
    assert '"name":"input"' not in table and "a row of zeros" not in table
    # A spec on a known data set (iris) gets that curl: what the table's docs must not have.
    known = build_dag(load_spec(SPECS / "iris-forest.yaml")).doc_md
    assert '"name":"input","shape":[1,4],"datatype":"FP32"' in known and "a row of zeros" in known
