"""Compiles every spec in specs/ into an Airflow DAG, plus the mlspec_operations DAG. This is the only
DAG file mlspec needs."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import get_parsing_context

from mlspec.dagbag import compile_specs
from mlspec.operations_dag import DAG_ID, build_operations_dag

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

globals().update(compile_specs(SPECS_DIR))
# A worker running a model's task needs that model's DAG only (Airflow's parsing context).
if get_parsing_context().dag_id in (None, DAG_ID):
    globals()[DAG_ID] = build_operations_dag(SPECS_DIR)
